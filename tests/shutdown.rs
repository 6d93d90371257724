//! The writer under stress: backlogs at shutdown, failing and re-entrant writers, open runs
//! at guard drop.

mod common;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{calls, setup, summaries, summary, Buf};
use tracing::{dispatcher, info_span, Dispatch};
use tracing_llm_usage::UsageLayer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

fn dispatch(layer: UsageLayer) -> Dispatch {
    Dispatch::new(tracing_subscriber::registry().with(layer))
}

#[test]
fn a_backlog_of_100_000_lines_at_guard_drop_all_reaches_the_writer() {
    // The first write sleeps, so that every line piles up in the queue.
    let first = AtomicUsize::new(0);
    let slow = Hooked {
        buf: Buf::default(),
        before: Arc::new(move |_| {
            if first.fetch_add(1, Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(300));
            }
        }),
    };
    let (layer, guard) = UsageLayer::builder()
        .jsonl_writer(slow.clone())
        .queue_capacity_bytes(256 << 20)
        .build()
        .unwrap();
    let handle = layer.handle();
    dispatcher::with_default(&dispatch(layer), || {
        for i in 0..100_000u64 {
            drop(info_span!(
                "llm_call",
                run_id = "bulk",
                tokens.input = i,
                tokens.output = 1
            ));
        }
    });
    // The writer is still asleep on its first write: everything else is queued.
    drop(guard);
    let text = slow.buf.text();
    assert_eq!(
        text.lines().count(),
        100_001,
        "100,000 calls and the orphan's summary"
    );
    let input: u64 = text
        .lines()
        .filter(|l| l.contains("\"llm_call\""))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["tokens"]["input"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(input, 100_000 * 99_999 / 2);
    assert_eq!(handle.stats().lines_dropped, 0);
}

#[test]
fn a_backlog_of_100_000_lines_reaches_the_rolling_file() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = UsageLayer::builder().jsonl_dir(dir.path()).build().unwrap();
    dispatcher::with_default(&dispatch(layer), || {
        let run = info_span!("run", run_id = "r");
        let _r = run.enter();
        for _ in 0..100_000u64 {
            drop(info_span!("llm_call", tokens.input = 3, tokens.output = 1));
        }
    });
    drop(guard);
    let mut lines = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        lines += std::fs::read_to_string(entry.unwrap().path())
            .unwrap()
            .lines()
            .count();
    }
    assert_eq!(lines, 100_001);
}

/// A writer that accepts `budget` bytes in total, then fails every write.
#[derive(Clone)]
struct Failing {
    buf: Buf,
    budget: Arc<Mutex<usize>>,
    kind: io::ErrorKind,
}

struct FailingWriter(Failing);

impl io::Write for FailingWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let mut budget = self.0.budget.lock().unwrap();
        if *budget == 0 {
            return Err(io::Error::new(self.0.kind, "injected failure"));
        }
        let n = b.len().min(*budget);
        *budget -= n;
        self.0.buf.0.lock().unwrap().extend_from_slice(&b[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Failing {
    type Writer = FailingWriter;
    fn make_writer(&'a self) -> FailingWriter {
        FailingWriter(self.clone())
    }
}

fn run_against_failing_writer(
    budget: usize,
    kind: io::ErrorKind,
) -> (
    String,
    tracing_llm_usage::LayerStats,
    tracing_llm_usage::Totals,
) {
    let failing = Failing {
        buf: Buf::default(),
        budget: Arc::new(Mutex::new(budget)),
        kind,
    };
    let (layer, guard) = UsageLayer::builder()
        .jsonl_writer(failing.clone())
        .build()
        .unwrap();
    let handle = layer.handle();
    dispatcher::with_default(&dispatch(layer), || {
        for r in 0..10u64 {
            let run = info_span!("run", run_id = r);
            let _r = run.enter();
            for _ in 0..10 {
                drop(info_span!("llm_call", tokens.input = 7, tokens.output = 2));
            }
        }
    });
    drop(guard);
    (failing.buf.text(), handle.stats(), handle.totals())
}

#[test]
fn a_writer_that_always_fails_never_reaches_the_application() {
    for kind in [
        io::ErrorKind::StorageFull,             // ENOSPC
        io::ErrorKind::PermissionDenied,        // EACCES
        io::Error::from_raw_os_error(5).kind(), // EIO
    ] {
        let (text, stats, totals) = run_against_failing_writer(0, kind);
        assert_eq!(text, "");
        assert_eq!(
            stats.lines_dropped, 110,
            "100 calls and 10 summaries lost, all counted"
        );
        assert_eq!(stats.lines_written, 0);
        assert!(stats.write_errors >= 1);
        assert_eq!(
            (totals.calls, totals.input_tokens, totals.output_tokens),
            (100, 700, 200)
        );
    }
}

#[test]
fn a_writer_failing_after_n_bytes_loses_exactly_the_lines_it_did_not_take() {
    let (text, stats, totals) = run_against_failing_writer(5000, io::ErrorKind::StorageFull);
    let complete = text.matches('\n').count() as u64;
    assert!(complete > 0 && complete < 110, "{complete}");
    assert_eq!(stats.lines_written, complete);
    assert_eq!(stats.lines_dropped, 110 - complete);
    assert_eq!(totals.input_tokens, 700);
    // complete lines are whole and valid; at most the last one is torn
    let whole = &text[..text.rfind('\n').unwrap() + 1];
    assert_eq!(common::parse_lines(whole).len() as u64, complete);
}

/// A writer into a [`Buf`] that runs `before` ahead of every write.
/// What a [`Hooked`] writer runs ahead of each write.
type Hook = Arc<dyn Fn(&[u8]) + Send + Sync>;

#[derive(Clone)]
struct Hooked {
    buf: Buf,
    before: Hook,
}

struct HookedWriter(Hooked);

impl io::Write for HookedWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        (self.0.before)(b);
        self.0.buf.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Hooked {
    type Writer = HookedWriter;
    fn make_writer(&'a self) -> HookedWriter {
        HookedWriter(self.clone())
    }
}

/// Logs through tracing, and even opens an `llm_call` span, on every write.
fn chatty(b: &[u8]) {
    tracing::info!(bytes = b.len(), "writing usage lines");
    drop(info_span!(
        "llm_call",
        run_id = "from-the-writer",
        tokens.input = 1_000_000
    ));
}

/// A disk that stalls: every write blocks for two seconds.
fn stalling(_: &[u8]) {
    std::thread::sleep(Duration::from_secs(2));
}

#[test]
fn a_re_entrant_writer_that_logs_does_not_deadlock_or_count() {
    let chatty = Hooked {
        buf: Buf::default(),
        before: Arc::new(chatty),
    };
    let (layer, guard) = UsageLayer::builder()
        .jsonl_writer(chatty.clone())
        .build()
        .unwrap();
    let handle = layer.handle();
    let d = dispatch(layer);
    // The writer's thread would otherwise fall back to this global default, which is ours.
    let _ = tracing::dispatcher::set_global_default(d.clone());
    dispatcher::with_default(&d, || {
        for _ in 0..50 {
            drop(info_span!(
                "llm_call",
                run_id = "app",
                tokens.input = 1,
                tokens.output = 1
            ));
        }
    });
    drop(guard);
    let lines = common::parse_lines(&chatty.buf.text());
    assert_eq!(calls(&lines).len(), 50);
    assert_eq!(summaries(&lines).len(), 1);
    assert_eq!(
        handle.totals().input_tokens,
        50,
        "the writer's own span is not counted"
    );
}

#[test]
fn guard_drop_summarises_open_runs_as_incomplete() {
    let (d, handle, guard, buf) = setup(UsageLayer::builder());
    let guard = Some(guard);
    dispatcher::with_default(&d, || {
        let mut guard = guard;
        let done = info_span!("run", run_id = "done");
        done.in_scope(|| drop(info_span!("llm_call", tokens.input = 1, tokens.output = 1)));
        drop(done);
        let open = info_span!("run", run_id = "still-open");
        let _o = open.enter();
        let step = info_span!("s", step = "writing");
        let _s = step.enter();
        drop(info_span!("llm_call", tokens.input = 40, tokens.output = 4));
        drop(info_span!("llm_call", tokens.input = 60, tokens.output = 6));
        assert_eq!(
            handle.run("still-open").unwrap().status,
            tracing_llm_usage::RunStatus::Running
        );
        drop(guard.take());
        // After shutdown: the call still counts in memory, its line is counted as dropped,
        // and the run closing later writes no second summary.
        drop(info_span!(
            "llm_call",
            tokens.input = 1000,
            tokens.output = 1
        ));
    });
    let lines = buf.lines();
    assert_eq!(summary(&lines, "done")["status"], "success");
    let open = summary(&lines, "still-open");
    assert_eq!(open["status"], "incomplete");
    assert_eq!(open["usage"]["input_tokens"], 100);
    assert_eq!(open["by_step"][0]["step"], "writing");
    assert_eq!(calls(&lines).len(), 3);
    assert_eq!(handle.stats().lines_dropped, 1);
    assert_eq!(handle.totals().input_tokens, 1101);
    assert_eq!(handle.open_runs(), 0);
}

#[cfg(feature = "otlp")]
#[test]
fn a_stalled_disk_never_stalls_the_application_and_metrics_stay_exact() {
    use opentelemetry::metrics::MeterProvider;
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let stalling = Hooked {
        buf: Buf::default(),
        before: Arc::new(stalling),
    };
    let (layer, guard) = UsageLayer::builder()
        .jsonl_writer(stalling.clone())
        .meter(provider.meter("stall"))
        .shutdown_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let handle = layer.handle();
    dispatcher::with_default(&dispatch(layer), || {
        for r in 0..10u64 {
            let run = info_span!("run", run_id = r);
            let _r = run.enter();
            for _ in 0..10 {
                drop(info_span!(
                    "llm_call",
                    model = "m",
                    tokens.input = 7,
                    tokens.output = 2
                ));
            }
        }
    });
    drop(guard); // bounded by the shutdown timeout, not by the disk
    let t = handle.totals();
    assert_eq!((t.calls, t.input_tokens, t.output_tokens), (100, 700, 200));
    provider.force_flush().unwrap();
    let exported = exporter.get_finished_metrics().unwrap();
    let sum: u64 = exported
        .last()
        .unwrap()
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .filter(|m| m.name() == "gen_ai.client.token.usage")
        .map(|m| match m.data() {
            opentelemetry_sdk::metrics::data::AggregatedMetrics::U64(
                opentelemetry_sdk::metrics::data::MetricData::Histogram(h),
            ) => h.data_points().map(|p| p.sum()).sum::<u64>(),
            _ => 0,
        })
        .sum();
    assert_eq!(sum, 900, "input + output tokens in the metrics");
    // Let the write in flight finish: what it carried is written, the rest was counted.
    std::thread::sleep(Duration::from_millis(2500));
    let stats = handle.stats();
    let written = stalling.buf.text().matches('\n').count() as u64;
    assert_eq!(stats.lines_written, written);
    assert_eq!(stats.lines_written + stats.lines_dropped, 110);
}
