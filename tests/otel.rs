//! The OpenTelemetry instruments, read back through the SDK's in-memory exporter: names,
//! units, attribute sets, bucket boundaries, counts and sums equal what the JSONL adds up to.

mod common;

use std::collections::BTreeMap;

use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{
    InMemoryMetricExporter, PeriodicReader, SdkMeterProvider, Temporality,
};
use serde_json::Value;
use tracing::{dispatcher, info_span};
use tracing_subscriber::prelude::*;

/// `gen_ai.client.token.usage`: powers of 4 from 1 to 67,108,864.
const TOKEN_BUCKETS: [f64; 14] = [
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];
/// `gen_ai.client.operation.duration`: 0.01 s doubling to 81.92 s.
const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// `gen_ai.usage.cost`, in USD.
const COST_BUCKETS: [f64; 13] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
use tracing_llm_usage::{UsageLayer, UsageLayerBuilder};

type Attrs = BTreeMap<String, String>;

/// One data point: attributes, count, sum, bucket counts, bounds.
#[derive(Debug, Clone)]
struct Point {
    attrs: Attrs,
    count: u64,
    sum: f64,
    buckets: Vec<u64>,
    bounds: Vec<f64>,
}

fn attrs<'a>(kvs: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> Attrs {
    kvs.map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect()
}

/// The last export of `name`: its unit and points.
fn metric(all: &[ResourceMetrics], name: &str) -> Option<(String, Vec<Point>)> {
    let rm = all.last()?;
    for sm in rm.scope_metrics() {
        for m in sm.metrics() {
            if m.name() != name {
                continue;
            }
            let points = match m.data() {
                AggregatedMetrics::U64(MetricData::Histogram(h)) => {
                    assert_eq!(h.temporality(), Temporality::Cumulative);
                    h.data_points()
                        .map(|p| Point {
                            attrs: attrs(p.attributes()),
                            count: p.count(),
                            sum: p.sum() as f64,
                            buckets: p.bucket_counts().collect(),
                            bounds: p.bounds().collect(),
                        })
                        .collect()
                }
                AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                    assert_eq!(h.temporality(), Temporality::Cumulative);
                    h.data_points()
                        .map(|p| Point {
                            attrs: attrs(p.attributes()),
                            count: p.count(),
                            sum: p.sum(),
                            buckets: p.bucket_counts().collect(),
                            bounds: p.bounds().collect(),
                        })
                        .collect()
                }
                AggregatedMetrics::U64(MetricData::Sum(s)) => {
                    assert!(s.is_monotonic());
                    s.data_points()
                        .map(|p| Point {
                            attrs: attrs(p.attributes()),
                            count: 0,
                            sum: p.value() as f64,
                            buckets: vec![],
                            bounds: vec![],
                        })
                        .collect()
                }
                other => panic!("{name}: unexpected data {other:?}"),
            };
            return Some((m.unit().to_owned(), points));
        }
    }
    None
}

fn set(pairs: &[(&str, &str)]) -> Attrs {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct Run {
    exported: Vec<ResourceMetrics>,
    lines: Vec<Value>,
}

/// The workload: four calls in one run, two steps, one failure, one unpriced model.
fn run(builder: impl FnOnce(UsageLayerBuilder) -> UsageLayerBuilder) -> Run {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let b = builder(UsageLayer::builder().meter(provider.meter("test")));
    let (d, _handle, guard, buf) = common::setup(b);
    dispatcher::with_default(&d, || {
        let run = info_span!("run", run_id = "otel-run", agent = "planner");
        let _r = run.enter();
        drop(info_span!(
            "llm_call",
            step = "draft",
            model = "gpt-4o",
            provider = "openai",
            tokens.input = 1000,
            tokens.output = 100
        ));
        drop(info_span!(
            "llm_call",
            step = "draft",
            model = "gpt-4o",
            provider = "openai",
            tokens.input = 2000,
            tokens.output = 200,
            tokens.cache_read = 500
        ));
        drop(info_span!(
            "llm_call",
            step = "review",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.response.model = "claude-sonnet-4-5-20250929",
            provider = "anthropic",
            tokens.input = 3000,
            tokens.output = 300,
            error = "timeout"
        ));
        drop(info_span!(
            "llm_call",
            step = "draft",
            model = "acme-unknown",
            provider = "acme",
            task = "t1",
            tokens.input = 10,
            tokens.output = 1
        ));
    });
    drop(guard);
    provider.force_flush().unwrap();
    let exported = exporter.get_finished_metrics().unwrap();
    Run {
        exported,
        lines: buf.lines(),
    }
}

fn jsonl_sum(lines: &[Value], f: impl Fn(&Value) -> f64) -> f64 {
    common::calls(lines).into_iter().map(f).sum()
}

#[test]
fn instruments_match_the_jsonl() {
    let Run { exported, lines } = run(|b| b);

    let (unit, tokens) = metric(&exported, "gen_ai.client.token.usage").unwrap();
    assert_eq!(unit, "{token}");
    let gpt_input = set(&[
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", "openai"),
        ("gen_ai.request.model", "gpt-4o"),
        ("gen_ai.response.model", "gpt-4o"),
        ("gen_ai.token.type", "input"),
        ("llm.step", "draft"),
    ]);
    let p = tokens
        .iter()
        .find(|p| p.attrs == gpt_input)
        .expect("gpt-4o input point");
    assert_eq!((p.count, p.sum), (2, 3000.0));
    assert_eq!(p.bounds, TOKEN_BUCKETS.to_vec());
    // 1000 falls in (256, 1024], 2000 in (1024, 4096]
    let mut want = vec![0u64; 15];
    want[5] = 1;
    want[6] = 1;
    assert_eq!(p.buckets, want);
    let claude = set(&[
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", "anthropic"),
        ("gen_ai.request.model", "claude-sonnet-4-5"),
        ("gen_ai.response.model", "claude-sonnet-4-5-20250929"),
        ("gen_ai.token.type", "output"),
        ("llm.step", "review"),
    ]);
    assert_eq!(
        tokens.iter().find(|p| p.attrs == claude).unwrap().sum,
        300.0
    );
    assert_eq!(tokens.len(), 6, "three attribute sets × input/output");
    for (kind, field) in [("input", "input"), ("output", "output")] {
        let metric_sum: f64 = tokens
            .iter()
            .filter(|p| p.attrs["gen_ai.token.type"] == kind)
            .map(|p| p.sum)
            .sum();
        let log_sum = jsonl_sum(&lines, |l| l["tokens"][field].as_f64().unwrap());
        assert_eq!(metric_sum, log_sum, "{kind}");
    }
    for p in &tokens {
        assert!(!p.attrs.contains_key("run_id") && !p.attrs.contains_key("agent"));
    }

    let (unit, duration) = metric(&exported, "gen_ai.client.operation.duration").unwrap();
    assert_eq!(unit, "s");
    assert_eq!(duration.iter().map(|p| p.count).sum::<u64>(), 4);
    assert_eq!(duration[0].bounds, DURATION_BUCKETS.to_vec());
    let failed: Vec<_> = duration
        .iter()
        .filter(|p| p.attrs.contains_key("error.type"))
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].attrs["error.type"], "timeout");
    assert_eq!(failed[0].attrs["llm.step"], "review");
    let log_latency = jsonl_sum(&lines, |l| l["latency_ms"].as_f64().unwrap() / 1000.0);
    let metric_latency: f64 = duration.iter().map(|p| p.sum).sum();
    assert!((metric_latency - log_latency).abs() < 1e-9);

    let (unit, cost) = metric(&exported, "gen_ai.usage.cost").unwrap();
    assert_eq!(unit, "USD");
    assert_eq!(
        cost.iter().map(|p| p.count).sum::<u64>(),
        3,
        "the unpriced call is not recorded"
    );
    assert_eq!(cost[0].bounds, COST_BUCKETS.to_vec());
    let log_cost = jsonl_sum(&lines, |l| l["cost_usd"].as_f64().unwrap_or(0.0));
    let metric_cost: f64 = cost.iter().map(|p| p.sum).sum();
    assert!(
        (metric_cost - log_cost).abs() < 1e-9,
        "{metric_cost} vs {log_cost}"
    );
    assert!(cost
        .iter()
        .all(|p| p.attrs.get("gen_ai.provider.name").map(String::as_str) != Some("acme")));
    let unpriced = tokens
        .iter()
        .find(|p| p.attrs["gen_ai.provider.name"] == "acme")
        .unwrap();
    assert_eq!(unpriced.attrs["llm.task"], "t1");

    assert!(
        metric(&exported, "gen_ai.client.inference.usage.input_tokens").is_none(),
        "opt-in only"
    );
}

#[test]
fn upcoming_counters_when_opted_in() {
    let Run { exported, lines } = run(|b| b.latest_experimental_metrics(true));
    for (name, field) in [
        ("gen_ai.client.inference.usage.input_tokens", "input"),
        ("gen_ai.client.inference.usage.output_tokens", "output"),
        (
            "gen_ai.client.inference.usage.cache_read.input_tokens",
            "cache_read",
        ),
        (
            "gen_ai.client.inference.usage.cache_write.input_tokens",
            "cache_write",
        ),
        (
            "gen_ai.client.inference.usage.reasoning.output_tokens",
            "reasoning",
        ),
    ] {
        let (unit, points) = metric(&exported, name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(unit, "{token}");
        // No call reported a breakdown by modality.
        assert!(points
            .iter()
            .all(|p| p.attrs["gen_ai.token.modality"] == "unknown"));
        let metric_sum: f64 = points.iter().map(|p| p.sum).sum();
        let log_sum = jsonl_sum(&lines, |l| l["tokens"][field].as_f64().unwrap());
        assert_eq!(metric_sum, log_sum, "{name}");
    }
}

#[test]
fn step_values_are_capped_and_attributes_can_be_turned_off() {
    let Run { exported, .. } = run(|b| b.metric_attribute_cap(1));
    let (_, tokens) = metric(&exported, "gen_ai.client.token.usage").unwrap();
    let steps: std::collections::BTreeSet<_> =
        tokens.iter().map(|p| p.attrs["llm.step"].clone()).collect();
    assert_eq!(
        steps.into_iter().collect::<Vec<_>>(),
        vec!["__other__", "draft"]
    );

    let Run { exported, .. } = run(|b| b.metric_step_attribute(false).metric_task_attribute(false));
    let (_, tokens) = metric(&exported, "gen_ai.client.token.usage").unwrap();
    assert!(tokens
        .iter()
        .all(|p| !p.attrs.contains_key("llm.step") && !p.attrs.contains_key("llm.task")));
    assert_eq!(tokens.len(), 6);
}

#[test]
fn budget_exceeded_counter_carries_the_budget_name() {
    let Run { exported, lines } = run(|b| {
        b.budget(tracing_llm_usage::Budget::per_run("run-tokens").tokens(2_500))
            .budget(tracing_llm_usage::Budget::per_day("day-tokens").tokens(1_000_000))
    });
    let (_, points) = metric(&exported, "llm.budget.exceeded").expect("the counter");
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].attrs, set(&[("llm.budget.name", "run-tokens")]));
    assert_eq!(points[0].sum, 1.0, "once per budget and run");
    let crossed: Vec<_> = lines
        .iter()
        .filter(|l| l["event"] == "budget_exceeded")
        .collect();
    assert_eq!(crossed.len(), 1);
    // 1100 + 2200 = 3300 tokens > 2500: the second call crossed
    assert_eq!(crossed[0]["value"], 3300.0);
}

#[test]
fn latest_instruments_split_usage_by_modality_and_add_up() {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let b = UsageLayer::builder()
        .meter(provider.meter("test"))
        .latest_experimental_metrics(true);
    let (d, _handle, guard, _buf) = common::setup(b);
    dispatcher::with_default(&d, || {
        drop(info_span!(
            "generate_content",
            gen_ai.operation.name = "generate_content",
            gen_ai.provider.name = "gcp.gemini",
            gen_ai.request.model = "gemini-2.5-flash",
            gen_ai.response.time_to_first_chunk = 0.25,
            gen_ai.usage.input_tokens = 1000u64,
            gen_ai.usage.output_tokens = 80u64,
            gen_ai.usage.cache_read.input_tokens = 200u64,
            gen_ai.usage.text.input_tokens = 300u64,
            gen_ai.usage.audio.input_tokens = 600u64,
            gen_ai.usage.text.output_tokens = 80u64,
            gen_ai.usage.audio.cache_read.input_tokens = 200u64
        ));
        drop(info_span!(
            "llm_call",
            model = "gemini-2.5-flash",
            provider = "gcp.gemini",
            gen_ai.operation.name = "generate_content",
            tokens.input = 100u64,
            tokens.output = 10u64,
            tokens.cache_write = 40u64,
            error = "timeout"
        ));
    });
    drop(guard);
    provider.force_flush().unwrap();
    let exported = exporter.get_finished_metrics().unwrap();
    let by_modality = |name: &str| -> BTreeMap<String, f64> {
        let (_, points) = metric(&exported, name).unwrap_or_else(|| panic!("{name}"));
        let mut out = BTreeMap::new();
        for p in points {
            *out.entry(p.attrs["gen_ai.token.modality"].clone())
                .or_insert(0.0) += p.sum;
        }
        out
    };
    let expect = |pairs: &[(&str, f64)]| -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    // 1000 = 300 text + 600 audio + 100 not broken down; plus the second call's 100.
    assert_eq!(
        by_modality("gen_ai.client.inference.usage.input_tokens"),
        expect(&[("audio", 600.0), ("text", 300.0), ("unknown", 200.0)])
    );
    assert_eq!(
        by_modality("gen_ai.client.inference.usage.output_tokens"),
        expect(&[("text", 80.0), ("unknown", 10.0)])
    );
    assert_eq!(
        by_modality("gen_ai.client.inference.usage.cache_read.input_tokens"),
        expect(&[("audio", 200.0), ("unknown", 0.0)])
    );
    assert_eq!(
        by_modality("gen_ai.client.inference.usage.cache_write.input_tokens"),
        expect(&[("unknown", 40.0)])
    );
    let (unit, input) =
        metric(&exported, "gen_ai.client.inference.operation.input_tokens").unwrap();
    assert_eq!(unit, "{token}");
    assert_eq!(input.iter().map(|p| p.count).sum::<u64>(), 2);
    assert_eq!(input.iter().map(|p| p.sum).sum::<f64>(), 1100.0);
    assert!(input
        .iter()
        .all(|p| !p.attrs.contains_key("gen_ai.token.modality")));
    assert_eq!(input[0].bounds, TOKEN_BUCKETS.to_vec());
    let (_, output) = metric(&exported, "gen_ai.client.inference.operation.output_tokens").unwrap();
    assert_eq!(output.iter().map(|p| p.sum).sum::<f64>(), 90.0);
    let (unit, duration) = metric(&exported, "gen_ai.client.inference.duration").unwrap();
    assert_eq!(unit, "s");
    assert_eq!(duration.iter().map(|p| p.count).sum::<u64>(), 2);
    assert_eq!(
        duration
            .iter()
            .filter(|p| p.attrs.get("error.type").map(String::as_str) == Some("timeout"))
            .count(),
        1
    );
    assert_eq!(duration[0].bounds, DURATION_BUCKETS.to_vec());
    let (_, ttft) = metric(&exported, "gen_ai.client.inference.time_to_first_chunk").unwrap();
    assert_eq!(ttft.len(), 1);
    assert_eq!((ttft[0].count, ttft[0].sum), (1, 0.25));
}

/// The sum of every `gen_ai.client.token.usage` point of one export (all attribute sets).
fn usage_sum(rm: &ResourceMetrics) -> f64 {
    let mut sum = 0.0;
    for sm in rm.scope_metrics() {
        for m in sm.metrics() {
            if m.name() != "gen_ai.client.token.usage" {
                continue;
            }
            if let AggregatedMetrics::U64(MetricData::Histogram(h)) = m.data() {
                sum += h.data_points().map(|p| p.sum() as f64).sum::<f64>();
            }
        }
    }
    sum
}

/// Every measurement is kept, whatever the temporality, across collections, and when the
/// layer's series cache starts over (more attribute sets than it keeps bound instruments
/// for): each export holds exactly what was measured since the one before (delta), or since
/// the start (cumulative).
#[test]
fn measurements_survive_collections_and_series_turnover() {
    for temporality in [Temporality::Delta, Temporality::Cumulative] {
        let exporter = opentelemetry_sdk::metrics::InMemoryMetricExporterBuilder::new()
            .with_temporality(temporality)
            .build();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let (layer, guard) = UsageLayer::builder()
            .meter(provider.meter("test"))
            .jsonl_writer(std::io::sink)
            .build()
            .unwrap();
        let handle = layer.handle();
        let d = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        let mut written = 0u64;
        let mut want = Vec::new();
        // Round 1 repeats a few sets; round 2 goes through 1,500 sets (beyond the 1,024 the
        // cache keeps); round 3 returns to the first sets, whose instruments were released.
        for (round, models) in [(0u64, 4u64), (1, 1500), (2, 4)] {
            let mut input = 0u64;
            dispatcher::with_default(&d, || {
                for i in 0..models.max(400) {
                    let tokens = 10 + round * 1000 + i;
                    drop(info_span!(
                        "llm_call",
                        step = "s",
                        model = %format_args!("model-{}", i % models),
                        provider = "openai",
                        tokens.input = tokens,
                        tokens.output = 1u64
                    ));
                    input += tokens + 1;
                    written += 1;
                }
            });
            while handle.stats().lines_written < written {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            provider.force_flush().unwrap();
            want.push(input as f64);
        }
        drop(guard);
        let exports = exporter.get_finished_metrics().unwrap();
        let got: Vec<f64> = exports.iter().map(usage_sum).collect();
        let want: Vec<f64> = match temporality {
            Temporality::Delta => want,
            _ => want
                .iter()
                .scan(0.0, |acc, w| {
                    *acc += w;
                    Some(*acc)
                })
                .collect(),
        };
        assert_eq!(got[..3], want[..], "{temporality:?}");
    }
}
