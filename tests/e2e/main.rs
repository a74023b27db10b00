//! End-to-end tests: the real `dagctl` binary, real child processes, real databases.

mod airflow_habits;
mod backfill;
mod bench;
mod browser;
mod chaos;
mod cli;
mod client;
mod crash;
mod examples;
mod harness;
mod http_server;
mod operators;
mod pausing;
mod pg_cluster;
mod pools;
mod postgres;
mod python_clients;
mod python_dags;
mod retention;
mod secrets;
mod smtp;
mod standalone;
mod tidy;
mod topology;
