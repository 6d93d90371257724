//! What the metrics tests share: calls, a provider exporting to memory, and readings of it.

use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

use super::{MetricOptions, Recorder};
use crate::record::CallRecord;

/// A call to `model` with `input` tokens in and 1 out; its names are fresh `Arc`s, as when
/// they are not interned.
pub(crate) fn call_to(model: &str, input: u64) -> CallRecord {
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

/// (count, sum, points) of the token histogram, at the last export.
pub(crate) fn token_points(exporter: &InMemoryMetricExporter) -> (u64, u64, usize) {
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

/// Every histogram's name and number of points, at the last export.
pub(crate) fn points(exporter: &InMemoryMetricExporter) -> Vec<(String, usize)> {
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

/// A provider exporting to memory (only when flushed: the periodic reader's interval is the
/// default minute), its meter, and a recorder on it with step and task attributes.
pub(crate) fn unworked_meter() -> (InMemoryMetricExporter, SdkMeterProvider, Meter, Recorder) {
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
    let meter = provider.meter("t");
    let recorder = Recorder::new(&meter, opts);
    (exporter, provider, meter, recorder)
}
