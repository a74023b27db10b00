//! The DAG model: parse YAML/JSON DAG files, validate them, build their graph, compute cron
//! ticks, render templates, and decide trigger rules and state transitions.
//!
//! This crate is pure: no I/O beyond what the caller hands in, no tokio, no database. Time is
//! always passed in.

pub mod duration;
pub mod graph;
pub mod mapping;
pub mod model;
pub mod operator;
pub mod params;
pub mod parse;
pub mod retry;
pub mod schedule;
pub mod sensor;
pub mod state;
pub mod template;
pub mod trigger_rule;

pub use graph::DagGraph;
pub use model::{
    AirflowTask, Dag, Group, Param, PythonCallback, PythonTask, Schedule, SwitchCase, Task,
    TaskKind,
};
pub use operator::{EmailSpec, HttpSpec, SqlSpec, TriggerDagSpec};
pub use parse::{DagError, ImportError, dag_from_python, parse_dag_bytes, parse_dag_str};
pub use sensor::{Probe, Sensor, SensorMode};
pub use state::{RunState, RunType, TaskState};
pub use trigger_rule::{Readiness, TriggerRule, UpstreamCounts};
