//! The task kinds a worker runs, one module each. A kind is an `async fn run(&Attempt) -> Ran`
//! that renders what it needs (`crate::render`), does its work (a child process through
//! `crate::command`, or a client from `hooks`) and reports the outcome and XComs; the
//! dispatcher (`crate::execute`) turns that into the try's end.

pub(crate) mod airflow;
pub(crate) mod operators;
pub(crate) mod process;
pub(crate) mod sensor;
