//! A try's notifications: `on_execute` before it runs, and `on_success`/`on_failure`/
//! `on_retry` and the alert mails once its end is committed, each report noted in its log.
//! Notifications only report: they never change a state.

use std::sync::Arc;

use dag::{Dag, Task, TaskState};
use hooks::callbacks::{self, TryInfo, TryMoment};
use store::{ClaimedTask, Store};

use crate::config::WorkerConfig;

/// What the notifications of a finished try need, kept until its end is committed.
pub(crate) struct Ended {
    pub dag: Arc<Dag>,
    pub task_id: String,
    /// Why the try failed, as failure notifications report it.
    pub exception: String,
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
