//! A try's log: pipe readers that split output into timestamped lines, a byte budget, and one
//! writer task that appends them to the store in batches.
//!
//! Why it is shaped so: the readers never wait for the database except through a small
//! bounded channel, and the writer sends what has piled up as one write ([`LINGER`] after
//! its first line, or at once when a batch is full), with the try's pid
//! once it is known. A flooding task thus gets a few large batches instead of one statement
//! per line, and a quiet one sees its lines stored within [`LINGER`]. A try that ends sooner
//! writes nothing itself: [`TaskLog::hand_over`] gives what is held to the try's end, which
//! the store writes in the same transaction. Once the budget is spent the readers keep
//! draining the pipes without storing anything, so a child never blocks on a full pipe.
//!
//! When the store is unavailable the writer keeps taking lines and holds them, in order, until
//! it is back (retrying with a backoff), so an outage neither blocks the child nor loses its
//! output; what it holds is bounded by the try's log cap. A batch that fails for any other
//! reason is retried a few times, then given up: the try's log is then incomplete, so the try
//! is stopped and fails, saying why.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::Utc;
use store::{LogLine, LogStream, LogsAndXcoms, StoreError, TryOutput};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::reporting::{Backoff, Reporting};
use crate::stop::{StopReason, StopSignal};

/// Lines longer than this are split: a child printing megabytes without a newline must not
/// make the worker hold them in memory.
pub(crate) const MAX_LINE_BYTES: usize = 64 * 1024;

/// Size of each read from a pipe.
const READ_CHUNK: usize = 64 * 1024;

/// Messages (each one read's worth of lines) that may wait for the writer. Small, because a
/// message can hold up to [`READ_CHUNK`] bytes of lines, and tiny lines cost far more in
/// memory than their bytes.
const CHANNEL_MESSAGES: usize = 8;

/// Upper bounds of one `append_log` call, so a flood becomes several moderate statements.
const MAX_BATCH_LINES: usize = 10_000;
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// How long the writer waits after a first line for more, before writing: what a watched log
/// lags behind at most, and what lets a short try's whole log go with its end.
pub(crate) const LINGER: std::time::Duration = std::time::Duration::from_millis(100);

/// Tries of one batch that fails with an error other than an outage, before it is given up.
const BATCH_ATTEMPTS: u32 = 3;

/// What a held line costs in memory besides its text (the `LogLine` and its allocation), so
/// that a flood of tiny lines held through an outage is bounded by memory, not by bytes.
const HELD_LINE_OVERHEAD: usize = 64;

/// Least memory a try's writer may hold through an outage, whatever its log cap.
const MIN_HELD_BYTES: usize = 1024 * 1024;

/// What the readers and the try send the writer.
enum Message {
    Lines(Vec<LogLine>),
    /// The try's process id, stored with the next write.
    Pid(u32),
    /// Stop, handing over what is not stored yet (see [`TaskLog::hand_over`]).
    HandOver(oneshot::Sender<Tail>),
}

/// What a try's log had not stored when it was handed over: for the try's end to write.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    pub lines: Vec<LogLine>,
    pub pid: Option<u32>,
}

/// The log of one try: a sender for lines and the task writing them to the store.
pub(crate) struct TaskLog {
    sender: mpsc::Sender<Message>,
    /// Why lines were lost: the first error a batch was given up on.
    lost: Arc<std::sync::Mutex<Option<String>>>,
    budget: Arc<LogBudget>,
    /// Secret values replaced by `***` in every line written from now on.
    masks: Masks,
    /// The last line Updraft wrote and the error detail a try noted (a failing command's
    /// last stderr line): together the `exception` failure notifications report.
    last_system: std::sync::Mutex<Option<String>>,
    error_detail: std::sync::Mutex<Option<String>>,
}

/// The secret values a try's log hides; set once the try's templates have loaded them.
type Masks = Arc<std::sync::RwLock<Vec<String>>>;

impl TaskLog {
    /// Start the writer for try `try_number` of task instance `ti`. `cap_bytes` bounds the
    /// stored process output (system lines are not counted), and what the writer holds
    /// through an outage. A batch the store refuses for good stops the try through `stop`.
    pub(crate) fn start(
        store: Arc<dyn LogsAndXcoms>,
        (ti, try_number): (i64, u32),
        cap_bytes: u64,
        stop: StopSignal,
        reporting: Arc<Reporting>,
    ) -> Self {
        let (sender, receiver) = mpsc::channel(CHANNEL_MESSAGES);
        let masks = Masks::default();
        let lost = Arc::new(std::sync::Mutex::new(None));
        let writer = Writer {
            store,
            ti,
            try_number,
            masks: masks.clone(),
            reporting,
            stop,
            lost: lost.clone(),
            held: VecDeque::new(),
            held_bytes: 0,
            hold_limit: usize::try_from(cap_bytes)
                .unwrap_or(usize::MAX)
                .max(MIN_HELD_BYTES),
            pid: None,
            linger_until: None,
            failing: false,
            dropping: false,
            abandoned: false,
            backoff: Backoff::new(),
            failures: 0,
            retry_at: None,
            hand_over: None,
        };
        tokio::spawn(writer.run(receiver));
        TaskLog {
            sender,
            lost,
            budget: Arc::new(LogBudget::new(cap_bytes)),
            masks,
            last_system: std::sync::Mutex::new(None),
            error_detail: std::sync::Mutex::new(None),
        }
    }

    /// Note the detail of a failure (shown before the last system line in `exception`).
    pub(crate) fn note_error(&self, detail: impl Into<String>) {
        if let Ok(mut slot) = self.error_detail.lock() {
            *slot = Some(detail.into());
        }
    }

    /// What went wrong, as notifications report it: the noted detail and the last system
    /// line, masked like the log.
    pub(crate) fn failure_message(&self) -> String {
        let last = self.last_system.lock().ok().and_then(|l| l.clone());
        let detail = self.error_detail.lock().ok().and_then(|d| d.clone());
        let text = match (detail, last) {
            (Some(detail), Some(last)) => format!("{detail} ({last})"),
            (Some(one), None) | (None, Some(one)) => one,
            (None, None) => "unknown error".to_string(),
        };
        self.masked(&text)
    }

    /// `text` with the try's secrets replaced by `***`.
    pub(crate) fn masked(&self, text: &str) -> String {
        let mut text = text.to_string();
        if let Ok(masks) = self.masks.read() {
            for secret in masks.iter() {
                text = text.replace(secret.as_str(), "***");
            }
        }
        text
    }

    /// The values hidden so far, longest first.
    pub(crate) fn masks(&self) -> Vec<String> {
        self.masks.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// Hide these values too (connection passwords, secret variables) in every line from now
    /// on, longest first so that a secret containing another is hidden whole.
    pub(crate) fn mask(&self, secrets: Vec<String>) {
        if let Ok(mut masks) = self.masks.write() {
            masks.extend(secrets);
            masks.retain(|s| !s.is_empty());
            masks.sort_by_key(|s| std::cmp::Reverse(s.len()));
            masks.dedup();
        }
    }

    /// Append a line Updraft itself writes (start, exit status, timeout, kill).
    pub(crate) async fn system(&self, line: impl Into<String>) {
        let line = self.system_line(line.into());
        // The writer only stops when every sender is gone or it was handed over, so a failed
        // send cannot happen before that; nothing useful could be done about it anyway.
        let _ = self.sender.send(Message::Lines(vec![line])).await;
    }

    /// A line Updraft itself writes, not sent to the writer: for a [`Tail`] (masked, as the
    /// writer masks what it is sent).
    pub(crate) fn system_line(&self, line: String) -> LogLine {
        if let Ok(mut last) = self.last_system.lock() {
            *last = Some(line.clone());
        }
        LogLine {
            timestamp: Utc::now(),
            stream: LogStream::System,
            line: self.masked(&line),
        }
    }

    /// Note the try's process id: stored with the next lines, or with the try's end.
    pub(crate) async fn note_pid(&self, pid: u32) {
        let _ = self.sender.send(Message::Pid(pid)).await;
    }

    /// Stop the writer once it has taken every line sent so far, and get what it has not
    /// stored: the try's end writes it. A batch failing otherwise than by an outage is first
    /// written or given up as always, so [`TaskLog::lost`] is settled when this returns.
    /// Lines sent afterwards are dropped.
    pub(crate) async fn hand_over(&self) -> Tail {
        let (done, tail) = oneshot::channel();
        if self.sender.send(Message::HandOver(done)).await.is_err() {
            return Tail::default();
        }
        tail.await.unwrap_or_default()
    }

    /// Why some of the try's lines could not be stored, if any could not.
    pub(crate) fn lost(&self) -> Option<String> {
        self.lost.lock().ok().and_then(|lost| lost.clone())
    }

    /// Start reading one pipe of the child into this log. The returned task yields the last
    /// line `track_last` asks for (trailing whitespace removed), `None` when there was none.
    pub(crate) fn read_pipe<R>(
        &self,
        pipe: R,
        stream: LogStream,
        track_last: TrackLast,
    ) -> JoinHandle<Option<String>>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        tokio::spawn(read_lines(
            pipe,
            stream,
            self.sender.clone(),
            self.budget.clone(),
            track_last,
        ))
    }
}

/// Which last line of its pipe a reader remembers: bash's `return_value`, or a failing
/// command's likely error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrackLast {
    /// The last line with more than whitespace (dag-format.md's bash `return_value`).
    Yes,
    /// The last line, even an empty one: Airflow's BashOperator returns the last line of its
    /// output whatever it holds, so `echo x; echo` gives `""`.
    EvenEmpty,
    No,
}

impl TrackLast {
    /// Remember `line` (without a trailing `\r`) as the last one if it counts; true if it did.
    fn remember(self, line: &[u8], last: &mut Option<Vec<u8>>) -> bool {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let counts = match self {
            TrackLast::Yes => !line.trim_ascii().is_empty(),
            TrackLast::EvenEmpty => true,
            TrackLast::No => false,
        };
        if counts {
            let kept = last.get_or_insert_with(Vec::new);
            kept.clear();
            kept.extend_from_slice(line);
        }
        counts
    }
}

/// Bytes of output a try may still store, shared by its stdout and stderr readers.
struct LogBudget {
    cap: u64,
    used: AtomicU64,
    truncated: AtomicBool,
}

impl LogBudget {
    fn new(cap: u64) -> Self {
        LogBudget {
            cap,
            used: AtomicU64::new(0),
            truncated: AtomicBool::new(false),
        }
    }

    /// Take `bytes` from the budget; false once it is spent. After the first refusal every
    /// later request is refused too, because `used` stays above the cap.
    fn take(&self, bytes: u64) -> bool {
        let before = self.used.fetch_add(bytes, Ordering::Relaxed);
        before.saturating_add(bytes) <= self.cap
    }

    fn is_spent(&self) -> bool {
        self.used.load(Ordering::Relaxed) > self.cap
    }

    /// True exactly once: for whichever reader first ran out, which writes the notice.
    fn first_truncation(&self) -> bool {
        !self.truncated.swap(true, Ordering::Relaxed)
    }
}

async fn read_lines<R>(
    mut pipe: R,
    stream: LogStream,
    sender: mpsc::Sender<Message>,
    budget: Arc<LogBudget>,
    track_last: TrackLast,
) -> Option<String>
where
    R: AsyncRead + Unpin,
{
    let mut buf = vec![0u8; READ_CHUNK];
    let mut splitter = LineSplitter::new(MAX_LINE_BYTES);
    let mut last: Option<Vec<u8>> = None;
    let mut writer_gone = false;
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                tracing::warn!(error = %err, stream = stream.as_str(), "reading task output failed");
                break;
            }
        };
        if budget.is_spent() {
            // Nothing more will be stored: drain the pipe as fast as it comes, looking only
            // for the last line when it is wanted.
            if track_last != TrackLast::No {
                splitter.skip(&buf[..n], track_last, &mut last);
            }
            continue;
        }
        let mut lines = Vec::new();
        let mut collect =
            |line: &[u8]| collect_line(line, stream, &budget, track_last, &mut last, &mut lines);
        splitter.feed(&buf[..n], &mut collect);
        if !lines.is_empty() && !writer_gone {
            writer_gone = sender.send(Message::Lines(lines)).await.is_err();
        }
    }
    let mut lines = Vec::new();
    splitter.finish(&mut |line: &[u8]| {
        collect_line(line, stream, &budget, track_last, &mut last, &mut lines)
    });
    if !lines.is_empty() && !writer_gone {
        let _ = sender.send(Message::Lines(lines)).await;
    }
    last.map(|line| String::from_utf8_lossy(&line).trim_end().to_string())
}

/// Handle one complete line: remember it as the last one, and store it while budget lasts.
fn collect_line(
    line: &[u8],
    stream: LogStream,
    budget: &LogBudget,
    track_last: TrackLast,
    last: &mut Option<Vec<u8>>,
    lines: &mut Vec<LogLine>,
) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    track_last.remember(line, last);
    if budget.is_spent() {
        return;
    }
    // The newline counts too, so the cap is close to the size of the output as printed.
    let size = u64::try_from(line.len())
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    if budget.take(size) {
        lines.push(LogLine {
            timestamp: Utc::now(),
            stream,
            line: String::from_utf8_lossy(line).into_owned(),
        });
    } else if budget.first_truncation() {
        lines.push(LogLine {
            timestamp: Utc::now(),
            stream: LogStream::System,
            line: format!(
                "log truncated: output exceeded {} bytes; further output discarded",
                budget.cap
            ),
        });
    }
}

/// Splits a byte stream into lines without a trailing newline, cutting lines longer than
/// `max` into pieces of `max` bytes.
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
    max: usize,
}

impl LineSplitter {
    pub(crate) fn new(max: usize) -> Self {
        LineSplitter {
            pending: Vec::new(),
            max: max.max(1),
        }
    }

    /// Feed bytes; `emit` gets every line completed by them.
    pub(crate) fn feed(&mut self, mut data: &[u8], emit: &mut impl FnMut(&[u8])) {
        while !data.is_empty() {
            let room = self.max - self.pending.len();
            let window = &data[..data.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    if self.pending.is_empty() {
                        emit(&window[..end]);
                    } else {
                        self.pending.extend_from_slice(&window[..end]);
                        emit(&self.pending);
                        self.pending.clear();
                    }
                    data = &data[end + 1..];
                }
                None => {
                    self.pending.extend_from_slice(window);
                    data = &data[window.len()..];
                    if self.pending.len() >= self.max {
                        emit(&self.pending);
                        self.pending.clear();
                    }
                }
            }
        }
    }

    /// Consume bytes without emitting lines, only updating `last` to the last complete line
    /// `track` counts. Scans from the end, so a flood costs next to nothing per byte. Unlike
    /// [`LineSplitter::feed`], a line longer than `max` is not cut into pieces: its last
    /// `max` bytes stand for it.
    pub(crate) fn skip(&mut self, data: &[u8], track: TrackLast, last: &mut Option<Vec<u8>>) {
        let Some(end) = data.iter().rposition(|&b| b == b'\n') else {
            self.keep_tail(data);
            return;
        };
        let complete = &data[..end];
        let mut stop = complete.len();
        loop {
            let start = complete[..stop]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            if start == 0 {
                // The first line of the chunk continues what was pending.
                self.keep_tail(&complete[..stop]);
                track.remember(&self.pending, last);
                break;
            }
            if track.remember(&complete[start..stop], last) {
                break;
            }
            stop = start - 1;
        }
        self.pending.clear();
        self.keep_tail(&data[end + 1..]);
    }

    /// Append to the pending line, keeping at most its last `max` bytes.
    fn keep_tail(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
        if self.pending.len() > self.max {
            let excess = self.pending.len() - self.max;
            self.pending.drain(..excess);
        }
    }

    /// End of stream: emit an unterminated last line, if any.
    pub(crate) fn finish(&mut self, emit: &mut impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            emit(&self.pending);
            self.pending.clear();
        }
    }
}

/// The task appending a try's lines to the store, and what it holds meanwhile.
struct Writer {
    store: Arc<dyn LogsAndXcoms>,
    ti: i64,
    try_number: u32,
    masks: Masks,
    reporting: Arc<Reporting>,
    stop: StopSignal,
    lost: Arc<std::sync::Mutex<Option<String>>>,
    /// Lines taken but not stored yet, in order, already masked.
    held: VecDeque<LogLine>,
    /// What `held` costs in memory, counted as text plus [`HELD_LINE_OVERHEAD`] per line.
    held_bytes: usize,
    hold_limit: usize,
    /// The try's process id, not stored yet.
    pid: Option<u32>,
    /// When the lines held now are written, if nothing hastens it.
    linger_until: Option<Instant>,
    /// The last write failed: until one works, lines pile up in `held` (otherwise the
    /// channel holds the readers back), so `hold_limit` applies.
    failing: bool,
    /// Output is being dropped because `held` is full (the notice of it is held already).
    dropping: bool,
    /// The store stayed unavailable past the point of waiting (see
    /// [`Reporting::keep_waiting`]): every line from then on is discarded.
    abandoned: bool,
    backoff: Backoff,
    /// Failures of the batch at the head of `held` that were not outages.
    failures: u32,
    /// When to try the store again after a failure.
    retry_at: Option<Instant>,
    /// The hand-over asked for, answered once nothing that failed is left to settle.
    hand_over: Option<oneshot::Sender<Tail>>,
}

impl Writer {
    /// Write what has arrived as one batch [`LINGER`] after its first line (at once when the
    /// batch is full); after a failure, keep taking lines until the next
    /// attempt is due. A hand-over ends the loop as soon as no failed batch is left to settle.
    async fn run(mut self, mut receiver: mpsc::Receiver<Message>) {
        let mut open = true;
        loop {
            if self.failures == 0
                && let Some(done) = self.hand_over.take()
            {
                let _ = done.send(Tail {
                    lines: self.held.drain(..).collect(),
                    pid: self.pid.take(),
                });
                return;
            }
            if self.held.is_empty() && self.pid.is_none() {
                if !open {
                    return;
                }
                match receiver.recv().await {
                    Some(message) => self.take(message),
                    None => open = false,
                }
                continue;
            }
            if let Some(at) = self.retry_at {
                tokio::select! {
                    message = receiver.recv(), if open => match message {
                        Some(message) => self.take(message),
                        None => open = false,
                    },
                    () = tokio::time::sleep_until(at) => self.retry_at = None,
                }
                continue;
            }
            let until = *self
                .linger_until
                .get_or_insert_with(|| Instant::now() + LINGER);
            let hastened = !open || self.hand_over.is_some();
            if !hastened && !self.batch_full() && Instant::now() < until {
                tokio::select! {
                    message = receiver.recv() => match message {
                        Some(message) => self.take(message),
                        None => open = false,
                    },
                    () = tokio::time::sleep_until(until) => {}
                }
                continue;
            }
            while !self.batch_full() && self.hand_over.is_none() {
                match receiver.try_recv() {
                    Ok(message) => self.take(message),
                    Err(_) => break,
                }
            }
            if self.hand_over.is_some() && self.failures == 0 {
                continue;
            }
            self.write_head().await;
        }
    }

    /// Whether what is held should go out without lingering: a whole batch, or as much as
    /// an outage may hold (so that one is noticed before more is taken).
    fn batch_full(&self) -> bool {
        self.held.len() >= MAX_BATCH_LINES
            || self.held_bytes >= MAX_BATCH_BYTES.min(self.hold_limit)
    }

    /// Hold the lines of a message, masked; or note the pid or the hand-over.
    fn take(&mut self, message: Message) {
        let lines = match message {
            Message::Lines(lines) => lines,
            Message::Pid(pid) => {
                self.pid = Some(pid);
                return;
            }
            Message::HandOver(done) => {
                self.hand_over = Some(done);
                return;
            }
        };
        if self.abandoned {
            return;
        }
        let masks = self.masks.read().map(|m| m.clone()).unwrap_or_default();
        for mut line in lines {
            for secret in &masks {
                if line.line.contains(secret.as_str()) {
                    line.line = line.line.replace(secret.as_str(), "***");
                }
            }
            let cost = line.line.len() + HELD_LINE_OVERHEAD;
            // Updraft's own lines are few and say how the try went: always held.
            if self.failing
                && line.stream != LogStream::System
                && self.held_bytes + cost > self.hold_limit
            {
                if !self.dropping {
                    self.dropping = true;
                    self.hold(LogLine {
                        timestamp: Utc::now(),
                        stream: LogStream::System,
                        line: format!(
                            "the database was unavailable for longer than {} bytes of output \
                             could wait: further output dropped until it is back",
                            self.hold_limit
                        ),
                    });
                }
                continue;
            }
            self.hold(line);
        }
    }

    fn hold(&mut self, line: LogLine) {
        self.held_bytes += line.line.len() + HELD_LINE_OVERHEAD;
        self.held.push_back(line);
    }

    /// Try to store the first batch of what is held.
    async fn write_head(&mut self) {
        let mut count = 0;
        let mut bytes = 0;
        for line in &self.held {
            if count == MAX_BATCH_LINES || (count > 0 && bytes + line.line.len() > MAX_BATCH_BYTES)
            {
                break;
            }
            count += 1;
            bytes += line.line.len();
        }
        let batch: Vec<LogLine> = self.held.range(..count).cloned().collect();
        let result = self
            .store
            .append_try_output(&TryOutput {
                ti: self.ti,
                try_number: self.try_number,
                pid: self.pid,
                lines: &batch,
            })
            .await;
        match result {
            Ok(()) => {
                self.reporting.outage.succeeded();
                self.release(count);
                self.pid = None;
                self.linger_until = None;
                self.backoff.reset();
                self.failures = 0;
                self.failing = false;
                self.dropping = false;
            }
            Err(err) if err.is_unavailable() => {
                self.reporting.outage.failed(&err);
                if self.reporting.keep_waiting() {
                    self.retry_later();
                } else {
                    tracing::warn!(
                        ti = self.ti,
                        try_number = self.try_number,
                        lines = self.held.len(),
                        "the worker is shutting down and the database stayed unavailable: \
                         discarding the try's log lines not stored"
                    );
                    self.abandoned = true;
                    self.pid = None;
                    self.release(self.held.len());
                }
            }
            Err(err) => {
                self.failures += 1;
                if self.failures < BATCH_ATTEMPTS {
                    self.retry_later();
                } else {
                    self.give_up(count, &err);
                }
            }
        }
    }

    fn retry_later(&mut self) {
        self.failing = true;
        self.retry_at = Some(Instant::now() + self.backoff.next_pause());
    }

    /// Drop the batch at the head for good, and stop the try: its log is incomplete.
    fn give_up(&mut self, count: usize, err: &StoreError) {
        tracing::warn!(
            ti = self.ti,
            try_number = self.try_number,
            lines = count,
            error = %err,
            "could not store task log lines; stopping the try"
        );
        if let Ok(mut lost) = self.lost.lock() {
            lost.get_or_insert_with(|| err.to_string());
        }
        self.stop.stop(StopReason::LogFailed(err.to_string()));
        self.release(count);
        self.failures = 0;
        self.backoff.reset();
    }

    /// Forget the first `count` held lines (stored, or given up).
    fn release(&mut self, count: usize) {
        for line in self.held.drain(..count) {
            self.held_bytes -= line.line.len() + HELD_LINE_OVERHEAD;
        }
        if self.held.is_empty() {
            self.linger_until = None;
        }
    }
}

/// A log store for tests: lines kept in memory. While `down` is set every append is refused
/// as an outage, and an append holding a line that contains `refused` fails with a database
/// error.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct MemoryLog {
    pub lines: std::sync::Mutex<Vec<LogLine>>,
    pub down: AtomicBool,
    pub refused: Option<String>,
    /// Appends attempted, stored or not.
    pub attempts: AtomicU64,
    /// The try's pid, once stored.
    pub pid: std::sync::Mutex<Option<u32>>,
}

#[cfg(test)]
impl MemoryLog {
    pub(crate) fn texts(&self) -> Vec<String> {
        let lines = self.lines.lock().expect("lines");
        lines.iter().map(|l| l.line.clone()).collect()
    }
}

#[cfg(test)]
#[async_trait::async_trait]
impl LogsAndXcoms for MemoryLog {
    async fn append_log(&self, _ti: i64, _try: u32, lines: &[LogLine]) -> store::Result<()> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        if self.down.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        if let Some(refused) = &self.refused
            && lines.iter().any(|l| l.line.contains(refused.as_str()))
        {
            return Err(StoreError::Database("invalid byte sequence".into()));
        }
        self.lines.lock().expect("lines").extend_from_slice(lines);
        Ok(())
    }

    async fn append_try_output(&self, output: &TryOutput<'_>) -> store::Result<()> {
        self.append_log(output.ti, output.try_number, output.lines)
            .await?;
        if output.pid.is_some() {
            *self.pid.lock().expect("pid") = output.pid;
        }
        Ok(())
    }

    async fn read_log(
        &self,
        _ti: i64,
        _try_number: u32,
        _after: i64,
        _limit: usize,
    ) -> store::Result<Vec<store::LogRecord>> {
        Ok(Vec::new())
    }

    async fn get_xcom(&self, _key: &store::XcomKey) -> store::Result<Option<serde_json::Value>> {
        Ok(None)
    }

    async fn list_xcoms(
        &self,
        _run: i64,
        _task_id: Option<&str>,
    ) -> store::Result<Vec<store::XcomRecord>> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], max: usize) -> Vec<String> {
        let mut splitter = LineSplitter::new(max);
        let mut out = Vec::new();
        let mut emit = |l: &[u8]| out.push(String::from_utf8_lossy(l).into_owned());
        for chunk in chunks {
            splitter.feed(chunk, &mut emit);
        }
        splitter.finish(&mut emit);
        out
    }

    /// Chunks fed in order, the longest line, and the lines expected.
    type SplitCase<'a> = (&'a [&'a [u8]], usize, &'a [&'a str]);

    #[test]
    fn splits_lines_across_chunks() {
        let cases: &[SplitCase] = &[
            (&[b"a\nb\n"], 10, &["a", "b"]),
            (&[b"ab", b"c\nd"], 10, &["abc", "d"]),
            (&[b"\n\n"], 10, &["", ""]),
            (&[b"abcdef\n"], 4, &["abcd", "ef"]),
            (&[b"ab", b"cdef", b"gh\n"], 3, &["abc", "def", "gh"]),
            (&[b"\xff\xfe\n"], 10, &["\u{fffd}\u{fffd}"]),
        ];
        for (chunks, max, expected) in cases {
            assert_eq!(
                split(chunks, *max),
                *expected,
                "chunks {chunks:?} max {max}"
            );
        }
    }

    /// Chunks fed in order, and the last line each rule keeps (`None`: no line counted).
    type LastCase<'a> = (&'a [&'a [u8]], Option<&'a str>, Option<&'a str>);

    const LAST_CASES: &[LastCase] = &[
        (&[b"a\nb\n"], Some("b"), Some("b")),
        (&[b"a\nb\n\n  \n"], Some("b"), Some("  ")),
        (&[b"x", b"y\n", b"\n"], Some("xy"), Some("")),
        (
            &[b"first\n", b"sec", b"ond\r\n"],
            Some("second"),
            Some("second"),
        ),
        (&[b"only\n", b"\n\n"], Some("only"), Some("")),
        (&[b"\n"], None, Some("")),
        (&[b""], None, None),
    ];

    #[test]
    fn skipping_keeps_the_last_line_each_rule_counts() {
        // Only complete lines count while skipping: "a\nb" leaves "b" pending.
        let cases = LAST_CASES.iter().copied().chain([(
            &[b"a\nb" as &[u8]] as &[&[u8]],
            Some("a"),
            Some("a"),
        )]);
        for (chunks, yes, even_empty) in cases {
            for (track, expected) in [(TrackLast::Yes, yes), (TrackLast::EvenEmpty, even_empty)] {
                let mut splitter = LineSplitter::new(100);
                let mut last = None;
                for chunk in chunks {
                    splitter.skip(chunk, track, &mut last);
                }
                let got = last.map(|l| String::from_utf8_lossy(&l).into_owned());
                assert_eq!(got.as_deref(), expected, "chunks {chunks:?}, {track:?}");
            }
        }
    }

    /// What a reader of these chunks returns, with a budget that stores everything or
    /// nothing (then the lines are only skipped).
    async fn read_last(chunks: &[&[u8]], track: TrackLast, cap: u64) -> Option<String> {
        let (sender, mut receiver) = mpsc::channel(CHANNEL_MESSAGES);
        let drain = tokio::spawn(async move { while receiver.recv().await.is_some() {} });
        let (mut writer, reader) = tokio::io::duplex(1024);
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        let feed = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for chunk in chunks {
                writer.write_all(&chunk).await.expect("write to the pipe");
            }
        });
        let budget = Arc::new(LogBudget::new(cap));
        if cap == 0 {
            // Spent before the first read, so every chunk goes through `skip`.
            budget.take(1);
        }
        let last = read_lines(reader, LogStream::Stdout, sender, budget, track).await;
        feed.await.expect("feeder");
        drain.await.expect("drain");
        last
    }

    #[tokio::test]
    async fn a_reader_returns_the_last_line_its_rule_counts() {
        let unterminated: LastCase = (&[b"a\nb"], Some("b"), Some("b"));
        for (chunks, yes, even_empty) in LAST_CASES.iter().copied().chain([unterminated]) {
            for cap in [1 << 20, 0] {
                for (track, expected) in [(TrackLast::Yes, yes), (TrackLast::EvenEmpty, even_empty)]
                {
                    let got = read_last(chunks, track, cap).await;
                    // The returned line is trimmed at its end, as Airflow strips each line.
                    let expected = expected.map(str::trim_end);
                    assert_eq!(
                        got.as_deref(),
                        expected,
                        "chunks {chunks:?}, {track:?}, cap {cap}"
                    );
                }
            }
            assert_eq!(read_last(chunks, TrackLast::No, 1 << 20).await, None);
        }
    }

    fn started(memory: &Arc<MemoryLog>, cap: u64) -> (TaskLog, StopSignal) {
        let stop = StopSignal::new();
        let reporting = Arc::new(Reporting::new(std::time::Duration::from_secs(10)));
        let log = TaskLog::start(memory.clone(), (1, 1), cap, stop.clone(), reporting);
        (log, stop)
    }

    /// Wait (polling, with a deadline) until `done` holds.
    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    fn texts(lines: &[LogLine]) -> Vec<String> {
        lines.iter().map(|l| l.line.clone()).collect()
    }

    #[tokio::test]
    async fn lines_go_out_together_after_the_linger_with_the_pid() {
        let memory = Arc::new(MemoryLog::default());
        let (log, stop) = started(&memory, 1 << 20);
        let sent = Instant::now();
        log.system("a").await;
        log.note_pid(42).await;
        log.system("b").await;
        until("the lines were stored", || memory.texts().len() == 2).await;
        assert!(sent.elapsed() >= LINGER, "held for the linger first");
        assert_eq!(memory.texts(), ["a", "b"]);
        assert_eq!(memory.attempts.load(Ordering::Relaxed), 1, "in one write");
        assert_eq!(*memory.pid.lock().expect("pid"), Some(42));
        // What is not out yet when the try ends is handed over, not written.
        log.system("c").await;
        let tail = log.hand_over().await;
        assert_eq!(texts(&tail.lines), ["c"]);
        assert_eq!(tail.pid, None, "the pid went out already");
        assert_eq!(memory.texts(), ["a", "b"]);
        assert_eq!((log.lost(), stop.reason()), (None, None));
    }

    #[tokio::test]
    async fn a_short_try_hands_its_whole_log_and_pid_over() {
        let memory = Arc::new(MemoryLog::default());
        let (log, _stop) = started(&memory, 1 << 20);
        log.system("starting").await;
        log.note_pid(7).await;
        log.system("task exited with code 0").await;
        let tail = log.hand_over().await;
        assert_eq!(texts(&tail.lines), ["starting", "task exited with code 0"]);
        assert_eq!(tail.pid, Some(7));
        assert_eq!(
            memory.attempts.load(Ordering::Relaxed),
            0,
            "nothing written"
        );
        // A line sent after the hand-over is dropped, never written.
        log.system("late").await;
        assert!(memory.texts().is_empty());
        assert_eq!(log.hand_over().await.lines, Vec::new());
    }

    #[tokio::test]
    async fn an_outage_holds_lines_in_order_until_the_store_is_back() {
        let memory = Arc::new(MemoryLog::default());
        memory.down.store(true, Ordering::Relaxed);
        let (log, stop) = started(&memory, 1 << 20);
        for line in ["a", "b", "c"] {
            log.system(line).await;
        }
        // Refused at least twice: the lines were kept through a retry.
        until("two refused appends", || {
            memory.attempts.load(Ordering::Relaxed) >= 2
        })
        .await;
        log.system("d").await;
        assert!(memory.texts().is_empty());
        memory.down.store(false, Ordering::Relaxed);
        until("the held lines were stored", || memory.texts().len() == 4).await;
        assert_eq!(memory.texts(), ["a", "b", "c", "d"]);
        assert_eq!(log.lost(), None);
        assert_eq!(stop.reason(), None);
        log.system("e").await;
        assert_eq!(texts(&log.hand_over().await.lines), ["e"]);
    }

    #[tokio::test]
    async fn lines_held_through_an_outage_are_handed_over_at_the_end() {
        let memory = Arc::new(MemoryLog::default());
        memory.down.store(true, Ordering::Relaxed);
        let (log, _stop) = started(&memory, 1 << 20);
        log.system("a").await;
        until("a refused append", || {
            memory.attempts.load(Ordering::Relaxed) >= 1
        })
        .await;
        log.system("b").await;
        // The try's end waits out the outage with them instead.
        assert_eq!(texts(&log.hand_over().await.lines), ["a", "b"]);
        assert_eq!(log.lost(), None);
    }

    #[tokio::test]
    async fn a_batch_refused_for_good_is_given_up_and_stops_the_try() {
        let memory = Arc::new(MemoryLog {
            refused: Some("NUL".into()),
            ..MemoryLog::default()
        });
        let (log, stop) = started(&memory, 1 << 20);
        log.system("before").await;
        until("the first line was stored", || memory.texts().len() == 1).await;
        log.system("a NUL byte").await;
        until("the refused batch was given up", || log.lost().is_some()).await;
        assert_eq!(
            memory.attempts.load(Ordering::Relaxed),
            1 + u64::from(BATCH_ATTEMPTS),
            "the refused batch was tried {BATCH_ATTEMPTS} times"
        );
        log.system("after").await;
        until("the next line was stored", || memory.texts().len() == 2).await;
        assert_eq!(memory.texts(), ["before", "after"]);
        let error = "database error: invalid byte sequence".to_string();
        assert_eq!(log.lost(), Some(error.clone()));
        assert_eq!(stop.reason(), Some(StopReason::LogFailed(error)));
        assert!(log.hand_over().await.lines.is_empty());
    }

    #[tokio::test]
    async fn a_hand_over_settles_a_failing_batch_first() {
        let memory = Arc::new(MemoryLog {
            refused: Some("NUL".into()),
            ..MemoryLog::default()
        });
        let (log, _stop) = started(&memory, 1 << 20);
        log.system("a NUL byte").await;
        until("the batch was refused once", || {
            memory.attempts.load(Ordering::Relaxed) >= 1
        })
        .await;
        // Not handed over to fail the end too: given up here, so the try knows it failed.
        let tail = log.hand_over().await;
        assert!(tail.lines.is_empty());
        assert_eq!(
            log.lost(),
            Some("database error: invalid byte sequence".to_string())
        );
    }

    #[tokio::test]
    async fn output_held_through_an_outage_is_bounded_with_one_notice() {
        let memory = Arc::new(MemoryLog::default());
        memory.down.store(true, Ordering::Relaxed);
        let cap = MIN_HELD_BYTES as u64;
        let (log, _stop) = started(&memory, cap);
        let (mut child, pipe) = tokio::io::duplex(64 * 1024);
        let reader = log.read_pipe(pipe, LogStream::Stdout, TrackLast::No);
        // 30,000 lines of 100 bytes: past the log cap, and what the cap lets through costs more
        // than the cap to hold, counting each line's overhead.
        let line = "x".repeat(99);
        let feed = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for n in 0..30_000 {
                let text = format!("{n:05}{line}\n");
                child.write_all(text.as_bytes()).await.expect("write");
            }
        });
        feed.await.expect("the child was never blocked");
        reader.await.expect("reader");
        memory.down.store(false, Ordering::Relaxed);
        let tail = log.hand_over().await;
        let mut texts = memory.texts();
        texts.extend(tail.lines.into_iter().map(|l| l.line));
        let notices: Vec<&String> = texts
            .iter()
            .filter(|t| t.contains("further output dropped"))
            .collect();
        assert_eq!(notices.len(), 1, "one notice");
        let kept: Vec<usize> = texts
            .iter()
            .filter_map(|t| t.get(..5)?.parse().ok())
            .collect();
        assert!(
            !kept.is_empty() && kept.len() < 30_000,
            "kept {}",
            kept.len()
        );
        assert_eq!(
            kept,
            (0..kept.len()).collect::<Vec<_>>(),
            "a prefix, in order"
        );
        let held: usize = texts.iter().map(|t| t.len() + HELD_LINE_OVERHEAD).sum();
        // Updraft's own notices are held past the limit (two of them here), and the read
        // that reaches it before the first write fails: at most one chunk's lines.
        let one_read = READ_CHUNK / 100 * (100 + HELD_LINE_OVERHEAD);
        assert!(held <= MIN_HELD_BYTES + one_read + 512, "held {held} bytes");
    }

    #[test]
    fn budget_refuses_after_the_cap() {
        let budget = LogBudget::new(10);
        assert!(budget.take(6));
        assert!(!budget.take(6));
        assert!(!budget.take(1));
        assert!(budget.first_truncation());
        assert!(!budget.first_truncation());
    }
}
