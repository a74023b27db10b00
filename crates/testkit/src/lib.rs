//! What Updraft's tests share, so that each exists once: the store conformance suite, a fresh
//! store per backend with the CI rule for an unreachable Postgres, a scratch Postgres database
//! dropped even when its test panics, a database outage on demand, and in-process starters for an engine and an API server.
//!
//! A dev-dependency only: nothing here is compiled into a shipped crate. The starters are
//! behind features (`engine`, `server`) so that the store backends' tests build without the
//! scheduler, the worker and the API.

pub mod backend;
pub mod ci;
pub mod conformance;
#[cfg(feature = "engine")]
pub mod engine;
pub mod outage;
pub mod postgres;
#[cfg(feature = "server")]
pub mod server;

pub use backend::{Backend, TestStore, run_on};
#[cfg(feature = "engine")]
pub use engine::Engine;
#[cfg(feature = "server")]
pub use server::Server;
