//! The `airflow` kind: a task of an Airflow Python DAG file. The embedded host
//! (`updraft_host.py run`) loads the DAG version's stored source, sets the operator's
//! template fields as rendered here, and calls its `execute` (or callable) with Airflow's
//! context; XComs, the return value, the log, timeouts and exit codes go through the worker
//! as for a `python` task.

use dag::AirflowTask;
use dag::template::{Reads, TemplateContext};
use serde_json::{Map, json};

use super::process::{ReturnValue, collect, prepare, runner_context};
use crate::attempt::{Attempt, Outcome, Ran};
use crate::command::{self, CommandError, Workspace};
use crate::process::ProcessSpec;
use crate::render::{self, render_json};
use crate::task_log::TrackLast;

/// Run one try of an `airflow` task.
pub(crate) async fn run(attempt: &Attempt<'_>, spec: &AirflowTask) -> Ran {
    let log = attempt.log;
    let Some(source) = attempt.dag.python_source.as_deref() else {
        log.system("this DAG version holds no Python source to run the task from")
            .await;
        return Ran::only(Outcome::FailedForGood);
    };
    // Python code may pull any XCom and read any variable or connection.
    let reads = Reads {
        xcoms: true,
        variables: true,
        connections: true,
    } | render::task_reads(attempt);
    let (ctx, workspace) = match prepare(attempt, reads).await {
        Ok(prepared) => prepared,
        Err(message) => {
            log.system(message).await;
            return Ran::only(Outcome::Failed);
        }
    };
    let process = match host_spec(attempt, &workspace, spec, source, &ctx).await {
        Ok(process) => process,
        Err(err) => {
            log.system(err.to_string()).await;
            return Ran::only(Outcome::Failed);
        }
    };
    let exited = command::run(attempt, &workspace, &process).await;
    collect(attempt, &workspace, exited, ReturnValue::ResultFile).await
}

/// The host's spec for this try, written into the try's folder, and the process to start.
async fn host_spec(
    attempt: &Attempt<'_>,
    workspace: &Workspace,
    spec: &AirflowTask,
    source: &str,
    ctx: &TemplateContext,
) -> Result<ProcessSpec, CommandError> {
    let host = pydag::host_script().map_err(|e| CommandError::Prepare(e.to_string()))?;
    let mut fields = Map::new();
    for (name, value) in &spec.fields {
        let rendered = render_json(value, ctx).map_err(|source| CommandError::Template {
            what: format!("template field {name}"),
            source,
        })?;
        fields.insert(name.clone(), rendered);
    }
    let task_id = &attempt.task.task_id;
    let downstream: Vec<&str> = attempt
        .dag
        .tasks
        .iter()
        .filter(|t| t.upstream.contains(task_id))
        .map(|t| t.task_id.as_str())
        .collect();
    let notify = &attempt.config.notify;
    let smtp = &notify.smtp;
    let (context, xcoms) = runner_context(ctx);
    let ti = &attempt.claimed.ti;
    let dags_folder = attempt.dag_folder();
    let fileloc = std::path::absolute(&attempt.dag.fileloc)
        .unwrap_or_else(|_| attempt.dag.fileloc.clone().into());
    let document = json!({
        "dag_id": ctx.dag_id,
        "task_id": ctx.task_id,
        "run_id": ctx.run_id,
        "try_number": ctx.try_number,
        "map_index": ctx.map_index,
        "context": context,
        "xcoms": xcoms,
        "airflow": {
            "fileloc": fileloc,
            "source": source,
            "dags_folder": dags_folder,
            "fields": fields,
            "expand": ctx.extra,
            "downstream": downstream,
            "log_url": notify.log_url(&ctx.dag_id, &ctx.run_id, task_id, ti.map_index, ti.try_number),
            "variables": ctx.variables,
            "connections": ctx.connections,
            "smtp": {
                "host": smtp.host,
                "port": smtp.port,
                "user": smtp.user,
                "password": smtp.password,
                "starttls": smtp.starttls,
                "ssl": smtp.ssl,
                "from": smtp.from,
                "timeout": smtp.timeout.as_secs_f64(),
            },
            "callback": null,
        },
    });
    let spec_file = workspace.write("spec.json", document.to_string()).await?;
    let mut env = workspace.env.clone();
    env.push((
        "UPDRAFT_RETURN_VALUE_FILE".into(),
        workspace.result_file().display().to_string(),
    ));
    env.push(("PYTHONUNBUFFERED".into(), "1".into()));
    env.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
    let interpreter = &attempt.config.python.interpreter;
    attempt
        .log
        .system(format!(
            "running {} {task_id} of {} with {interpreter} (in {})",
            spec.operator,
            attempt.dag.fileloc,
            workspace.cwd.display()
        ))
        .await;
    Ok(ProcessSpec {
        program: interpreter.into(),
        args: vec!["-u".into(), host.into(), "run".into(), spec_file.into()],
        cwd: workspace.cwd.clone(),
        env,
        track_last_stdout: TrackLast::No,
    })
}
