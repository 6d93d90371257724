//! Recording off the caller's thread. The SDK's `record` hashes the attribute set for every
//! measurement (four per call): more than half of what the whole pipeline costs a caller.
//! Callers queue the finished [`CallRecord`] instead; a worker thread records the queue.
//!
//! Exact at every collection: the reader runs the callbacks of observable instruments before
//! it reads any instrument, and ours records whatever is still queued (and waits for the batch
//! the worker is recording), so an export or a `force_flush` sees every call that closed
//! before it, as when recording was synchronous. The queue is bounded: when it is full a
//! caller records its own call.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use opentelemetry::metrics::{Meter, ObservableGauge};
use tracing_core::Dispatch;

use super::{MetricOptions, Recorder};
use crate::record::CallRecord;

/// Calls queued before callers record their own (about 4 MB of records at most).
const MAX_QUEUED: usize = 16 * 1024;
/// How long the worker lets calls gather after a wake-up.
const LINGER: Duration = Duration::from_millis(1);

#[derive(Default)]
struct Queue {
    calls: Vec<CallRecord>,
    closed: bool,
    worker_waiting: bool,
}

struct Shared {
    recorder: Recorder,
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Held while a batch is recorded, so a collection waits for the one in flight.
    recording: Mutex<()>,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records everything queued now, on this thread.
    fn drain(&self) {
        let _recording = self.recording.lock().unwrap_or_else(|p| p.into_inner());
        let calls = std::mem::take(&mut self.queue().calls);
        for call in &calls {
            self.recorder.record(call);
        }
    }
}

/// The instruments and the worker that records into them.
pub(crate) struct Instruments {
    shared: Arc<Shared>,
    worker: Mutex<Option<thread::JoinHandle<()>>>,
    /// Registered only for its callback, which drains the queue before each collection; it
    /// observes nothing, so it is never exported.
    _flush: ObservableGauge<u64>,
}

impl Instruments {
    pub(crate) fn new(meter: &Meter, opts: MetricOptions) -> Self {
        Self::build(meter, opts, true)
    }

    /// With `worker == false` calls stay queued until a collection or the shutdown (tests).
    fn build(meter: &Meter, opts: MetricOptions, worker: bool) -> Self {
        let shared = Arc::new(Shared {
            recorder: Recorder::new(meter, opts),
            queue: Mutex::default(),
            ready: Condvar::new(),
            recording: Mutex::new(()),
        });
        let on_collect = Arc::downgrade(&shared);
        let flush = meter
            .u64_observable_gauge("llm_usage.internal.flush")
            .with_callback(move |_| {
                if let Some(shared) = on_collect.upgrade() {
                    shared.drain();
                }
            })
            .build();
        let worker_shared = shared.clone();
        let worker = if worker {
            let spawned = thread::Builder::new()
                .name("llm-usage-metrics".into())
                .spawn(move || {
                    // The SDK's own diagnostics must not come back into our layer.
                    tracing_core::dispatcher::with_default(&Dispatch::none(), || {
                        run_worker(&worker_shared)
                    });
                })
                .ok();
            // Without a worker thread every call is recorded by its caller: slower, exact.
            if spawned.is_none() {
                shared.queue().closed = true;
            }
            spawned
        } else {
            None
        };
        Self {
            shared,
            worker: Mutex::new(worker),
            _flush: flush,
        }
    }

    /// Queues one finished call for recording.
    pub(crate) fn record(&self, call: CallRecord) {
        let s = &self.shared;
        let mut q = s.queue();
        if q.closed || q.calls.len() >= MAX_QUEUED {
            drop(q);
            s.recorder.record(&call);
            return;
        }
        q.calls.push(call);
        let wake = std::mem::take(&mut q.worker_waiting);
        drop(q);
        if wake {
            s.ready.notify_one();
        }
    }

    /// Stops the worker and records what is left; later calls are recorded by their callers.
    pub(crate) fn shutdown(&self) {
        self.shared.queue().closed = true;
        self.shared.ready.notify_all();
        let worker = self.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(worker) = worker {
            let _ = worker.join();
        }
        self.shared.drain();
    }
}

impl Drop for Instruments {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run_worker(s: &Shared) {
    let mut batch = Vec::new();
    loop {
        {
            let mut q = s.queue();
            let mut woke = false;
            while q.calls.is_empty() && !q.closed {
                q.worker_waiting = true;
                q = s.ready.wait(q).unwrap_or_else(|p| p.into_inner());
                woke = true;
            }
            q.worker_waiting = false;
            if q.calls.is_empty() && q.closed {
                return;
            }
            if woke && !q.closed {
                // Just woken by a first call: let more gather rather than record it alone.
                drop(q);
                thread::sleep(LINGER);
            }
        }
        let _recording = s.recording.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut s.queue().calls, &mut batch);
        for call in &batch {
            s.recorder.record(call);
        }
        // The records' strings are released here, not on the callers' threads.
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::metrics::MeterProvider;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    fn call(input: u64) -> CallRecord {
        call_to("m", input)
    }

    /// A call to `model`; its names are fresh `Arc`s, as when they are not interned.
    fn call_to(model: &str, input: u64) -> CallRecord {
        let line = format!(
            r#"{{"timestamp":"2025-12-14T10:30:15.123Z","event":"llm_call","run_id":null,
            "step":null,"model":"{model}","provider":"p","task":null,"agent":null,
            "tokens":{{"input":{input},"output":1,"total":{},"cache_read":0,"cache_write":0,
            "reasoning":0}},"prompt_breakdown":{{}},"cost_usd":null,"cost_source":"unpriced",
            "price_version":null,"latency_ms":5,"estimated":false,"error":null,"warnings":[]}}"#,
            input + 1
        );
        serde_json::from_str(&line).unwrap()
    }

    /// (count, sum) of the token histogram's data points, at the last export.
    fn tokens(exporter: &InMemoryMetricExporter) -> (u64, u64) {
        let (count, sum, _) = token_points(exporter);
        (count, sum)
    }

    /// (count, sum, points) of the token histogram, at the last export.
    fn token_points(exporter: &InMemoryMetricExporter) -> (u64, u64, usize) {
        let all = exporter.get_finished_metrics().unwrap();
        let mut total = (0, 0, 0);
        for sm in all.last().unwrap().scope_metrics() {
            for m in sm.metrics() {
                if let AggregatedMetrics::U64(MetricData::Histogram(h)) = m.data() {
                    for p in h.data_points() {
                        total.0 += p.count();
                        total.1 += p.sum();
                        total.2 += 1;
                    }
                }
            }
        }
        total
    }

    /// Every metric's name and number of points, at the last export.
    fn points(exporter: &InMemoryMetricExporter) -> Vec<(String, usize)> {
        let all = exporter.get_finished_metrics().unwrap();
        let mut out = Vec::new();
        for sm in all.last().unwrap().scope_metrics() {
            for m in sm.metrics() {
                let n = match m.data() {
                    AggregatedMetrics::U64(MetricData::Histogram(h)) => h.data_points().count(),
                    AggregatedMetrics::F64(MetricData::Histogram(h)) => h.data_points().count(),
                    _ => continue,
                };
                out.push((m.name().to_owned(), n));
            }
        }
        out.sort();
        out
    }

    /// Instruments without a worker thread, on a provider exporting to memory.
    fn unworked() -> (InMemoryMetricExporter, SdkMeterProvider, Instruments) {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let opts = MetricOptions {
            step: true,
            task: true,
            cap: 8,
            latest_experimental: false,
        };
        let instruments = Instruments::build(&provider.meter("t"), opts, false);
        (exporter, provider, instruments)
    }

    #[test]
    fn series_stay_exact_when_the_cache_starts_over() {
        let (exporter, provider, instruments) = unworked();
        // Names that are not interned: every call is a new key, so the series cache fills
        // and starts over several times.
        for i in 0..5_000u64 {
            instruments.record(call_to(&format!("m{}", i % 50), i));
        }
        provider.force_flush().unwrap();
        // 0..5000 sum to 12,497,500; outputs are 1 each.
        assert_eq!(token_points(&exporter), (10_000, 12_497_500 + 5_000, 100));
        // No call is priced: no cost series, not even empty ones.
        assert_eq!(
            points(&exporter),
            [
                ("gen_ai.client.operation.duration".to_owned(), 50),
                ("gen_ai.client.token.usage".to_owned(), 100),
            ]
        );
    }

    #[test]
    fn a_collection_records_what_is_queued_first() {
        // No worker: only the collection's callback can record these.
        let (exporter, provider, instruments) = unworked();
        for i in 0..100 {
            instruments.record(call(i));
        }
        assert_eq!(instruments.shared.queue().calls.len(), 100);
        provider.force_flush().unwrap();
        // Two points per call (input and output); inputs 0..100 sum to 4,950.
        assert_eq!(tokens(&exporter), (200, 4950 + 100));
        assert!(instruments.shared.queue().calls.is_empty());

        // After the shutdown, calls are recorded by their callers at once.
        instruments.record(call(1000));
        instruments.shutdown();
        instruments.record(call(2000));
        assert!(instruments.shared.queue().calls.is_empty());
        provider.force_flush().unwrap();
        assert_eq!(tokens(&exporter), (204, 4950 + 100 + 3000 + 2));
    }
}
