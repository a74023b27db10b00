//! Where the client commands find their server and token: `--server` / `$UPDRAFT_SERVER`,
//! `$UPDRAFT_TOKEN`, else the token `dagctl login` saved for that server in the token file
//! (`$UPDRAFT_TOKEN_FILE`, else `$XDG_CONFIG_HOME/updraft/tokens.json`, else
//! `~/.config/updraft/tokens.json`; mode 0600).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use api::models::{LoginBody, LoginResponse};

use crate::client::{Client, parse_server, server_key};

/// The token file to read and write.
pub fn token_file() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("UPDRAFT_TOKEN_FILE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    if let Some(config) = std::env::var_os("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(config).join("updraft/tokens.json"));
    }
    match std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".config/updraft/tokens.json")),
        None => bail!(
            "cannot tell where to keep tokens: set $UPDRAFT_TOKEN_FILE, $XDG_CONFIG_HOME or $HOME"
        ),
    }
}

/// The tokens saved per server; a missing file is an empty map.
fn read_tokens(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected a JSON object of server URL: token (delete it and run `dagctl login`)",
            path.display()
        )
    })
}

/// Save `token` for `server`, keeping the other servers' tokens. The file is written beside
/// itself and renamed into place, readable by its owner only.
pub fn save_token(path: &Path, server: &str, token: &str) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let mut tokens = read_tokens(path)?;
    tokens.insert(server.to_string(), token.to_string());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    file.write_all(format!("{}\n", serde_json::to_string_pretty(&tokens)?).as_bytes())
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    drop(file);
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// A client for the chosen server with the token that applies to it.
pub fn connect(server: &str) -> Result<Client> {
    let key = server_key(&parse_server(server)?);
    let token = match std::env::var("UPDRAFT_TOKEN") {
        Ok(token) if !token.trim().is_empty() => Some(token.trim().to_string()),
        _ => read_tokens(&token_file()?)?.remove(&key),
    };
    Ok(Client::new(server, token)?)
}

/// `dagctl login`: ask the server for a token and keep it for later commands.
pub async fn login(server: &str, username: Option<String>, password_stdin: bool) -> Result<()> {
    let interactive = std::io::stdin().is_terminal();
    let username = match username {
        Some(username) => username,
        None if interactive && !password_stdin => {
            eprint!("Username: ");
            std::io::stderr().flush().ok();
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the username")?;
            line.trim().to_string()
        }
        None => bail!("give --username (no terminal to ask on)"),
    };
    if username.is_empty() {
        bail!("the username is empty");
    }
    let password = if password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the password from standard input")?;
        text.trim_end_matches(['\r', '\n']).to_string()
    } else if interactive {
        rpassword::prompt_password(format!("Password for '{username}': "))
            .context("cannot read the password")?
    } else {
        bail!("standard input is not a terminal: pass the password with --password-stdin");
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    let client = Client::new(server, None)?;
    let body = LoginBody {
        username: username.clone(),
        password,
    };
    let answer: LoginResponse =
        client
            .post(&["auth", "token"], &body)
            .await
            .map_err(|e| match e {
                // The token endpoint answers a wrong password with 401: say so plainly.
                crate::client::ClientError::Unauthorized { detail, .. } => {
                    anyhow::anyhow!("login to {} refused: {detail}", client.server())
                }
                other => other.into(),
            })?;
    let file = token_file()?;
    save_token(&file, &client.server(), &answer.access_token)?;
    eprintln!(
        "logged in to {} as '{username}'; token saved in {}",
        client.server(),
        file.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn tokens_are_kept_per_server_in_a_private_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nested/updraft/tokens.json");
        save_token(&path, "http://a:1", "token-a").expect("save a");
        save_token(&path, "http://b:2", "token-b").expect("save b");
        save_token(&path, "http://a:1", "token-a2").expect("replace a");
        let tokens = read_tokens(&path).expect("read");
        assert_eq!(
            tokens.get("http://a:1").map(String::as_str),
            Some("token-a2")
        );
        assert_eq!(
            tokens.get("http://b:2").map(String::as_str),
            Some("token-b")
        );
        let mode = std::fs::metadata(&path).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }

    #[test]
    fn a_missing_token_file_is_empty_and_a_broken_one_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tokens.json");
        assert!(read_tokens(&path).expect("missing is fine").is_empty());
        std::fs::write(&path, "[1, 2]").expect("write");
        let error = format!("{:#}", read_tokens(&path).expect_err("broken"));
        assert!(
            error.contains("tokens.json: expected a JSON object"),
            "{error}"
        );
    }
}
