//! An Airflow user's habits, with `dagctl` in place of `airflow`: the cookbook's commands as
//! they are written for Airflow, confirmations answered through a pipe, and the messages that
//! used to leave such a user guessing (a masked variable, a server URL without its scheme or
//! with the API's path, float counts, list XComs, a connection added twice), each against a
//! real `standalone`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Sandbox, Server, ids, one_error_line, stderr, stdout, wait_for};

/// A sandbox holding `files` as DAGs, with a standalone the client commands are logged in to.
fn standalone_with(files: &[(&str, &str)]) -> (Sandbox, Server) {
    let mut sandbox = Sandbox::new();
    for (name, text) in files {
        sandbox.write_dag(name, text);
    }
    let server = sandbox.standalone_logged_in();
    for (name, _) in files {
        let dag_id = name.trim_end_matches(".yaml");
        wait_for_dag(&sandbox, dag_id);
    }
    (sandbox, server)
}

fn wait_for_dag(sandbox: &Sandbox, dag_id: &str) {
    wait_for(
        &format!("DAG '{dag_id}' listed"),
        Duration::from_secs(30),
        || {
            let dags = sandbox.json(&["dags", "list", "-o", "json"]);
            ids(&dags, "dag_id")
                .contains(&dag_id.to_string())
                .then_some(())
        },
    );
}

/// `dags state DAG RUN` until it prints `expected`.
fn wait_for_run_state(sandbox: &Sandbox, dag_id: &str, run_id: &str, expected: &str) {
    wait_for(
        &format!("run {run_id} of {dag_id}: {expected}"),
        Duration::from_secs(60),
        || {
            let state = sandbox.ok(&["dags", "state", dag_id, run_id]);
            (state.trim() == expected).then_some(())
        },
    );
}

const HELLO: &str = "schedule: '@daily'\nstart_date: 2024-01-01\ntasks:\n  - {id: hello, bash: 'echo hello {{ ds }}'}\n  - {id: world, bash: 'echo world', retries: 2}\n  - {id: done, bash: 'echo done'}\nedges:\n  - hello >> world >> done\n";

/// The commands an Airflow cookbook lists, in its order and its words, with `dagctl` for
/// `airflow`: set up the database and a user, start, log in once, then list, test, unpause,
/// trigger, follow the run, look at the DAG, its next run, a pool, a variable, the
/// configuration, the version, and pause and delete. No command names the server after
/// `login`: it is remembered.
#[test]
fn the_cookbook_runs_with_dagctl_in_place_of_airflow() {
    let sandbox = Sandbox::new();
    sandbox.write_dag("hello.yaml", HELLO);

    // Set-up, before any server runs.
    let init = sandbox.run(&["db", "init"]);
    assert!(init.status.success(), "{}", stderr(&init));
    assert!(stdout(&init).contains("up to date"), "{}", stdout(&init));
    sandbox.ok(&["db", "migrate"]);
    let created = sandbox.run(&[
        "users",
        "create",
        "--username",
        "peter",
        "--firstname",
        "Peter",
        "--lastname",
        "Parker",
        "--role",
        "Admin",
        "--email",
        "spiderman@superhero.org",
        "--password",
        "with-great-power",
    ]);
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(
        stdout(&created).contains("user 'peter' created"),
        "{}",
        stdout(&created)
    );
    assert!(
        !stderr(&created).contains("not stored"),
        "{}",
        stderr(&created)
    );
    let random = sandbox.ok(&[
        "users",
        "create",
        "-u",
        "mj",
        "-f",
        "Mary",
        "-l",
        "Watson",
        "-r",
        "Viewer",
        "-e",
        "mj@example.org",
        "--use-random-password",
    ]);
    let mj_password = random
        .lines()
        .find_map(|line| line.strip_prefix("password for 'mj': "))
        .unwrap_or_else(|| panic!("no password printed: {random}"))
        .to_string();
    // No password source and no terminal to ask on: one is made and printed.
    let generated = sandbox.run(&["users", "create", "-u", "bot", "-r", "Viewer"]);
    assert!(generated.status.success(), "{}", stderr(&generated));
    assert!(stdout(&generated).contains("password for 'bot': "));
    let mut users = ids(&sandbox.json(&["users", "list", "-o", "json"]), "username");
    users.sort();
    assert_eq!(users, ["bot", "mj", "peter"]);
    // Names and email are kept, and listed in Airflow's columns.
    let listed = sandbox.json(&["users", "list", "-o", "json"]);
    let user = |name: &str| {
        listed
            .as_array()
            .expect("a list")
            .iter()
            .find(|u| u["username"] == name)
            .unwrap_or_else(|| panic!("no {name} in {listed}"))
            .clone()
    };
    let peter = user("peter");
    assert_eq!(
        [
            &peter["email"],
            &peter["first_name"],
            &peter["last_name"],
            &peter["roles"]
        ],
        [
            &json!("spiderman@superhero.org"),
            &json!("Peter"),
            &json!("Parker"),
            &json!(["Admin"])
        ],
        "{peter}"
    );
    assert!(peter["id"].is_i64(), "{peter}");
    assert_eq!(user("bot")["email"], "", "no email given");
    let table = sandbox.ok(&["users", "list"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "id",
            "username",
            "email",
            "first_name",
            "last_name",
            "roles",
            "created_at"
        ],
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.contains("mj@example.org") && l.contains("Mary") && l.contains("Watson")),
        "{table}"
    );
    // An email is one user's, whatever its case; the refused user is not created.
    let taken = one_error_line(&sandbox.run(&[
        "users",
        "create",
        "-u",
        "peter2",
        "-r",
        "Viewer",
        "-e",
        "SpiderMan@SuperHero.org",
        "-p",
        "pw",
    ]));
    assert_eq!(
        taken,
        "error: a user with email 'SpiderMan@SuperHero.org' already exists"
    );
    let bad = one_error_line(&sandbox.run(&[
        "users",
        "create",
        "-u",
        "x",
        "-r",
        "Viewer",
        "-e",
        "not-an-address",
        "-p",
        "pw",
    ]));
    assert!(bad.contains("is not an email address"), "{bad}");
    assert_eq!(
        ids(&sandbox.json(&["users", "list", "-o", "json"]), "username").len(),
        3,
        "nothing created"
    );

    // Local, no server needed.
    let tested = sandbox.json(&["dags", "test", "hello", "2024-03-01", "-o", "json"]);
    assert_eq!(tested["state"], "success", "{tested}");
    let task = sandbox.run(&["tasks", "test", "hello", "world", "2024-03-01"]);
    assert!(task.status.success(), "{}", stderr(&task));

    let server = sandbox.standalone();
    let url = format!("http://{}", server.address);
    let login = sandbox.run_with_input(
        &["login", "-u", "peter", "--password-stdin", "--server", &url],
        "with-great-power\n",
    );
    assert!(login.status.success(), "{}", stderr(&login));
    // The Viewer logs in too, with the password `--use-random-password` printed.
    let viewer = sandbox.run_with_input(
        &["login", "-u", "mj", "--password-stdin", "--server", &url],
        &mj_password,
    );
    assert!(viewer.status.success(), "{}", stderr(&viewer));
    let again = sandbox.run_with_input(
        &["login", "-u", "peter", "--password-stdin", "--server", &url],
        "with-great-power\n",
    );
    assert!(again.status.success(), "{}", stderr(&again));

    wait_for_dag(&sandbox, "hello");
    assert!(sandbox.ok(&["dags", "list"]).contains("hello"));
    let unpaused = sandbox.ok(&["dags", "unpause", "hello"]);
    assert!(unpaused.contains("unpaused"), "{unpaused}");
    let run_id = sandbox.ok(&[
        "dags",
        "trigger",
        "hello",
        "-c",
        r#"{"k": 1}"#,
        "-r",
        "cookbook_run",
        "-l",
        "2024-03-05",
    ]);
    assert_eq!(run_id.trim(), "cookbook_run");
    wait_for_run_state(&sandbox, "hello", "cookbook_run", r#"success, {"k": 1}"#);
    // A run is named by its id or its logical date.
    assert_eq!(
        sandbox.ok(&["dags", "state", "hello", "2024-03-05"]).trim(),
        r#"success, {"k": 1}"#
    );
    assert_eq!(
        sandbox.ok(&["dags", "state", "hello", "2023-01-01"]).trim(),
        "None"
    );
    assert_eq!(
        sandbox
            .ok(&["tasks", "state", "hello", "world", "cookbook_run"])
            .trim(),
        "success"
    );
    let states = sandbox.json(&[
        "tasks",
        "states-for-dag-run",
        "hello",
        "2024-03-05",
        "-o",
        "json",
    ]);
    assert_eq!(ids(&states, "state"), ["success", "success", "success"]);
    for args in [
        &["dags", "list-runs", "hello", "-o", "json"][..],
        &["dags", "list-runs", "-d", "hello", "-o", "json"],
    ] {
        let runs = sandbox.json(args);
        assert!(
            ids(&runs, "dag_run_id").contains(&"cookbook_run".to_string()),
            "{args:?}: {runs}"
        );
    }

    let next = sandbox.ok(&["dags", "next-execution", "hello"]);
    let next = chrono::DateTime::parse_from_rfc3339(next.trim())
        .unwrap_or_else(|e| panic!("next-execution printed {next:?}: {e}"));
    // `-n 3`: that one and the two daily ticks after it (a scheduled run made meanwhile
    // moves them on by a day).
    let three: Vec<_> = sandbox
        .ok(&["dags", "next-execution", "hello", "-n", "3"])
        .lines()
        .map(|line| {
            chrono::DateTime::parse_from_rfc3339(line)
                .unwrap_or_else(|e| panic!("next-execution -n 3 printed {line:?}: {e}"))
        })
        .collect();
    let day = chrono::Duration::days(1);
    assert!(
        three.len() == 3 && three[0] >= next,
        "{three:?} after {next}"
    );
    assert_eq!(three, [three[0], three[0] + day, three[0] + day + day]);
    let details = sandbox.json(&["dags", "details", "hello", "-o", "json"]);
    assert_eq!(details["dag_id"], "hello");
    assert_eq!(details["timetable_summary"], "@daily");

    sandbox.ok(&["pools", "set", "etl", "4", "ETL slots"]);
    let pools = sandbox.json(&["pools", "get", "etl", "-o", "json"]);
    assert_eq!(pools[0]["slots"], 4, "{pools}");
    assert_eq!(pools[0]["description"], "ETL slots", "{pools}");
    sandbox.ok(&["variables", "set", "region", "eu"]);
    assert_eq!(sandbox.ok(&["variables", "get", "region"]).trim(), "eu");

    assert_eq!(
        sandbox
            .ok(&["config", "get-value", "core", "dags_folder"])
            .trim(),
        "dags"
    );
    assert_eq!(sandbox.ok(&["version"]).trim(), env!("CARGO_PKG_VERSION"));
    let info = sandbox.json(&["info", "-o", "json"]);
    assert_eq!(info["Updraft"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        info["Updraft"]["client server"],
        format!("{url} (the last `dagctl login`)")
    );

    sandbox.ok(&["dags", "pause", "hello"]);
    assert_eq!(
        sandbox.json(&["dags", "details", "hello", "-o", "json"])["is_paused"],
        true
    );
    let deleted = sandbox.ok(&["dags", "delete", "hello", "-y"]);
    assert!(deleted.contains("deleted"), "{deleted}");

    // A user is deleted by email as well as by username.
    let gone = sandbox.ok(&["users", "delete", "-e", "MJ@example.org"]);
    assert_eq!(gone.trim(), "user 'mj' deleted");
    let missing = one_error_line(&sandbox.run(&["users", "delete", "-e", "mj@example.org"]));
    assert_eq!(missing, "error: no user has the email 'mj@example.org'");
    let mut users = ids(&sandbox.json(&["users", "list", "-o", "json"]), "username");
    users.sort();
    assert_eq!(
        users,
        ["admin", "bot", "peter"],
        "standalone made its admin"
    );
}

/// Confirmations read `y`/`n` from standard input when it is no terminal, as Airflow's do
/// (`yes | airflow dags delete x`), in `dags delete`, `dags pause --treat-dag-id-as-regex`,
/// `tasks clear` and `db clean` alike; `-y` skips them.
#[test]
fn confirmations_read_the_answer_from_a_pipe_and_yes_skips_them() {
    let (sandbox, _server) = standalone_with(&[("hello.yaml", HELLO)]);

    let refused = sandbox.run_with_input(&["dags", "delete", "hello"], "n\n");
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("[y/N] n") && stderr(&refused).contains("nothing deleted"),
        "{}",
        stderr(&refused)
    );
    let error = one_error_line(&sandbox.run(&["dags", "delete", "hello"]));
    assert!(error.contains("--yes"), "{error}");
    wait_for_dag(&sandbox, "hello");

    let paused = sandbox.run_with_input(
        &["dags", "pause", "^hel", "--treat-dag-id-as-regex"],
        "y\ny\ny\n",
    );
    assert!(paused.status.success(), "{}", stderr(&paused));
    assert_eq!(
        sandbox.json(&["dags", "details", "hello", "-o", "json"])["is_paused"],
        true
    );
    sandbox.ok(&["dags", "unpause", "hello"]);
    sandbox.ok(&["dags", "trigger", "hello", "-r", "r1"]);
    wait_for_run_state(&sandbox, "hello", "r1", "success");
    let cleared = sandbox.run_with_input(
        &["tasks", "clear", "hello", "--run-id", "r1", "-t", "^done$"],
        "yes\n",
    );
    assert!(cleared.status.success(), "{}", stderr(&cleared));
    assert_eq!(stdout(&cleared).lines().last(), Some("done"));

    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let cleaned = sandbox.run_with_input(
        &["db", "clean", "--clean-before-timestamp", &tomorrow],
        "y\n",
    );
    assert!(cleaned.status.success(), "{}", stderr(&cleaned));
    assert!(stdout(&cleaned).contains("deleted"), "{}", stdout(&cleaned));

    let deleted = sandbox.run_with_input(&["dags", "delete", "hello"], "y\n");
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    assert!(stdout(&deleted).contains("DAG 'hello' deleted"));
}

#[test]
fn a_secret_variable_says_why_it_prints_masked() {
    let (sandbox, _server) = standalone_with(&[]);
    sandbox.ok(&["variables", "set", "api_token", "s3cr3t"]);
    let out = sandbox.run(&["variables", "get", "api_token"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "***");
    let note = stderr(&out);
    assert!(
        note.contains("is a secret")
            && note.contains("masks its value")
            && note.contains("{{ var.value.api_token }}"),
        "{note}"
    );
    let error = one_error_line(&sandbox.run(&["variables", "get", "api_token", "-j"]));
    assert!(error.contains("masked"), "{error}");
}

#[test]
fn a_server_url_without_its_scheme_is_answered_with_the_url_to_use() {
    let sandbox = Sandbox::new();
    let error = one_error_line(&sandbox.run(&["dags", "list", "--server", "127.0.0.1:18181"]));
    assert_eq!(
        error,
        "error: invalid server URL '127.0.0.1:18181': relative URL without a base; did you mean \
         http://127.0.0.1:18181?"
    );
}

/// A URL copied from the API's own address works, since `/api/v2` is what the client adds;
/// a base that is no Updraft server's says so instead of a bare `Not Found`.
#[test]
fn a_server_url_with_the_api_path_is_taken_as_its_base() {
    let (sandbox, server) = standalone_with(&[("hello.yaml", HELLO)]);
    let with_path = format!("http://{}/api/v2", server.address);
    let dags = sandbox.json(&["dags", "list", "-o", "json", "--server", &with_path]);
    assert_eq!(ids(&dags, "dag_id"), ["hello"]);
    let wrong = format!("http://{}/airflow", server.address);
    let error = one_error_line(&sandbox.run(&["dags", "list", "--server", &wrong]));
    assert!(
        error.contains("no such API endpoint") && error.contains("without /api/v2"),
        "{error}"
    );
}

/// After `login --server X`, a plain command goes to X; `localhost` and `127.0.0.1` are one
/// server with one token; `--server` and `$UPDRAFT_SERVER` still win.
#[test]
fn login_makes_its_server_the_default_of_later_commands() {
    let sandbox = Sandbox::new();
    sandbox.write_dag("hello.yaml", HELLO);
    let server = sandbox.standalone();
    let port = server
        .address
        .rsplit(':')
        .next()
        .expect("an address with a port")
        .to_string();
    let password = std::fs::read_to_string(
        sandbox
            .path()
            .join(".updraft/standalone_admin_password.txt"),
    )
    .expect("standalone saved the admin password");
    let as_localhost = format!("http://localhost:{port}");
    let login = sandbox.run_with_input(
        &[
            "login",
            "--username",
            "admin",
            "--password-stdin",
            "--server",
            &as_localhost,
        ],
        &password,
    );
    assert!(login.status.success(), "{}", stderr(&login));
    wait_for_dag(&sandbox, "hello");
    let by_ip = format!("http://127.0.0.1:{port}");
    let dags = sandbox.json(&["dags", "list", "-o", "json", "--server", &by_ip]);
    assert_eq!(ids(&dags, "dag_id"), ["hello"]);
    let tokens: Value = serde_json::from_str(
        &std::fs::read_to_string(sandbox.path().join("tokens.json")).expect("token file"),
    )
    .expect("JSON");
    assert_eq!(tokens["default_server"], as_localhost, "{tokens}");
    assert!(tokens["tokens"][&by_ip].is_string(), "{tokens}");

    // The flag and the environment still win over the remembered server.
    let closed = format!("http://127.0.0.1:{}", crate::harness::free_port());
    let error = one_error_line(&sandbox.run(&["dags", "list", "--server", &closed]));
    assert!(error.contains("unreachable"), "{error}");
    let from_env = sandbox
        .command(&["dags", "list"])
        .env("UPDRAFT_SERVER", &closed)
        .output()
        .expect("dagctl runs");
    assert!(one_error_line(&from_env).contains(&closed));
}

#[test]
fn task_counts_print_as_integers() {
    let (sandbox, _server) = standalone_with(&[("hello.yaml", HELLO)]);
    let tasks = sandbox.json(&["tasks", "list", "hello", "-o", "json"]);
    let world = tasks
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["task_id"] == "world")
        .unwrap_or_else(|| panic!("{tasks}"));
    assert_eq!(world["retries"].as_i64(), Some(2), "{world}");
    assert!(world["pool_slots"].is_i64(), "{world}");
    let table = sandbox.ok(&["tasks", "list", "hello"]);
    assert!(!table.contains("2.0") && !table.contains("0.0"), "{table}");
}

/// Airflow's `tasks list` sorts by id; `dags show`, which is about the graph, lists upstream
/// tasks first.
#[test]
fn dags_show_lists_tasks_in_graph_order() {
    let (sandbox, _server) = standalone_with(&[(
        "backwards.yaml",
        "tasks:\n  - {id: zebra, bash: 'true'}\n  - {id: mid, bash: 'true', depends_on: [zebra]}\n  - {id: alpha, bash: 'true', depends_on: [mid]}\n",
    )]);
    let shown = sandbox.json(&["dags", "show", "backwards", "-o", "json"]);
    assert_eq!(ids(&shown["tasks"], "task_id"), ["zebra", "mid", "alpha"]);
    let table = sandbox.ok(&["dags", "show", "backwards"]);
    let order: Vec<&str> = table
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|word| ["zebra", "mid", "alpha"].contains(word))
        .collect();
    assert_eq!(order, ["zebra", "mid", "alpha"], "{table}");
    let listed = sandbox.json(&["tasks", "list", "backwards", "-o", "json"]);
    assert_eq!(ids(&listed, "task_id"), ["alpha", "mid", "zebra"]);
}

#[test]
fn xcom_values_print_as_json() {
    let (sandbox, _server) = standalone_with(&[(
        "pushes.yaml",
        "tasks:\n  - id: push\n    bash: |\n      echo '{\"key\": \"rows\", \"value\": [1, 2]}' >> \"$UPDRAFT_XCOM_FILE\"\n      echo '{\"key\": \"meta\", \"value\": {\"a\": \"b\"}}' >> \"$UPDRAFT_XCOM_FILE\"\n      echo plain text\n",
    )]);
    sandbox.ok(&["dags", "unpause", "pushes"]);
    sandbox.ok(&["dags", "trigger", "pushes", "-r", "x1"]);
    wait_for_run_state(&sandbox, "pushes", "x1", "success");
    let table = sandbox.ok(&["tasks", "xcom", "pushes", "x1", "push"]);
    let value_of = |key: &str| {
        table
            .lines()
            .find(|line| line.split_whitespace().nth(2) == Some(key))
            .map(|line| {
                line.split_whitespace()
                    .skip(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_else(|| panic!("no {key} in {table}"))
    };
    assert_eq!(value_of("rows"), "[1,2]");
    assert_eq!(value_of("meta"), r#"{"a":"b"}"#);
    assert_eq!(value_of("return_value"), "plain text");
    let json = sandbox.json(&["tasks", "xcom", "pushes", "x1", "push", "-o", "json"]);
    let rows = json
        .as_array()
        .expect("list")
        .iter()
        .find(|x| x["key"] == "rows")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(rows["value"], serde_json::json!([1, 2]));
}

#[test]
fn adding_a_connection_that_exists_is_refused() {
    let (sandbox, _server) = standalone_with(&[]);
    sandbox.ok(&[
        "connections",
        "add",
        "warehouse",
        "--conn-uri",
        "postgres://ana:pw@db:5432/sales",
    ]);
    let error = one_error_line(&sandbox.run(&[
        "connections",
        "add",
        "warehouse",
        "--conn-type",
        "postgres",
        "--conn-host",
        "db2",
    ]));
    assert!(
        error.contains("connection 'warehouse' already exists")
            && error.contains("dagctl connections delete warehouse"),
        "{error}"
    );
    let kept = sandbox.json(&["connections", "get", "warehouse", "-o", "json"]);
    assert_eq!(kept["host"], "db", "{kept}");
}

/// Every command shows a line of help, and `--server` shows, as an option, only where it is
/// used.
#[test]
fn help_has_a_line_for_every_command_and_names_the_server_only_where_it_applies() {
    let sandbox = Sandbox::new();
    let groups = sandbox.ok(&["dags", "--help"]);
    let commands: Vec<&str> = groups
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .collect();
    assert!(commands.len() > 10, "{groups}");
    for line in commands {
        assert!(
            line.split_whitespace().count() > 1,
            "no help: {line:?} in\n{groups}"
        );
    }
    for local in [
        &["dags", "validate", "--help"][..],
        &["dags", "test", "--help"],
        &["tasks", "test", "--help"],
        &["users", "create", "--help"],
        &["db", "migrate", "--help"],
        &["--help"],
    ] {
        let help = sandbox.ok(local);
        assert!(!help.contains("--server"), "{local:?}:\n{help}");
    }
    let help = sandbox.ok(&["dags", "list", "--help"]);
    assert!(
        help.contains("Usage: dagctl dags list [OPTIONS]\n"),
        "{help}"
    );
    assert!(help.contains("--server <URL>"), "{help}");
    assert!(!help.contains("[default: http"), "{help}");
}

const MAPPED: &str = "tasks:\n  - id: per_region\n    expand:\n      region: [eu, us]\n      tier: [gold, silver]\n    bash: 'echo \"{{ region }}-{{ tier }}-$STAGE-$LITERAL\"'\n  - id: plain\n    env: {STAGE: own}\n    bash: 'echo \"$STAGE\"'\n";

/// `tasks test --map-index N` runs that one mapped instance (with the names it binds), and
/// `--env-vars` reaches the task's process, literally, behind the task's own `env`; a mapped
/// task without an index, an index on an unmapped task or out of range, and bad variables are
/// refused before anything runs.
#[test]
fn tasks_test_runs_one_mapped_instance_with_the_env_vars_given() {
    let sandbox = Sandbox::new();
    sandbox.write_dag("mapped.yaml", MAPPED);
    let env = r#"{"STAGE": "test", "LITERAL": "{{ ds }}"}"#;
    let ran = sandbox.json(&[
        "tasks",
        "test",
        "mapped",
        "per_region",
        "2024-03-01",
        "--map-index",
        "3",
        "--env-vars",
        env,
        "-o",
        "json",
    ]);
    assert_eq!(ran["state"], "success", "{ran}");
    assert_eq!(ran["map_index"], 3, "{ran}");
    // Index 3 of eu/us × gold/silver, the last key varying fastest.
    assert_eq!(
        ran["xcom"]["return_value"], "us-silver-test-{{ ds }}",
        "{ran}"
    );
    let table = sandbox.ok(&["tasks", "test", "mapped", "per_region", "--map-index", "0"]);
    assert_eq!(
        table.lines().last(),
        Some("per_region[0] success"),
        "{table}"
    );
    let own = sandbox.json(&[
        "tasks",
        "test",
        "mapped",
        "plain",
        "--env-vars",
        env,
        "-o",
        "json",
    ]);
    assert_eq!(
        own["xcom"]["return_value"], "own",
        "the task's env wins: {own}"
    );

    for (args, expected) in [
        (
            &["tasks", "test", "mapped", "per_region"][..],
            "error: task 'per_region' is mapped: give the instance to run with --map-index N (0 for the first)",
        ),
        (
            &["tasks", "test", "mapped", "per_region", "--map-index", "4"],
            "error: --map-index 4 is out of range: task 'per_region' expands to 4 instance(s) (0 to 3)",
        ),
        (
            &["tasks", "test", "mapped", "plain", "--map-index", "0"],
            "error: task 'plain' is not mapped: leave out --map-index (or give -1)",
        ),
        (
            &["tasks", "test", "mapped", "plain", "--env-vars", "[1]"],
            r#"error: --env-vars must be a JSON object, e.g. '{"STAGE": "test"}'"#,
        ),
        (
            &[
                "tasks",
                "test",
                "mapped",
                "plain",
                "--env-vars",
                r#"{"UPDRAFT__DATABASE__URL": "x"}"#,
            ],
            "error: --env-vars: UPDRAFT__DATABASE__URL is never passed to a task process: database settings and credentials stay out of tasks",
        ),
        (
            &[
                "tasks",
                "test",
                "mapped",
                "plain",
                "--env-vars",
                r#"{"A": [1]}"#,
            ],
            "error: --env-vars: the value of A must be a string, got [1]",
        ),
    ] {
        assert_eq!(one_error_line(&sandbox.run(args)), expected, "{args:?}");
    }
}

/// `dags test` in Airflow's words: a logical date, `-c CONF`, `--mark-success-pattern` (the
/// matching tasks, here a sensor that would wait an hour, succeed without running) and
/// `-f/--dagfile-path` for a file outside the DAGs folder.
#[test]
fn dags_test_marks_matching_tasks_successful_and_reads_a_given_file() {
    let sandbox = Sandbox::new();
    sandbox.write_dag(
        "waits.yaml",
        "tasks:\n  - id: wait_for_file\n    sensor: {file: '/nonexistent/updraft-e2e/{{ ds }}.csv'}\n    poke_interval: 1s\n    timeout: 1h\n  - {id: load, depends_on: [wait_for_file], bash: 'echo \"rows {{ params.rows }}\"'}\n",
    );
    let tested = sandbox.run(&[
        "dags",
        "test",
        "waits",
        "2024-03-01",
        "-c",
        r#"{"rows": 5}"#,
        "--mark-success-pattern",
        "^wait_",
        "-o",
        "json",
    ]);
    assert!(tested.status.success(), "{}", stderr(&tested));
    let result: Value = serde_json::from_str(&stdout(&tested)).expect("JSON");
    assert_eq!(
        result,
        json!({"state": "success", "tasks": {"wait_for_file": "success", "load": "success"}})
    );
    assert!(
        stderr(&tested)
            .contains("marked successful without running (--mark-success-pattern): wait_for_file"),
        "{}",
        stderr(&tested)
    );
    assert!(stderr(&tested).contains("rows 5"), "{}", stderr(&tested));

    let bad =
        one_error_line(&sandbox.run(&["dags", "test", "waits", "--mark-success-pattern", "("]));
    assert!(
        bad == "error: --mark-success-pattern '(' is not a regular expression: unclosed group",
        "{bad}"
    );

    let elsewhere = sandbox.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("folder");
    let file = elsewhere.join("outside.yaml");
    std::fs::write(&file, "tasks:\n  - {id: only, bash: 'echo outside'}\n").expect("write");
    let file = file.display().to_string();
    let outside = sandbox.json(&["dags", "test", "outside", "-f", &file, "-o", "json"]);
    assert_eq!(outside["tasks"]["only"], "success", "{outside}");
    let wrong = one_error_line(&sandbox.run(&["dags", "test", "waits", "-f", &file]));
    assert_eq!(
        wrong,
        format!("error: DAG 'waits' not found in {file} (it defines: outside)")
    );
    let none = one_error_line(&sandbox.run(&["dags", "test", "x", "-f", "missing.yaml"]));
    assert_eq!(none, "error: --dagfile-path missing.yaml: no such file");
}

/// `variables import -a overwrite|fail|skip` and `pools import`/`pools export` in Airflow's
/// pool file format; a refused import changes nothing.
#[test]
fn variables_and_pools_import_as_airflow_does() {
    let (sandbox, _server) = standalone_with(&[]);
    sandbox.ok(&["variables", "set", "region", "eu"]);
    let file = sandbox.path().join("vars.json");
    std::fs::write(&file, r#"{"region": "us", "tier": "gold"}"#).expect("write");
    let file = file.display().to_string();
    let value = |key: &str| sandbox.ok(&["variables", "get", key, "-d", "<none>"]);

    let failed = one_error_line(&sandbox.run(&["variables", "import", &file, "-a", "fail"]));
    assert_eq!(
        failed,
        format!(
            "error: {file}: nothing imported, these variables exist already: region (-a \
             overwrite replaces them, -a skip keeps them)"
        )
    );
    assert_eq!(value("tier").trim(), "<none>", "nothing imported");
    let skipped = sandbox.ok(&[
        "variables",
        "import",
        &file,
        "--action-on-existing-key",
        "skip",
    ]);
    assert_eq!(
        skipped,
        format!("1 variable(s) imported from {file}\n1 skipped, as they exist already: region\n")
    );
    assert_eq!(
        (value("region").trim(), value("tier").trim()),
        ("eu", "gold")
    );
    sandbox.ok(&["variables", "import", &file]);
    assert_eq!(value("region").trim(), "us", "overwrite is the default");

    let pools = sandbox.path().join("pools.json");
    std::fs::write(
        &pools,
        r#"{"etl": {"slots": 4, "description": "ETL slots", "include_deferred": false},
            "default_pool": {"slots": 64, "description": "Default pool"}}"#,
    )
    .expect("write");
    let pools = pools.display().to_string();
    assert_eq!(
        sandbox.ok(&["pools", "import", &pools]),
        format!("2 pool(s) imported from {pools}\n")
    );
    let etl = sandbox.json(&["pools", "get", "etl", "-o", "json"]);
    assert_eq!(
        (&etl[0]["slots"], &etl[0]["description"]),
        (&json!(4), &json!("ETL slots"))
    );

    let broken = sandbox.path().join("broken.json");
    std::fs::write(
        &broken,
        r#"{"etl": {"slots": 9}, "bad": {"slots": "many"}}"#,
    )
    .expect("write");
    let broken = broken.display().to_string();
    let refused = sandbox.run(&["pools", "import", &broken]);
    assert!(!refused.status.success());
    assert_eq!(
        stderr(&refused),
        format!(
            "error: {broken}: nothing imported:\n  pool 'bad': \"slots\" must be a whole number, 0 or \
             more, got \"many\"\n"
        )
    );
    assert_eq!(
        sandbox.json(&["pools", "get", "etl", "-o", "json"])[0]["slots"],
        4
    );

    let exported = sandbox.path().join("exported.json");
    let exported_name = exported.display().to_string();
    assert_eq!(
        sandbox.ok(&["pools", "export", &exported_name]),
        format!("2 pool(s) exported to {exported_name}\n")
    );
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&exported).expect("read")).expect("JSON");
    assert_eq!(
        written,
        json!({
            "default_pool": {"slots": 64, "description": "Default pool", "include_deferred": false},
            "etl": {"slots": 4, "description": "ETL slots", "include_deferred": false},
        })
    );
}

/// `dags next-execution -n NUM` prints the next NUM logical dates, then `None` where the
/// schedule (here its end date, or `@once`) has no more.
#[test]
fn next_execution_lists_the_next_runs_up_to_the_schedules_end() {
    let (sandbox, _server) = standalone_with(&[
        (
            "monthly.yaml",
            "schedule: '0 0 1 * *'\nstart_date: 2099-01-01\nend_date: 2099-03-01\ntasks:\n  - {id: t, bash: 'true'}\n",
        ),
        (
            "once.yaml",
            "schedule: '@once'\nstart_date: 2099-06-01\ntasks:\n  - {id: t, bash: 'true'}\n",
        ),
    ]);
    assert_eq!(
        sandbox.ok(&["dags", "next-execution", "monthly", "-n", "2"]),
        "2099-01-01T00:00:00+00:00\n2099-02-01T00:00:00+00:00\n"
    );
    let past_end = sandbox.run(&["dags", "next-execution", "monthly", "--num-executions", "5"]);
    assert!(past_end.status.success(), "{}", stderr(&past_end));
    assert_eq!(
        stdout(&past_end),
        "2099-01-01T00:00:00+00:00\n2099-02-01T00:00:00+00:00\n2099-03-01T00:00:00+00:00\nNone\n"
    );
    assert!(
        stderr(&past_end).contains("no scheduled run after 2099-03-01T00:00:00Z"),
        "{}",
        stderr(&past_end)
    );
    assert_eq!(
        sandbox.ok(&["dags", "next-execution", "once", "-n", "3"]),
        "2099-06-01T00:00:00+00:00\nNone\n"
    );
}
