//! The REST API over real HTTP on a loopback port, with a real scheduler and worker behind
//! it: the role matrix, authentication, strict bodies, mark and clear, logs by try, XCom, and
//! the OpenAPI document. The cases that touch every layer are two tests each, `case::sqlite`
//! and `case::postgres` (skipped when Postgres is unreachable, except under CI=true); the
//! others run on SQLite.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use store::Store;
use testkit::{Server, TestStore};

use testkit::server::sync_bash_dag as sync_dag;

async fn roles_decide_what_each_user_may_do(store: Arc<dyn Store>) {
    let server = Server::start(store.clone()).await;
    sync_dag(store.as_ref(), "matrix", &[("only", "true", &[])]).await;
    // role → (read, trigger, variable write, user create) allowed
    let matrix = [
        ("Viewer", [true, false, false, false]),
        ("User", [true, true, false, false]),
        ("Op", [true, true, true, false]),
        ("Admin", [true, true, true, true]),
    ];
    for (role, allowed) in matrix {
        let who = role.to_lowercase();
        let token = server.login_as(&who, role).await;
        let expect = |ok: bool, success: StatusCode| {
            if ok { success } else { StatusCode::FORBIDDEN }
        };
        let (status, body) = server
            .call(Method::GET, "/api/v2/dags", Some(&token), None)
            .await;
        assert_eq!(
            status,
            expect(allowed[0], StatusCode::OK),
            "{role} read: {body}"
        );
        let (status, body) = server
            .call(
                Method::POST,
                "/api/v2/dags/matrix/dagRuns",
                Some(&token),
                Some(json!({"logical_date": null, "dag_run_id": format!("by_{who}")})),
            )
            .await;
        assert_eq!(
            status,
            expect(allowed[1], StatusCode::OK),
            "{role} trigger: {body}"
        );
        let (status, body) = server
            .call(
                Method::POST,
                "/api/v2/variables",
                Some(&token),
                Some(json!({"key": format!("set_by_{who}"), "value": "x"})),
            )
            .await;
        assert_eq!(
            status,
            expect(allowed[2], StatusCode::CREATED),
            "{role} variable write: {body}"
        );
        let (status, body) = server
            .call(
                Method::POST,
                "/api/v2/users",
                Some(&token),
                Some(json!({"username": format!("made_by_{who}"), "password": "p", "role": "Viewer"})),
            )
            .await;
        assert_eq!(
            status,
            expect(allowed[3], StatusCode::CREATED),
            "{role} user create: {body}"
        );
        if !allowed[1] {
            assert!(
                body["detail"].as_str().is_some_and(|d| d.contains("Admin")),
                "a 403 says which role is needed: {body}"
            );
        }
    }
    // What was refused changed nothing.
    let runs = store
        .list_runs(&store::RunFilter::default())
        .await
        .expect("runs");
    let mut ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["by_admin", "by_op", "by_user"]);
    assert!(
        store
            .get_variable("set_by_viewer")
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        store
            .get_variable("set_by_user")
            .await
            .expect("get")
            .is_none()
    );
    assert!(store.get_user("made_by_op").await.expect("get").is_none());
    assert!(
        store
            .get_user("made_by_admin")
            .await
            .expect("get")
            .is_some()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_are_checked_and_bad_input_is_a_4xx() {
    let fixture = TestStore::sqlite().await;
    let store = fixture.store();
    let server = Server::start(store.clone()).await;
    sync_dag(store.as_ref(), "strict", &[("only", "true", &[])]).await;

    // No token, a forged token, a wrong password: 401, and nothing else changes.
    let (status, body) = server.call(Method::GET, "/api/v2/dags", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let forged = api::TokenKeys::new(b"another secret", Duration::from_secs(60)).issue(
        "admin",
        api::Role::Admin,
        Utc::now(),
    );
    let (status, _) = server
        .call(Method::GET, "/api/v2/dags", Some(&forged), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let token = server.login_as("ops", "Op").await;
    let (status, _) = server
        .call(
            Method::POST,
            "/auth/token",
            None,
            Some(json!({"username": "ops", "password": "wrong"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Health and version need no token.
    let (status, health) = server
        .call(Method::GET, "/api/v2/monitor/health", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["metadatabase"]["status"], "healthy");
    let (status, _) = server
        .call(Method::GET, "/api/v2/version", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);

    // Strict bodies: an unknown field is a 422 naming it; a missing logical_date too.
    let (status, body) = server
        .call(
            Method::PATCH,
            "/api/v2/dags/strict",
            Some(&token),
            Some(json!({"is_paused": true, "paused": true})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "paused"]));
    assert!(
        !store
            .get_dag("strict")
            .await
            .expect("get")
            .expect("dag")
            .is_paused
    );
    let (status, body) = server
        .call(
            Method::POST,
            "/api/v2/dags/strict/dagRuns",
            Some(&token),
            Some(json!({"conf": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "logical_date"]));
    let (status, _) = server
        .call(Method::GET, "/api/v2/dags?limit=abc", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = server
        .call(
            Method::GET,
            "/api/v2/dags?order_by=nope",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Missing things are 404 with a detail; a duplicate run id is a 409.
    let (status, body) = server
        .call(Method::GET, "/api/v2/dags/nope", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["detail"].as_str().expect("detail").contains("nope"));
    for _ in 0..2 {
        server
            .call(
                Method::POST,
                "/api/v2/dags/strict/dagRuns",
                Some(&token),
                Some(json!({"logical_date": null, "dag_run_id": "twice"})),
            )
            .await;
    }
    let (status, _) = server
        .call(
            Method::POST,
            "/api/v2/dags/strict/dagRuns",
            Some(&token),
            Some(json!({"logical_date": null, "dag_run_id": "twice"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // A body over the limit is a 413, not a crash.
    let big = "x".repeat(api::BODY_LIMIT + 1);
    let (status, _) = server
        .call(
            Method::POST,
            "/api/v2/variables",
            Some(&token),
            Some(json!({"key": "big", "value": big})),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Pools: default_pool cannot go; a missing one is 404.
    let (status, _) = server
        .call(
            Method::DELETE,
            "/api/v2/pools/default_pool",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = server
        .call(
            Method::DELETE,
            "/api/v2/pools/none_such",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

/// What Airflow users expect of runs and DAGs: manual run ids to the microsecond (two
/// triggers in one second both succeed), the triggering user kept with the run, a bad `conf`
/// located at its field, and the next scheduled run in the DAG's answer.
async fn runs_and_dags_answer_as_airflow_does(store: Arc<dyn Store>) {
    let server = Server::start(store.clone()).await;
    let token = server.login_as("ops", "Op").await;
    let dag = testkit::conformance::chain_dag("daily", &["only"]);
    store.sync_dag(&dag, "v1", Utc::now()).await.expect("sync");

    let trigger = || async {
        server
            .call(
                Method::POST,
                "/api/v2/dags/daily/dagRuns",
                Some(&token),
                Some(json!({"logical_date": null})),
            )
            .await
    };
    let (first_status, first) = trigger().await;
    let (second_status, second) = trigger().await;
    assert_eq!(
        (first_status, second_status),
        (StatusCode::OK, StatusCode::OK),
        "{first} {second}"
    );
    let ids = [&first, &second].map(|run| run["dag_run_id"].as_str().expect("id").to_string());
    assert_ne!(ids[0], ids[1], "two triggers in one second are two runs");
    for (id, run) in ids.iter().zip([&first, &second]) {
        let logical: chrono::DateTime<Utc> =
            serde_json::from_value(run["logical_date"].clone()).expect("logical date");
        assert_eq!(
            *id,
            dag::schedule::run_id(dag::RunType::Manual, logical),
            "the id is the logical date to the microsecond"
        );
        assert!(id.starts_with("manual__2"), "{id}");
        assert_eq!(run["triggering_user_name"], "ops", "{run}");
    }
    let read = server
        .get(&format!("/api/v2/dags/daily/dagRuns/{}", ids[0]), &token)
        .await;
    assert_eq!(read["triggering_user_name"], "ops", "{read}");

    // A conf that is not an object: a 422 at the field.
    let (status, body) = server
        .call(
            Method::POST,
            "/api/v2/dags/daily/dagRuns",
            Some(&token),
            Some(json!({"logical_date": null, "conf": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "conf"]), "{body}");

    // A backfill's runs carry the user who asked for it.
    let (status, body) = server
        .call(
            Method::POST,
            "/api/v2/backfills",
            Some(&token),
            Some(
                json!({"dag_id": "daily", "from_date": "2026-01-02T00:00:00Z",
                        "to_date": "2026-01-02T00:00:00Z"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let backfilled = body["dag_run_ids"][0].as_str().expect("a backfill run");
    let read = server
        .get(&format!("/api/v2/dags/daily/dagRuns/{backfilled}"), &token)
        .await;
    assert_eq!(read["triggering_user_name"], "ops", "{read}");

    // The next scheduled run: daily at midnight with data intervals and no catchup, none run
    // yet, so the interval that ended last midnight, due then.
    let midnight = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let day = chrono::Duration::days(1);
    let next = |answer: &Value| {
        [
            "next_dagrun_logical_date",
            "next_dagrun_data_interval_start",
            "next_dagrun_data_interval_end",
            "next_dagrun_run_after",
        ]
        .map(|field| {
            serde_json::from_value::<Option<chrono::DateTime<Utc>>>(answer[field].clone())
                .unwrap_or_else(|e| panic!("{field}: {e} in {answer}"))
        })
    };
    let dag_answer = server.get("/api/v2/dags/daily", &token).await;
    assert_eq!(
        next(&dag_answer),
        [
            Some(midnight - day),
            Some(midnight - day),
            Some(midnight),
            Some(midnight)
        ],
        "{dag_answer}"
    );
    // Once that run is made, the next one follows it; the listing and details agree.
    let mut made = testkit::conformance::new_run(&dag, "scheduled__made", Utc::now());
    made.run_type = dag::RunType::Scheduled;
    made.logical_date = Some(midnight - day);
    store.create_run(&made).await.expect("create").expect("new");
    let expected = [
        Some(midnight),
        Some(midnight),
        Some(midnight + day),
        Some(midnight + day),
    ];
    assert_eq!(
        next(&server.get("/api/v2/dags/daily", &token).await),
        expected
    );
    assert_eq!(
        next(&server.get("/api/v2/dags/daily/details", &token).await),
        expected
    );
    let listed = server.get("/api/v2/dags", &token).await;
    let listed = listed["dags"]
        .as_array()
        .expect("dags")
        .iter()
        .find(|d| d["dag_id"] == "daily")
        .expect("listed")
        .clone();
    assert_eq!(next(&listed), expected);
    // A DAG without a schedule has no next run.
    sync_dag(store.as_ref(), "manual_only", &[("only", "true", &[])]).await;
    assert_eq!(
        next(&server.get("/api/v2/dags/manual_only", &token).await),
        [None; 4]
    );
    server.stop().await;
}

async fn runs_marks_clears_logs_and_xcoms_over_http(store: Arc<dyn Store>) {
    let server = Server::with_engine(store.clone()).await;
    sync_dag(
        store.as_ref(),
        "flow",
        &[
            ("first", "echo line-one; echo 41", &[]),
            ("second", "echo second-ran; exit 3", &["first"]),
            ("third", "echo 7", &["second"]),
        ],
    )
    .await;
    let token = server.login_as("admin", "Admin").await;
    let (status, run) = server
        .call(
            Method::POST,
            "/api/v2/dags/flow/dagRuns",
            Some(&token),
            Some(json!({"logical_date": "2026-01-02T03:04:05Z", "conf": {"k": 1}, "dag_run_id": "r1"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["conf"], json!({"k": 1}));
    assert_eq!(run["logical_date"], "2026-01-02T03:04:05Z");
    let run_path = "/api/v2/dags/flow/dagRuns/r1";
    let done = server
        .wait_until(run_path, &token, |r| r["state"] == "failed")
        .await;
    assert!(done["end_date"].is_string());
    let tis = server
        .get(&format!("{run_path}/taskInstances"), &token)
        .await;
    let states: Vec<(String, Value)> = tis["task_instances"]
        .as_array()
        .expect("list")
        .iter()
        .map(|t| {
            (
                t["task_id"].as_str().expect("id").to_string(),
                t["state"].clone(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("first".to_string(), json!("success")),
            ("second".to_string(), json!("failed")),
            ("third".to_string(), json!("upstream_failed")),
        ]
    );
    assert_eq!(tis["total_entries"], 3);
    assert_eq!(tis["task_instances"][0]["map_index"], -1);
    assert_eq!(tis["task_instances"][0]["try_number"], 1);

    // Logs by try, with a continuation token, and as NDJSON.
    let log = server
        .get(&format!("{run_path}/taskInstances/first/logs/1"), &token)
        .await;
    let events: Vec<&str> = log["content"]
        .as_array()
        .expect("content")
        .iter()
        .map(|l| l["event"].as_str().expect("event"))
        .collect();
    assert!(events.contains(&"line-one"), "{events:?}");
    let token_after = log["continuation_token"]
        .as_str()
        .expect("token")
        .to_string();
    let rest = server
        .get(
            &format!("{run_path}/taskInstances/first/logs/1?token={token_after}"),
            &token,
        )
        .await;
    assert_eq!(rest["content"], json!([]), "nothing after the last line");
    let ndjson = server
        .http
        .get(format!(
            "{}{run_path}/taskInstances/first/logs/1",
            server.base
        ))
        .bearer_auth(&token)
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .expect("ndjson");
    assert_eq!(ndjson.headers()["content-type"], "application/x-ndjson");
    let text = ndjson.text().await.expect("text");
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok())
    );
    assert!(text.contains("line-one"));
    let (status, _) = server
        .call(
            Method::GET,
            &format!("{run_path}/taskInstances/first/logs/9"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // XCom of the first task.
    let xcom = server
        .get(
            &format!("{run_path}/taskInstances/first/xcomEntries/return_value"),
            &token,
        )
        .await;
    assert_eq!(xcom["value"], "41");
    let entries = server
        .get(&format!("{run_path}/taskInstances/~/xcomEntries"), &token)
        .await;
    assert_eq!(entries["total_entries"], 1);

    // Clear: a dry run (the default) lists and changes nothing.
    let (status, dry) = server
        .call(
            Method::POST,
            "/api/v2/dags/flow/clearTaskInstances",
            Some(&token),
            Some(json!({"dag_run_id": "r1", "task_ids": ["second"], "include_downstream": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["total_entries"], 2, "{dry}");
    let still = server.get(run_path, &token).await;
    assert_eq!(still["state"], "failed");

    // Mark `second` success by hand: the scheduler then runs `third`... which was
    // upstream_failed; clearing it (for real) lets it run, and the run succeeds.
    let (status, marked) = server
        .call(
            Method::PATCH,
            &format!("{run_path}/taskInstances/second"),
            Some(&token),
            Some(json!({"new_state": "success"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{marked}");
    assert_eq!(marked["task_instances"][0]["state"], "success");
    eprintln!(
        "DEBUG {} after mark: {}",
        store.backend(),
        server.get(run_path, &token).await["state"]
    );
    let (status, cleared) = server
        .call(
            Method::POST,
            "/api/v2/dags/flow/clearTaskInstances",
            Some(&token),
            Some(json!({"dry_run": false, "only_failed": true, "dag_run_id": "r1", "task_ids": ["third"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert_eq!(cleared["total_entries"], 1, "{cleared}");
    eprintln!(
        "DEBUG {} after clear: {}",
        store.backend(),
        server.get(run_path, &token).await["state"]
    );
    let done = server
        .wait_until(run_path, &token, |r| r["state"] == "success")
        .await;
    assert_eq!(done["state"], "success");
    let third = server
        .get(&format!("{run_path}/taskInstances/third"), &token)
        .await;
    assert_eq!(third["state"], "success");
    assert_eq!(
        third["try_number"], 1,
        "upstream_failed never ran: this is its first try"
    );

    // Mark the whole run failed, then delete it.
    let (status, patched) = server
        .call(
            Method::PATCH,
            run_path,
            Some(&token),
            Some(json!({"state": "failed"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["state"], "failed");
    let listed = server
        .get("/api/v2/dags/~/dagRuns?state=failed", &token)
        .await;
    assert_eq!(listed["total_entries"], 1);
    let (status, _) = server
        .call(Method::DELETE, run_path, Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server.call(Method::GET, run_path, Some(&token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openapi_document_lists_what_is_served() {
    let fixture = TestStore::sqlite().await;
    let store = fixture.store();
    let server = Server::start(store).await;
    let (status, document) = server
        .call(Method::GET, "/api/v2/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let paths = document["paths"].as_object().expect("paths");
    for path in [
        "/api/v2/dags",
        "/api/v2/dags/{dag_id}/dagRuns",
        "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}",
        "/api/v2/dags/{dag_id}/clearTaskInstances",
        "/api/v2/variables/{variable_key}",
        "/auth/token",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    let trigger = &paths["/api/v2/dags/{dag_id}/dagRuns"]["post"];
    assert!(trigger["responses"]["403"].is_object());
    assert!(trigger["responses"]["422"].is_object());
    assert!(paths["/api/v2/version"]["get"]["security"].is_null());
    // Swagger UI is served from the binary.
    let ui = server
        .http
        .get(format!("{}/docs/", server.base))
        .send()
        .await
        .expect("docs");
    assert_eq!(ui.status(), StatusCode::OK);
    assert!(ui.text().await.expect("html").contains("swagger"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_tasks_log_grows_as_it_runs() {
    let fixture = TestStore::sqlite().await;
    let store = fixture.store();
    let server = Server::with_engine(store.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = dir.path().join("go");
    let command = format!(
        "echo before-gate; while [ ! -f {} ]; do sleep 0.02; done; echo after-gate",
        gate.display()
    );
    sync_dag(store.as_ref(), "gated", &[("wait", command.as_str(), &[])]).await;
    let token = server.login_as("viewer", "Admin").await;
    server
        .call(
            Method::POST,
            "/api/v2/dags/gated/dagRuns",
            Some(&token),
            Some(json!({"logical_date": null, "dag_run_id": "g"})),
        )
        .await;
    let log_path = "/api/v2/dags/gated/dagRuns/g/taskInstances/wait/logs/1";
    let first = server
        .wait_until(log_path, &token, |log| {
            log["content"]
                .as_array()
                .is_some_and(|lines| lines.iter().any(|l| l["event"] == "before-gate"))
        })
        .await;
    let ti = server
        .get("/api/v2/dags/gated/dagRuns/g/taskInstances/wait", &token)
        .await;
    assert_eq!(ti["state"], "running", "read while it runs: {ti}");
    let has = |log: &Value, event: &str| {
        log["content"]
            .as_array()
            .is_some_and(|lines| lines.iter().any(|l| l["event"] == event))
    };
    assert!(!has(&first, "after-gate"), "not printed yet: {first}");
    let continuation = first["continuation_token"]
        .as_str()
        .expect("token")
        .to_string();
    std::fs::write(&gate, "").expect("open the gate");
    let rest = server
        .wait_until(&format!("{log_path}?token={continuation}"), &token, |log| {
            log["content"]
                .as_array()
                .is_some_and(|lines| lines.iter().any(|l| l["event"] == "after-gate"))
        })
        .await;
    assert!(
        !has(&rest, "before-gate"),
        "the continuation starts after what was read: {rest}"
    );
    server.stop().await;
}

/// Listings over a bulk-loaded history: each page with the count of every match, filters and
/// orders as Airflow names them, a bad parameter a 4xx that says what is wrong, the grid and
/// the DAG list's summaries of the newest runs, and a long log read page by page.
async fn listings_page_and_count_over_http(store: Arc<dyn Store>) {
    use store::history::{HistoryShape, load_all};
    let server = Server::start(store.clone()).await;
    let token = server.login_as("viewer", "Viewer").await;
    let now = Utc::now();
    let big = HistoryShape::new("hist_a", 45, now)
        .with_log_lines(0)
        .with_xcoms(0)
        .with_tags(&["team_x"])
        .with_long_log(5_000);
    let small = HistoryShape::new("hist_b", 5, now)
        .with_log_lines(0)
        .with_xcoms(0);
    load_all(store.as_ref(), &[big.clone(), small.clone()])
        .await
        .expect("load the history");
    let get = async |path: &str| {
        let (status, body) = server.call(Method::GET, path, Some(&token), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    };
    let listed = async |path: &str, items: &str| {
        let body = get(path).await;
        let found: Vec<String> = body[items]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: {body}"))
            .iter()
            .map(|item| {
                item.get("dag_run_id")
                    .or(item.get("dag_id"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        (
            found,
            body["total_entries"].as_i64().expect("total_entries"),
        )
    };

    assert_eq!(
        listed("/api/v2/dags?limit=1", "dags").await,
        (vec!["hist_a".to_string()], 2)
    );
    assert_eq!(
        listed("/api/v2/dags?tags=team_x&offset=0", "dags").await,
        (vec!["hist_a".to_string()], 1)
    );
    assert_eq!(
        listed("/api/v2/dags?last_dag_run_state=success", "dags")
            .await
            .1,
        2
    );
    // A page of a DAG's runs in the order asked for, counted in all.
    let (runs, total) = listed(
        "/api/v2/dags/hist_a/dagRuns?limit=10&offset=40&order_by=-run_after",
        "dag_runs",
    )
    .await;
    assert_eq!(total, 45);
    assert_eq!(
        runs,
        (0..5).rev().map(|n| big.run_id(n)).collect::<Vec<_>>()
    );
    // Every 20th run failed.
    let (failed, total) = listed(
        "/api/v2/dags/hist_a/dagRuns?state=failed&order_by=run_id",
        "dag_runs",
    )
    .await;
    assert_eq!((failed, total), (vec![big.run_id(19), big.run_id(39)], 2));
    assert_eq!(
        listed("/api/v2/dags/~/dagRuns?limit=5", "dag_runs").await.1,
        50
    );
    assert_eq!(
        listed(
            "/api/v2/dags/~/dagRuns?run_type=asset_triggered,sometimes",
            "dag_runs"
        )
        .await,
        (Vec::new(), 0)
    );
    // Task instances: of one run, and the failed ones of every run.
    let newest = big.run_id(44);
    let path = format!("/api/v2/dags/hist_a/dagRuns/{newest}/taskInstances");
    assert_eq!(listed(&path, "task_instances").await.1, 3);
    let (failed, total) = listed(
        "/api/v2/dags/~/dagRuns/~/taskInstances?state=failed&limit=1&order_by=-logical_date",
        "task_instances",
    )
    .await;
    assert_eq!(total, 2);
    assert_eq!(failed.len(), 1);
    // A try number no instance can have matches nothing.
    assert_eq!(
        listed(
            "/api/v2/dags/~/dagRuns/~/taskInstances?try_number=-1",
            "task_instances"
        )
        .await,
        (Vec::new(), 0)
    );

    // Bad parameters: a 4xx naming what is wrong, never a 500.
    for (path, expected, says) in [
        (
            "/api/v2/dags?order_by=nope",
            StatusCode::BAD_REQUEST,
            "allowed",
        ),
        (
            "/api/v2/dags?last_dag_run_state=done",
            StatusCode::UNPROCESSABLE_ENTITY,
            "done",
        ),
        (
            "/api/v2/dags/hist_a/dagRuns?order_by=-nope",
            StatusCode::BAD_REQUEST,
            "nope",
        ),
        (
            "/api/v2/dags/~/dagRuns/~/taskInstances?map_index=x",
            StatusCode::UNPROCESSABLE_ENTITY,
            "integer",
        ),
        (
            "/api/v2/dags/~/dagRuns?start_date_gte=soon",
            StatusCode::UNPROCESSABLE_ENTITY,
            "datetime",
        ),
    ] {
        let (status, body) = server.call(Method::GET, path, Some(&token), None).await;
        assert_eq!(status, expected, "{path}: {body}");
        assert!(body.to_string().contains(says), "{path}: {body}");
    }

    // The grid: the newest runs, oldest first, each with a cell per task.
    let grid = get("/ui/dags/hist_a/grid?limit=25").await;
    let grid_runs = grid["runs"].as_array().expect("runs");
    assert_eq!(grid_runs.len(), 25);
    assert_eq!(grid_runs[24]["run_id"], newest.as_str());
    assert_eq!(grid_runs[0]["run_id"], big.run_id(20).as_str());
    assert!(
        grid_runs
            .iter()
            .all(|run| run["cells"].as_array().is_some_and(|c| c.len() == 3))
    );
    assert_eq!(grid["has_older"], true);
    let older = get("/ui/dags/hist_a/grid?limit=25&offset=40").await;
    assert_eq!(older["runs"].as_array().map(Vec::len), Some(5));
    let summary = get("/ui/dags/summary?dag_ids=hist_a,hist_b,none").await;
    assert_eq!(
        summary["dags"]["hist_a"]["recent_runs"]
            .as_array()
            .map(Vec::len),
        Some(14)
    );
    assert_eq!(
        summary["dags"]["hist_b"]["recent_runs"][4]["run_id"],
        small.run_id(4).as_str()
    );
    assert!(summary["dags"].get("none").is_none());

    // A long log, page by page: each continues after the last line read.
    let log = format!("/api/v2/dags/hist_a/dagRuns/{newest}/taskInstances/t00/logs/1");
    let mut token_at = String::new();
    let mut pages = Vec::new();
    loop {
        let page = get(&format!("{log}?token={token_at}")).await;
        let lines = page["content"].as_array().expect("content").len();
        if lines == 0 {
            break;
        }
        pages.push(lines);
        token_at = page["continuation_token"]
            .as_str()
            .expect("token")
            .to_string();
    }
    assert_eq!(pages, [2000, 2000, 1000]);
    let full = get(&format!("{log}?full_content=true")).await;
    assert_eq!(full["content"].as_array().map(Vec::len), Some(5_000));
    server.stop().await;
}

testkit::backend_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    roles_decide_what_each_user_may_do,
    runs_marks_clears_logs_and_xcoms_over_http,
    runs_and_dags_answer_as_airflow_does,
    listings_page_and_count_over_http,
);

/// While Postgres is out of reach, the API answers 503 with `Retry-After` (never 500) and the
/// health check says the database is unhealthy, promptly; once it is back, requests succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_a_503_with_retry_after() {
    let Some(database) = testkit::postgres::ScratchDatabase::create().await else {
        return;
    };
    let mut proxy = testkit::outage::OutageProxy::start(database.url()).await;
    let store: Arc<dyn Store> = Arc::new(
        store_postgres::PostgresStore::connect(&proxy.url(database.url()))
            .await
            .expect("connect through the proxy"),
    );
    let server = Server::start(store.clone()).await;
    sync_dag(store.as_ref(), "outage", &[("only", "true", &[])]).await;
    let token = server.login_as("op", "Op").await;
    let trigger = json!({"logical_date": null});

    proxy.cut().await;
    let (status, body) = server
        .call(
            Method::POST,
            "/api/v2/dags/outage/dagRuns",
            Some(&token),
            Some(trigger.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let retry = server
        .http
        .get(format!("{}/api/v2/dags", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(retry.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        retry
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("2")
    );
    let asked = tokio::time::Instant::now();
    let (status, health) = server
        .call(Method::GET, "/api/v2/monitor/health", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["metadatabase"]["status"], "unhealthy", "{health}");
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "the health check answers even when the database does not"
    );

    proxy.restore().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = server
            .call(
                Method::POST,
                "/api/v2/dags/outage/dagRuns",
                Some(&token),
                Some(trigger.clone()),
            )
            .await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(tokio::time::Instant::now() < deadline, "still 503: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

/// Users carry the FAB auth manager's `email`, `first_name` and `last_name`: given at
/// creation, answered and listed, empty when not given. An empty or malformed one is a 422
/// naming the field, a taken email (whatever its case) a 409, and neither creates anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_carry_names_and_email() {
    let fixture = TestStore::sqlite().await;
    let store = fixture.store();
    let server = Server::start(store.clone()).await;
    let token = server.login_as("boss", "Admin").await;
    let ana = json!({"username": "ana", "password": "pw", "role": "Op",
        "email": "ana@example.org", "first_name": "Ana", "last_name": "Lima"});
    let (status, body) = server
        .call(Method::POST, "/api/v2/users", Some(&token), Some(ana))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        [&body["email"], &body["first_name"], &body["last_name"]],
        [&json!("ana@example.org"), &json!("Ana"), &json!("Lima")],
        "{body}"
    );
    let (status, list) = server
        .call(Method::GET, "/api/v2/users", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let users = list["users"].as_array().expect("users");
    let listed = |name: &str| {
        users
            .iter()
            .find(|u| u["username"] == name)
            .unwrap_or_else(|| panic!("no {name} in {list}"))
    };
    assert_eq!(listed("ana")["last_name"], "Lima", "{list}");
    assert_eq!(
        [&listed("boss")["email"], &listed("boss")["first_name"]],
        [&json!(""), &json!("")],
        "not given: {list}"
    );

    for (body, status, loc) in [
        (
            json!({"username": "x1", "password": "pw", "role": "Viewer", "email": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("email"),
        ),
        (
            json!({"username": "x2", "password": "pw", "role": "Viewer", "email": "nope"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("email"),
        ),
        (
            json!({"username": "x3", "password": "pw", "role": "Viewer", "first_name": " "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("first_name"),
        ),
        (
            json!({"username": "x4", "password": "pw", "role": "Viewer", "email": "ANA@example.org"}),
            StatusCode::CONFLICT,
            None,
        ),
    ] {
        let (got, answer) = server
            .call(
                Method::POST,
                "/api/v2/users",
                Some(&token),
                Some(body.clone()),
            )
            .await;
        assert_eq!(got, status, "{body}: {answer}");
        match loc {
            Some(field) => assert_eq!(
                answer["detail"][0]["loc"],
                json!(["body", field]),
                "{answer}"
            ),
            None => assert_eq!(
                answer["detail"], "a user with email 'ANA@example.org' already exists",
                "{answer}"
            ),
        }
    }
    assert_eq!(
        store.list_users().await.expect("users").len(),
        2,
        "nothing created"
    );
    server.stop().await;
}
