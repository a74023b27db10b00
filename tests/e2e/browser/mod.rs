//! Real-browser tests of the web UI: Debian's `chromium`, driven through `chromedriver` by
//! WebDriver, against a real `dagctl standalone`. This file is the harness every page test
//! uses; each page's tests live in their own file beside it.
//!
//! A test reads like a user's session:
//!
//! ```text
//! let Some(browser) = Browser::start() else { return };   // skipped (or failed in CI)
//! let ui = UiServer::examples();
//! let browser = browser.on(&ui);
//! browser.log_in("admin", &ui.admin_password);
//! browser.wait_for_attr("main#page", "data-ready", "true");
//! browser.screenshot("dags-list");
//! ```
//!
//! Every wait polls until a deadline and, when it passes, fails naming what was awaited, the
//! page's URL, the browser console and a screenshot of the page as it was. Nothing here
//! sleeps for a fixed time.

mod admin;
mod dag;
mod docs;
mod login;
mod run;
mod speed;
mod trigger;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::cookies::Cookie;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::harness::{Sandbox, Server, wait_for};

/// Debian's `chromium` package: the only browser these tests use (none is downloaded).
const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's `chromium-driver` package, the WebDriver server for it.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a wait lasts before it fails, unless [`Browser::with_wait`] says otherwise.
const DEFAULT_WAIT: Duration = Duration::from_secs(20);

/// A headless Chromium session driven through its own `chromedriver`; dropping it closes the
/// session and kills the driver and the browser.
pub struct Browser {
    /// Each call blocks on this runtime, so that tests stay plain `#[test]` functions that
    /// mix browser steps with `dagctl` commands.
    runtime: tokio::runtime::Runtime,
    /// `None` only while being dropped.
    client: Option<Client>,
    /// `chromedriver`, leader of its own process group, which the browser joins.
    driver: Child,
    driver_address: String,
    /// Paths given to [`Browser::goto`] are resolved against this (`http://127.0.0.1:PORT`).
    base: String,
    wait: Duration,
    /// The browser profile (`--user-data-dir`) and the driver's log; removed after the
    /// processes are gone.
    scratch: tempfile::TempDir,
}

impl Browser {
    /// Start `chromedriver` and a headless Chromium session with a fresh profile. `None`, with
    /// the reason printed, when the Debian packages are not installed; under `CI=true` that
    /// is a failure instead.
    pub fn start() -> Option<Browser> {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            if !Path::new(path).exists() {
                return testkit::ci::unavailable(
                    "the browser tests' Chromium",
                    format!("{path} is missing: apt-get install {package} (.ci/run does)"),
                );
            }
        }
        let scratch = tempfile::tempdir().expect("temp dir for the browser profile");
        let (driver, driver_address) = start_driver(scratch.path());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime for the WebDriver client");
        let profile = scratch.path().join("profile");
        let mut browser = Browser {
            runtime,
            client: None,
            driver,
            driver_address,
            base: String::new(),
            wait: DEFAULT_WAIT,
            scratch,
        };
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1400,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
            // Keeps the console, so that a failure can show it.
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("the capabilities are a JSON object")
        };
        let url = format!("http://{}", browser.driver_address);
        let connected = browser.runtime.block_on(async {
            let mut builder = ClientBuilder::rustls().expect("rustls for the WebDriver client");
            builder.capabilities(capabilities);
            tokio::time::timeout(Duration::from_secs(60), builder.connect(&url)).await
        });
        match connected {
            Ok(Ok(client)) => browser.client = Some(client),
            Ok(Err(e)) => panic!(
                "chromedriver did not open a Chromium session: {e}\n{}",
                browser.driver_log()
            ),
            Err(_) => panic!(
                "chromedriver did not open a Chromium session within 60s\n{}",
                browser.driver_log()
            ),
        }
        Some(browser)
    }

    /// Resolve the paths given to [`Browser::goto`] against `server`.
    pub fn on(mut self, server: &UiServer) -> Browser {
        self.base = server.url("");
        self
    }

    /// Wait at most `wait` in every wait from now on (the default is 20 seconds).
    #[allow(dead_code, reason = "for pages slower than the default wait")]
    pub fn with_wait(mut self, wait: Duration) -> Browser {
        self.wait = wait;
        self
    }

    fn client(&self) -> &Client {
        self.client
            .as_ref()
            .expect("the session is open until drop")
    }

    /// Open `path` (`/dags?tags=x`, resolved against the server of [`Browser::on`]) or a
    /// whole URL, and wait for the page to load.
    pub fn goto(&self, path: &str) {
        let url = if path.starts_with('/') {
            assert!(
                !self.base.is_empty(),
                "goto({path:?}) needs a server: Browser::on(&ui)"
            );
            format!("{}{path}", self.base)
        } else {
            path.to_string()
        };
        if let Err(e) = self.runtime.block_on(self.client().goto(&url)) {
            self.fail(&format!("could not open {url}: {e}"));
        }
    }

    /// The page's whole URL.
    pub fn current_url(&self) -> String {
        match self.runtime.block_on(self.client().current_url()) {
            Ok(url) => url.to_string(),
            Err(e) => panic!("the browser has no current URL: {e}"),
        }
    }

    /// The page's path with its query, as `/dags?paused=false`.
    pub fn path(&self) -> String {
        let url = self.current_url();
        let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        match after_scheme.find('/') {
            Some(at) => after_scheme[at..].to_string(),
            None => "/".to_string(),
        }
    }

    /// Poll `check` until it returns `Some`; past the deadline, fail saying it waited for
    /// `what`. The building block of every other wait.
    pub fn wait_until<T>(&self, what: &str, mut check: impl FnMut(&Browser) -> Option<T>) -> T {
        let deadline = Instant::now() + self.wait;
        let mut delay = Duration::from_millis(25);
        loop {
            if let Some(value) = check(self) {
                return value;
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "timed out after {:?} waiting for {what}",
                    self.wait
                ));
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(200));
        }
    }

    /// Wait until an element matches `css`.
    pub fn wait_for(&self, css: &str) {
        self.wait_until(&format!("an element matching `{css}`"), |b| {
            b.exists(css).then_some(())
        });
    }

    /// Wait until no element matches `css`.
    pub fn wait_for_absent(&self, css: &str) {
        self.wait_until(&format!("no element to match `{css}`"), |b| {
            (!b.exists(css)).then_some(())
        });
    }

    /// Wait until the first element matching `css` has a text containing `needle`; returns
    /// its whole text.
    pub fn wait_for_text(&self, css: &str, needle: &str) -> String {
        self.wait_until(
            &format!("`{css}` to show a text containing {needle:?}"),
            |b| b.try_text(css).filter(|text| text.contains(needle)),
        )
    }

    /// Wait until the first element matching `css` has attribute `name` equal to `value`.
    pub fn wait_for_attr(&self, css: &str, name: &str, value: &str) {
        self.wait_until(&format!("`{css}` to have {name}={value:?}"), |b| {
            (b.attr(css, name).as_deref() == Some(value)).then_some(())
        });
    }

    /// Wait until the page's path (without the query) is `path`.
    pub fn wait_for_path(&self, path: &str) {
        self.wait_until(&format!("the page to be {path}"), |b| {
            let current = b.path();
            let bare = current.split(['?', '#']).next().unwrap_or_default();
            (bare == path).then_some(())
        });
    }

    /// Whether an element matches `css` now.
    pub fn exists(&self, css: &str) -> bool {
        self.count(css) > 0
    }

    /// How many elements match `css` now.
    pub fn count(&self, css: &str) -> usize {
        let found = self
            .runtime
            .block_on(self.client().find_all(Locator::Css(css)));
        match found {
            Ok(elements) => elements.len(),
            Err(e) => self.fail(&format!("could not look for `{css}`: {e}")),
        }
    }

    /// The rendered text of the first element matching `css`, if there is one now.
    pub fn try_text(&self, css: &str) -> Option<String> {
        let text = self.runtime.block_on(async {
            let element = self.client().find(Locator::Css(css)).await?;
            element.text().await
        });
        match text {
            Ok(text) => Some(text),
            Err(e) if gone(&e) => None,
            Err(e) => self.fail(&format!("could not read the text of `{css}`: {e}")),
        }
    }

    /// The rendered text of the first element matching `css`, waiting for it to exist.
    pub fn text(&self, css: &str) -> String {
        self.wait_until(&format!("an element matching `{css}` to read"), |b| {
            b.try_text(css)
        })
    }

    /// The rendered texts of every element matching `css` now, in page order.
    pub fn texts(&self, css: &str) -> Vec<String> {
        // An element that goes away while being read means the page changed under us: look
        // again, as a user would.
        self.wait_until(&format!("the texts of `{css}` to hold still"), |b| {
            let texts = b.runtime.block_on(async {
                let mut texts = Vec::new();
                for element in b.client().find_all(Locator::Css(css)).await? {
                    texts.push(element.text().await?);
                }
                Ok::<_, CmdError>(texts)
            });
            match texts {
                Ok(texts) => Some(texts),
                Err(e) if gone(&e) => None,
                Err(e) => b.fail(&format!("could not read the texts of `{css}`: {e}")),
            }
        })
    }

    /// Attribute `name` of the first element matching `css` now; `None` when there is no
    /// such element or it lacks the attribute.
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        let value = self.runtime.block_on(async {
            let element = self.client().find(Locator::Css(css)).await?;
            element.attr(name).await
        });
        match value {
            Ok(value) => value,
            Err(e) if gone(&e) => None,
            Err(e) => self.fail(&format!("could not read {name} of `{css}`: {e}")),
        }
    }

    /// Click the first element matching `css`, waiting until it exists and takes the click.
    pub fn click(&self, css: &str) {
        self.wait_until(&format!("`{css}` to be clicked"), |b| {
            let clicked = b.runtime.block_on(async {
                let element = b.client().find(Locator::Css(css)).await?;
                element.click().await
            });
            match clicked {
                Ok(()) => Some(()),
                Err(e) if gone(&e) || not_clickable_yet(&e) => None,
                Err(e) => b.fail(&format!("could not click `{css}`: {e}")),
            }
        });
    }

    /// Replace the value of the input matching `css` with `text`, typed key by key.
    pub fn type_text(&self, css: &str, text: &str) {
        self.wait_until(&format!("`{css}` to take typing"), |b| {
            let typed = b.runtime.block_on(async {
                let element = b.client().find(Locator::Css(css)).await?;
                element.clear().await?;
                element.send_keys(text).await
            });
            match typed {
                Ok(()) => Some(()),
                Err(e) if gone(&e) || not_clickable_yet(&e) => None,
                Err(e) => b.fail(&format!("could not type into `{css}`: {e}")),
            }
        });
    }

    /// Run `script` in the page (`return …` gives a value back).
    pub fn execute(&self, script: &str) -> Value {
        match self
            .runtime
            .block_on(self.client().execute(script, Vec::new()))
        {
            Ok(value) => value,
            Err(e) => self.fail(&format!("script failed: {e}\n{script}")),
        }
    }

    /// The cookie `name` the browser holds for the current page, with its flags.
    pub fn cookie(&self, name: &str) -> Option<Cookie<'static>> {
        match self.runtime.block_on(self.client().get_named_cookie(name)) {
            Ok(cookie) => Some(cookie),
            Err(e) if e.is_no_such_cookie() => None,
            Err(e) => self.fail(&format!("could not read cookie {name}: {e}")),
        }
    }

    /// Save the page as `<target>/ui-screenshots/<name>.png` and return the path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        match self.try_screenshot(name) {
            Ok(path) => path,
            Err(e) => panic!("screenshot {name}: {e}"),
        }
    }

    fn try_screenshot(&self, name: &str) -> Result<PathBuf, String> {
        let png = self
            .runtime
            .block_on(self.client().screenshot())
            .map_err(|e| e.to_string())?;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let file: String = name
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let path = dir.join(format!("{file}.png"));
        std::fs::write(&path, png).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }

    /// The browser console since the last call, one `LEVEL message` a line (chromedriver
    /// hands each entry out once).
    pub fn console_log(&self) -> Vec<String> {
        let Some(session) = self
            .runtime
            .block_on(self.client().session_id())
            .ok()
            .flatten()
        else {
            return Vec::new();
        };
        let answer = http(
            &self.driver_address,
            "POST",
            &format!("/session/{session}/se/log"),
            r#"{"type": "browser"}"#,
        );
        let Some((200, body)) = answer else {
            return Vec::new();
        };
        let entries: Value = serde_json::from_str(&body).unwrap_or_default();
        entries["value"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["level"].as_str().unwrap_or("?"),
                            e["message"].as_str().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Log in through the login page as `username`, and wait to leave it.
    pub fn log_in(&self, username: &str, password: &str) {
        self.goto("/login");
        self.type_text("form#login-form input#username", username);
        self.type_text("form#login-form input#password", password);
        self.click("form#login-form button[type=submit]");
        self.wait_until(
            &format!("{username} to be logged in (to leave /login)"),
            |b| (!b.path().starts_with("/login")).then_some(()),
        );
    }

    /// Fail the test with `what`, the page's URL, a screenshot and the browser console.
    pub fn fail(&self, what: &str) -> ! {
        let url = self
            .runtime
            .block_on(self.client().current_url())
            .map_or_else(|e| format!("(unknown: {e})"), |url| url.to_string());
        let name = format!(
            "failed-{}",
            std::thread::current().name().unwrap_or("browser-test")
        );
        let screenshot = self
            .try_screenshot(&name)
            .map_or_else(|e| format!("(none: {e})"), |p| p.display().to_string());
        let console = self.console_log();
        let console = if console.is_empty() {
            "  (empty)".to_string()
        } else {
            console
                .iter()
                .map(|line| format!("  {line}"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!("{what}\npage: {url}\nscreenshot: {screenshot}\nbrowser console:\n{console}")
    }

    fn driver_log(&self) -> String {
        driver_log(self.scratch.path())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), client.close()).await
            });
        }
        // The browser runs in the driver's process group: kill them together, so that no
        // Chromium outlives its test.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An element went away or never came: try again until the deadline.
fn gone(e: &CmdError) -> bool {
    e.is_no_such_element() || e.is_stale_element_reference()
}

/// An element exists but cannot take input yet (covered, hidden, disabled, animating).
fn not_clickable_yet(e: &CmdError) -> bool {
    e.is_element_not_interactable()
        || e.is_invalid_element_state()
        || matches!(e, CmdError::Standard(w) if w.error == fantoccini::error::ErrorStatus::ElementClickIntercepted)
}

/// Start `chromedriver` on a free loopback port and wait until it is ready; another port
/// is tried if the chosen one was taken in between.
fn start_driver(scratch: &Path) -> (Child, String) {
    use std::os::unix::process::CommandExt;
    let mut last_failure = String::new();
    for _ in 0..3 {
        let port = free_port();
        let log = std::fs::File::create(scratch.join("chromedriver.log")).expect("driver log");
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("driver log"))
            .stderr(log)
            // Its own process group, which the browser joins, so drop can kill both.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMEDRIVER} does not start: {e}"));
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut delay = Duration::from_millis(20);
        loop {
            if let Some(status) = driver.try_wait().expect("wait on chromedriver") {
                last_failure = format!("chromedriver exited ({status})");
                break;
            }
            if let Some((200, body)) = http(&address, "GET", "/status", "")
                && body.contains("\"ready\":true")
            {
                return (driver, address);
            }
            if Instant::now() >= deadline {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!(
                    "chromedriver did not answer on {address} within 20s\n{}",
                    driver_log(scratch)
                );
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(200));
        }
    }
    panic!(
        "chromedriver did not start: {last_failure}\n{}",
        driver_log(scratch)
    )
}

fn driver_log(scratch: &Path) -> String {
    let log = std::fs::read_to_string(scratch.join("chromedriver.log")).unwrap_or_default();
    format!("chromedriver's log:\n{log}")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Where screenshots go: `ui-screenshots/` in the target directory (`target/` unless
/// `CARGO_TARGET_DIR` moved it), found from the `dagctl` binary under test.
fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_dagctl"))
        .ancestors()
        .nth(2)
        .expect("the target directory above <profile>/dagctl")
        .join("ui-screenshots")
}

/// One HTTP/1.1 request on loopback: status and body, or `None` when nothing answers. The
/// body is read by its `Content-Length`, since chromedriver keeps the connection open even
/// when it says `Connection: close`.
fn http(address: &str, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        response.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&response[..head_end]).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    match length {
        Some(length) => {
            while response.len() < head_end + length {
                let n = stream.read(&mut chunk).ok()?;
                if n == 0 {
                    break;
                }
                response.extend_from_slice(&chunk[..n]);
            }
        }
        None => {
            stream.read_to_end(&mut response).ok()?;
        }
    }
    Some((
        status,
        String::from_utf8_lossy(&response[head_end..]).to_string(),
    ))
}

/// A role of Updraft's users, as `dagctl users create --role` takes it.
#[derive(Clone, Copy, Debug)]
pub enum Role {
    Viewer,
    User,
    Op,
    Admin,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Viewer => "Viewer",
            Role::User => "User",
            Role::Op => "Op",
            Role::Admin => "Admin",
        }
    }
}

/// A real `dagctl standalone` (scheduler, worker, API and UI) in a sandbox, on a free
/// loopback port, answering its health check; the CLI in `sandbox` is logged in as admin.
pub struct UiServer {
    pub sandbox: Sandbox,
    pub server: Server,
    /// The password standalone made for `admin` on first start.
    pub admin_password: String,
}

impl UiServer {
    /// Standalone on a copy of the repository's example DAGs.
    pub fn examples() -> UiServer {
        UiServer::start(Sandbox::with_examples())
    }

    /// Standalone on `sandbox`, whose DAG files the test has written
    /// ([`Sandbox::write_dag`]).
    pub fn start(mut sandbox: Sandbox) -> UiServer {
        let server = sandbox.standalone();
        wait_for(
            "standalone's health check to answer",
            Duration::from_secs(30),
            || {
                http(&server.address, "GET", "/api/v2/monitor/health", "")
                    .filter(|(status, _)| *status == 200)
            },
        );
        let admin_password = std::fs::read_to_string(
            sandbox
                .path()
                .join(".updraft/standalone_admin_password.txt"),
        )
        .expect("standalone saved the admin password")
        .trim()
        .to_string();
        sandbox.login(&server);
        UiServer {
            sandbox,
            server,
            admin_password,
        }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.address)
    }

    /// Create a user with `role` through `dagctl users create`.
    pub fn create_user(&self, username: &str, role: Role, password: &str) {
        let out = self.sandbox.run_with_input(
            &[
                "users",
                "create",
                "--username",
                username,
                "--role",
                role.name(),
                "--password-stdin",
            ],
            &format!("{password}\n"),
        );
        assert!(
            out.status.success(),
            "users create {username} ({}) failed: {}",
            role.name(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Wait until the scheduler has parsed `dag_id` and the API lists it.
    pub fn wait_for_dag(&self, dag_id: &str) {
        wait_for(
            &format!("DAG {dag_id} to be listed"),
            Duration::from_secs(30),
            || {
                let out = self.sandbox.run(&["dags", "show", dag_id, "-o", "json"]);
                out.status.success().then_some(())
            },
        );
    }
}
