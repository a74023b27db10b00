//! The handlers, one module per resource family.

pub mod access;
pub mod dags;
pub mod monitor;
pub mod resources;
pub mod runs;
pub mod task_instances;
