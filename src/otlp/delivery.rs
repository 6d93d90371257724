//! Delivery of log records to the collector: a bounded buffer that keeps what it holds through
//! an outage and retries, and counts exactly what it cannot hold.
//!
//! The SDK's batch processor drops a batch whose export failed; usage records are billing
//! data, so a failed batch goes back to the front of the buffer and is tried again (backing off
//! from 100 ms to 5 s) until the collector takes it. A record that finds the buffer full is
//! dropped and counted: delivered + dropped + waiting = made. The first failure is reported
//! once on stderr; nothing is raised into the application, and `emit` never waits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter, LogProcessor, SdkLogRecord};
use opentelemetry_sdk::Resource;

/// Records per export.
const BATCH: usize = 512;
/// How long a record may wait for others before it is sent.
const LINGER: Duration = Duration::from_millis(500);

/// What happened to the records handed to the pipeline.
#[derive(Debug, Default)]
pub(crate) struct DeliveryStats {
    pub(crate) made: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) export_errors: AtomicU64,
    reported: AtomicBool,
}

#[derive(Default)]
struct Queue {
    records: VecDeque<(SdkLogRecord, InstrumentationScope)>,
    /// Flushes asked for and done (a flush is done when the queue was emptied or an export
    /// failed after it was asked).
    asked: u64,
    done: u64,
    last_ok: bool,
    shutdown: bool,
    finished: bool,
}

struct Shared<E> {
    exporter: Mutex<E>,
    queue: Mutex<Queue>,
    wake: Condvar,
    cap: usize,
    stats: Arc<DeliveryStats>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A [`LogProcessor`] with a bounded, retrying buffer in front of `E`.
pub(crate) struct Delivery<E: LogExporter + 'static> {
    shared: Arc<Shared<E>>,
}

impl<E: LogExporter + 'static> std::fmt::Debug for Delivery<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("cap", &self.shared.cap)
            .finish_non_exhaustive()
    }
}

impl<E: LogExporter + 'static> Delivery<E> {
    /// Starts the delivery thread for `exporter`, holding at most `cap` records.
    pub(crate) fn start(
        exporter: E,
        cap: usize,
        stats: Arc<DeliveryStats>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            exporter: Mutex::new(exporter),
            queue: Mutex::new(Queue {
                last_ok: true,
                ..Queue::default()
            }),
            wake: Condvar::new(),
            cap: cap.max(1),
            stats,
        });
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("llm-usage-logs".into())
            .spawn(move || {
                // The exporter's own tracing events must not come back into the layer.
                tracing_core::dispatcher::with_default(&tracing_core::Dispatch::none(), || {
                    run(&worker)
                })
            })?;
        Ok(Self { shared })
    }
}

fn run<E: LogExporter>(s: &Shared<E>) {
    let mut backoff = Duration::from_millis(100);
    let mut oldest: Option<Instant> = None;
    loop {
        let batch: Vec<(SdkLogRecord, InstrumentationScope)> = {
            let mut q = lock(&s.queue);
            loop {
                if q.records.is_empty() {
                    oldest = None;
                    if q.asked > q.done {
                        q.done = q.asked;
                        q.last_ok = true;
                        s.wake.notify_all();
                    }
                    if q.shutdown {
                        q.finished = true;
                        s.wake.notify_all();
                        return;
                    }
                    q = s.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                    continue;
                }
                let since = *oldest.get_or_insert_with(Instant::now);
                let due = q.records.len() >= BATCH
                    || q.asked > q.done
                    || q.shutdown
                    || since.elapsed() >= LINGER;
                if due {
                    break;
                }
                let left = LINGER.saturating_sub(since.elapsed());
                q = s
                    .wake
                    .wait_timeout(q, left)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            let n = q.records.len().min(BATCH);
            q.records.drain(..n).collect()
        };
        let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> =
            batch.iter().map(|(r, i)| (r, i)).collect();
        let result = {
            let exporter = lock(&s.exporter);
            futures_executor::block_on(exporter.export(LogBatch::new(&refs)))
        };
        let mut q = lock(&s.queue);
        match result {
            Ok(()) => {
                s.stats
                    .delivered
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                backoff = Duration::from_millis(100);
                oldest = None;
            }
            Err(e) => {
                s.stats.export_errors.fetch_add(1, Ordering::Relaxed);
                if !s.stats.reported.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "tracing-llm-usage: exporting usage log records failed ({}); they are \
                         kept and retried, further failures are only counted",
                        crate::inert::terminal(&e.to_string())
                    );
                }
                // Back to the front, in order: the collector gets them when it is back.
                for record in batch.into_iter().rev() {
                    q.records.push_front(record);
                }
                if q.asked > q.done {
                    q.done = q.asked;
                    q.last_ok = false;
                    s.wake.notify_all();
                }
                if q.shutdown {
                    // What is left at shutdown is lost: counted as dropped.
                    let left = q.records.len() as u64;
                    q.records.clear();
                    s.stats.dropped.fetch_add(left, Ordering::Relaxed);
                    continue;
                }
                q = s
                    .wake
                    .wait_timeout(q, backoff)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
                drop(q);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

impl<E: LogExporter + 'static> LogProcessor for Delivery<E> {
    fn emit(&self, data: &mut SdkLogRecord, instrumentation: &InstrumentationScope) {
        let s = &self.shared;
        s.stats.made.fetch_add(1, Ordering::Relaxed);
        let mut q = lock(&s.queue);
        if q.shutdown || q.records.len() >= s.cap {
            s.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        q.records.push_back((data.clone(), instrumentation.clone()));
        if q.records.len() == 1 || q.records.len() >= BATCH {
            s.wake.notify_all();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        let s = &self.shared;
        let mut q = lock(&s.queue);
        q.asked += 1;
        let ticket = q.asked;
        s.wake.notify_all();
        let deadline = Instant::now() + Duration::from_secs(30);
        while q.done < ticket && !q.finished {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(OTelSdkError::Timeout(Duration::from_secs(30)));
            }
            q = s
                .wake
                .wait_timeout(q, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        if q.last_ok {
            Ok(())
        } else {
            Err(OTelSdkError::InternalFailure(
                "the collector did not take the records; they are kept and retried".into(),
            ))
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let s = &self.shared;
        let mut q = lock(&s.queue);
        q.shutdown = true;
        s.wake.notify_all();
        let deadline = Instant::now() + timeout;
        while !q.finished {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(OTelSdkError::Timeout(timeout));
            }
            q = s
                .wake
                .wait_timeout(q, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        drop(q);
        lock(&s.exporter).shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        lock(&self.shared.exporter).set_resource(resource);
    }
}
