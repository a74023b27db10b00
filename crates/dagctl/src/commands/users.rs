//! `dagctl users create/list/delete`: the users of the API and UI, administered on the
//! database itself (no server needed).

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use serde_json::json;
use store::{Admin, NewUser};

use crate::backend;
use crate::cli::UsersCommand;
use crate::output::print_rows;
use crate::settings::Settings;

/// Airflow's roles.
pub const ROLES: [&str; 4] = ["Admin", "Op", "User", "Viewer"];

pub async fn run(settings: Settings, command: UsersCommand) -> Result<ExitCode> {
    let store = backend::open(&settings.database_url).await?;
    match command {
        UsersCommand::Create {
            username,
            role,
            password_stdin,
        } => {
            let password = if password_stdin {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("cannot read the password from standard input")?;
                let password = text.trim_end_matches(['\r', '\n']).to_string();
                if password.is_empty() {
                    bail!("the password read from standard input is empty");
                }
                password
            } else {
                let password = random_password();
                println!("password for '{username}': {password}");
                password
            };
            create_user(&*store, &username, &role, &password).await?;
            println!("user '{username}' created with role {role}");
        }
        UsersCommand::List(output) => {
            let rows: Vec<_> = store
                .list_users()
                .await?
                .into_iter()
                .map(|u| json!({"username": u.username, "role": u.role, "created_at": super::ts(Some(u.created_at))}))
                .collect();
            print_rows(output.format, &["username", "role", "created_at"], &rows)?;
        }
        UsersCommand::Delete { username } => {
            store.delete_user(&username).await?;
            println!("user '{username}' deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Create a user after checking the role; the password is hashed off the async threads.
pub async fn create_user(
    store: &dyn Admin,
    username: &str,
    role: &str,
    password: &str,
) -> Result<()> {
    if !ROLES.contains(&role) {
        bail!("unknown role '{role}': use one of {}", ROLES.join(", "));
    }
    if username.trim().is_empty() {
        bail!("the username is empty");
    }
    let password = password.to_string();
    let hash = tokio::task::spawn_blocking(move || api::auth::hash_password(&password))
        .await
        .context("password hashing stopped")??;
    store
        .create_user(&NewUser {
            username: username.to_string(),
            password_hash: hash,
            role: role.to_string(),
            now: Utc::now(),
        })
        .await?;
    Ok(())
}

/// A random 16-character password of letters and digits.
pub fn random_password() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..16)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}
