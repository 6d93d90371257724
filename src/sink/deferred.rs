//! Finished calls leave the caller's thread here. A caller queues its [`CallRecord`] (or an
//! encoded summary or budget line) and returns; one worker thread encodes the JSON lines,
//! hands them to the writers in large chunks and records the OpenTelemetry measurements. The
//! caller's share of a call is then the span and the ledger, not the encoding (a third of it)
//! nor the SDK's aggregation.
//!
//! - **Order**: lines reach the writers in the order their items were queued (a run's summary
//!   after its calls): whoever processes a batch holds `output` from taking it until its lines
//!   are pushed.
//! - **Exact metrics**: the reader runs the callbacks of observable instruments before it
//!   reads any instrument, and ours records the measurements of whatever is still queued (and
//!   waits for the batch whose measurements are being recorded, never for the disk), so an
//!   export or a `force_flush` sees every call that closed before it.
//! - **Bounded**: when [`MAX_QUEUED`] items wait, a caller waits for the worker to take them
//!   (as it would for a full writer: nothing is dropped), and without a worker it processes
//!   the queue itself. Waiting rather than processing keeps several busy callers from queueing
//!   up behind one of them on the ordered output. After the shutdown callers process their
//!   own items (and the closed writers count their lines as dropped).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use opentelemetry::metrics::{Meter, ObservableGauge};
use tracing_core::Dispatch;

use super::jsonl;
use super::writer::LineWriter;
use crate::otel::Recorder;
use crate::record::CallRecord;

/// Items queued before callers process the queue themselves (a few MB of records at most).
const MAX_QUEUED: usize = 16 * 1024;
/// How long the worker lets items gather after a wake-up, so they are processed in batches.
const LINGER: Duration = Duration::from_millis(1);
/// Encoded bytes handed to the writers at a time.
const CHUNK: usize = 64 * 1024;

/// What callers queue.
// A record is moved into the queue once; boxing it would cost an allocation per call.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Item {
    /// A finished call: its line and its measurements.
    Call(CallRecord),
    /// A line encoded by the caller (run summary, budget event), `\n` included.
    Line(Vec<u8>),
}

#[derive(Default)]
struct Queue {
    items: Vec<Item>,
    /// `items[..recorded]` had their measurements recorded by a collection.
    recorded: usize,
    closed: bool,
    /// A worker thread takes the queue (else callers process it when it is full).
    worker: bool,
    worker_waiting: bool,
    /// Callers waiting on `space`.
    producers_waiting: usize,
    /// The worker returned (everything queued before the close is processed).
    done: bool,
}

struct Shared {
    queue: Mutex<Queue>,
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
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Processes everything queued, on this thread: measurements, then lines.
    fn process_queued(&self, batch: &mut Vec<Item>) {
        let mut out = lock(&self.output);
        {
            let _recording = lock(&self.recording);
            let recorded = {
                let mut q = lock(&self.queue);
                std::mem::swap(&mut q.items, batch);
                if q.producers_waiting > 0 {
                    self.space.notify_all();
                }
                std::mem::take(&mut q.recorded)
            };
            if let Some(m) = &self.metrics {
                for item in batch.get(recorded..).unwrap_or_default() {
                    if let Item::Call(call) = item {
                        m.record(call);
                    }
                }
            }
        }
        if !self.writers.is_empty() {
            let mut lines = 0;
            for item in batch.iter() {
                match item {
                    Item::Call(call) => jsonl::encode_call(call, &mut out),
                    Item::Line(line) => out.extend_from_slice(line),
                }
                lines += 1;
                if out.len() >= CHUNK {
                    self.push(&mut out, lines);
                    lines = 0;
                }
            }
            if lines > 0 {
                self.push(&mut out, lines);
            }
            // One huge burst must not pin its memory for the life of the process.
            if out.capacity() > 4 * CHUNK {
                *out = Vec::new();
            }
        }
        // The records' strings are released here, not on the callers' threads.
        batch.clear();
    }

    fn push(&self, out: &mut Vec<u8>, lines: u64) {
        for w in &self.writers {
            w.push(out, lines);
        }
        out.clear();
    }

    /// A collection is about to read the instruments: records what is still queued.
    fn record_queued(&self) {
        let Some(m) = &self.metrics else {
            return;
        };
        let _recording = lock(&self.recording);
        let mut q = lock(&self.queue);
        for item in q.items.get(q.recorded..).unwrap_or_default() {
            if let Item::Call(call) = item {
                m.record(call);
            }
        }
        q.recorded = q.items.len();
    }
}

/// The queue, its worker, and where its items go.
pub(crate) struct Deferred {
    shared: Arc<Shared>,
    worker: Mutex<Option<thread::JoinHandle<()>>>,
    /// Registered only for its callback (see the module documentation).
    _before_collection: Option<ObservableGauge<u64>>,
}

impl Deferred {
    /// Starts the worker for `writers` and, with a meter, the instruments.
    pub(crate) fn new(writers: Vec<LineWriter>, metrics: Option<(&Meter, Recorder)>) -> Self {
        Self::build(writers, metrics, true)
    }

    /// With `worker == false` items stay queued until a collection, an overflow or the
    /// shutdown (tests).
    fn build(writers: Vec<LineWriter>, metrics: Option<(&Meter, Recorder)>, worker: bool) -> Self {
        let (meter, recorder) = metrics.unzip();
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            ready: Condvar::new(),
            space: Condvar::new(),
            recording: Mutex::new(()),
            output: Mutex::new(Vec::with_capacity(CHUNK + 4096)),
            metrics: recorder,
            writers,
        });
        let before_collection = meter.map(|meter| {
            let shared = Arc::downgrade(&shared);
            crate::otel::before_collection(meter, move || {
                if let Some(shared) = shared.upgrade() {
                    shared.record_queued();
                }
            })
        });
        let worker = if worker {
            let worker_shared = shared.clone();
            let spawned = thread::Builder::new()
                .name("llm-usage-sink".into())
                .spawn(move || {
                    // Whatever the SDK or a writer logs must not come back into our layer.
                    tracing_core::dispatcher::with_default(&Dispatch::none(), || {
                        run_worker(&worker_shared)
                    });
                    lock(&worker_shared.queue).done = true;
                    worker_shared.ready.notify_all();
                })
                .ok();
            // Without a worker thread every caller processes its own item: slower, exact.
            let mut q = lock(&shared.queue);
            q.worker = spawned.is_some();
            q.closed = spawned.is_none();
            drop(q);
            spawned
        } else {
            None
        };
        Self {
            shared,
            worker: Mutex::new(worker),
            _before_collection: before_collection,
        }
    }

    /// Whether anything writes lines (else summaries need not be encoded).
    pub(crate) fn has_writers(&self) -> bool {
        !self.shared.writers.is_empty()
    }

    /// Queues one item; waits while the queue is full.
    pub(crate) fn push(&self, item: Item) {
        let s = &self.shared;
        let mut q = lock(&s.queue);
        while q.worker && !q.closed && q.items.len() >= MAX_QUEUED {
            q.producers_waiting += 1;
            q = s.space.wait(q).unwrap_or_else(|p| p.into_inner());
            q.producers_waiting -= 1;
        }
        q.items.push(item);
        if q.closed || q.items.len() > MAX_QUEUED {
            // In the queue first, so that it keeps its place among the items before it.
            drop(q);
            s.process_queued(&mut Vec::new());
            return;
        }
        let wake = std::mem::take(&mut q.worker_waiting);
        drop(q);
        if wake {
            s.ready.notify_one();
        }
    }

    /// Stops the worker once it has processed the queue, then the writers once they have
    /// written it, all by `deadline`; whatever a writer has not written by then is counted as
    /// dropped. Returns whether every line was written.
    pub(crate) fn shutdown(&self, deadline: Instant) -> bool {
        let s = &self.shared;
        let worker = lock(&self.worker).take();
        let finished = {
            let mut q = lock(&s.queue);
            q.closed = true;
            s.ready.notify_all();
            s.space.notify_all();
            while worker.is_some() && !q.done {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                q = s
                    .ready
                    .wait_timeout(q, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            worker.is_none() || q.done
        };
        if finished {
            // Without a worker, the queue is still to be processed (a late worker's is not:
            // it may hold the output, stalled on a writer).
            s.process_queued(&mut Vec::new());
        }
        let mut all = true;
        for w in &s.writers {
            all &= w.shutdown(deadline.saturating_duration_since(Instant::now()));
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

impl Drop for Deferred {
    fn drop(&mut self) {
        // The guard shuts down; without it (leaked), the worker finishes the queue alone.
        lock(&self.shared.queue).closed = true;
        self.shared.ready.notify_all();
        self.shared.space.notify_all();
    }
}

fn run_worker(s: &Shared) {
    let mut batch = Vec::new();
    loop {
        {
            let mut q = lock(&s.queue);
            let mut woke = false;
            while q.items.is_empty() && !q.closed {
                q.worker_waiting = true;
                q = s.ready.wait(q).unwrap_or_else(|p| p.into_inner());
                woke = true;
            }
            q.worker_waiting = false;
            if q.items.is_empty() && q.closed {
                return;
            }
            if woke && !q.closed {
                // Just woken by a first item: let more gather rather than process it alone.
                drop(q);
                thread::sleep(LINGER);
            }
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

    #[test]
    fn a_collection_records_what_is_queued_and_lines_keep_their_order() {
        let (exporter, provider, meter, recorder) = unworked_meter();
        let buf = Buf::default();
        let stats = Arc::new(SinkStats::default());
        let writer = LineWriter::spawn(buf.clone(), 1 << 20, stats.clone()).unwrap();
        // No worker: only a collection, an overflow or the shutdown processes the queue.
        let sink = Deferred::build(vec![writer], Some((&meter, recorder)), false);
        for i in 0..100 {
            sink.push(Item::Call(call_to("m", i)));
        }
        sink.push(Item::Line(b"{\"summary\":1}\n".to_vec()));
        assert_eq!(lock(&sink.shared.queue).items.len(), 101);
        provider.force_flush().unwrap();
        // Two measurements per call (input and output: two points); inputs 0..100 sum to 4,950.
        assert_eq!(token_points(&exporter), (200, 4950 + 100, 2));
        // Recorded, not yet written: still queued, and not recorded twice below.
        assert_eq!(lock(&sink.shared.queue).recorded, 101);

        assert!(sink.shutdown(Instant::now() + Duration::from_secs(10)));
        // After the shutdown a caller processes its own call at once; its line is dropped.
        sink.push(Item::Call(call_to("m", 2000)));
        assert!(lock(&sink.shared.queue).items.is_empty());
        provider.force_flush().unwrap();
        assert_eq!(token_points(&exporter), (202, 4950 + 100 + 2001, 2));

        let text = String::from_utf8(lock(&buf.0).clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 101);
        for (i, line) in lines[..100].iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["tokens"]["input"], i as u64, "calls in the order queued");
        }
        assert_eq!(lines[100], "{\"summary\":1}", "the summary after its calls");
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
        let sink = Deferred::build(vec![writer], None, false);
        let n = MAX_QUEUED as u64 + 1;
        for i in 0..n {
            sink.push(Item::Call(call_to("m", i)));
        }
        // The call past the bound made its caller process the whole queue.
        assert!(lock(&sink.shared.queue).items.is_empty());
        sink.push(Item::Call(call_to("m", n)));
        assert!(sink.shutdown(Instant::now() + Duration::from_secs(10)));
        let text = String::from_utf8(lock(&buf.0).clone()).unwrap();
        let inputs: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["tokens"]["input"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(inputs, (0..=n).collect::<Vec<_>>());
    }
}
