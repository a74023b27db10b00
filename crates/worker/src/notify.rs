//! A try's notifications: `on_execute` before it runs, and `on_success`/`on_failure`/
//! `on_retry` and the alert mails once its end is committed, each report noted in its log;
//! and the Python failure or retry callback of an Airflow task whose process was killed
//! before it could run it, with its output in the try's log. Notifications and callbacks
//! only report: they never change a state.

use std::sync::Arc;

use chrono::Utc;
use dag::{Dag, PythonCallback, Task, TaskKind, TaskState};
use hooks::callbacks::{self, TryInfo, TryMoment};
use pydag::CallbackRun;
use pydag::spec::{CallbackReason, CallbackRequest};
use store::{ClaimedTask, LogLine, LogStream, Store};

use crate::attempt::CallbacksLeft;
use crate::config::WorkerConfig;

/// What the notifications of a finished try need, kept until its end is committed.
pub(crate) struct Ended {
    pub dag: Arc<Dag>,
    pub task_id: String,
    /// Why the try failed, as failure notifications report it.
    pub exception: String,
    /// The Python callbacks the try's process did not get to run.
    pub callbacks_left: Option<CallbacksLeft>,
}

impl Ended {
    /// Send the task's notifications for the committed end `state` of `claimed`'s try, and
    /// note how each went in the try's log. Never changes any state.
    pub(crate) async fn notify(
        &self,
        store: &Arc<dyn Store>,
        claimed: &ClaimedTask,
        config: &WorkerConfig,
        state: TaskState,
    ) {
        let Some(task) = self.dag.task(&self.task_id) else {
            return;
        };
        if let Some(left) = &self.callbacks_left {
            left.run(store, claimed, config, task, state, &self.exception)
                .await;
        }
        let moment = TryMoment::Ended(state);
        if !callbacks::task_has_notifications(task, moment) {
            return;
        }
        let exception = matches!(state, TaskState::Failed | TaskState::UpForRetry)
            .then_some(self.exception.as_str());
        let sent = Sent {
            store,
            claimed,
            config,
            dag: &self.dag,
            task,
        };
        sent.notify(moment, exception).await;
    }
}

/// The try a notification is about.
pub(crate) struct Sent<'a> {
    pub store: &'a Arc<dyn Store>,
    pub claimed: &'a ClaimedTask,
    pub config: &'a WorkerConfig,
    pub dag: &'a Dag,
    pub task: &'a Task,
}

impl Sent<'_> {
    /// Send the task's notifications for one moment of the try and log the reports in the
    /// try's log.
    pub(crate) async fn notify(&self, moment: TryMoment, exception: Option<&str>) {
        let ti = &self.claimed.ti;
        let config = self.config;
        let info = TryInfo {
            map_index: ti.map_index,
            try_number: ti.try_number,
            max_tries: ti.max_tries,
            hostname: Some(config.hostname.clone()),
            exception: exception.map(str::to_string),
        };
        let secrets = callbacks::Secrets {
            store: self.store.as_ref(),
            vault: &config.vault,
            env_connections: &config.env_connections,
        };
        let reports = callbacks::task_notifications(
            &config.notify,
            secrets,
            self.dag,
            self.task,
            &self.claimed.run,
            &info,
            moment,
        )
        .await;
        callbacks::log_reports(self.store.as_ref(), ti.id, ti.try_number, &reports).await;
    }
}

impl CallbacksLeft {
    /// Run the callback the committed end `state` calls (`on_failure_callback` for failed,
    /// `on_retry_callback` for up_for_retry), if the task has it, through the host's callback
    /// mode; its output and how it ended go to the try's log.
    async fn run(
        &self,
        store: &Arc<dyn Store>,
        claimed: &ClaimedTask,
        config: &WorkerConfig,
        task: &Task,
        state: TaskState,
        exception: &str,
    ) {
        let TaskKind::Airflow(airflow) = &task.kind else {
            return;
        };
        let Some(kind) = PythonCallback::for_task_end(state)
            .filter(|k| *k != PythonCallback::OnSuccessCallback && airflow.callbacks.contains(k))
        else {
            return;
        };
        let ti = &claimed.ti;
        let request = CallbackRequest::new(
            kind,
            CallbackReason::TaskFailure,
            Some(exception.to_string()),
        );
        let run = CallbackRun {
            spec: self.spec.clone().with_callback(request),
            cwd: self.cwd.clone(),
            env: self.env.clone(),
            timeout: config.python.import_timeout,
            masks: self.masks.clone(),
        };
        let mut lines = vec![system(format!(
            "the try's process ended before running its {kind}: running it now"
        ))];
        match run.run(&config.python).await {
            Ok(output) => {
                lines.extend(output.lines);
                lines.push(system(format!("{kind} {}", output.ended)));
            }
            Err(err) => lines.push(system(format!("{kind} could not run: {err}"))),
        }
        if let Err(err) = store.append_log(ti.id, ti.try_number, &lines).await {
            tracing::warn!(ti = ti.id, error = %err, "could not log a Python callback's output");
        }
    }
}

fn system(line: String) -> LogLine {
    LogLine {
        timestamp: Utc::now(),
        stream: LogStream::System,
        line,
    }
}
