//! Where the client commands find their server and token. The server: `--server`, else
//! `$UPDRAFT_SERVER`, else the one `dagctl login` last logged in to, else
//! `http://127.0.0.1:8080`. The token: `$UPDRAFT_TOKEN`, else the one `dagctl login` saved
//! for that server in the token file (`$UPDRAFT_TOKEN_FILE`, else
//! `$XDG_CONFIG_HOME/updraft/tokens.json`, else `~/.config/updraft/tokens.json`; mode 0600),
//! under a key that names one server once (`localhost` is `127.0.0.1`).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use api::models::{LoginBody, LoginResponse};
use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::client::{Client, DEFAULT_SERVER, parse_server, server_text};

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

/// What the token file holds: the server of the last `dagctl login`, the default of the
/// client commands, and a token per server. The file of older versions, a plain
/// `{"server URL": "token"}` object, reads as tokens without a default.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tokens {
    /// The server `dagctl login` last logged in to, as the user gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_server: Option<String>,
    /// A token per server, keyed by [`token_key`].
    #[serde(default)]
    pub tokens: BTreeMap<String, String>,
}

impl Tokens {
    /// The token saved for the server at `url`.
    pub fn token_for(&self, url: &Url) -> Option<&String> {
        let key = token_key(url);
        self.tokens.get(&key).or_else(|| {
            // Files written before keys were normalised may hold `localhost` keys.
            self.tokens
                .iter()
                .find(|(saved, _)| parse_server(saved).is_ok_and(|u| token_key(&u) == key))
                .map(|(_, token)| token)
        })
    }
}

/// The key a server's token is kept under: its URL without a trailing slash, and with
/// `localhost` written `127.0.0.1`, so that one server has one token whichever name it is
/// called by.
pub fn token_key(url: &Url) -> String {
    let mut url = url.clone();
    if url.host_str() == Some("localhost") {
        // Setting a loopback IPv4 address on an http(s) URL cannot fail.
        let _ = url.set_host(Some("127.0.0.1"));
    }
    server_text(&url)
}

/// The token file's contents; a missing file is empty.
fn read_tokens(path: &Path) -> Result<Tokens> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Tokens::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let broken = || {
        format!(
            "{}: expected a JSON object of default_server and tokens (delete it and run \
             `dagctl login`)",
            path.display()
        )
    };
    let value: serde_json::Value = serde_json::from_str(&text).with_context(broken)?;
    let is_old_form = value
        .as_object()
        .is_some_and(|map| !map.contains_key("tokens") && map.values().all(|v| v.is_string()));
    if is_old_form {
        let tokens = serde_json::from_value(value).with_context(broken)?;
        return Ok(Tokens {
            default_server: None,
            tokens,
        });
    }
    serde_json::from_value(value).with_context(broken)
}

/// Save `token` for the server at `url` and make that server the default, keeping the other
/// servers' tokens. The file is written beside itself and renamed into place, readable by
/// its owner only.
pub fn save_token(path: &Path, url: &Url, token: &str) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let mut tokens = read_tokens(path)?;
    let key = token_key(url);
    // An old entry under another name of the same server goes: one server, one token.
    tokens
        .tokens
        .retain(|saved, _| parse_server(saved).map_or(true, |u| token_key(&u) != key));
    tokens.tokens.insert(key, token.to_string());
    tokens.default_server = Some(server_text(url));
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

/// `$UPDRAFT_SERVER`, unless unset or blank.
fn server_from_environment() -> Option<String> {
    std::env::var("UPDRAFT_SERVER")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// The server a client command talks to: `--server`, else `$UPDRAFT_SERVER`, else the server
/// of the last `dagctl login`, else [`DEFAULT_SERVER`].
pub fn choose_server(
    flag: Option<&str>,
    environment: Option<&str>,
    logged_in: Option<&str>,
) -> String {
    [flag, environment, logged_in]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .unwrap_or(DEFAULT_SERVER)
        .to_string()
}

/// The server a client command without `--server` talks to, and where that comes from.
pub fn default_server() -> Result<(String, &'static str)> {
    if let Some(server) = server_from_environment() {
        return Ok((server, "$UPDRAFT_SERVER"));
    }
    Ok(match read_tokens(&token_file()?)?.default_server {
        Some(server) => (server, "the last `dagctl login`"),
        None => (DEFAULT_SERVER.to_string(), "the default"),
    })
}

/// A client for the chosen server (`--server` as given, else the fallbacks of
/// [`choose_server`]) with the token that applies to it.
pub fn connect(flag: Option<&str>) -> Result<Client> {
    let environment = server_from_environment();
    let env_token = std::env::var("UPDRAFT_TOKEN")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    // The file is read for the default server and for the token, when they are needed.
    let saved = if (flag.is_none() && environment.is_none()) || env_token.is_none() {
        read_tokens(&token_file()?)?
    } else {
        Tokens::default()
    };
    let server = choose_server(
        flag,
        environment.as_deref(),
        saved.default_server.as_deref(),
    );
    let url = parse_server(&server)?;
    let token = env_token.or_else(|| saved.token_for(&url).cloned());
    Ok(Client::new(&server, token)?)
}

/// `dagctl login`: ask the server for a token and keep it, with the server as the default of
/// later commands.
pub async fn login(
    flag: Option<&str>,
    username: Option<String>,
    password_stdin: bool,
) -> Result<()> {
    let file = token_file()?;
    let environment = server_from_environment();
    let server = choose_server(
        flag,
        environment.as_deref(),
        read_tokens(&file)?.default_server.as_deref(),
    );
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
        None => bail!("give --username (-u): there is no terminal to ask on"),
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
    let client = Client::new(&server, None)?;
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
    save_token(&file, &parse_server(&server)?, &answer.access_token)?;
    eprintln!(
        "logged in to {} as '{username}', now the default server of the client commands; \
         token saved in {}",
        client.server(),
        file.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn url(text: &str) -> Url {
        parse_server(text).expect(text)
    }

    #[test]
    fn tokens_are_kept_per_server_in_a_private_file_with_the_last_as_default() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nested/updraft/tokens.json");
        save_token(&path, &url("http://a:1"), "token-a").expect("save a");
        save_token(&path, &url("http://b:2/"), "token-b").expect("save b");
        save_token(&path, &url("http://a:1/api/v2"), "token-a2").expect("replace a");
        let tokens = read_tokens(&path).expect("read");
        assert_eq!(tokens.default_server.as_deref(), Some("http://a:1"));
        assert_eq!(
            tokens.token_for(&url("http://a:1/")).map(String::as_str),
            Some("token-a2")
        );
        assert_eq!(
            tokens.token_for(&url("http://b:2")).map(String::as_str),
            Some("token-b")
        );
        assert_eq!(tokens.tokens.len(), 2, "{tokens:?}");
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
    fn localhost_and_127_0_0_1_are_one_server() {
        assert_eq!(
            token_key(&url("http://localhost:8080/")),
            "http://127.0.0.1:8080"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tokens.json");
        // A file of an older version, keyed by the name the user typed.
        std::fs::write(&path, r#"{"http://localhost:8080": "old"}"#).expect("write");
        let tokens = read_tokens(&path).expect("the old form reads");
        assert_eq!(tokens.default_server, None);
        assert_eq!(
            tokens
                .token_for(&url("http://127.0.0.1:8080"))
                .map(String::as_str),
            Some("old")
        );
        save_token(&path, &url("http://127.0.0.1:8080"), "new").expect("save");
        let tokens = read_tokens(&path).expect("read");
        assert_eq!(
            tokens.tokens,
            BTreeMap::from([("http://127.0.0.1:8080".to_string(), "new".to_string())])
        );
        assert_eq!(
            tokens
                .token_for(&url("http://localhost:8080"))
                .map(String::as_str),
            Some("new")
        );
    }

    #[test]
    fn the_flag_beats_the_environment_beats_the_last_login() {
        let login = Some("http://logged-in:1");
        assert_eq!(
            choose_server(Some("http://flag:1"), Some("http://env:1"), login),
            "http://flag:1"
        );
        assert_eq!(
            choose_server(None, Some("http://env:1"), login),
            "http://env:1"
        );
        assert_eq!(choose_server(None, Some(" "), login), "http://logged-in:1");
        assert_eq!(choose_server(None, None, None), DEFAULT_SERVER);
    }

    #[test]
    fn a_missing_token_file_is_empty_and_a_broken_one_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tokens.json");
        assert_eq!(
            read_tokens(&path).expect("missing is fine"),
            Tokens::default()
        );
        std::fs::write(&path, "[1, 2]").expect("write");
        let error = format!("{:#}", read_tokens(&path).expect_err("broken"));
        assert!(
            error.contains("tokens.json: expected a JSON object of default_server and tokens"),
            "{error}"
        );
    }
}
