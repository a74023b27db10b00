//! The command line: every subcommand of `dagctl` and its flags, as clap parses them, named
//! and shaped after Airflow's CLI (`airflow dags trigger -c … -r …` works as `dagctl dags
//! trigger -c … -r …`). The commands take these values; nothing here runs anything.
//!
//! `--server` belongs to the client commands only (each has a `RemoteArgs`), so the local
//! ones neither show nor take it; a `--server` before the subcommand is still read, hidden,
//! for scripts written that way.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args, Parser, Subcommand};

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
    /// The server of a client command, given before the subcommand (the subcommand's own
    /// --server wins).
    #[arg(
        long = "server",
        id = "server_before_command",
        value_name = "URL",
        hide = true
    )]
    pub server: Option<String>,
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
    /// The REST API and the web UI.
    ApiServer(ServerArgs),
    /// Database schema and retention. Local: works on the configured database.
    #[command(subcommand)]
    Db(DbCommand),
    /// DAGs: list, show, trigger, pause, runs; validate and test locally.
    #[command(subcommand)]
    Dags(DagsCommand),
    /// Tasks and task instances: list, states, logs, XComs, clear; test one locally.
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// Users of the API and UI. Local: works on the configured database.
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
    /// The configuration. Local: reads the configuration file and environment.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Log in to a server, keep its token, and make it the default server of later commands.
    Login(LoginArgs),
    /// Print dagctl's version.
    Version,
    /// Version, configuration, system and tools, for a bug report. Local.
    Info(InfoArgs),
    /// Measure per-hop latency and throughput on a throw-away database.
    Bench(BenchArgs),
}

/// Where a client command sends its requests.
#[derive(Debug, Clone, Default, Args)]
pub struct RemoteArgs {
    /// The server's base URL (default: $UPDRAFT_SERVER, else the last login's, else
    /// http://127.0.0.1:8080).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

impl RemoteArgs {
    /// This command's `--server`, else the one given before the subcommand.
    pub fn or<'a>(&'a self, before_command: Option<&'a str>) -> Option<&'a str> {
        self.server.as_deref().or(before_command)
    }
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The user to log in as (asked for on a terminal when not given).
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Read the password from standard input (else it is asked for on the terminal).
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Write the home directory in paths as `~`, for sharing the output.
    #[arg(long)]
    pub anonymize: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on (default: api.host, 127.0.0.1).
    #[arg(short = 'H', long)]
    pub host: Option<String>,
    /// Port to listen on; 0 picks a free one (default: api.port, 8080).
    #[arg(short = 'p', long)]
    pub port: Option<u16>,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Comma-separated queues to take work from.
    #[arg(short = 'q', long, value_delimiter = ',')]
    pub queues: Option<Vec<String>>,
    /// Task instances run at once.
    #[arg(short = 'c', long)]
    pub concurrency: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create the database if needed and apply pending migrations.
    Migrate,
    /// The same as `db migrate` (Airflow's older, deprecated name for it).
    Init,
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
    #[arg(
        long,
        visible_alias = "clean-before-timestamp",
        value_name = "DATE",
        value_parser = crate::commands::parse_date
    )]
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
    List {
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// One DAG's main details, then its tasks in graph order (upstream first).
    Show {
        /// The DAG's id.
        dag_id: String,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Every detail of a DAG, as the API's DAG details.
    Details {
        /// The DAG's id.
        dag_id: String,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Parse and validate DAG files (default: the DAGs folder); prints file:line:col errors.
    /// Local: needs no server.
    Validate {
        /// Files or folders to check (default: the DAGs folder).
        paths: Vec<PathBuf>,
    },
    /// Import errors of the DAGs folder.
    ListImportErrors {
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Run a whole DAG in-process on a throw-away database. Local: needs no server.
    Test {
        /// The DAG's id.
        dag_id: String,
        /// Logical date (RFC 3339 or YYYY-MM-DD); default now.
        logical_date: Option<String>,
        /// Run configuration, a JSON object.
        #[arg(short = 'c', long)]
        conf: Option<String>,
        /// Do not run the tasks whose id matches this regular expression: mark them
        /// successful instead (to skip sensors or clean-up steps when testing).
        #[arg(long, value_name = "REGEX")]
        mark_success_pattern: Option<String>,
        /// Read the DAG from this file instead of looking for it in the DAGs folder.
        #[arg(short = 'f', long, value_name = "PATH")]
        dagfile_path: Option<PathBuf>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Trigger a run; prints its run id.
    Trigger {
        /// The DAG's id.
        dag_id: String,
        /// Run configuration, a JSON object.
        #[arg(short = 'c', long)]
        conf: Option<String>,
        /// RFC 3339 or YYYY-MM-DD; default: the run takes the trigger time.
        #[arg(short = 'l', long)]
        logical_date: Option<String>,
        /// The new run's id (default: manual__ and its logical date).
        #[arg(short = 'r', long)]
        run_id: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Runs for every tick of the schedule in [start, end], oldest first.
    Backfill {
        /// The DAG's id.
        dag_id: String,
        /// The first logical date to cover (RFC 3339 or YYYY-MM-DD).
        #[arg(short = 's', long)]
        start_date: String,
        /// The last logical date to cover (RFC 3339 or YYYY-MM-DD).
        #[arg(short = 'e', long)]
        end_date: String,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Pause a DAG (or, with --treat-dag-id-as-regex, every DAG whose id matches): no new
    /// scheduled runs, no new tasks.
    Pause(PauseArgs),
    /// Unpause a DAG (or, with --treat-dag-id-as-regex, every DAG whose id matches).
    Unpause(PauseArgs),
    /// Delete a DAG with its runs and task instances (its file stays).
    Delete {
        /// The DAG's id.
        dag_id: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Runs of a DAG, newest first.
    #[command(group(ArgGroup::new("dag").required(true).args(["dag_id", "dag_id_flag"])))]
    ListRuns {
        /// The DAG's id.
        dag_id: Option<String>,
        /// The DAG's id, as Airflow 2 took it.
        #[arg(
            short = 'd',
            long = "dag-id",
            id = "dag_id_flag",
            value_name = "DAG_ID"
        )]
        dag_id_flag: Option<String>,
        /// Only runs in this state (queued, running, success, failed).
        #[arg(long)]
        state: Option<String>,
        /// Leave out backfill runs.
        #[arg(long)]
        no_backfill: bool,
        /// Only runs whose logical date is at or after this (RFC 3339 or YYYY-MM-DD).
        #[arg(short = 's', long)]
        start_date: Option<String>,
        /// Only runs whose logical date is at or before this (RFC 3339 or YYYY-MM-DD).
        #[arg(short = 'e', long)]
        end_date: Option<String>,
        /// Only the newest N runs.
        #[arg(long, value_name = "N")]
        limit: Option<NonZeroUsize>,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// The state of a run (and its conf, if it has one), or None if there is no such run.
    State {
        /// The DAG's id.
        dag_id: String,
        /// The run's id, or its logical date (RFC 3339 or YYYY-MM-DD).
        logical_date_or_run_id: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// The logical date of the DAG's next scheduled run (or of the next N), one a line; None
    /// where the schedule has no more.
    NextExecution {
        /// The DAG's id.
        dag_id: String,
        /// How many of the next scheduled runs to show.
        #[arg(short = 'n', long, value_name = "NUM", default_value = "1")]
        num_executions: NonZeroUsize,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// `dags pause` and `dags unpause`.
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The DAG's id (a regular expression with --treat-dag-id-as-regex).
    pub dag_id: String,
    /// Treat the DAG id as a regular expression and act on every DAG it matches.
    #[arg(long)]
    pub treat_dag_id_as_regex: bool,
    /// Do not ask for confirmation (asked only with --treat-dag-id-as-regex).
    #[arg(short = 'y', long)]
    pub yes: bool,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Run one task in-process on a throw-away database, ignoring its upstream. Local:
    /// needs no server.
    Test {
        /// The DAG's id.
        dag_id: String,
        /// The task's id.
        task_id: String,
        /// Logical date (RFC 3339 or YYYY-MM-DD); default now.
        logical_date: Option<String>,
        /// The mapped instance to run (required for a mapped task; -1: the task is not
        /// mapped).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        map_index: i64,
        /// Environment variables for the task's process, a JSON object of strings, e.g.
        /// '{"STAGE": "test"}' (the task's own env wins).
        #[arg(long, value_name = "JSON")]
        env_vars: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Tasks of a DAG, by task id.
    List {
        /// The DAG's id.
        dag_id: String,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// States of every task instance of a run.
    StatesForDagRun {
        /// The DAG's id.
        dag_id: String,
        /// The run's id, or its logical date (RFC 3339 or YYYY-MM-DD).
        logical_date_or_run_id: String,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// The state of one task instance, or None if it has none yet.
    State {
        /// The DAG's id.
        dag_id: String,
        /// The task's id.
        task_id: String,
        /// The run's id, or its logical date (RFC 3339 or YYYY-MM-DD).
        logical_date_or_run_id: String,
        /// The mapped instance (-1: the task is not mapped).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        map_index: i64,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// XComs of a task in a run, values as JSON.
    Xcom {
        /// The DAG's id.
        dag_id: String,
        /// The run's id, or its logical date (RFC 3339 or YYYY-MM-DD).
        run_id: String,
        /// The task's id.
        task_id: String,
        /// Only this key (default: every key).
        #[arg(long)]
        key: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// A task instance's log.
    Logs {
        /// The DAG's id.
        dag_id: String,
        /// The run's id, or its logical date (RFC 3339 or YYYY-MM-DD).
        run_id: String,
        /// The task's id.
        task_id: String,
        /// Try number (default: the latest).
        #[arg(long = "try")]
        try_number: Option<u32>,
        /// The mapped instance (-1: the task is not mapped).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        map_index: i64,
        /// Keep printing new lines until the try ends.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Clear task instances so that they run again: of one run (--run-id), of the runs in a
    /// range of logical dates (-s/-e), or of every run. Shows them and asks first.
    Clear {
        /// The DAG's id.
        dag_id: String,
        /// Only this run.
        #[arg(long)]
        run_id: Option<String>,
        /// Only runs whose logical date is at or after this (RFC 3339 or YYYY-MM-DD).
        #[arg(short = 's', long)]
        start_date: Option<String>,
        /// Only runs whose logical date is at or before this (RFC 3339 or YYYY-MM-DD).
        #[arg(short = 'e', long)]
        end_date: Option<String>,
        /// Only tasks whose id matches this regular expression (default: every task).
        #[arg(short = 't', long)]
        task_regex: Option<String>,
        /// Also their upstream tasks.
        #[arg(short = 'u', long)]
        upstream: bool,
        /// Also their downstream tasks.
        #[arg(short = 'd', long)]
        downstream: bool,
        /// Only failed (and upstream-failed) task instances.
        #[arg(short = 'f', long)]
        only_failed: bool,
        /// Only running task instances.
        #[arg(short = 'r', long, conflicts_with = "only_failed")]
        only_running: bool,
        /// Do not show what would be cleared and ask first.
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user. The password comes from --password, --password-stdin or
    /// --use-random-password, else it is asked for twice on a terminal (without one, generated).
    #[command(group(ArgGroup::new("password_source").args(["password", "password_stdin", "use_random_password"])))]
    Create {
        /// The new user's name, to log in with.
        #[arg(short = 'u', long)]
        username: String,
        /// Admin, Op, User or Viewer.
        #[arg(short = 'r', long)]
        role: String,
        /// First name.
        #[arg(short = 'f', long)]
        firstname: Option<String>,
        /// Last name.
        #[arg(short = 'l', long)]
        lastname: Option<String>,
        /// Email address (name@domain); one user's only.
        #[arg(short = 'e', long)]
        email: Option<String>,
        /// The password (it shows in the shell's history: prefer the prompt or
        /// --password-stdin).
        #[arg(short = 'p', long)]
        password: Option<String>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Generate a random password and print it.
        #[arg(long)]
        use_random_password: bool,
    },
    /// Users: id, username, email, first and last name, role.
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Delete a user, named by username or by email.
    #[command(group(ArgGroup::new("user").required(true).args(["username", "email"])))]
    Delete {
        /// The user's name.
        #[arg(short = 'u', long)]
        username: Option<String>,
        /// The user's email address (compared without case).
        #[arg(short = 'e', long)]
        email: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum VariablesCommand {
    /// Variables with their values (secret ones masked by the server).
    List {
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Print a variable's value.
    Get {
        /// The variable's key.
        key: String,
        /// Parse the value as JSON and pretty-print it.
        #[arg(short = 'j', long)]
        json: bool,
        /// Print this if the variable does not exist (instead of failing).
        #[arg(short = 'd', long, value_name = "VALUE")]
        default: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Create a variable or replace its value.
    Set {
        /// The variable's key.
        key: String,
        /// The value, stored as text.
        value: String,
        /// A description (an existing variable keeps its own when not given).
        #[arg(long)]
        description: Option<String>,
        /// Refuse a value that is not valid JSON.
        #[arg(short = 'j', long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Delete a variable.
    Delete {
        /// The variable's key.
        key: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Set every variable of a JSON object file (`{"key": value}`).
    Import {
        /// The JSON file to read.
        file: PathBuf,
        /// What to do with a key that already exists.
        #[arg(
            short = 'a',
            long,
            value_enum,
            default_value_t = ExistingKey::Overwrite
        )]
        action_on_existing_key: ExistingKey,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Write every variable to a JSON object file (secret ones are left out).
    Export {
        /// The JSON file to write.
        file: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// What `variables import` does with a key that already exists (Airflow's
/// `--action-on-existing-key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExistingKey {
    /// Replace its value.
    Overwrite,
    /// Import nothing, naming the keys that exist.
    Fail,
    /// Keep its value, and import the other keys.
    Skip,
}

#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    /// Connections (passwords never leave the server).
    List {
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Show one connection (password hidden).
    Get {
        /// The connection's id.
        conn_id: String,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Add a connection, from --conn-uri or --conn-* flags; an existing id is refused.
    Add {
        #[command(flatten)]
        connection: AddConnection,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Delete a connection.
    Delete {
        /// The connection's id.
        conn_id: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Add every connection of a JSON object file (`{"id": URI or {conn_type, host, …}}`).
    /// Local: writes the configured database.
    Import {
        /// The JSON file to read.
        file: PathBuf,
    },
    /// Write every stored connection to a JSON object file (passwords in the clear).
    /// Local: reads the configured database, since the API never hands out passwords.
    Export {
        /// The JSON file to write.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum PoolsCommand {
    /// Pools with their running and queued slots.
    List {
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// One pool with its slots.
    Get {
        /// The pool's name.
        name: String,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Create or resize a pool.
    Set {
        /// The pool's name.
        name: String,
        /// How many slots its running tasks may take at once.
        slots: i64,
        /// A description, as Airflow takes it (after the slots).
        #[arg(value_name = "DESCRIPTION", conflicts_with = "description")]
        description_arg: Option<String>,
        /// A description (an existing pool keeps its own when not given).
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Delete a pool.
    Delete {
        /// The pool's name.
        name: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Create or update every pool of a JSON file, Airflow's format:
    /// `{"name": {"slots": 5, "description": "…", "include_deferred": false}}`. A file with a
    /// bad entry changes nothing.
    Import {
        /// The JSON file to read.
        file: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Write every pool to a JSON file, in the format `pools import` reads.
    Export {
        /// The JSON file to write.
        file: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The effective configuration, secrets masked.
    #[command(visible_alias = "list")]
    Show,
    /// Print one effective value, e.g. `config get-value core dags_folder` (secrets masked).
    GetValue {
        /// The section, e.g. core, database, api, scheduler, worker, smtp, logging.
        section: String,
        /// The option within the section, e.g. dags_folder.
        option: String,
    },
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format: table, json, yaml, or plain (the same as table).
    #[arg(short = 'o', long = "output", default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// sqlite or postgres (Postgres URL from --database-url or $UPDRAFT_BENCH_POSTGRES_URL).
    #[arg(long, default_value = "sqlite", global = true)]
    pub backend: String,
    /// The Postgres URL of the postgres backend (else $UPDRAFT_BENCH_POSTGRES_URL).
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
    /// Also run the chain with a spinning process on every core beside it.
    #[arg(long)]
    pub hog: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Many file sensors waiting at once: memory, CPU per poke round, time to release them.
    Sensors(SensorBenchArgs),
    /// The DAG file processor: a big folder parsed and synced from cold (time, RSS), and one
    /// file rewritten many times (RSS stays level: the version caches are bounded).
    Folder(FolderBenchArgs),
    /// Airflow Python DAG files: parse and list many files from cold, a PythonOperator chain
    /// passing XComs, and a BashOperator chain from a `.py` file against the same in YAML.
    Python(PythonBenchArgs),
    /// Retention: load a big finished history in bulk, then `db clean` it while a scheduler-like
    /// write keeps going, measuring the batches and that write's latency.
    Clean(CleanBenchArgs),
    /// Sustained load: many DAGs on a one-minute cron for minutes; the backlog, CPU and RSS
    /// per minute and the queued -> start latency.
    Sustained(SustainedBenchArgs),
    /// What a user sees: `standalone` in a scratch folder and a wide fan-out DAG, triggered
    /// and read through the REST API.
    Standalone(StandaloneBenchArgs),
}

#[derive(Debug, Args)]
pub struct StandaloneBenchArgs {
    /// Tasks between `start` and `join`.
    #[arg(long, default_value_t = 200)]
    pub width: usize,
    /// The worker's concurrency (`worker.concurrency`).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// The `dagctl` whose `standalone` is measured (default: this one), to compare builds in
    /// one run.
    #[arg(long)]
    pub dagctl: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct SustainedBenchArgs {
    /// DAGs, each of 10 bash tasks on `*/1 * * * *`.
    #[arg(long, default_value_t = 200)]
    pub dags: usize,
    /// Minutes to run for.
    #[arg(long, default_value_t = 10)]
    pub minutes: u32,
    /// Worker concurrency.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
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
pub struct FolderBenchArgs {
    /// DAG files generated in the folder.
    #[arg(long, default_value_t = 1000)]
    pub files: usize,
    /// Tasks in each of those files.
    #[arg(long, default_value_t = 10)]
    pub tasks: usize,
    /// Times one DAG file is rewritten, each processed and read back (0: none).
    #[arg(long, default_value_t = 10_000)]
    pub rewrites: usize,
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
    /// The connection's id.
    pub conn_id: String,
    /// The whole connection as a URI: `type://login:password@host:port/schema?extra=…`.
    #[arg(long)]
    pub conn_uri: Option<String>,
    /// The connection's type (postgres, sqlite, http, …), when not given by --conn-uri.
    #[arg(long)]
    pub conn_type: Option<String>,
    /// Host name or address.
    #[arg(long)]
    pub conn_host: Option<String>,
    /// Login (user name).
    #[arg(long)]
    pub conn_login: Option<String>,
    /// Password (stored encrypted; the API never returns it).
    #[arg(long)]
    pub conn_password: Option<String>,
    /// Schema (for a database, its name).
    #[arg(long)]
    pub conn_schema: Option<String>,
    /// Port.
    #[arg(long)]
    pub conn_port: Option<i32>,
    /// Extra settings, a JSON object.
    #[arg(long)]
    pub conn_extra: Option<String>,
    /// A description.
    #[arg(long)]
    pub conn_description: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let mut argv = vec!["dagctl"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// Every subcommand and every argument says in one line what it is for.
    #[test]
    fn every_command_and_flag_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") || arg.is_hide_set() {
                    continue;
                }
                if arg
                    .get_help()
                    .is_none_or(|h| h.to_string().trim().is_empty())
                {
                    missing.push(format!("{path} <{id}>"));
                }
            }
            for sub in command.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                if sub.get_name() != "help"
                    && sub
                        .get_about()
                        .is_none_or(|a| a.to_string().trim().is_empty())
                {
                    missing.push(name.clone());
                }
                walk(sub, &name, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "dagctl", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    #[test]
    fn the_server_is_an_option_of_the_client_commands_only() {
        let cli = Cli::command();
        let find = |path: &[&str]| {
            let mut command = &cli;
            for name in path {
                command = command
                    .find_subcommand(name)
                    .unwrap_or_else(|| panic!("no {name}"));
            }
            command
                .get_arguments()
                .find(|a| a.get_long() == Some("server"))
                .map(|a| (a.is_required_set(), a.is_hide_set()))
        };
        for local in [
            &["dags", "validate"][..],
            &["dags", "test"],
            &["tasks", "test"],
            &["connections", "import"],
            &["users", "create"],
            &["db", "migrate"],
            &["config", "get-value"],
            &["standalone"],
            &["info"],
        ] {
            assert_eq!(find(local), None, "{local:?} takes --server");
        }
        for client in [
            &["dags", "list"][..],
            &["dags", "trigger"],
            &["tasks", "clear"],
            &["variables", "get"],
            &["connections", "add"],
            &["pools", "get"],
            &["login"],
        ] {
            assert_eq!(find(client), Some((false, false)), "{client:?}");
        }
        // Still read before the subcommand, and the subcommand's own wins.
        let cli = parse(&["--server", "http://a:1", "dags", "list"]);
        let Command::Dags(DagsCommand::List { remote, .. }) = cli.command else {
            panic!("dags list");
        };
        assert_eq!(remote.or(cli.server.as_deref()), Some("http://a:1"));
        let cli = parse(&[
            "--server",
            "http://a:1",
            "dags",
            "list",
            "--server",
            "http://b:2",
        ]);
        let Command::Dags(DagsCommand::List { remote, .. }) = cli.command else {
            panic!("dags list");
        };
        assert_eq!(remote.or(cli.server.as_deref()), Some("http://b:2"));
    }

    #[test]
    fn airflow_short_flags_parse() {
        let cli = parse(&[
            "dags",
            "trigger",
            "hello",
            "-c",
            "{}",
            "-r",
            "r1",
            "-l",
            "2024-01-01",
            "-o",
            "json",
        ]);
        let Command::Dags(DagsCommand::Trigger {
            conf,
            run_id,
            logical_date,
            output,
            ..
        }) = cli.command
        else {
            panic!("dags trigger");
        };
        assert_eq!(conf.as_deref(), Some("{}"));
        assert_eq!(run_id.as_deref(), Some("r1"));
        assert_eq!(logical_date.as_deref(), Some("2024-01-01"));
        assert_eq!(output.format, Format::Json);

        for args in [
            &["dags", "list-runs", "hello"][..],
            &["dags", "list-runs", "-d", "hello"],
        ] {
            let Command::Dags(DagsCommand::ListRuns {
                dag_id,
                dag_id_flag,
                ..
            }) = parse(args).command
            else {
                panic!("list-runs");
            };
            assert_eq!(dag_id.or(dag_id_flag).as_deref(), Some("hello"), "{args:?}");
        }
        let missing = Cli::try_parse_from(["dagctl", "dags", "list-runs"]).expect_err("no DAG");
        assert!(missing.to_string().contains("DAG_ID"), "{missing}");

        let Command::Users(UsersCommand::Create {
            username,
            role,
            firstname,
            lastname,
            email,
            password,
            ..
        }) = parse(&[
            "users",
            "create",
            "-u",
            "ana",
            "-r",
            "Op",
            "-f",
            "Ana",
            "-l",
            "Lima",
            "-e",
            "ana@example.org",
            "-p",
            "pw",
        ])
        .command
        else {
            panic!("users create");
        };
        assert_eq!(
            (username, role, firstname, lastname, email, password),
            (
                "ana".to_string(),
                "Op".to_string(),
                Some("Ana".to_string()),
                Some("Lima".to_string()),
                Some("ana@example.org".to_string()),
                Some("pw".to_string())
            )
        );
        let both = Cli::try_parse_from([
            "dagctl",
            "users",
            "create",
            "-u",
            "a",
            "-r",
            "Op",
            "-p",
            "x",
            "--use-random-password",
        ]);
        assert!(both.is_err(), "one password source only");

        let Command::Tasks(TasksCommand::Clear {
            task_regex,
            downstream,
            upstream,
            only_failed,
            yes,
            start_date,
            ..
        }) = parse(&[
            "tasks",
            "clear",
            "hello",
            "-t",
            "^w",
            "-d",
            "-u",
            "-f",
            "-y",
            "-s",
            "2024-01-01",
        ])
        .command
        else {
            panic!("tasks clear");
        };
        assert_eq!(task_regex.as_deref(), Some("^w"));
        assert!(downstream && upstream && only_failed && yes);
        assert_eq!(start_date.as_deref(), Some("2024-01-01"));

        for args in [&["db", "init"][..], &["version"], &["config", "list"]] {
            parse(args);
        }
        let Command::Pools(PoolsCommand::Set {
            description_arg, ..
        }) = parse(&["pools", "set", "etl", "4", "ETL slots"]).command
        else {
            panic!("pools set");
        };
        assert_eq!(description_arg.as_deref(), Some("ETL slots"));
    }

    /// The flags of issue 14's second round, in Airflow's shapes (cli_config.py and the FAB
    /// provider's user commands), and what each refuses.
    #[test]
    fn airflows_remaining_flags_parse() {
        let refused = |args: &[&str]| {
            let mut argv = vec!["dagctl"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv)
                .map(|_| ())
                .expect_err(&format!("{args:?} must be refused"))
                .to_string()
        };

        let Command::Tasks(TasksCommand::Test {
            map_index,
            env_vars,
            logical_date,
            ..
        }) = parse(&[
            "tasks",
            "test",
            "mapping",
            "per_region",
            "2024-01-01",
            "--map-index",
            "3",
            "--env-vars",
            r#"{"STAGE": "test"}"#,
        ])
        .command
        else {
            panic!("tasks test");
        };
        assert_eq!(
            (map_index, env_vars.as_deref(), logical_date.as_deref()),
            (3, Some(r#"{"STAGE": "test"}"#), Some("2024-01-01"))
        );
        let Command::Tasks(TasksCommand::Test { map_index, .. }) =
            parse(&["tasks", "test", "hello", "world"]).command
        else {
            panic!("tasks test");
        };
        assert_eq!(map_index, -1, "unmapped by default");

        let Command::Dags(DagsCommand::Test {
            logical_date,
            conf,
            mark_success_pattern,
            dagfile_path,
            ..
        }) = parse(&[
            "dags",
            "test",
            "hello",
            "2024-03-01",
            "-c",
            r#"{"k": 1}"#,
            "--mark-success-pattern",
            "^wait_",
            "-f",
            "dags/hello.yaml",
        ])
        .command
        else {
            panic!("dags test");
        };
        assert_eq!(logical_date.as_deref(), Some("2024-03-01"));
        assert_eq!(conf.as_deref(), Some(r#"{"k": 1}"#));
        assert_eq!(mark_success_pattern.as_deref(), Some("^wait_"));
        assert_eq!(dagfile_path, Some(PathBuf::from("dags/hello.yaml")));

        for (args, expected) in [
            (
                &["variables", "import", "v.json"][..],
                ExistingKey::Overwrite,
            ),
            (
                &["variables", "import", "v.json", "-a", "fail"],
                ExistingKey::Fail,
            ),
            (
                &[
                    "variables",
                    "import",
                    "v.json",
                    "--action-on-existing-key",
                    "skip",
                ],
                ExistingKey::Skip,
            ),
        ] {
            let Command::Variables(VariablesCommand::Import {
                action_on_existing_key,
                ..
            }) = parse(args).command
            else {
                panic!("variables import");
            };
            assert_eq!(action_on_existing_key, expected, "{args:?}");
        }
        let bad = refused(&["variables", "import", "v.json", "-a", "replace"]);
        assert!(bad.contains("overwrite, fail, skip"), "{bad}");

        let Command::Pools(PoolsCommand::Import { file, .. }) =
            parse(&["pools", "import", "pools.json"]).command
        else {
            panic!("pools import");
        };
        assert_eq!(file, PathBuf::from("pools.json"));
        let Command::Pools(PoolsCommand::Export { file, .. }) =
            parse(&["pools", "export", "out.json"]).command
        else {
            panic!("pools export");
        };
        assert_eq!(file, PathBuf::from("out.json"));

        let Command::Users(UsersCommand::Delete { username, email }) =
            parse(&["users", "delete", "-e", "ana@example.org"]).command
        else {
            panic!("users delete");
        };
        assert_eq!(
            (username, email.as_deref()),
            (None, Some("ana@example.org"))
        );
        refused(&["users", "delete"]);
        refused(&["users", "delete", "-u", "ana", "-e", "ana@example.org"]);

        let Command::Dags(DagsCommand::NextExecution { num_executions, .. }) =
            parse(&["dags", "next-execution", "hello", "-n", "3"]).command
        else {
            panic!("next-execution");
        };
        assert_eq!(num_executions.get(), 3);
        let Command::Dags(DagsCommand::NextExecution { num_executions, .. }) =
            parse(&["dags", "next-execution", "hello"]).command
        else {
            panic!("next-execution");
        };
        assert_eq!(num_executions.get(), 1);
        refused(&["dags", "next-execution", "hello", "-n", "0"]);
    }
}
