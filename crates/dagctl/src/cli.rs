//! The command line: every subcommand of `dagctl` and its flags, as clap parses them. The
//! commands take these values; nothing here runs anything.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

use crate::client;
use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "dagctl",
    version,
    about = "Updraft: DAG orchestration, Airflow-style"
)]
pub struct Cli {
    /// Configuration file (else $UPDRAFT_CONFIG, else ./updraft.toml if present).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The server the client commands talk to.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "UPDRAFT_SERVER",
        default_value = client::DEFAULT_SERVER
    )]
    pub server: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scheduler, worker and API server in one process on an embedded SQLite database.
    Standalone(ServerArgs),
    /// Parse DAGs, make runs, decide what is ready.
    Scheduler,
    /// Take queued task instances and run them.
    Worker(WorkerArgs),
    /// The REST API (and, later, the web UI).
    ApiServer(ServerArgs),
    /// Database schema and retention.
    #[command(subcommand)]
    Db(DbCommand),
    /// DAGs: list, validate, test, trigger, pause, runs.
    #[command(subcommand)]
    Dags(DagsCommand),
    /// Task instances: test one, read logs, states.
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// Users of the API and UI.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Variables (values templates read as `var.value.KEY` / `var.json.KEY`).
    #[command(subcommand)]
    Variables(VariablesCommand),
    /// Connections (templates read them as `conn.ID`); passwords encrypted at rest.
    #[command(subcommand)]
    Connections(ConnectionsCommand),
    /// Pools: how many slots running tasks of a pool may take at once.
    #[command(subcommand)]
    Pools(PoolsCommand),
    /// Configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Log in to the server and keep its token for the client commands.
    Login {
        #[arg(long)]
        username: Option<String>,
        /// Read the password from standard input (else it is asked for on the terminal).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Measure per-hop latency and throughput on a throw-away database.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    #[arg(long)]
    pub host: Option<String>,
    #[arg(long)]
    pub port: Option<u16>,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Comma-separated queues to take work from.
    #[arg(long, value_delimiter = ',')]
    pub queues: Option<Vec<String>>,
    /// Task instances run at once.
    #[arg(long)]
    pub concurrency: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations.
    Migrate,
    /// Check that the database is reachable and migrated.
    Check,
    /// Retention: delete finished runs that ended before a date, with their task instances,
    /// logs and XComs, and stale component heartbeats. Each DAG's newest scheduled run, its
    /// newest run and every unfinished run stay.
    Clean(CleanArgs),
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Delete what ended before this: RFC 3339 (2024-01-01T00:00:00Z) or YYYY-MM-DD (midnight
    /// UTC).
    #[arg(long, value_name = "DATE", value_parser = crate::commands::parse_date)]
    pub before: DateTime<Utc>,
    /// Count what would be deleted, in the same batches; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Runs deleted per transaction: each batch is one short transaction.
    #[arg(long, value_name = "N", default_value_t = store::CleanHistory::DEFAULT_BATCH_SIZE)]
    pub batch_size: NonZeroUsize,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum DagsCommand {
    /// DAGs the server knows.
    List(OutputArgs),
    /// One DAG's details and its tasks.
    Show {
        dag_id: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Parse and validate DAG files (default: the DAGs folder); prints file:line:col errors.
    /// Local: needs no server.
    Validate {
        paths: Vec<PathBuf>,
    },
    /// Import errors of the DAGs folder.
    ListImportErrors(OutputArgs),
    /// Run a whole DAG in-process on a throw-away database. Local: needs no server.
    Test {
        dag_id: String,
        /// Logical date (RFC 3339 or YYYY-MM-DD); default now.
        logical_date: Option<String>,
        /// Run configuration, a JSON object.
        #[arg(long)]
        conf: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Trigger a run; prints its run id.
    Trigger {
        dag_id: String,
        /// Run configuration, a JSON object.
        #[arg(long)]
        conf: Option<String>,
        /// RFC 3339 or YYYY-MM-DD; default: the run takes the trigger time.
        #[arg(long)]
        logical_date: Option<String>,
        #[arg(long)]
        run_id: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Runs for every tick of the schedule in [start, end], oldest first.
    Backfill {
        dag_id: String,
        #[arg(long)]
        start_date: String,
        #[arg(long)]
        end_date: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    Pause {
        dag_id: String,
    },
    Unpause {
        dag_id: String,
    },
    /// Delete a DAG with its runs and task instances (its file stays).
    Delete {
        dag_id: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Runs of a DAG, newest first.
    ListRuns {
        dag_id: String,
        /// Only runs in this state (queued, running, success, failed).
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Run one task in-process on a throw-away database, ignoring its upstream. Local:
    /// needs no server.
    Test {
        dag_id: String,
        task_id: String,
        logical_date: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Tasks of a DAG.
    List {
        dag_id: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// States of every task instance of a run.
    StatesForDagRun {
        dag_id: String,
        run_id: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// XComs of a task in a run.
    Xcom {
        dag_id: String,
        run_id: String,
        task_id: String,
        /// Only this key (default: every key).
        #[arg(long)]
        key: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// A task instance's log.
    Logs {
        dag_id: String,
        run_id: String,
        task_id: String,
        /// Try number (default: the latest).
        #[arg(long = "try")]
        try_number: Option<u32>,
        #[arg(long, default_value_t = -1)]
        map_index: i64,
        /// Keep printing new lines until the try ends.
        #[arg(long)]
        follow: bool,
    },
    /// Clear task instances of a run so that they run again.
    Clear {
        dag_id: String,
        #[arg(long)]
        run_id: String,
        /// Only tasks whose id matches this regular expression (default: every task).
        #[arg(long)]
        task_regex: Option<String>,
        /// Also their downstream tasks.
        #[arg(long)]
        downstream: bool,
        /// Only failed (and upstream-failed) task instances.
        #[arg(long)]
        only_failed: bool,
        /// Do not show what would be cleared and ask first.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    Create {
        #[arg(long)]
        username: String,
        /// Admin, Op, User or Viewer.
        #[arg(long)]
        role: String,
        /// Read the password from standard input (else one is generated and printed).
        #[arg(long)]
        password_stdin: bool,
    },
    List(OutputArgs),
    Delete {
        #[arg(long)]
        username: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum VariablesCommand {
    List(OutputArgs),
    /// Print a variable's value.
    Get {
        key: String,
        /// Parse the value as JSON and pretty-print it.
        #[arg(long)]
        json: bool,
    },
    Set {
        key: String,
        value: String,
        #[arg(long)]
        description: Option<String>,
    },
    Delete {
        key: String,
    },
    /// Set every variable of a JSON object file (`{"key": value}`).
    Import {
        file: PathBuf,
    },
    /// Write every variable to a JSON object file.
    Export {
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    List(OutputArgs),
    /// Show one connection (password hidden).
    Get {
        conn_id: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Add or replace a connection, from --conn-uri or --conn-* flags.
    Add(AddConnection),
    Delete {
        conn_id: String,
    },
    /// Add every connection of a JSON object file (`{"id": URI or {conn_type, host, …}}`).
    /// Local: writes the configured database.
    Import {
        file: PathBuf,
    },
    /// Write every stored connection to a JSON object file (passwords in the clear).
    /// Local: reads the configured database, since the API never hands out passwords.
    Export {
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum PoolsCommand {
    /// Pools with their running and queued slots.
    List(OutputArgs),
    /// Create or resize a pool.
    Set {
        name: String,
        slots: i64,
        #[arg(long)]
        description: Option<String>,
    },
    Delete {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The effective configuration, secrets masked.
    Show,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// table, json or yaml.
    #[arg(short = 'o', long = "output", default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// sqlite or postgres (Postgres URL from --database-url or $UPDRAFT_BENCH_POSTGRES_URL).
    #[arg(long, default_value = "sqlite", global = true)]
    pub backend: String,
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Another benchmark instead of the chain and fan-out.
    #[command(subcommand)]
    pub what: Option<BenchWhat>,
    /// Length of the chain.
    #[arg(long, default_value_t = 100)]
    pub chain: usize,
    /// Width of the fan-out.
    #[arg(long, default_value_t = 1000)]
    pub fan_out: usize,
    /// Worker concurrency.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Many file sensors waiting at once: memory, CPU per poke round, time to release them.
    Sensors(SensorBenchArgs),
    /// Airflow Python DAG files: parse and list many files from cold, a PythonOperator chain
    /// passing XComs, and a BashOperator chain from a `.py` file against the same in YAML.
    Python(PythonBenchArgs),
    /// Retention: load a big finished history in bulk, then `db clean` it while a scheduler-like
    /// write keeps going, measuring the batches and that write's latency.
    Clean(CleanBenchArgs),
}

#[derive(Debug, Args)]
pub struct CleanBenchArgs {
    /// Finished runs loaded, all older than the cutoff (one DAG's newest stays).
    #[arg(long, default_value_t = 100_000)]
    pub runs: usize,
    /// Task instances per run.
    #[arg(long, default_value_t = 3)]
    pub tasks: usize,
    /// Log lines per task instance (each also pushed one XCom).
    #[arg(long, default_value_t = 3)]
    pub log_lines: usize,
    /// Runs deleted per transaction.
    #[arg(long, value_name = "N", default_value_t = store::CleanHistory::DEFAULT_BATCH_SIZE)]
    pub batch_size: NonZeroUsize,
}

#[derive(Debug, Args)]
pub struct PythonBenchArgs {
    /// Python DAG files parsed from cold.
    #[arg(long, default_value_t = 100)]
    pub files: usize,
    /// Tasks in each of those files.
    #[arg(long, default_value_t = 10)]
    pub tasks: usize,
    /// Length of the PythonOperator and BashOperator chains.
    #[arg(long, default_value_t = 20)]
    pub chain: usize,
    /// Runs of each chain, alternating, so that the comparison shares the machine's state.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

#[derive(Debug, Args)]
pub struct SensorBenchArgs {
    /// Sensors waiting at once.
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// Their poke interval, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub poke_interval: f64,
    /// Poke rounds to measure while they wait.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

/// Flags of `connections add`, after Airflow's.
#[derive(Debug, clap::Args)]
pub struct AddConnection {
    pub conn_id: String,
    /// The whole connection as a URI: `type://login:password@host:port/schema?extra=…`.
    #[arg(long)]
    pub conn_uri: Option<String>,
    #[arg(long)]
    pub conn_type: Option<String>,
    #[arg(long)]
    pub conn_host: Option<String>,
    #[arg(long)]
    pub conn_login: Option<String>,
    #[arg(long)]
    pub conn_password: Option<String>,
    #[arg(long)]
    pub conn_schema: Option<String>,
    #[arg(long)]
    pub conn_port: Option<i32>,
    /// JSON object.
    #[arg(long)]
    pub conn_extra: Option<String>,
    #[arg(long)]
    pub conn_description: Option<String>,
}
