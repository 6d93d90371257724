//! The background writers: callers append what they give to a shared buffer ([`Pending`]:
//! encoded lines for the JSONL, records for the database); one worker thread swaps the buffer
//! out and hands it to its [`Destination`] at once, so a burst of lines costs one syscall (or
//! one transaction), not one each.
//!
//! Lossless: when the buffer is full a caller waits for room (tracing-appender's
//! `non_blocking` would drop). At shutdown the worker drains everything queued; the guard waits
//! for it up to a bound, and counts whatever is still queued after that as dropped. Write errors
//! are counted per line lost and reported once on stderr; they never reach the caller.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tracing_core::Dispatch;
use tracing_subscriber::fmt::MakeWriter;

/// Counters shared by the writer and the handle.
#[derive(Debug, Default)]
pub(crate) struct SinkStats {
    pub(crate) lines_written: AtomicU64,
    pub(crate) lines_dropped: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    reported: AtomicBool,
}

impl SinkStats {
    /// Prints `msg` to stderr the first time anything goes wrong, and never again: a failing
    /// disk must not flood the application's stderr. (Not a `tracing` event: it would re-enter.)
    pub(crate) fn report_once(&self, msg: std::fmt::Arguments<'_>) {
        if !self.reported.swap(true, Ordering::Relaxed) {
            eprintln!(
                "tracing-llm-usage: {}; further write failures are only counted",
                crate::inert::terminal(&msg.to_string())
            );
        }
    }

    /// Whether anything was reported.
    #[cfg(test)]
    pub(crate) fn reported(&self) -> bool {
        self.reported.load(Ordering::Relaxed)
    }
}

/// What a writer's buffer holds: lines as bytes, or records.
pub(crate) trait Pending: Default + Send + 'static {
    /// Its size against the queue's capacity, in bytes.
    fn size(&self) -> usize;
    fn is_empty(&self) -> bool;
    /// Moves `more` in after what it holds: `more` is left empty (or holding the empty
    /// buffer it was swapped with).
    fn take_from(&mut self, more: &mut Self, cap: usize);
    fn clear(&mut self);
    /// Whether its allocation is large enough (after a burst) to be given back.
    fn oversized(&self, cap: usize) -> bool;
}

impl Pending for Vec<u8> {
    fn size(&self) -> usize {
        self.len()
    }
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
    fn take_from(&mut self, more: &mut Self, cap: usize) {
        if Vec::is_empty(self) {
            std::mem::swap(self, more);
        } else {
            append(self, more, cap);
            more.clear();
        }
    }
    fn clear(&mut self) {
        Vec::clear(self);
    }
    fn oversized(&self, cap: usize) -> bool {
        self.capacity() > cap.saturating_mul(2)
    }
}

/// Where a writer's worker hands each batch.
pub(crate) trait Destination<P>: Send + 'static {
    /// Writes `batch`, which holds `lines` lines: `Err` says why, and how many of its first
    /// lines were written all the same.
    fn write(&self, batch: &P, lines: u64) -> Result<(), (io::Error, u64)>;
}

/// A [`MakeWriter`] as a destination of lines: one `write_all` a batch.
pub(crate) struct Lines<M>(pub(crate) M);

impl<M> Destination<Vec<u8>> for Lines<M>
where
    M: for<'a> MakeWriter<'a> + Send + 'static,
{
    fn write(&self, batch: &Vec<u8>, _lines: u64) -> Result<(), (io::Error, u64)> {
        let mut w = Counting {
            inner: self.0.make_writer(),
            accepted: 0,
        };
        w.write_all(batch).and_then(|()| w.flush()).map_err(|e| {
            let accepted = w.accepted.min(batch.len());
            let complete = batch[..accepted].iter().filter(|&&b| b == b'\n').count() as u64;
            (e, complete)
        })
    }
}

struct State<P> {
    buf: P,
    lines: u64,
    closed: bool,
    done: bool,
    /// The worker is parked on `ready`: only then does a producer pay for a wake-up (a
    /// futex syscall), so a busy worker costs producers nothing.
    worker_waiting: bool,
    /// The worker is letting lines gather after a wake-up: a producer that fills half the
    /// buffer cuts that short, so that a small buffer never fills while the worker waits.
    worker_lingering: bool,
    /// Producers parked on `space`.
    producers_waiting: usize,
}

/// Appends `bytes` to the queue's buffer, growing it by doubling but not past `cap` (or what
/// this push needs): `Vec`'s own doubling would let a buffer just over the capacity take twice
/// its memory, in each of the buffers the queue and the worker swap.
fn append(buf: &mut Vec<u8>, bytes: &[u8], cap: usize) {
    let need = buf.len() + bytes.len();
    if need > buf.capacity() {
        let want = buf.capacity().saturating_mul(2).min(cap).max(need);
        buf.reserve_exact(want - buf.len());
    }
    buf.extend_from_slice(bytes);
}

/// How long the worker lets lines gather after a wake-up before writing, so that a stream of
/// lines becomes a few large writes instead of one syscall each.
const LINGER: Duration = Duration::from_millis(1);

impl<P: Default> Default for State<P> {
    fn default() -> Self {
        Self {
            buf: P::default(),
            lines: 0,
            closed: false,
            done: false,
            worker_waiting: false,
            worker_lingering: false,
            producers_waiting: 0,
        }
    }
}

struct Queue<P> {
    state: Mutex<State<P>>,
    /// Signalled when the buffer stops being empty, or on close.
    ready: Condvar,
    /// Signalled when the worker takes the buffer, and when it finishes.
    space: Condvar,
    cap_bytes: usize,
}

impl<P> Queue<P> {
    fn lock(&self) -> MutexGuard<'_, State<P>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The callers' side of a writer of `P`s.
pub(crate) struct Writer<P> {
    queue: Arc<Queue<P>>,
    stats: Arc<SinkStats>,
    /// Joined at shutdown once the worker has finished, so no thread outlives the guard.
    worker: Arc<Mutex<Option<thread::JoinHandle<()>>>>,
}

impl<P> Clone for Writer<P> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            stats: self.stats.clone(),
            worker: self.worker.clone(),
        }
    }
}

/// The JSONL writer: encoded lines.
pub(crate) type LineWriter = Writer<Vec<u8>>;

impl LineWriter {
    /// Starts the worker thread writing to `make`.
    pub(crate) fn spawn<M>(make: M, cap_bytes: usize, stats: Arc<SinkStats>) -> io::Result<Self>
    where
        M: for<'a> MakeWriter<'a> + Send + 'static,
    {
        Self::start(Lines(make), cap_bytes, stats)
    }

    /// Queues one complete line (one or several `\n`-terminated lines). Waits while the
    /// buffer is full; after shutdown the line is counted as dropped.
    pub(crate) fn push(&self, line: &[u8], lines: u64) {
        let cap = self.queue.cap_bytes;
        self.push_with(line.len(), lines, |buf| append(buf, line, cap));
    }
}

impl<P: Pending> Writer<P> {
    /// Starts the worker thread handing batches to `dest`.
    pub(crate) fn start<D>(dest: D, cap_bytes: usize, stats: Arc<SinkStats>) -> io::Result<Self>
    where
        D: Destination<P>,
    {
        let queue = Arc::new(Queue {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            space: Condvar::new(),
            cap_bytes: cap_bytes.max(1),
        });
        let worker_queue = queue.clone();
        let worker_stats = stats.clone();
        let worker = thread::Builder::new()
            .name("llm-usage-writer".into())
            .spawn(move || {
                // Whatever the writer logs must not come back into our layer (and block on
                // the queue this very thread drains).
                tracing_core::dispatcher::with_default(&Dispatch::none(), || {
                    run_worker(&worker_queue, &dest, &worker_stats)
                });
                let mut st = worker_queue.lock();
                st.done = true;
                drop(st);
                worker_queue.space.notify_all();
            })?;
        Ok(Self {
            queue,
            stats,
            worker: Arc::new(Mutex::new(Some(worker))),
        })
    }

    /// Queues what `more` holds (`lines` lines), which the caller gives up: when nothing is
    /// queued, `more` becomes the queue's buffer instead of being copied into it, and is left
    /// holding the (empty) buffer it replaced. Waits while the buffer is full; after shutdown
    /// the lines are counted as dropped.
    pub(crate) fn push_owned(&self, more: &mut P, lines: u64) {
        let cap = self.queue.cap_bytes;
        self.push_with(more.size(), lines, |buf| buf.take_from(more, cap));
    }

    /// Queues `len` bytes holding `lines` lines, which `put` appends to the queue's buffer.
    fn push_with(&self, len: usize, lines: u64, put: impl FnOnce(&mut P)) {
        let q = &self.queue;
        let mut st = q.lock();
        while !st.closed && !st.buf.is_empty() && st.buf.size() + len > q.cap_bytes {
            st.producers_waiting += 1;
            st = q.space.wait(st).unwrap_or_else(|p| p.into_inner());
            st.producers_waiting -= 1;
        }
        if st.closed {
            drop(st);
            self.stats.lines_dropped.fetch_add(lines, Ordering::Relaxed);
            self.stats
                .report_once(format_args!("a usage line arrived after shutdown"));
            return;
        }
        put(&mut st.buf);
        st.lines += lines;
        let half_full = st.worker_lingering && st.buf.size() >= q.cap_bytes / 2;
        if half_full {
            st.worker_lingering = false;
        }
        let wake = std::mem::take(&mut st.worker_waiting) || half_full;
        drop(st);
        if wake {
            q.ready.notify_one();
        }
    }

    /// Stops accepting lines and waits up to `timeout` for the worker to write all queued
    /// ones. Returns whether it finished in time; if not, what is left is counted as dropped.
    pub(crate) fn shutdown(&self, timeout: Duration) -> bool {
        let q = &self.queue;
        let mut st = q.lock();
        st.closed = true;
        q.ready.notify_all();
        q.space.notify_all();
        let deadline = Instant::now() + timeout;
        while !st.done {
            let now = Instant::now();
            if now >= deadline {
                let left = std::mem::take(&mut st.lines);
                st.buf.clear();
                drop(st);
                self.stats.lines_dropped.fetch_add(left, Ordering::Relaxed);
                self.stats.report_once(format_args!(
                    "the writer did not finish within {timeout:?}; {left} queued lines dropped"
                ));
                return false;
            }
            st = q
                .space
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        drop(st);
        // `done` is the worker's last act: the join returns at once.
        let handle = self.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        true
    }
}

/// Counts the bytes the inner writer accepted, so a failure mid-batch loses exactly the
/// lines that did not make it.
struct Counting<W> {
    inner: W,
    accepted: usize,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.accepted += n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn run_worker<P: Pending, D: Destination<P>>(queue: &Queue<P>, dest: &D, stats: &SinkStats) {
    let mut batch = P::default();
    loop {
        let (lines, closed, wake_producers) = {
            let mut st = queue.lock();
            let mut woke = false;
            while st.buf.is_empty() && !st.closed {
                st.worker_waiting = true;
                st = queue.ready.wait(st).unwrap_or_else(|p| p.into_inner());
                woke = true;
            }
            st.worker_waiting = false;
            if woke && !st.closed && st.buf.size() < queue.cap_bytes / 2 {
                // Just woken by a first line: let more gather rather than write it alone,
                // until half the buffer is queued.
                let until = Instant::now() + LINGER;
                st.worker_lingering = true;
                while st.worker_lingering && !st.closed {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    st = queue
                        .ready
                        .wait_timeout(st, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                st.worker_lingering = false;
            }
            std::mem::swap(&mut st.buf, &mut batch);
            (
                std::mem::take(&mut st.lines),
                st.closed,
                st.producers_waiting > 0,
            )
        };
        if wake_producers {
            queue.space.notify_all();
        }
        if !batch.is_empty() {
            write_batch(dest, &batch, lines, stats);
            batch.clear();
            // One huge burst must not pin its memory for the life of the process.
            if batch.oversized(queue.cap_bytes) {
                batch = P::default();
            }
        } else if closed {
            return;
        }
    }
}

fn write_batch<P, D: Destination<P>>(dest: &D, batch: &P, lines: u64, stats: &SinkStats) {
    match dest.write(batch, lines) {
        Ok(()) => {
            stats.lines_written.fetch_add(lines, Ordering::Relaxed);
        }
        Err((e, complete)) => {
            let complete = complete.min(lines);
            let lost = lines - complete;
            stats.lines_written.fetch_add(complete, Ordering::Relaxed);
            stats.lines_dropped.fetch_add(lost, Ordering::Relaxed);
            stats.write_errors.fetch_add(1, Ordering::Relaxed);
            stats.report_once(format_args!(
                "writing usage lines failed ({e}); {lost} lines lost"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose first write waits until the gate opens, and says when it is waiting.
    #[derive(Clone, Default)]
    struct Gated {
        written: Arc<Mutex<Vec<u8>>>,
        gate: Arc<(Mutex<(bool, bool)>, Condvar)>,
    }

    impl Write for Gated {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let (state, cv) = &*self.gate;
            let mut st = state.lock().unwrap();
            st.0 = true; // entered
            cv.notify_all();
            while !st.1 {
                st = cv.wait(st).unwrap();
            }
            self.written.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Gated {
        type Writer = Gated;
        fn make_writer(&'a self) -> Gated {
            self.clone()
        }
    }

    #[test]
    fn the_queue_buffer_grows_by_doubling_up_to_its_capacity_only() {
        let mut buf = Vec::new();
        let mut capacities = Vec::new();
        for _ in 0..5 {
            append(&mut buf, &[b'x'; 300], 1000);
            capacities.push(buf.capacity());
        }
        // Past the capacity, only what a push needs (a push into a non-empty buffer waits
        // for room, so this happens only for one push larger than the whole queue).
        assert!(
            capacities[2] <= 1000 && capacities[3] <= 1200,
            "{capacities:?}"
        );
        assert_eq!(buf.len(), 1500);
        assert!(buf.capacity() < 2 * 1200, "{capacities:?}");
    }

    #[test]
    fn owned_bytes_are_moved_into_an_empty_queue_and_copied_behind_others() {
        let out = Gated::default();
        let stats = Arc::new(SinkStats::default());
        let w = LineWriter::spawn(out.clone(), 1 << 20, stats.clone()).unwrap();
        let mut first = b"1\n".to_vec();
        w.push_owned(&mut first, 1);
        assert!(
            first.is_empty(),
            "moved: left holding the queue's empty buffer"
        );
        // The worker takes "1" and waits in its write: the queue is empty again.
        {
            let (state, cv) = &*out.gate;
            let mut st = state.lock().unwrap();
            while !st.0 {
                st = cv.wait(st).unwrap();
            }
        }
        w.push(b"2\n", 1);
        let mut third = b"3\n4\n".to_vec();
        let ptr = third.as_ptr();
        w.push_owned(&mut third, 2);
        assert!(
            third.is_empty() && third.as_ptr() == ptr,
            "copied behind the queued line: the caller keeps its (emptied) buffer"
        );
        {
            let (state, cv) = &*out.gate;
            state.lock().unwrap().1 = true;
            cv.notify_all();
        }
        assert!(w.shutdown(Duration::from_secs(10)));
        assert_eq!(&*out.written.lock().unwrap(), b"1\n2\n3\n4\n");
        assert_eq!(stats.lines_written.load(Ordering::Relaxed), 4);
        assert_eq!(stats.lines_dropped.load(Ordering::Relaxed), 0);
    }
}
