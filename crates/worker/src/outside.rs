//! Changes from outside to the task instances this worker runs: an operator marks one success
//! or failed, clears it, or deletes its run (through the API, the CLI or the UI, each a store
//! operation that emits `RunChanged`). A try whose instance is no longer `running` at its try
//! number is stopped, by the same kill path as a timeout.
//!
//! Event-driven: on `RunChanged` for a run with tries here, one read of those tries' task
//! instances (not of the whole run: a wide run changes once per finished task). The heartbeat calls [`check_all`] with the tries it refreshed, as a safety net
//! for changes whose event did not reach this process (SQLite across processes, a lagging
//! subscriber).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use dag::TaskState;
use store::{RunningTry, Store, StoreEvent, TaskInstanceRecord};
use tokio::sync::broadcast::{self, error::TryRecvError};

use crate::reporting::Reporting;
use crate::stop::StopReason;
use crate::tries::{Tries, TryKey};

/// Why `ours` must stop, given its task instance as the store now has it (`None`: gone).
pub(crate) fn verdict(ours: TryKey, found: Option<&TaskInstanceRecord>) -> Option<StopReason> {
    match found {
        None => Some(StopReason::Deleted),
        Some(ti) if ti.try_number != ours.try_number => Some(StopReason::Superseded {
            try_number: ti.try_number,
        }),
        Some(ti) if ti.state != TaskState::Running => {
            Some(StopReason::ChangedOutside { state: ti.state })
        }
        Some(_) => None,
    }
}

/// Check the tries of every run that `events` says changed, until the events end. Whatever
/// has piled up meanwhile is handled in one pass, one read per run with tries here; after
/// lost events (a lagging receiver, `Missed`), every run with tries here.
pub(crate) async fn watch_runs(
    store: Arc<dyn Store>,
    tries: Arc<Tries>,
    reporting: Arc<Reporting>,
    mut events: broadcast::Receiver<StoreEvent>,
) {
    loop {
        let mut changed = BTreeSet::new();
        let mut everything = match events.recv().await {
            Ok(event) => note(&event, &mut changed),
            Err(broadcast::error::RecvError::Lagged(_)) => true,
            // The heartbeat's check goes on without events.
            Err(broadcast::error::RecvError::Closed) => return,
        };
        loop {
            match events.try_recv() {
                Ok(event) => everything |= note(&event, &mut changed),
                Err(TryRecvError::Lagged(_)) => everything = true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        let ours = tries.runs();
        if everything {
            changed = ours.clone();
        }
        for run in changed.intersection(&ours) {
            check_run(store.as_ref(), &tries, &reporting, *run).await;
        }
    }
}

/// Note a run that changed; true for `Missed`, after which every try is checked.
fn note(event: &StoreEvent, changed: &mut BTreeSet<i64>) -> bool {
    match event {
        StoreEvent::RunChanged { run } => {
            changed.insert(*run);
            false
        }
        StoreEvent::Missed => true,
        StoreEvent::TasksQueued
        | StoreEvent::RunProgressed { .. }
        | StoreEvent::LogAppended { .. } => false,
    }
}

/// Stop the tries of `run` whose task instance changed, with one read of their instances.
async fn check_run(store: &dyn Store, tries: &Tries, reporting: &Reporting, run: i64) {
    let keys = tries.in_run(run);
    if keys.is_empty() {
        return;
    }
    let ids: Vec<i64> = keys.iter().map(|key| key.ti).collect();
    let instances = match store.task_instances_by_keys(&ids).await {
        Ok(instances) => {
            reporting.outage.succeeded();
            instances
        }
        Err(err) => {
            if !reporting.outage.failed(&err) {
                tracing::warn!(run, error = %err, "could not check the running tries of a changed run");
            }
            return;
        }
    };
    let by_id: HashMap<i64, &TaskInstanceRecord> = instances.iter().map(|t| (t.id, t)).collect();
    for key in keys {
        if let Some(reason) = verdict(key, by_id.get(&key.ti).copied()) {
            stop(tries, key, reason);
        }
    }
}

/// Stop every try here whose task instance changed. `running` is what the store still has
/// this worker running, as the heartbeat returns it; each try not among them is read again to
/// say how it changed (and to rule out a try claimed after that list was made).
pub(crate) async fn check_all(
    store: &dyn Store,
    tries: &Tries,
    reporting: &Reporting,
    running: &[RunningTry],
) {
    let keys = tries.all();
    if keys.is_empty() {
        return;
    }
    let running: HashSet<TryKey> = running
        .iter()
        .map(|t| TryKey {
            ti: t.ti,
            try_number: t.try_number,
        })
        .collect();
    for key in keys {
        if running.contains(&key) {
            continue;
        }
        match store.get_task_instance(key.ti).await {
            Ok(found) => {
                if let Some(reason) = verdict(key, found.as_ref()) {
                    stop(tries, key, reason);
                }
            }
            Err(err) => {
                if !reporting.outage.failed(&err) {
                    tracing::warn!(ti = key.ti, error = %err, "could not check a running try");
                }
            }
        }
    }
}

fn stop(tries: &Tries, key: TryKey, reason: StopReason) {
    let line = reason.to_string();
    if tries.stop(key, reason) {
        tracing::info!(
            ti = key.ti,
            try_number = key.try_number,
            "{line}; stopping the try"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: TaskState, try_number: u32) -> TaskInstanceRecord {
        serde_json::from_value(serde_json::json!({
            "id": 7, "run": 1, "dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1,
            "try_number": try_number, "max_tries": 0, "state": state, "queue": "default",
            "pool": "default_pool", "pool_slots": 1, "priority_weight": 1, "operator": "bash",
            "queued_at": null, "start_date": null, "end_date": null, "next_retry_at": null,
            "hostname": null, "pid": null, "worker_id": "w", "heartbeat_at": null
        }))
        .expect("a task instance record")
    }

    #[test]
    fn a_try_stops_unless_its_instance_still_runs_it() {
        let ours = TryKey {
            ti: 7,
            try_number: 2,
        };
        let cases = [
            (Some(record(TaskState::Running, 2)), None),
            (
                Some(record(TaskState::Success, 2)),
                Some(StopReason::ChangedOutside {
                    state: TaskState::Success,
                }),
            ),
            (
                Some(record(TaskState::None, 2)),
                Some(StopReason::ChangedOutside {
                    state: TaskState::None,
                }),
            ),
            (
                Some(record(TaskState::Running, 3)),
                Some(StopReason::Superseded { try_number: 3 }),
            ),
            (
                Some(record(TaskState::Queued, 3)),
                Some(StopReason::Superseded { try_number: 3 }),
            ),
            (None, Some(StopReason::Deleted)),
        ];
        for (found, expected) in cases {
            assert_eq!(verdict(ours, found.as_ref()), expected, "{found:?}");
        }
    }
}
