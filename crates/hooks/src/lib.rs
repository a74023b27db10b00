//! Clients for the outside world that task kinds, sensors and notifications share: HTTP
//! requests (`http`), SQL statements on Postgres or SQLite connections (`sql`), mail over SMTP
//! (`mail`), notification action lists (`notify`) and which of them a task or run ending sends
//! (`callbacks`).
//!
//! Why it is a crate of its own: the worker runs `http`, `sql` and `email` tasks, the
//! scheduler pokes `http`/`sql` sensors and sends DAG-run notifications, and both must talk to
//! the same servers the same way. Every function here takes its settings as plain structs and
//! bounds its own time, so nothing a user points it at can hang the caller.
//!
//! **Invariant:** this crate names sqlx only as a SQL *client* for user connections; it never
//! touches Updraft's own database (that is `store-*`'s).

pub mod callbacks;
pub mod http;
pub mod mail;
pub mod notify;
pub mod sql;
