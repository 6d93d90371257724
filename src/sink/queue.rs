//! Finished calls leave the caller's thread here. A caller queues its [`CallRecord`] (or a
//! run summary or budget event) and returns; one worker thread encodes the JSON lines, hands
//! them to the writers in large chunks (and the records with their lines to the database
//! writer) and records the OpenTelemetry measurements. The
//! caller's share of a call is then the span and the ledger, not the encoding (a third of it)
//! nor the SDK's aggregation.
//!
//! - **Sharded**: each thread queues into one of [`SHARDS`] queues (assigned round-robin), so
//!   busy threads do not take turns on one lock nor pass its cache line between cores.
//! - **Order**: whoever processes the queues takes all of them at once (every shard locked
//!   together: a consistent cut), then writes each shard's calls and budget lines in queue
//!   order (a budget line right after the call that crossed the limit, queued by the same
//!   thread), and the batch's run summaries last. A run's summary therefore follows its calls,
//!   whichever threads queued them: a call is queued before its span's close lets the run
//!   span close. `output` is held from taking a batch until its lines are pushed, so batches
//!   do not overtake each other.
//! - **Exact metrics**: the reader runs the callbacks of observable instruments before it
//!   reads any instrument, and ours records the measurements of whatever is still queued (and
//!   waits for the batch whose measurements are being recorded, never for the disk), so an
//!   export or a `force_flush` sees every call that closed before it.
//! - **Bounded**: when [`MAX_QUEUED`] items wait in a shard, its caller waits for the worker to
//!   take them (as it would for a full writer: nothing is dropped), and without a worker it
//!   processes the queues itself. Waiting rather than processing keeps several busy callers
//!   from queueing up behind one of them on the ordered output. After the shutdown callers
//!   process their own items (and the closed writers count their lines as dropped).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use opentelemetry::metrics::{Meter, ObservableGauge};
use tracing_core::Dispatch;

use super::records::Records;
use super::writer::{LineWriter, Writer};
use crate::budget::BudgetEvent;
use crate::format::encode;
use crate::ledger::RunSummary;
use crate::otel::Recorder;
use crate::record::CallRecord;
use crate::shard::thread_shard;

/// Queues, one per group of threads.
const SHARDS: usize = 16;
/// Items a shard holds before its callers wait (or, without a worker, process the queues):
/// 4,096 records of 400 bytes, 1.6 MB a shard, 26 MB over every shard at most.
const MAX_QUEUED: usize = 4 * 1024;
/// How long the worker lets items gather after a wake-up, so they are processed in batches.
const LINGER: Duration = Duration::from_millis(1);
/// How long a caller waits on a full shard before it looks again (it is also woken).
const FULL_WAIT: Duration = Duration::from_millis(1);
/// Encoded bytes handed to the writers at a time.
const CHUNK: usize = 64 * 1024;

/// What callers queue.
// A record is moved into the queue once; boxing it would cost an allocation per call.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Item {
    /// A finished call: its line and its measurements.
    Call(CallRecord),
    /// A budget crossing: its line follows the item queued before it (the call that crossed).
    Budget(BudgetEvent),
    /// A run summary: written after the calls of its batch, which may come from other threads.
    Summary(RunSummary),
}

impl Item {
    /// The call, if this is one.
    fn call(&self) -> Option<&CallRecord> {
        match self {
            Item::Call(call) => Some(call),
            Item::Budget(_) | Item::Summary(_) => None,
        }
    }

    /// Appends the item's line, `\n` included.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Item::Call(call) => encode::call(call, out),
            Item::Budget(event) => encode::budget(event, out),
            Item::Summary(summary) => encode::summary(summary, out),
        }
    }
}

/// One shard's queue.
#[derive(Default)]
struct Shard {
    items: Vec<Item>,
    /// `items[..recorded]` had their measurements recorded by a collection.
    recorded: usize,
}

/// A shard on cache lines of its own.
#[derive(Default)]
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// The worker's state, changed under `Shared::control`.
#[derive(Default)]
struct Control {
    /// The worker returned (everything queued before the close is processed).
    done: bool,
}

struct Shared {
    shards: Box<[Padded]>,
    /// No worker takes the queues: callers process them (no thread, or after the shutdown).
    closed: AtomicBool,
    /// A worker thread was started (callers then wait for room in a full shard).
    has_worker: AtomicBool,
    /// The worker sleeps until an item arrives; read by callers under their shard's lock.
    worker_waiting: AtomicBool,
    /// Callers waiting for room in a full shard.
    producers_waiting: AtomicUsize,
    control: Mutex<Control>,
    /// Signalled when items arrive, on close, and when the worker is done.
    ready: Condvar,
    /// Signalled when the worker takes a batch, and on close.
    space: Condvar,
    /// Held while a batch's measurements are recorded: a collection waits for them.
    recording: Mutex<()>,
    /// The encoding buffer, held from taking a batch until its lines are pushed.
    output: Mutex<Vec<u8>>,
    metrics: Option<Recorder>,
    writers: Vec<LineWriter>,
    /// The database writer: records with their lines.
    db: Option<Writer<Records>>,
    /// Every line as an OpenTelemetry log record too.
    #[cfg(feature = "logs")]
    logs: Option<crate::otel::logs::LogEmitter>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes room for one more item in a shard, growing it by doubling up to its bound (and the
/// one item an overflow adds) but not past it: `Vec`'s own doubling would take a full shard
/// from 1.6 MB to 3.3 MB, in the shard and again in the batch it is swapped with.
fn reserve_bounded(items: &mut Vec<Item>) {
    if items.len() == items.capacity() {
        let want = items.capacity().saturating_mul(2).clamp(16, MAX_QUEUED + 1);
        items.reserve_exact(want.saturating_sub(items.len()).max(1));
    }
}

/// Where lines go as OpenTelemetry log records (nothing without the `logs` feature).
#[cfg(feature = "logs")]
pub(crate) type Logs = Option<crate::otel::logs::LogEmitter>;
/// Where lines go as OpenTelemetry log records (nothing without the `logs` feature).
#[cfg(not(feature = "logs"))]
pub(crate) type Logs = ();

/// A batch: what each shard held when it was taken.
type Batch = Vec<Vec<Item>>;

impl Shared {
    /// Processes everything queued, on this thread: measurements, then lines.
    fn process_queued(&self, batch: &mut Batch) {
        batch.resize_with(SHARDS, Vec::new);
        let mut out = lock(&self.output);
        {
            let _recording = lock(&self.recording);
            let mut recorded = [0usize; SHARDS];
            {
                // Every shard at once: an item queued before another in any shard is taken
                // with it or before it.
                let mut guards: Vec<MutexGuard<'_, Shard>> =
                    self.shards.iter().map(|s| lock(&s.0)).collect();
                for ((g, b), r) in guards.iter_mut().zip(batch.iter_mut()).zip(&mut recorded) {
                    std::mem::swap(&mut g.items, b);
                    *r = std::mem::take(&mut g.recorded);
                }
            }
            if self.producers_waiting.load(Ordering::Relaxed) > 0 {
                let _control = lock(&self.control);
                self.space.notify_all();
            }
            if let Some(m) = &self.metrics {
                let unrecorded = batch
                    .iter()
                    .zip(&recorded)
                    .flat_map(|(items, &from)| items.get(from..).unwrap_or_default());
                m.record_all(unrecorded.filter_map(Item::call));
            }
        }
        if self.has_line_consumers() {
            let mut lines = 0;
            // The database's records: their lines' ranges as encoded, the records moved in
            // after.
            let mut rows = self.db.as_ref().map(|_| Records::default());
            let mut ranges = Vec::new();
            // Calls and budget lines in queue order, then the summaries.
            let calls = batch
                .iter()
                .flatten()
                .filter(|i| !matches!(i, Item::Summary(_)));
            let summaries = batch
                .iter()
                .flatten()
                .filter(|i| matches!(i, Item::Summary(_)));
            for item in calls.chain(summaries) {
                let start = out.len();
                item.encode(&mut out);
                #[cfg(feature = "logs")]
                if let Some(logs) = &self.logs {
                    match item {
                        Item::Call(call) => logs.call(call, &out[start..]),
                        Item::Budget(_) | Item::Summary(_) => logs.line(&out[start..]),
                    }
                }
                if let Some(rows) = &rows {
                    let base = rows.text_len();
                    ranges.push(base + start..base + out.len());
                }
                lines += 1;
                if out.len() >= CHUNK {
                    self.push(&mut out, lines, rows.as_mut());
                    lines = 0;
                }
            }
            if lines > 0 {
                self.push(&mut out, lines, rows.as_mut());
            }
            // One huge burst must not pin its memory for the life of the process.
            if out.capacity() > 4 * CHUNK {
                *out = Vec::new();
            }
            if let (Some(db), Some(mut rows)) = (&self.db, rows) {
                let mut ranges = ranges.into_iter();
                let mut summaries = Vec::new();
                for item in batch.iter_mut().flat_map(|items| items.drain(..)) {
                    if matches!(item, Item::Summary(_)) {
                        summaries.push(item);
                    } else if let Some(r) = ranges.next() {
                        rows.push(item, r);
                    }
                }
                for item in summaries {
                    if let Some(r) = ranges.next() {
                        rows.push(item, r);
                    }
                }
                let n = rows.len() as u64;
                if n > 0 {
                    db.push_owned(&mut rows, n);
                }
            }
        }
        // The records' strings are released here, not on the callers' threads.
        for items in batch.iter_mut() {
            items.clear();
        }
    }

    /// Whether lines are needed: files or a database to write them to, or log records.
    fn has_line_consumers(&self) -> bool {
        #[cfg(feature = "logs")]
        if self.logs.is_some() {
            return true;
        }
        !self.writers.is_empty() || self.db.is_some()
    }

    /// Hands the lines in `out` to the writers (and their text to the database's records).
    fn push(&self, out: &mut Vec<u8>, lines: u64, rows: Option<&mut Records>) {
        if let Some(rows) = rows {
            rows.add_text(out);
        }
        // The last writer may take the bytes without a copy.
        if let Some((last, others)) = self.writers.split_last() {
            for w in others {
                w.push(out, lines);
            }
            last.push_owned(out, lines);
        }
        out.clear();
    }

    /// A collection is about to read the instruments: records what is still queued.
    fn record_queued(&self) {
        let Some(m) = &self.metrics else {
            return;
        };
        let _recording = lock(&self.recording);
        for shard in self.shards.iter() {
            let mut q = lock(&shard.0);
            let from = q.recorded;
            m.record_all(
                q.items
                    .get(from..)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(Item::call),
            );
            q.recorded = q.items.len();
        }
    }

    /// Whether any shard holds an item.
    fn any_queued(&self) -> bool {
        self.shards.iter().any(|s| !lock(&s.0).items.is_empty())
    }

    /// Items queued in every shard.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.shards.iter().map(|s| lock(&s.0).items.len()).sum()
    }

    /// Measurements recorded ahead of processing, in every shard.
    #[cfg(test)]
    fn recorded(&self) -> usize {
        self.shards.iter().map(|s| lock(&s.0).recorded).sum()
    }

    /// Wakes the worker (which sleeps holding `control` until it waits on `ready`).
    fn wake_worker(&self) {
        let _control = lock(&self.control);
        self.worker_waiting.store(false, Ordering::Relaxed);
        self.ready.notify_one();
    }
}

/// The queues, their worker, and where their items go.
pub(crate) struct Queue {
    shared: Arc<Shared>,
    worker: Mutex<Option<thread::JoinHandle<()>>>,
    /// Registered only for its callback (see the module documentation).
    _before_collection: Option<ObservableGauge<u64>>,
}

impl Queue {
    /// Starts the worker for `writers` (and the database's `db`) and, with a meter, the
    /// instruments.
    pub(crate) fn new(
        writers: Vec<LineWriter>,
        db: Option<Writer<Records>>,
        metrics: Option<(&Meter, Recorder)>,
        logs: Logs,
    ) -> Self {
        Self::build(writers, db, metrics, logs, true)
    }

    /// With `worker == false` items stay queued until a collection, an overflow or the
    /// shutdown (tests).
    fn build(
        writers: Vec<LineWriter>,
        db: Option<Writer<Records>>,
        metrics: Option<(&Meter, Recorder)>,
        logs: Logs,
        worker: bool,
    ) -> Self {
        let (meter, recorder) = metrics.unzip();
        #[cfg(not(feature = "logs"))]
        let () = logs;
        let shared = Arc::new(Shared {
            shards: (0..SHARDS).map(|_| Padded::default()).collect(),
            closed: AtomicBool::new(false),
            has_worker: AtomicBool::new(false),
            worker_waiting: AtomicBool::new(false),
            producers_waiting: AtomicUsize::new(0),
            control: Mutex::default(),
            ready: Condvar::new(),
            space: Condvar::new(),
            recording: Mutex::new(()),
            output: Mutex::new(Vec::with_capacity(CHUNK + 4096)),
            metrics: recorder,
            writers,
            db,
            #[cfg(feature = "logs")]
            logs,
        });
        let before_collection = meter.map(|meter| {
            let shared = Arc::downgrade(&shared);
            crate::otel::before_collection(meter, move || {
                if let Some(shared) = shared.upgrade() {
                    shared.record_queued();
                }
            })
        });
        let spawned = if worker {
            let worker_shared = shared.clone();
            thread::Builder::new()
                .name("llm-usage-sink".into())
                .spawn(move || {
                    let _exit = WorkerExit(&worker_shared);
                    // Whatever the SDK or a writer logs must not come back into our layer.
                    tracing_core::dispatcher::with_default(&Dispatch::none(), || {
                        run_worker(&worker_shared)
                    });
                })
                .ok()
        } else {
            None
        };
        // Without a worker thread every caller processes the queues: slower, exact. In tests
        // (`worker == false`) items wait for a collection, an overflow or the shutdown.
        if worker && spawned.is_none() {
            shared.closed.store(true, Ordering::Release);
        }
        shared
            .has_worker
            .store(spawned.is_some(), Ordering::Relaxed);
        Self {
            shared,
            worker: Mutex::new(spawned),
            _before_collection: before_collection,
        }
    }

    /// Whether anything takes lines (else summaries need not be encoded).
    pub(crate) fn has_writers(&self) -> bool {
        self.shared.has_line_consumers()
    }

    /// Queues one item; waits while this thread's shard is full.
    pub(crate) fn push(&self, item: Item) {
        self.push_to(thread_shard() % SHARDS, item);
    }

    /// Queues a finished call, as [`Queue::push`] does.
    // The record (400 bytes) becomes an item only once its shard is locked with room: each
    // move of it is a copy, and this way there is one fewer.
    #[inline]
    pub(crate) fn push_call(&self, rec: CallRecord) {
        let shard = &self.shared.shards[thread_shard() % SHARDS].0;
        let mut q = self.room_in(shard);
        reserve_bounded(&mut q.items);
        q.items.push(Item::Call(rec));
        self.pushed(q);
    }

    fn push_to(&self, shard: usize, item: Item) {
        let shard = &self.shared.shards[shard].0;
        let mut q = self.room_in(shard);
        reserve_bounded(&mut q.items);
        q.items.push(item);
        self.pushed(q);
    }

    /// After an item went into the locked shard `q`: processes the queues here if they are
    /// closed or the shard overflowed, else wakes the worker if it sleeps.
    fn pushed(&self, q: MutexGuard<'_, Shard>) {
        let s = &self.shared;
        let overflow = q.items.len() > MAX_QUEUED;
        // Read under the shard's lock: the worker sets it before it looks at the shards.
        let wake = s.worker_waiting.load(Ordering::Relaxed);
        drop(q);
        if s.closed.load(Ordering::Acquire) || overflow {
            // In the queue first, so that it keeps its place among the items before it.
            s.process_queued(&mut Vec::new());
            return;
        }
        if wake {
            s.wake_worker();
        }
    }

    /// The shard, locked, once it has room (or the queues are closed).
    fn room_in<'a>(&self, shard: &'a Mutex<Shard>) -> MutexGuard<'a, Shard> {
        let s = &self.shared;
        let q = lock(shard);
        if q.items.len() >= MAX_QUEUED
            && !s.closed.load(Ordering::Acquire)
            && s.has_worker.load(Ordering::Relaxed)
        {
            drop(q);
            self.wait_for_room(shard);
            return lock(shard);
        }
        q
    }

    /// Waits until this thread's full shard has room (the worker took it) or the queues close.
    fn wait_for_room(&self, shard: &Mutex<Shard>) {
        let s = &self.shared;
        s.producers_waiting.fetch_add(1, Ordering::Relaxed);
        let mut control = lock(&s.control);
        while lock(shard).items.len() >= MAX_QUEUED && !s.closed.load(Ordering::Acquire) {
            // Woken when the worker takes a batch; the timeout only guards against a miss.
            control = s
                .space
                .wait_timeout(control, FULL_WAIT)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        drop(control);
        s.producers_waiting.fetch_sub(1, Ordering::Relaxed);
    }

    /// Stops the worker once it has processed the queues, then the writers once they have
    /// written them, all by `deadline`; whatever a writer has not written by then is counted
    /// as dropped. Returns whether every line was written.
    pub(crate) fn shutdown(&self, deadline: Instant) -> bool {
        let s = &self.shared;
        let worker = lock(&self.worker).take();
        s.closed.store(true, Ordering::Release);
        let finished = {
            let mut control = lock(&s.control);
            s.ready.notify_all();
            s.space.notify_all();
            while worker.is_some() && !control.done {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                control = s
                    .ready
                    .wait_timeout(control, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            worker.is_none() || control.done
        };
        if finished {
            // Without a worker, the queues are still to be processed (a late worker's are
            // not: it may hold the output, stalled on a writer).
            s.process_queued(&mut Vec::new());
        }
        let mut all = true;
        for w in &s.writers {
            all &= w.shutdown(deadline.saturating_duration_since(Instant::now()));
        }
        if let Some(db) = &s.db {
            all &= db.shutdown(deadline.saturating_duration_since(Instant::now()));
        }
        // The writers are closed: a worker blocked on a full one is released, and returns.
        if let Some(worker) = worker {
            let _ = worker.join();
        }
        // Left by a late worker: measurements recorded, lines counted as dropped.
        s.process_queued(&mut Vec::new());
        all
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // The guard shuts down; without it (leaked), the worker finishes the queues alone.
        let s = &self.shared;
        s.closed.store(true, Ordering::Release);
        let _control = lock(&s.control);
        s.ready.notify_all();
        s.space.notify_all();
    }
}

/// Marks the worker done when it returns, or unwinds: then the queues are closed too, so
/// callers process their items instead of waiting for room that would never come.
struct WorkerExit<'a>(&'a Shared);

impl Drop for WorkerExit<'_> {
    fn drop(&mut self) {
        let s = self.0;
        s.closed.store(true, Ordering::Release);
        lock(&s.control).done = true;
        s.ready.notify_all();
        s.space.notify_all();
    }
}

fn run_worker(s: &Shared) {
    let mut batch = Batch::new();
    loop {
        let mut control = lock(&s.control);
        let mut woke = false;
        while !s.closed.load(Ordering::Acquire) {
            // Set before looking at the shards: a caller reads it under its shard's lock, so
            // either the look sees its item or the caller sees the flag and wakes us.
            s.worker_waiting.store(true, Ordering::Relaxed);
            if s.any_queued() {
                break;
            }
            control = s.ready.wait(control).unwrap_or_else(|p| p.into_inner());
            woke = true;
        }
        s.worker_waiting.store(false, Ordering::Relaxed);
        drop(control);
        let closed = s.closed.load(Ordering::Acquire);
        if closed && !s.any_queued() {
            return;
        }
        if woke && !closed {
            // Just woken by a first item: let more gather rather than process it alone.
            thread::sleep(LINGER);
        }
        s.process_queued(&mut batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otel::test_support::{call_to, token_points, unworked_meter};
    use crate::sink::writer::SinkStats;

    /// A writer into memory the test can read.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Buf {
        /// The input tokens of every line written, in order (every line a call's).
        fn inputs(&self) -> Vec<u64> {
            let text = String::from_utf8(lock(&self.0).clone()).unwrap();
            text.lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["tokens"]["input"]
                        .as_u64()
                        .unwrap()
                })
                .collect()
        }
    }

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    /// A run summary of `run`.
    fn summary(run: &str) -> Item {
        Item::Summary(crate::format::encode::tests::summary(run))
    }

    /// A budget crossing of the budget named `name`.
    fn budget(name: &str) -> Item {
        Item::Budget(crate::format::encode::tests::budget_event(
            name,
            crate::budget::BudgetEventKind::Exceeded,
        ))
    }

    /// A database writer's destination that keeps each record's kind and line.
    #[derive(Clone, Default)]
    struct Rows(Arc<Mutex<Vec<(&'static str, String)>>>);

    impl crate::sink::writer::Destination<Records> for Rows {
        fn write(&self, batch: &Records, _lines: u64) -> Result<(), (std::io::Error, u64)> {
            let mut rows = lock(&self.0);
            for (item, line) in batch.iter() {
                let kind = match item {
                    Item::Call(_) => "call",
                    Item::Budget(_) => "budget",
                    Item::Summary(_) => "summary",
                };
                rows.push((kind, String::from_utf8(line.to_vec()).unwrap()));
            }
            Ok(())
        }
    }

    #[test]
    fn the_database_gets_every_record_with_its_line_in_the_files_order() {
        let buf = Buf::default();
        let (stats, db_stats) = (
            Arc::new(SinkStats::default()),
            Arc::new(SinkStats::default()),
        );
        // Small queues: chunks, batches and waits for room all happen.
        let writer = LineWriter::spawn(buf.clone(), 16 * 1024, stats.clone()).unwrap();
        let rows = Rows::default();
        let db = Writer::start(rows.clone(), 16 * 1024, db_stats.clone()).unwrap();
        let sink = Arc::new(Queue::new(vec![writer], Some(db), None, Logs::default()));
        let threads: Vec<_> = (0..2u64)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        sink.push(Item::Call(call_to("m", t * 1_000_000 + i)));
                        if i % 1_000 == 0 {
                            sink.push(budget(&format!("{t}-{i}")));
                        }
                    }
                    sink.push(summary(&format!("run-{t}")));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(sink.shutdown(Instant::now() + Duration::from_secs(60)));
        let text = String::from_utf8(lock(&buf.0).clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2 * (5_000 + 5 + 1));
        let rows = lock(&rows.0).clone();
        let got: Vec<&str> = rows.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(got, lines, "the same lines, in the same order");
        for (kind, line) in &rows {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let event = match *kind {
                "call" => "llm_call",
                "budget" => "budget_exceeded",
                _ => "run_summary",
            };
            assert_eq!(v["event"], event, "{line}");
        }
        for s in [&stats, &db_stats] {
            assert_eq!(s.lines_written.load(Ordering::Relaxed), lines.len() as u64);
            assert_eq!(s.lines_dropped.load(Ordering::Relaxed), 0);
            assert!(!s.reported(), "nothing went wrong: nothing to report");
        }
    }

    #[test]
    fn a_shard_grows_to_its_bound_and_no_further() {
        let mut items = Vec::new();
        for _ in 0..=MAX_QUEUED {
            reserve_bounded(&mut items);
            items.push(budget("b"));
        }
        // Vec's own doubling would have made it 8,192.
        assert!(items.capacity() <= MAX_QUEUED + 1, "{}", items.capacity());
    }

    #[test]
    fn a_collection_records_what_is_queued_and_lines_keep_their_order() {
        let (exporter, provider, meter, recorder) = unworked_meter();
        let buf = Buf::default();
        let stats = Arc::new(SinkStats::default());
        let writer = LineWriter::spawn(buf.clone(), 1 << 20, stats.clone()).unwrap();
        // No worker: only a collection, an overflow or the shutdown processes the queue.
        let sink = Queue::build(
            vec![writer],
            None,
            Some((&meter, recorder)),
            Logs::default(),
            false,
        );
        for i in 0..100 {
            sink.push(Item::Call(call_to("m", i)));
        }
        sink.push(summary("run-1"));
        assert_eq!(sink.shared.queued(), 101);
        provider.force_flush().unwrap();
        // Two measurements per call (input and output: two points); inputs 0..100 sum to 4,950.
        assert_eq!(token_points(&exporter), (200, 4950 + 100, 2));
        // Recorded, not yet written: still queued, and not recorded twice below.
        assert_eq!(sink.shared.recorded(), 101);

        assert!(sink.shutdown(Instant::now() + Duration::from_secs(10)));
        // After the shutdown a caller processes its own call at once; its line is dropped.
        sink.push(Item::Call(call_to("m", 2000)));
        assert_eq!(sink.shared.queued(), 0);
        provider.force_flush().unwrap();
        assert_eq!(token_points(&exporter), (202, 4950 + 100 + 2001, 2));

        let text = String::from_utf8(lock(&buf.0).clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 101);
        for (i, line) in lines[..100].iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["tokens"]["input"], i as u64, "calls in the order queued");
        }
        let last: serde_json::Value = serde_json::from_str(lines[100]).unwrap();
        assert_eq!(last["run_id"], "run-1", "the summary after its calls");
        assert_eq!(
            stats
                .lines_written
                .load(std::sync::atomic::Ordering::Relaxed),
            101
        );
        assert_eq!(
            stats
                .lines_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn an_overflowing_queue_is_processed_by_the_caller_in_order() {
        let buf = Buf::default();
        let stats = Arc::new(SinkStats::default());
        let writer = LineWriter::spawn(buf.clone(), 1 << 30, stats.clone()).unwrap();
        let sink = Queue::build(vec![writer], None, None, Logs::default(), false);
        let n = MAX_QUEUED as u64 + 1;
        for i in 0..n {
            sink.push(Item::Call(call_to("m", i)));
        }
        // The call past the bound made its caller process the whole queue.
        assert_eq!(sink.shared.queued(), 0);
        sink.push(Item::Call(call_to("m", n)));
        assert!(sink.shutdown(Instant::now() + Duration::from_secs(10)));
        assert_eq!(buf.inputs(), (0..=n).collect::<Vec<_>>());
    }

    #[test]
    fn calls_from_several_shards_precede_the_summary_queued_after_them() {
        let buf = Buf::default();
        let stats = Arc::new(SinkStats::default());
        let writer = LineWriter::spawn(buf.clone(), 1 << 30, stats.clone()).unwrap();
        // No worker: everything below is processed as one batch, at the shutdown.
        let sink = Arc::new(Queue::build(
            vec![writer],
            None,
            None,
            Logs::default(),
            false,
        ));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..3_000 {
                        let shard = 4 + t as usize;
                        sink.push_to(shard, Item::Call(call_to("m", t * 1_000_000 + i)));
                        if i == 1_500 {
                            // A budget line stays right after the call that caused it.
                            sink.push_to(shard, budget(&t.to_string()));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Queued after every call above, in a shard taken before theirs.
        sink.push_to(0, summary("run-1"));
        assert_eq!(sink.shared.queued(), 12_005);
        assert!(sink.shutdown(Instant::now() + Duration::from_secs(30)));
        let text = String::from_utf8(lock(&buf.0).clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 12_005);
        let last: serde_json::Value = serde_json::from_str(lines[12_004]).unwrap();
        assert_eq!(last["event"], "run_summary", "the summary last");
        let mut calls = Vec::new();
        for (n, line) in lines[..12_004].iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(t) = v["budget"].as_str() {
                let t: u64 = t.parse().unwrap();
                let before: serde_json::Value = serde_json::from_str(lines[n - 1]).unwrap();
                assert_eq!(before["tokens"]["input"], t * 1_000_000 + 1_500);
            } else {
                calls.push(v["tokens"]["input"].as_u64().unwrap());
            }
        }
        assert_in_order_per_thread(&calls, 3_000);
        assert_eq!(stats.lines_written.load(Ordering::Relaxed), 12_005);
    }

    #[test]
    fn busy_threads_with_a_worker_lose_nothing_and_keep_their_order() {
        let buf = Buf::default();
        let stats = Arc::new(SinkStats::default());
        // A small writer queue: the sink waits for the writer, and callers for the sink.
        let writer = LineWriter::spawn(buf.clone(), 64 * 1024, stats.clone()).unwrap();
        let sink = Arc::new(Queue::new(vec![writer], None, None, Logs::default()));
        let (done, finished) = std::sync::mpsc::channel();
        for t in 0..4u64 {
            let (sink, done) = (sink.clone(), done.clone());
            std::thread::spawn(move || {
                for i in 0..(MAX_QUEUED as u64 * 3) {
                    sink.push(Item::Call(call_to("m", t * 1_000_000 + i)));
                    if i % 1_000 == 0 {
                        // Idle now and then, so the worker goes to sleep and is woken.
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                let _ = done.send(());
            });
        }
        for _ in 0..4 {
            // A lost wake-up leaves the callers waiting for room for ever: fail, not hang.
            finished
                .recv_timeout(Duration::from_secs(60))
                .expect("callers stuck: the worker was not woken");
        }
        assert!(sink.shutdown(Instant::now() + Duration::from_secs(60)));
        let per_thread = MAX_QUEUED as u64 * 3;
        assert_in_order_per_thread(&buf.inputs(), per_thread);
        assert_eq!(stats.lines_written.load(Ordering::Relaxed), 4 * per_thread);
        assert_eq!(stats.lines_dropped.load(Ordering::Relaxed), 0);
    }

    /// Calls numbered `thread * 1,000,000 + i`: every thread's `0..per_thread`, each thread's in
    /// the order it queued them (threads interleaved as they may).
    fn assert_in_order_per_thread(inputs: &[u64], per_thread: u64) {
        let mut next = [0u64; 4];
        for &input in inputs {
            let (t, i) = ((input / 1_000_000) as usize, input % 1_000_000);
            assert_eq!(
                i, next[t],
                "each thread's calls in the order it queued them"
            );
            next[t] += 1;
        }
        assert_eq!(next, [per_thread; 4]);
    }
}
