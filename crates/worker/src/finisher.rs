//! Writing tries' ends: every end that is ready while the last write is under way goes to the
//! store in the next one, as one transaction (`RunQueue::finish_task_instances`), so a busy
//! worker pays one write for many ends and an idle one writes each end at once.
//!
//! Through an outage a batch is retried (100 ms, doubling, at most 5 s apart) until it is
//! written, however long that takes, unless the worker is shutting down and the outage
//! outlasts the zombie threshold ([`Reporting::keep_waiting`]). A batch failing otherwise is
//! split into single ends; one carrying output is written without it (its log says so), and
//! each is retried a few times. An end that still cannot be written
//! leaves its instance `running`, for the scheduler's zombie detection to fail once
//! heartbeats stop.

use std::sync::Arc;

use chrono::Utc;
use store::{Finish, LogLine, LogStream, Store};
use tokio::sync::{mpsc, oneshot};

use crate::reporting::{Backoff, Reporting};

/// Attempts to write one end, when the store fails otherwise than by an outage, before
/// leaving it to the zombie detector.
const FINISH_ATTEMPTS: u32 = 4;

/// Most ends in one write.
const MAX_BATCH: usize = 256;

/// What became of a try's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// Recorded.
    Applied,
    /// Refused by its guard: the try was no longer running (cleared, marked, a zombie).
    Refused,
    /// Not written: the store kept failing (see the module docs).
    Failed,
}

/// A handle for the tries of one worker loop to write their ends through.
#[derive(Debug, Clone)]
pub(crate) struct Finisher {
    sender: mpsc::UnboundedSender<(Finish, oneshot::Sender<Written>)>,
}

impl Finisher {
    /// Start the writing task on `store`; it ends when every handle is dropped.
    pub(crate) fn start(store: Arc<dyn Store>, reporting: Arc<Reporting>) -> Finisher {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(store, reporting, receiver));
        Finisher { sender }
    }

    /// Write `finish`, with whatever other ends are ready, and say what became of it.
    pub(crate) async fn write(&self, finish: Finish) -> Written {
        let (done, written) = oneshot::channel();
        if self.sender.send((finish, done)).is_err() {
            return Written::Failed;
        }
        written.await.unwrap_or(Written::Failed)
    }
}

async fn run(
    store: Arc<dyn Store>,
    reporting: Arc<Reporting>,
    mut receiver: mpsc::UnboundedReceiver<(Finish, oneshot::Sender<Written>)>,
) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (finishes, answers): (Vec<Finish>, Vec<oneshot::Sender<Written>>) =
            batch.into_iter().unzip();
        let written = write(store.as_ref(), &reporting, &finishes).await;
        for (answer, written) in answers.into_iter().zip(written) {
            let _ = answer.send(written);
        }
    }
}

/// Write `finishes` in one transaction, as the module docs say; one answer per end.
async fn write(store: &dyn Store, reporting: &Reporting, finishes: &[Finish]) -> Vec<Written> {
    let mut backoff = Backoff::new();
    let mut failures = 0;
    loop {
        let err = match store.finish_task_instances(finishes).await {
            Ok(applied) => {
                reporting.outage.succeeded();
                return applied
                    .into_iter()
                    .map(|applied| {
                        if applied {
                            Written::Applied
                        } else {
                            Written::Refused
                        }
                    })
                    .collect();
            }
            Err(err) => err,
        };
        if reporting.outage.failed(&err) {
            if !reporting.keep_waiting() {
                tracing::error!(
                    ends = finishes.len(),
                    error = %err,
                    "the worker is shutting down and the database stayed unavailable: \
                     leaving the tries' ends to the zombie detector"
                );
                return vec![Written::Failed; finishes.len()];
            }
        } else if finishes.len() > 1 {
            // One bad end must not hold back the others.
            let mut written = Vec::with_capacity(finishes.len());
            for finish in finishes {
                written
                    .extend(Box::pin(write(store, reporting, std::slice::from_ref(finish))).await);
            }
            return written;
        } else if let [finish] = finishes
            && finish.log.iter().any(|l| l.stream != LogStream::System)
        {
            // The store may be refusing the try's output (a byte it cannot hold): the end
            // goes without it, saying so.
            tracing::warn!(ti = finish.ti, error = %err, "a try's last log lines could not be stored; writing its end without them");
            let mut bare = finish.clone();
            bare.log.retain(|l| l.stream == LogStream::System);
            bare.log.insert(
                0,
                LogLine {
                    timestamp: Utc::now(),
                    stream: LogStream::System,
                    line: format!("the try's last output lines could not be stored ({err})"),
                },
            );
            return Box::pin(write(store, reporting, std::slice::from_ref(&bare))).await;
        } else {
            failures += 1;
            let ti = finishes.first().map_or(0, |f| f.ti);
            if failures >= FINISH_ATTEMPTS {
                tracing::error!(ti, error = %err, "could not write a try's end");
                return vec![Written::Failed];
            }
            tracing::warn!(ti, error = %err, "writing a try's end failed; retrying");
        }
        // Only on the error path: the store is failing, so back off.
        tokio::time::sleep(backoff.next_pause()).await;
    }
}
