//! `dagctl users create/list/delete`: the users of the API and UI, administered on the
//! database itself (no server needed), with Airflow's flags.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use chrono::Utc;
use serde_json::{Value, json};
use store::{Admin, NewUser, UserRecord};

use crate::backend;
use crate::cli::UsersCommand;
use crate::output::print_rows;
use crate::settings::Settings;

/// Airflow's roles.
pub const ROLES: [&str; 4] = ["Admin", "Op", "User", "Viewer"];

pub async fn run(settings: Settings, command: UsersCommand) -> Result<ExitCode> {
    match command {
        UsersCommand::Create {
            username,
            role,
            firstname,
            lastname,
            email,
            password,
            password_stdin,
            use_random_password,
        } => {
            check_role(&role)?;
            let profile = Profile {
                firstname,
                lastname,
                email,
            };
            profile.check()?;
            let source = if let Some(password) = password {
                PasswordSource::Given(password)
            } else if password_stdin {
                PasswordSource::Stdin
            } else if use_random_password {
                PasswordSource::Random
            } else {
                PasswordSource::Prompt
            };
            let password = source.read(&username)?;
            let store = backend::open(&settings.database_url).await?;
            create_user_with_profile(&*store, &username, &role, &password, &profile).await?;
            println!("user '{username}' created with role {role}");
        }
        UsersCommand::List { output } => {
            let store = backend::open(&settings.database_url).await?;
            let rows: Vec<_> = store.list_users().await?.iter().map(user_row).collect();
            print_rows(output.format, USER_COLUMNS, &rows)?;
        }
        UsersCommand::Delete { username, email } => {
            let store = backend::open(&settings.database_url).await?;
            let username = match (username, email) {
                (Some(username), _) => username,
                (None, Some(email)) => username_of_email(&*store, &email).await?,
                (None, None) => bail!("give the user to delete as --username or --email"),
            };
            store.delete_user(&username).await?;
            println!("user '{username}' deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The columns of `users list`, Airflow's (`roles` holds the one role an Updraft user has),
/// then when the user was created.
const USER_COLUMNS: &[&str] = &[
    "id",
    "username",
    "email",
    "first_name",
    "last_name",
    "roles",
    "created_at",
];

/// A user as `users list` prints it. `role` is also there, for scripts that read one role.
fn user_row(user: &UserRecord) -> Value {
    json!({
        "id": user.id,
        "username": user.username,
        "email": user.email.as_deref().unwrap_or(""),
        "first_name": user.first_name.as_deref().unwrap_or(""),
        "last_name": user.last_name.as_deref().unwrap_or(""),
        "roles": [user.role],
        "role": user.role,
        "created_at": super::ts(Some(user.created_at)),
    })
}

/// The username of the user with this email (compared without case, as the store keeps
/// emails unique), as `users delete -e` names them.
async fn username_of_email(store: &dyn Admin, email: &str) -> Result<String> {
    store
        .list_users()
        .await?
        .into_iter()
        .find(|u| {
            u.email
                .as_deref()
                .is_some_and(|e| e.to_lowercase() == email.to_lowercase())
        })
        .map(|u| u.username)
        .ok_or_else(|| anyhow!("no user has the email '{email}'"))
}

/// Where `users create` takes the password from, after Airflow's flags.
enum PasswordSource {
    /// `--password`.
    Given(String),
    /// `--password-stdin`.
    Stdin,
    /// `--use-random-password`: generated, then printed.
    Random,
    /// None of those: asked twice on the terminal; without one, generated as with `Random`.
    Prompt,
}

impl PasswordSource {
    fn read(self, username: &str) -> Result<String> {
        let password = match self {
            PasswordSource::Given(password) => password,
            PasswordSource::Stdin => {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("cannot read the password from standard input")?;
                text.trim_end_matches(['\r', '\n']).to_string()
            }
            PasswordSource::Random => {
                let password = random_password();
                println!("password for '{username}': {password}");
                password
            }
            PasswordSource::Prompt if !std::io::stdin().is_terminal() => {
                // No one to ask: a generated password, printed, as before these flags (and
                // as `--use-random-password`).
                eprintln!(
                    "note: no terminal to ask for a password on: one is generated (pass \
                     --password, --password-stdin or --use-random-password to choose)"
                );
                return PasswordSource::Random.read(username);
            }
            PasswordSource::Prompt => {
                let password = rpassword::prompt_password(format!("Password for '{username}': "))
                    .context("cannot read the password")?;
                let again = rpassword::prompt_password("Repeat for confirmation: ")
                    .context("cannot read the password")?;
                if password != again {
                    bail!("the passwords did not match: no user created");
                }
                password
            }
        };
        if password.is_empty() {
            bail!("the password is empty");
        }
        Ok(password)
    }
}

/// What Airflow's `users create` also takes, each optional here: checked (a mistyped email
/// fails, as it would in Airflow) and stored with the user.
#[derive(Debug, Default)]
pub struct Profile {
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub email: Option<String>,
}

impl Profile {
    fn check(&self) -> Result<()> {
        for (flag, value) in [
            ("--firstname", &self.firstname),
            ("--lastname", &self.lastname),
        ] {
            if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
                bail!("{flag} is empty");
            }
        }
        if let Some(email) = &self.email {
            check_email(email)?;
        }
        Ok(())
    }
}

/// An address of the form `local@domain`, with no spaces: the API's own check.
fn check_email(email: &str) -> Result<()> {
    if !api::models::is_email_address(email) {
        bail!("--email '{email}' is not an email address (expected name@domain)");
    }
    Ok(())
}

fn check_role(role: &str) -> Result<()> {
    if !ROLES.contains(&role) {
        bail!("unknown role '{role}': use one of {}", ROLES.join(", "));
    }
    Ok(())
}

/// Create a user after checking the role; the password is hashed off the async threads.
pub async fn create_user(
    store: &dyn Admin,
    username: &str,
    role: &str,
    password: &str,
) -> Result<()> {
    create_user_with_profile(store, username, role, password, &Profile::default()).await
}

/// [`create_user`] with a first name, last name and email, checked first.
pub async fn create_user_with_profile(
    store: &dyn Admin,
    username: &str,
    role: &str,
    password: &str,
    profile: &Profile,
) -> Result<()> {
    check_role(role)?;
    profile.check()?;
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
            first_name: profile.firstname.clone(),
            last_name: profile.lastname.clone(),
            email: profile.email.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_names_are_checked() {
        for good in ["ana@example.org", "a@localhost", "a.b+c@d.e"] {
            check_email(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "ana",
            "@example.org",
            "ana@",
            "a@b@c",
            "an a@b.c",
            "a@.b",
            "a@b.",
        ] {
            let error = check_email(bad).expect_err(bad).to_string();
            assert!(error.contains("is not an email address"), "{error}");
        }
        let profile = Profile {
            firstname: Some(" ".into()),
            lastname: None,
            email: None,
        };
        assert_eq!(
            profile.check().expect_err("empty").to_string(),
            "--firstname is empty"
        );
    }
}
