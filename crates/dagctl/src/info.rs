//! `dagctl info`: what a bug report needs, as Airflow's `airflow info` gives it: Updraft's
//! version and effective settings, where the client commands would go, the system, and the
//! tools tasks run with. Local: it reads the configuration and looks at the machine, and
//! never opens the database or calls a server.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::{Map, Value, json};

use crate::cli::InfoArgs;
use crate::output::{Format, print_object};
use crate::settings::{self, Settings};

/// Programs tasks and their sensors may start, looked up on `$PATH`.
const TOOLS: [&str; 5] = ["bash", "setpriv", "python3", "sqlite3", "psql"];

pub async fn run(settings: &Settings, args: InfoArgs) -> Result<ExitCode> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty());
    let hide = |text: String| match (&home, args.anonymize) {
        (Some(home), true) => text.replace(&*home.to_string_lossy(), "~"),
        _ => text,
    };
    let dags_folder = std::fs::canonicalize(&settings.dags_folder)
        .unwrap_or_else(|_| settings.dags_folder.clone());
    let token_file = crate::credentials::token_file()
        .map_or_else(|e| format!("unknown ({e})"), |p| p.display().to_string());
    let updraft = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "database": hide(settings::mask_url(&settings.database_url)),
        "dags_folder": hide(dags_folder.display().to_string()),
        "api": format!("http://{}:{}", settings.api_host, settings.api_port),
        "client server": client_server(),
        "token file": hide(token_file),
        "python": settings.python.interpreter,
    });
    let system = json!({
        "OS": std::env::consts::OS,
        "architecture": std::env::consts::ARCH,
        "kernel": hide(first_line("uname", &["-sr"]).await),
        "python version": first_line(&settings.python.interpreter, &["--version"]).await,
    });
    let mut tools = Map::new();
    for tool in TOOLS {
        let found = find_on_path(tool).map_or_else(
            || "NOT AVAILABLE".to_string(),
            |p| hide(p.display().to_string()),
        );
        tools.insert(tool.to_string(), Value::String(found));
    }
    let sections = json!({
        "Updraft": updraft,
        "System info": system,
        "Tools info": tools,
    });
    match args.output.format {
        Format::Table => {
            if let Value::Object(sections) = &sections {
                for (i, (title, section)) in sections.iter().enumerate() {
                    if i > 0 {
                        println!();
                    }
                    println!("{title}");
                    print_object(Format::Table, section)?;
                }
            }
        }
        format => print_object(format, &sections)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The server the client commands would talk to, and why.
fn client_server() -> String {
    match crate::credentials::default_server() {
        Ok((server, source)) => format!("{server} ({source})"),
        Err(e) => format!("unknown ({e:#})"),
    }
}

/// The first line a program prints (stdout, else stderr), or why there is none.
async fn first_line(program: &str, args: &[&str]) -> String {
    match tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
    {
        Ok(out) => {
            let text = if out.stdout.is_empty() {
                out.stderr
            } else {
                out.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        }
        Err(e) => format!("NOT AVAILABLE ({program}: {e})"),
    }
}

/// Where `program` is on `$PATH`, if it is an executable file there.
fn find_on_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
