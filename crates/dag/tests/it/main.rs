//! Integration tests of the `dag` crate's public API: parsing, schedules and templates.

mod parse;
mod schedule;
mod stored;
mod template;
