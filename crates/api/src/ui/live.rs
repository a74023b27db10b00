//! What the UI is pushed: one hub per process turns the store's events into page events
//! (`GET /ui/events`, Server-Sent Events), and a log stream tails one try's log
//! (`GET /ui/dags/…/logs/{try}`) from where the page left off until the try ends.
//!
//! The hub subscribes to the store once, coalesces a burst of events for the same run into
//! one, names the run (its DAG and run id, which pages filter on) and re-broadcasts; each open
//! page holds one bounded receiver. A page that falls behind is told to `resync` (reload its
//! data once) instead of the server buffering for it, so nothing grows with time.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use futures::StreamExt;
use serde::Serialize;
use store::{LogRecord, Store, StoreEvent};
use tokio::sync::{broadcast, watch};

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::{QueryPairs, path_int};
use crate::routes::task_instances::one_instance;

/// How many page events an open page may be behind before it is told to resync.
const PAGE_BUFFER: usize = 256;
/// How long the hub gathers a burst of store events before it sends them.
const COALESCE: Duration = Duration::from_millis(40);
/// A log stream re-reads at least this often, in case a notification was lost.
const LOG_SAFETY_READ: Duration = Duration::from_secs(2);
/// Log lines sent in one message.
const LOG_BATCH: usize = 5_000;
/// Log lines in a stream's first message: few, so that a long log shows at once while the
/// rest follows in full batches.
const LOG_FIRST_BATCH: usize = 500;

/// What a page is told.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PageEvent {
    /// A run was created, changed state, or one of its task instances did.
    Run {
        dag_id: String,
        run_id: String,
        state: String,
    },
    /// Task instance `ti` has new log lines.
    Log { ti: i64 },
    /// Events were missed: reload what the page shows.
    Resync,
}

/// The process's page-event hub, started by the first page that listens.
pub struct Hub {
    sender: OnceLock<broadcast::Sender<PageEvent>>,
    /// Set when the server shuts down: every open stream ends, so a graceful shutdown does
    /// not wait forever on pages left open.
    closing: watch::Sender<bool>,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub {
            sender: OnceLock::new(),
            closing: watch::channel(false).0,
        }
    }
}

impl Hub {
    /// End every open stream (the server is shutting down).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`Hub::close`] was called.
    fn closed(&self) -> impl Future<Output = ()> + Send + 'static + use<> {
        let mut closing = self.closing.subscribe();
        async move {
            let _ = closing.wait_for(|closed| *closed).await;
        }
    }

    /// A receiver of page events, starting the hub's store subscription on first use.
    pub fn subscribe(&self, store: &Arc<dyn Store>) -> broadcast::Receiver<PageEvent> {
        self.sender
            .get_or_init(|| {
                let (sender, _) = broadcast::channel(PAGE_BUFFER);
                tokio::spawn(forward(store.clone(), store.subscribe(), sender.clone()));
                sender
            })
            .subscribe()
    }
}

/// The hub's loop: store events in, named page events out, until the store closes.
async fn forward(
    store: Arc<dyn Store>,
    mut events: broadcast::Receiver<StoreEvent>,
    pages: broadcast::Sender<PageEvent>,
) {
    loop {
        let mut runs = BTreeSet::new();
        let mut logs = BTreeSet::new();
        let mut resync = false;
        let Some(first) = receive(&mut events).await else {
            return;
        };
        let deadline = tokio::time::Instant::now() + COALESCE;
        let mut next = Some(first);
        while let Some(event) = next {
            match event {
                Received::Event(
                    StoreEvent::RunChanged { run } | StoreEvent::RunProgressed { run },
                ) => {
                    runs.insert(run);
                }
                Received::Event(StoreEvent::LogAppended { ti }) => {
                    logs.insert(ti);
                }
                Received::Event(StoreEvent::TasksQueued) => {}
                Received::Event(StoreEvent::Missed) | Received::Lagged => resync = true,
            }
            next = match tokio::time::timeout_at(deadline, receive(&mut events)).await {
                Ok(Some(event)) => Some(event),
                Ok(None) => return,
                Err(_) => None,
            };
        }
        if pages.receiver_count() == 0 {
            continue;
        }
        if resync {
            let _ = pages.send(PageEvent::Resync);
            continue;
        }
        for ti in logs {
            let _ = pages.send(PageEvent::Log { ti });
        }
        for run in runs {
            match store.get_run_by_key(run).await {
                Ok(Some(record)) => {
                    let _ = pages.send(PageEvent::Run {
                        dag_id: record.dag_id,
                        run_id: record.run_id,
                        state: record.state.as_str().to_string(),
                    });
                }
                // Deleted meanwhile: the pages showing it reload.
                Ok(None) => {
                    let _ = pages.send(PageEvent::Resync);
                }
                Err(err) => {
                    tracing::warn!(error = %err, run, "page events: cannot read the run");
                    let _ = pages.send(PageEvent::Resync);
                }
            }
        }
    }
}

enum Received {
    Event(StoreEvent),
    Lagged,
}

async fn receive(events: &mut broadcast::Receiver<StoreEvent>) -> Option<Received> {
    match events.recv().await {
        Ok(event) => Some(Received::Event(event)),
        Err(broadcast::error::RecvError::Lagged(_)) => Some(Received::Lagged),
        Err(broadcast::error::RecvError::Closed) => None,
    }
}

fn sse_event(event: &PageEvent) -> Event {
    let name = match event {
        PageEvent::Run { .. } => "run",
        PageEvent::Log { .. } => "log",
        PageEvent::Resync => "resync",
    };
    Event::default()
        .event(name)
        .json_data(event)
        .unwrap_or_else(|_| Event::default().event("resync").data("{}"))
}

/// `GET /ui/events`: the page-event stream of the logged-in user.
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    caller.require(Role::Viewer)?;
    let receiver = state.live.subscribe(&state.store);
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(_)) => PageEvent::Resync,
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(sse_event(&event)), receiver))
    })
    .take_until(state.live.closed());
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// One line as the log view shows it.
#[derive(Debug, Serialize)]
struct Line<'a> {
    seq: i64,
    timestamp: chrono::DateTime<chrono::Utc>,
    stream: &'a str,
    line: &'a str,
}

/// Where a log stream is.
struct Tail {
    store: Arc<dyn Store>,
    receiver: broadcast::Receiver<PageEvent>,
    ti: i64,
    dag_id: String,
    run_id: String,
    try_number: u32,
    after: i64,
    ended: bool,
    /// Whether a batch of lines has been sent yet.
    sent: bool,
}

impl Tail {
    /// The next message: a batch of lines, or `end` once the try is over and all is sent.
    async fn next(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        loop {
            match self.read().await {
                Ok(lines) if !lines.is_empty() => {
                    let payload: Vec<Line<'_>> = lines
                        .iter()
                        .map(|l| Line {
                            seq: l.seq,
                            timestamp: l.timestamp,
                            stream: l.stream.as_str(),
                            line: &l.line,
                        })
                        .collect();
                    self.after = lines.last().map_or(self.after, |l| l.seq);
                    self.sent = true;
                    // The id is where a reconnecting EventSource resumes (`Last-Event-ID`).
                    let event = Event::default()
                        .event("lines")
                        .id(self.after.to_string())
                        .json_data(&payload)
                        .ok()?;
                    return Some(event);
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, ti = self.ti, "log stream: read failed");
                }
            }
            if self.try_is_over().await {
                // Lines written just before the end are read once more, then the stream ends.
                if let Ok(lines) = self.read().await
                    && !lines.is_empty()
                {
                    continue;
                }
                self.ended = true;
                return Some(Event::default().event("end").data("{}"));
            }
            self.wait().await;
        }
    }

    async fn read(&self) -> store::Result<Vec<LogRecord>> {
        let limit = if self.sent {
            LOG_BATCH
        } else {
            LOG_FIRST_BATCH
        };
        self.store
            .read_log(self.ti, self.try_number, self.after, limit)
            .await
    }

    /// Whether the try will write no more lines.
    async fn try_is_over(&self) -> bool {
        match self.store.get_task_instance(self.ti).await {
            Ok(Some(ti)) => {
                ti.try_number != self.try_number
                    || !matches!(
                        ti.state,
                        dag::TaskState::Running
                            | dag::TaskState::Queued
                            | dag::TaskState::Scheduled
                            | dag::TaskState::UpForReschedule
                    )
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Until this try logs, its run changes, or the safety interval passes.
    async fn wait(&mut self) {
        let sleep = tokio::time::sleep(LOG_SAFETY_READ);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return,
                event = self.receiver.recv() => match event {
                    Ok(PageEvent::Log { ti }) if ti == self.ti => return,
                    Ok(PageEvent::Run { dag_id, run_id, .. })
                        if dag_id == self.dag_id && run_id == self.run_id => return,
                    Ok(PageEvent::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        // No more events: the safety interval paces the reads.
                        sleep.as_mut().await;
                        return;
                    }
                },
            }
        }
    }
}

/// `GET /ui/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/logs/{try_number}?map_index=&after=`:
/// the try's log lines after sequence number `after` (or after `Last-Event-ID`, when the
/// browser reconnects), in batches, then new ones as they are written, then `end`.
pub async fn log(
    State(state): State<AppState>,
    caller: Caller,
    Path((dag_id, run_id, task_id, try_number)): Path<(String, String, String, String)>,
    query: QueryPairs,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    caller.require(Role::Viewer)?;
    let try_number: u32 = path_int(&try_number, "try_number")?;
    let map_index = query
        .int("map_index", -1, i64::from(i32::MAX))?
        .unwrap_or(-1) as i32;
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let after = resumed
        .or(query.int("after", 0, i64::MAX)?)
        .unwrap_or(0)
        .max(0);
    let (ti, _) = one_instance(&state, &dag_id, &run_id, &task_id, map_index).await?;
    if try_number == 0 || try_number > ti.try_number.max(1) {
        return Err(ApiError::not_found(format!(
            "Task instance '{task_id}' of run '{run_id}' has no try {try_number}"
        )));
    }
    let tail = Tail {
        receiver: state.live.subscribe(&state.store),
        store: state.store.clone(),
        ti: ti.id,
        dag_id,
        run_id,
        try_number,
        after,
        ended: false,
        sent: false,
    };
    let stream = futures::stream::unfold(tail, |mut tail| async move {
        let event = tail.next().await?;
        Some((Ok(event), tail))
    })
    .take_until(state.live.closed());
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
