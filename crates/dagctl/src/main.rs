//! `dagctl`: every Updraft component (standalone, scheduler, worker, API server) and the CLI.

mod backend;
mod bench;
mod cli;
mod client;
mod commands;
mod configuration;
mod credentials;
mod info;
mod output;
mod settings;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, DbCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = settings::load(cli.config.as_deref())?;
    commands::init_tracing(&settings);
    use commands::*;
    // A `--server` given before the subcommand, for the client commands.
    let before = cli.server.as_deref();
    match cli.command {
        Command::Standalone(args) => server::standalone(settings, args).await,
        Command::Scheduler => server::scheduler(settings).await,
        Command::Worker(args) => server::worker(settings, args).await,
        Command::ApiServer(args) => server::api_server(settings, args).await,
        Command::Db(DbCommand::Migrate) => db::migrate(settings).await,
        Command::Db(DbCommand::Init) => db::init(settings).await,
        Command::Db(DbCommand::Check) => db::check(settings).await,
        Command::Db(DbCommand::Clean(args)) => db::clean(settings, args).await,
        Command::Dags(command) => dags::run(settings, before, command).await,
        Command::Tasks(command) => tasks::run(settings, before, command).await,
        Command::Users(command) => users::run(settings, command).await,
        Command::Variables(command) => secrets::variables(before, command).await,
        Command::Connections(command) => secrets::connections(settings, before, command).await,
        Command::Pools(command) => pools::run(before, command).await,
        Command::Login(args) => {
            credentials::login(args.remote.or(before), args.username, args.password_stdin).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(command) => configuration::run(&settings, command),
        Command::Version => {
            println!("{}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Info(args) => info::run(&settings, args).await,
        Command::Bench(args) => bench::run(settings, args).await,
    }
}
