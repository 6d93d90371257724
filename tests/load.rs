//! Load: 2 threads × 1,000,000 calls plus 10,000 runs through tokio tasks, at once. The JSONL
//! (summed as it is written, never held), the handle and the cumulative OTel sums all agree
//! to the token.
#![cfg(feature = "otlp")]

use std::io;
use std::sync::{Arc, Mutex};

use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{
    InMemoryMetricExporter, InMemoryMetricExporterBuilder, PeriodicReader, SdkMeterProvider,
    Temporality,
};
use serde::Deserialize;
use tracing::instrument::{Instrument, WithSubscriber};
use tracing::{dispatcher, info_span, Dispatch};
use tracing_llm_usage::UsageLayer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

const THREAD_CALLS: u64 = 1_000_000;
const RUNS: u64 = 10_000;
const CALLS_PER_RUN: u64 = 3;

#[derive(Default, Debug, PartialEq)]
struct Sums {
    calls: u64,
    summaries: u64,
    input: u64,
    output: u64,
    partial: Vec<u8>,
}

#[derive(Deserialize)]
struct Line {
    event: String,
    #[serde(default)]
    tokens: Option<Tokens>,
}
#[derive(Deserialize)]
struct Tokens {
    input: u64,
    output: u64,
}

/// A writer that parses and sums each complete line as it arrives.
#[derive(Clone, Default)]
struct Summing(Arc<Mutex<Sums>>);

impl io::Write for &Summing {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let mut s = self.0.lock().unwrap();
        s.partial.extend_from_slice(b);
        let end = s
            .partial
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |i| i + 1);
        let complete: Vec<u8> = s.partial.drain(..end).collect();
        for line in complete.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            let l: Line = serde_json::from_slice(line).expect("a valid line");
            match l.event.as_str() {
                "llm_call" => {
                    let t = l.tokens.expect("tokens");
                    s.calls += 1;
                    s.input += t.input;
                    s.output += t.output;
                }
                "run_summary" => s.summaries += 1,
                other => panic!("unexpected line {other}"),
            }
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Summing {
    type Writer = &'a Summing;
    fn make_writer(&'a self) -> &'a Summing {
        self
    }
}

fn histogram_sum(exporter: &InMemoryMetricExporter, name: &str, token_type: &str) -> u64 {
    let metrics = exporter.get_finished_metrics().unwrap();
    let last = metrics.last().expect("an export");
    let mut sum = 0;
    for scope in last.scope_metrics() {
        for m in scope.metrics().filter(|m| m.name() == name) {
            if let AggregatedMetrics::U64(MetricData::Histogram(h)) = m.data() {
                for p in h.data_points() {
                    if p.attributes().any(|kv| kv.value.as_str() == token_type) {
                        sum += p.sum();
                    }
                }
            }
        }
    }
    sum
}

#[test]
fn two_threads_of_a_million_calls_and_ten_thousand_async_runs_are_exact() {
    let exporter = InMemoryMetricExporterBuilder::new()
        .with_temporality(Temporality::Cumulative)
        .build();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let out = Summing::default();
    let (layer, guard) = UsageLayer::builder()
        .jsonl_writer(out.clone())
        .meter(provider.meter("load"))
        .build()
        .unwrap();
    let handle = layer.handle();
    let d = Dispatch::new(tracing_subscriber::registry().with(layer));

    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let d = d.clone();
            std::thread::spawn(move || {
                dispatcher::with_default(&d, || {
                    let run = info_span!("run", run_id = %format_args!("thread-{t}"));
                    let _in_run = run.enter();
                    for k in 0..THREAD_CALLS {
                        drop(info_span!(
                            "llm_call",
                            model = "gpt-4o",
                            tokens.input = k % 1000,
                            tokens.output = 1
                        ));
                    }
                })
            })
        })
        .collect();

    let worker_default = d.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(move || std::mem::forget(dispatcher::set_default(&worker_default)))
        .build()
        .unwrap();
    // Run spans are made on this thread: with our dispatcher, as a global default would be.
    dispatcher::with_default(&d, || {
        rt.block_on(async {
            let tasks: Vec<_> = (0..RUNS)
                .map(|r| {
                    let run = info_span!("run", run_id = %format_args!("async-{r}"));
                    let work = async move {
                        for c in 0..CALLS_PER_RUN {
                            let call = info_span!(
                                "llm_call",
                                model = "gpt-4o",
                                tokens.input = r,
                                tokens.output = c
                            );
                            async { tokio::task::yield_now().await }
                                .instrument(call)
                                .await;
                        }
                    };
                    tokio::spawn(work.instrument(run).with_subscriber(d.clone()))
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        })
    });
    drop(rt);
    for t in threads {
        t.join().unwrap();
    }
    drop(guard);
    provider.force_flush().unwrap();

    let calls = 2 * THREAD_CALLS + RUNS * CALLS_PER_RUN;
    // k % 1000 over a million calls, twice; r over 10,000 runs, three times each.
    let input = 2 * (THREAD_CALLS / 1000) * 999 * 1000 / 2 + CALLS_PER_RUN * RUNS * (RUNS - 1) / 2;
    // 1 per thread call; 0 + 1 + 2 per run.
    let output = 2 * THREAD_CALLS + RUNS * 3;

    let s = out.0.lock().unwrap();
    assert_eq!(
        (s.calls, s.input, s.output),
        (calls, input, output),
        "JSONL"
    );
    assert_eq!(s.summaries, RUNS + 2, "one summary per run");
    assert!(s.partial.is_empty());
    let t = handle.totals();
    assert_eq!(
        (t.calls, t.input_tokens, t.output_tokens),
        (calls, input, output),
        "handle"
    );
    assert_eq!(handle.stats().lines_dropped, 0);
    assert_eq!(handle.open_runs(), 0);
    assert_eq!(
        histogram_sum(&exporter, "gen_ai.client.token.usage", "input"),
        input,
        "OTel input"
    );
    assert_eq!(
        histogram_sum(&exporter, "gen_ai.client.token.usage", "output"),
        output,
        "OTel output"
    );
}
