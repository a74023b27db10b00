//! The scheduler: turns DAG files into stored DAGs, cron ticks and triggers into runs, and
//! finished task instances into the next ready ones — at once, on the event, not on a tick.

mod branch;
pub mod dag_folder;
pub mod decide;
mod python_callbacks;
pub mod runs;
mod scheduler;
mod sensors;

pub use dag_folder::{DagFolder, ImportFailure, NewDags, ProcessReport};
pub use runs::{
    BackfillError, GraphCache, TriggerError, TriggerRequest, backfill, trigger, trigger_by,
};
pub use scheduler::{Scheduler, SchedulerConfig, SchedulerError};
