//! The document the host's `run` mode reads (`updraft_host.py run SPEC.json`, or a zygote's
//! child): one try of a task of an Airflow DAG file, or one Python callback of a task or of
//! a DAG. Built here, from a run's template context, for the worker (tries, and callbacks
//! after a kill) and the scheduler (DAG callbacks, and task callbacks of zombies) alike, so
//! the two never disagree on its shape.
//!
//! The `context` and `xcoms` parts are also what the worker's runner of YAML `python` tasks
//! reads ([`TryContext`], [`SpecXcom`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use dag::template::TemplateContext;
use dag::{Dag, PythonCallback};
use hooks::mail::SmtpSettings;
use hooks::notify::NotifySettings;
use serde::Serialize;
use serde_json::Value;

/// Why a spec could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The DAG version was not loaded from a Python file, so there is nothing to run.
    #[error("this version of DAG {0} holds no Python source to run it from")]
    NoSource(String),
}

/// One run of the host: a try, or (with [`CallbackRequest`]) one callback.
#[derive(Debug, Clone, Serialize)]
pub struct RunSpec {
    dag_id: String,
    /// `None` for a DAG's callback.
    task_id: Option<String>,
    run_id: String,
    try_number: u32,
    map_index: i32,
    context: TryContext,
    xcoms: Vec<SpecXcom>,
    airflow: AirflowBlock,
}

/// What a zygote must have loaded to fork a try: the DAG file's stored source, where it
/// lives, and what the package reads while loading it (variables, connections, SMTP).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Load {
    fileloc: PathBuf,
    source: String,
    dags_folder: Option<PathBuf>,
    variables: BTreeMap<String, String>,
    connections: BTreeMap<String, Value>,
    smtp: Smtp,
}

/// The `airflow` block: the [`Load`] plus what this one try or callback needs.
#[derive(Debug, Clone, Serialize)]
struct AirflowBlock {
    #[serde(flatten)]
    load: Load,
    /// The operator's template fields, rendered by the worker; empty leaves the operator's
    /// own values.
    fields: BTreeMap<String, Value>,
    /// The values a mapped instance binds.
    expand: BTreeMap<String, Value>,
    /// Direct downstream task ids (a short-circuit's choice).
    downstream: Vec<String>,
    log_url: String,
    callback: Option<CallbackRequest>,
}

/// Updraft's `[smtp]` settings, for `send_email` in a task or callback.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Smtp {
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<String>,
    starttls: bool,
    ssl: bool,
    from: String,
    /// Seconds.
    timeout: f64,
}

impl From<&SmtpSettings> for Smtp {
    fn from(smtp: &SmtpSettings) -> Smtp {
        Smtp {
            host: smtp.host.clone(),
            port: smtp.port,
            user: smtp.user.clone(),
            password: smtp.password.clone(),
            starttls: smtp.starttls,
            ssl: smtp.ssl,
            from: smtp.from.clone(),
            timeout: smtp.timeout.as_secs_f64(),
        }
    }
}

/// Run only this callback instead of the task: the host's callback mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackRequest {
    kind: PythonCallback,
    /// `context["exception"]`: what went wrong, in words.
    exception: Option<String>,
    /// `context["reason"]`.
    reason: Option<CallbackReason>,
    /// A DAG's callback: the task of the run's last task instance, whose context the
    /// callback gets (Airflow 3's DAG-callback context).
    task_id: Option<String>,
}

impl CallbackRequest {
    /// Call the `kind` callbacks, telling them `reason` and, if something went wrong,
    /// `exception`.
    pub fn new(
        kind: PythonCallback,
        reason: CallbackReason,
        exception: Option<String>,
    ) -> CallbackRequest {
        CallbackRequest {
            kind,
            exception,
            reason: Some(reason),
            task_id: None,
        }
    }

    /// Which callbacks are called.
    pub fn kind(&self) -> PythonCallback {
        self.kind
    }
}

/// `context["reason"]` of a callback, with Airflow's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackReason {
    /// The run (or try) succeeded.
    Success,
    /// A task failed (the run failed because of it, or this try did).
    TaskFailure,
    /// The run exceeded its `dagrun_timeout`.
    TimedOut,
}

/// The template context as the Python runners read it (`spec["context"]`): the context's own
/// names, then the names a mapped instance binds (which win, as they always have).
#[derive(Debug, Clone, PartialEq)]
pub struct TryContext {
    own: OwnContext,
    extra: BTreeMap<String, Value>,
}

impl Serialize for TryContext {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = match serde_json::to_value(&self.own) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(serde::ser::Error::custom("a context is a JSON object")),
            Err(err) => return Err(serde::ser::Error::custom(err)),
        };
        for (name, value) in &self.extra {
            map.insert(name.clone(), value.clone());
        }
        map.serialize(serializer)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct OwnContext {
    ds: Option<String>,
    ds_nodash: Option<String>,
    ts: Option<String>,
    ts_nodash: Option<String>,
    logical_date: Option<String>,
    data_interval_start: Option<String>,
    data_interval_end: Option<String>,
    run_id: String,
    conf: Value,
    params: BTreeMap<String, Value>,
    map_index: i32,
    try_number: u32,
    dag_run: DagRunContext,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct DagRunContext {
    dag_id: String,
    run_id: String,
    run_type: String,
    logical_date: Option<String>,
    data_interval_start: Option<String>,
    data_interval_end: Option<String>,
    conf: Value,
}

/// One XCom of the run, as `spec["xcoms"]` lists them for `ti.xcom_pull`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpecXcom {
    task_id: String,
    map_index: i32,
    key: String,
    value: Value,
}

impl SpecXcom {
    /// The XComs `ctx` holds.
    pub fn all(ctx: &TemplateContext) -> Vec<SpecXcom> {
        ctx.xcoms
            .iter()
            .map(|x| SpecXcom {
                task_id: x.task_id.clone(),
                map_index: x.map_index,
                key: x.key.clone(),
                value: x.value.clone(),
            })
            .collect()
    }
}

/// A timestamp as Airflow writes `ts`: `2024-01-01T00:00:00+00:00`.
fn airflow_ts(date: DateTime<Utc>) -> String {
    date.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

impl TryContext {
    /// The context of `ctx`'s try, its bound `extra` names included.
    pub fn of(ctx: &TemplateContext) -> TryContext {
        let date = |d: Option<DateTime<Utc>>| d.map(airflow_ts);
        let logical = ctx.logical_date;
        let own = OwnContext {
            ds: logical.map(|d| d.format("%Y-%m-%d").to_string()),
            ds_nodash: logical.map(|d| d.format("%Y%m%d").to_string()),
            ts: date(logical),
            ts_nodash: logical.map(|d| d.format("%Y%m%dT%H%M%S").to_string()),
            logical_date: date(logical),
            data_interval_start: date(ctx.data_interval_start),
            data_interval_end: date(ctx.data_interval_end),
            run_id: ctx.run_id.clone(),
            conf: ctx.conf.clone(),
            params: ctx.params.clone(),
            map_index: ctx.map_index,
            try_number: ctx.try_number,
            dag_run: DagRunContext {
                dag_id: ctx.dag_id.clone(),
                run_id: ctx.run_id.clone(),
                run_type: ctx.run_type.clone(),
                logical_date: date(logical),
                data_interval_start: date(ctx.data_interval_start),
                data_interval_end: date(ctx.data_interval_end),
                conf: ctx.conf.clone(),
            },
        };
        TryContext {
            own,
            extra: ctx.extra.clone(),
        }
    }
}

/// `path` made absolute against the current directory, so that it stays right once the
/// host runs in another folder.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

impl Load {
    /// What loading `dag`'s Python file needs, with the variables and connections `ctx`
    /// opened and Updraft's SMTP settings.
    fn of(dag: &Dag, ctx: &TemplateContext, smtp: &SmtpSettings) -> Result<Load, SpecError> {
        let source = dag
            .python_source
            .clone()
            .ok_or_else(|| SpecError::NoSource(dag.dag_id.clone()))?;
        let fileloc = absolute(Path::new(&dag.fileloc));
        let dags_folder = Path::new(&dag.fileloc)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(absolute);
        Ok(Load {
            fileloc,
            source,
            dags_folder,
            variables: ctx.variables.clone(),
            connections: ctx.connections.clone(),
            smtp: Smtp::from(smtp),
        })
    }

    /// The folder of the DAG file, where a try or callback runs unless told otherwise.
    pub fn dag_folder(&self) -> Option<&Path> {
        self.dags_folder.as_deref()
    }
}

impl RunSpec {
    /// One try of the task `ctx` is the context of (its id, map index and try number), in
    /// `dag`, a DAG loaded from a Python file. The operator keeps its own field values
    /// unless [`RunSpec::with_fields`] gives rendered ones.
    pub fn task(
        dag: &Dag,
        ctx: &TemplateContext,
        notify: &NotifySettings,
    ) -> Result<RunSpec, SpecError> {
        let downstream = dag
            .tasks
            .iter()
            .filter(|t| t.upstream.contains(&ctx.task_id))
            .map(|t| t.task_id.clone())
            .collect();
        Ok(RunSpec {
            dag_id: ctx.dag_id.clone(),
            task_id: Some(ctx.task_id.clone()),
            run_id: ctx.run_id.clone(),
            try_number: ctx.try_number,
            map_index: ctx.map_index,
            context: TryContext::of(ctx),
            xcoms: SpecXcom::all(ctx),
            airflow: AirflowBlock {
                load: Load::of(dag, ctx, &notify.smtp)?,
                fields: BTreeMap::new(),
                expand: ctx.extra.clone(),
                downstream,
                log_url: log_url(notify, ctx),
                callback: None,
            },
        })
    }

    /// The `callback` of a DAG, for the run `ctx` is a context of: that of the run's last
    /// task instance (Airflow 3 gives a DAG's callbacks its context), or of no task (an
    /// empty `task_id`) when the run has none.
    pub fn dag_callback(
        dag: &Dag,
        ctx: &TemplateContext,
        notify: &NotifySettings,
        callback: CallbackRequest,
    ) -> Result<RunSpec, SpecError> {
        let last = (!ctx.task_id.is_empty()).then(|| ctx.task_id.clone());
        // The task's spec, then what only a task's try has taken away.
        let mut spec = RunSpec::task(dag, ctx, notify)?;
        spec.task_id = None;
        spec.airflow.expand.clear();
        spec.airflow.downstream.clear();
        if last.is_none() {
            spec.airflow.log_url.clear();
        }
        spec.airflow.callback = Some(CallbackRequest {
            task_id: last,
            ..callback
        });
        Ok(spec)
    }

    /// The operator's template fields as the worker rendered them.
    pub fn with_fields(mut self, fields: BTreeMap<String, Value>) -> RunSpec {
        self.airflow.fields = fields;
        self
    }

    /// Run only `callback` of this spec's task, instead of the task.
    pub fn with_callback(mut self, callback: CallbackRequest) -> RunSpec {
        self.airflow.callback = Some(CallbackRequest {
            task_id: None,
            ..callback
        });
        self
    }

    /// What loading the DAG file needs (a zygote's key).
    pub fn load(&self) -> &Load {
        &self.airflow.load
    }

    /// The callback this spec runs instead of a try, if any.
    pub fn callback(&self) -> Option<&CallbackRequest> {
        self.airflow.callback.as_ref()
    }

    /// The task the spec is about (`None` for a DAG's callback).
    pub fn task_id(&self) -> Option<&str> {
        self.task_id.as_deref()
    }

    pub fn dag_id(&self) -> &str {
        &self.dag_id
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The document, as the host reads it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a spec holds only JSON-representable values")
    }
}

fn log_url(notify: &NotifySettings, ctx: &TemplateContext) -> String {
    notify.log_url(
        &ctx.dag_id,
        &ctx.run_id,
        &ctx.task_id,
        ctx.map_index,
        ctx.try_number,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use dag::template::XcomValue;
    use serde_json::json;

    fn dag() -> Dag {
        let doc = json!({"dag_id": "etl", "tasks": [
            {"id": "extract", "airflow": {"operator": "PythonOperator"}},
            {"id": "load", "bash": "true", "depends_on": ["extract"]},
        ]});
        dag::dag_from_python("/dags/etl.py", &doc, "# source").expect("a valid document")
    }

    fn context(task_id: &str) -> TemplateContext {
        let date = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).single();
        TemplateContext {
            dag_id: "etl".into(),
            task_id: task_id.into(),
            run_id: "manual__1".into(),
            run_type: "manual".into(),
            logical_date: date,
            data_interval_start: date,
            data_interval_end: date,
            conf: json!({"k": 1}),
            params: BTreeMap::from([("k".to_string(), json!(1))]),
            try_number: 2,
            map_index: -1,
            xcoms: vec![XcomValue {
                task_id: "extract".into(),
                map_index: -1,
                key: "return_value".into(),
                value: json!(7),
            }],
            extra: BTreeMap::from([("file".to_string(), json!("a.csv"))]),
            variables: BTreeMap::from([("v".to_string(), "1".to_string())]),
            connections: BTreeMap::new(),
            semantics: dag::model::Semantics::Airflow,
        }
    }

    #[test]
    fn a_tries_document() {
        let spec = RunSpec::task(&dag(), &context("extract"), &NotifySettings::default())
            .expect("a Python DAG")
            .with_fields(BTreeMap::from([("op_args".to_string(), json!(["x"]))]));
        let doc: Value = serde_json::from_str(&spec.to_json()).expect("JSON");
        assert_eq!(doc["task_id"], "extract");
        assert_eq!(doc["try_number"], 2);
        let context = &doc["context"];
        assert_eq!(context["ds"], "2024-03-01");
        assert_eq!(context["ts"], "2024-03-01T00:00:00+00:00");
        assert_eq!(context["ts_nodash"], "20240301T000000");
        assert_eq!(context["file"], "a.csv");
        assert_eq!(context["dag_run"]["run_type"], "manual");
        assert_eq!(context["dag_run"]["conf"], json!({"k": 1}));
        assert_eq!(
            doc["xcoms"],
            json!([{"task_id": "extract", "map_index": -1, "key": "return_value", "value": 7}])
        );
        let airflow = &doc["airflow"];
        assert_eq!(airflow["fileloc"], "/dags/etl.py");
        assert_eq!(airflow["dags_folder"], "/dags");
        assert_eq!(airflow["source"], "# source");
        assert_eq!(airflow["fields"], json!({"op_args": ["x"]}));
        assert_eq!(airflow["downstream"], json!(["load"]));
        assert_eq!(airflow["variables"], json!({"v": "1"}));
        assert_eq!(airflow["smtp"]["host"], "localhost");
        assert_eq!(airflow["smtp"]["timeout"], 30.0);
        assert_eq!(airflow["callback"], Value::Null);
        assert!(
            airflow["log_url"]
                .as_str()
                .is_some_and(|u| u.ends_with("/dags/etl/runs/manual__1/tasks/extract?try_number=2")),
            "{airflow}"
        );
    }

    #[test]
    fn a_tasks_callback_and_a_dags() {
        let failed = CallbackRequest::new(
            PythonCallback::OnFailureCallback,
            CallbackReason::TaskFailure,
            Some("killed by SIGKILL".into()),
        );
        let spec = RunSpec::task(&dag(), &context("extract"), &NotifySettings::default())
            .expect("a Python DAG")
            .with_callback(failed.clone());
        let doc: Value = serde_json::from_str(&spec.to_json()).expect("JSON");
        assert_eq!(doc["task_id"], "extract");
        assert_eq!(
            doc["airflow"]["callback"],
            json!({"kind": "on_failure_callback", "exception": "killed by SIGKILL",
                   "reason": "task_failure", "task_id": null})
        );
        let spec =
            RunSpec::dag_callback(&dag(), &context("load"), &NotifySettings::default(), failed)
                .expect("a Python DAG");
        let doc: Value = serde_json::from_str(&spec.to_json()).expect("JSON");
        assert_eq!(doc["task_id"], Value::Null);
        assert_eq!(doc["airflow"]["callback"]["task_id"], "load");
        let none = RunSpec::dag_callback(
            &dag(),
            &context(""),
            &NotifySettings::default(),
            CallbackRequest::new(
                PythonCallback::OnSuccessCallback,
                CallbackReason::Success,
                None,
            ),
        )
        .expect("a Python DAG");
        let doc: Value = serde_json::from_str(&none.to_json()).expect("JSON");
        assert_eq!(doc["airflow"]["callback"]["task_id"], Value::Null);
        assert_eq!(doc["airflow"]["callback"]["reason"], "success");
        assert_eq!(doc["airflow"]["log_url"], "");
    }

    #[test]
    fn a_yaml_dag_has_no_spec() {
        let yaml = dag::parse_dag_str("etl.yaml", "tasks:\n  - {id: a, bash: 'true'}\n")
            .expect("valid DAG");
        let err = RunSpec::task(&yaml, &context("a"), &NotifySettings::default())
            .expect_err("no Python source");
        assert_eq!(
            err.to_string(),
            "this version of DAG etl holds no Python source to run it from"
        );
    }
}
