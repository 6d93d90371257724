//! The Grafana dashboard parses, and every metric and label its PromQL uses is one the crate
//! emits, under the names the collector's Prometheus exporter gives them.

use std::collections::BTreeSet;

use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use tracing::info_span;
use tracing_llm_usage::UsageLayer;
use tracing_subscriber::prelude::*;

/// What the crate exported for calls that touch every instrument (latest metrics on, a
/// streamed call, a failed one, every token kind): (name, unit, is a counter) and the
/// attribute keys.
fn emitted() -> (BTreeSet<(String, String, bool)>, BTreeSet<String>) {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let (layer, guard) = UsageLayer::builder()
        .meter(provider.meter("test"))
        .latest_experimental_metrics(true)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let run = info_span!("run", run_id = "r1", task = "t1");
        let _run = run.enter();
        drop(info_span!(
            "chat",
            step = "draft",
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = "openai",
            gen_ai.request.model = "gpt-4o",
            gen_ai.response.model = "gpt-4o-2024-08-06",
            gen_ai.request.stream = true,
            gen_ai.response.time_to_first_chunk = 0.25,
            gen_ai.usage.input_tokens = 1000u64,
            gen_ai.usage.output_tokens = 80u64,
            gen_ai.usage.cache_read.input_tokens = 200u64,
            gen_ai.usage.cache_write.input_tokens = 100u64,
            gen_ai.usage.reasoning_tokens = 20u64,
            gen_ai.usage.audio.input_tokens = 600u64
        ));
        drop(info_span!(
            "llm_call",
            step = "review",
            model = "gpt-4o",
            provider = "openai",
            tokens.input = 10u64,
            tokens.output = 1u64,
            error = "timeout"
        ));
    });
    drop(guard);
    provider.force_flush().unwrap();
    let mut metrics = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for rm in exporter.get_finished_metrics().unwrap() {
        for sm in rm.scope_metrics() {
            for m in sm.metrics() {
                let (counter, attrs): (bool, Vec<_>) = match m.data() {
                    AggregatedMetrics::U64(MetricData::Histogram(h)) => (
                        false,
                        h.data_points().flat_map(|p| p.attributes()).collect(),
                    ),
                    AggregatedMetrics::F64(MetricData::Histogram(h)) => (
                        false,
                        h.data_points().flat_map(|p| p.attributes()).collect(),
                    ),
                    AggregatedMetrics::U64(MetricData::Sum(s)) => {
                        (true, s.data_points().flat_map(|p| p.attributes()).collect())
                    }
                    other => panic!("{}: unexpected data {other:?}", m.name()),
                };
                keys.extend(attrs.into_iter().map(|kv| kv.key.to_string()));
                metrics.insert((m.name().to_owned(), m.unit().to_owned(), counter));
            }
        }
    }
    (metrics, keys)
}

/// The collector's translation (prometheus translator, with unit and type suffixes): dots and
/// other characters become `_`; a `{…}` unit adds nothing, `s` adds `_seconds`, other units
/// are appended as they are; counters end in `_total`; histograms are `_bucket`, `_sum`,
/// `_count`.
fn prometheus_names(metrics: &BTreeSet<(String, String, bool)>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (name, unit, counter) in metrics {
        let mut base = sanitize(name);
        let suffix = match unit.as_str() {
            u if u.starts_with('{') => String::new(),
            "s" => "seconds".into(),
            "ms" => "milliseconds".into(),
            "By" => "bytes".into(),
            u => sanitize(u),
        };
        if !suffix.is_empty() && !base.ends_with(&suffix) {
            base = format!("{base}_{suffix}");
        }
        if *counter {
            out.insert(format!("{base}_total"));
        } else {
            for s in ["bucket", "sum", "count"] {
                out.insert(format!("{base}_{s}"));
            }
        }
    }
    out
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn identifiers(expr: &str) -> Vec<(String, Option<char>)> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_alphabetic() || chars[i] == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().copied().find(|c| !c.is_whitespace());
            out.push((word, next));
        } else if chars[i] == '"' {
            // skip string literals (label values)
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
            i += 1;
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn the_dashboard_uses_only_what_the_crate_emits() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/grafana/dashboards/llm-usage.json"
    );
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (metrics, keys) = emitted();
    // Every instrument: three stable histograms, five usage counters, four latest histograms.
    assert_eq!(metrics.len(), 12, "{metrics:?}");
    let emitted = prometheus_names(&metrics);
    assert!(emitted.contains("gen_ai_client_token_usage_sum"));
    assert!(emitted.contains("gen_ai_client_operation_duration_seconds_bucket"));
    assert!(
        keys.contains("llm.step") && keys.contains("error.type"),
        "{keys:?}"
    );
    let mut labels: BTreeSet<String> = keys.iter().map(|a| a.replace('.', "_")).collect();
    labels.insert("le".into());
    // PromQL's own words and Grafana's variables
    let keywords = ["sum", "by", "rate", "histogram_quantile", "__rate_interval"];

    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    let mut used = BTreeSet::new();
    let mut logql = 0;
    for panel in panels {
        if panel["datasource"]["type"] == "loki" {
            check_logql(panel);
            logql += 1;
            continue;
        }
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            let mut metrics_in_expr = 0;
            for (word, next) in identifiers(expr) {
                if keywords.contains(&word.as_str()) {
                    continue;
                }
                if matches!(next, Some('[') | Some('{')) {
                    assert!(
                        emitted.contains(&word),
                        "{word} in {expr:?} is not emitted; emitted: {emitted:?}"
                    );
                    used.insert(word);
                    metrics_in_expr += 1;
                } else {
                    assert!(
                        labels.contains(&word),
                        "label {word} in {expr:?} is not an attribute"
                    );
                }
            }
            assert!(metrics_in_expr > 0, "{expr}");
        }
    }
    assert_eq!(logql, 2, "the two tables over the log records");
    for needed in [
        "gen_ai_client_token_usage_sum",
        "gen_ai_usage_cost_USD_sum",
        "gen_ai_client_operation_duration_seconds_bucket",
        "gen_ai_client_operation_duration_seconds_count",
    ] {
        assert!(used.contains(needed), "{needed} is charted");
    }
}

/// A LogQL panel names only the log records' attributes, as Loki stores them (structured
/// metadata: dots become underscores), and the resource's `service_name`.
fn check_logql(panel: &serde_json::Value) {
    let attributes: BTreeSet<String> = tracing_llm_usage::otel::logs::ATTRIBUTES
        .iter()
        .map(|a| a.replace('.', "_"))
        .chain(["service_name".to_owned()])
        .collect();
    let keywords = [
        "topk",
        "sum",
        "max",
        "by",
        "sum_over_time",
        "max_over_time",
        "unwrap",
        "h",
    ];
    for t in panel["targets"].as_array().unwrap() {
        let expr = t["expr"].as_str().unwrap();
        let mut named = 0;
        for (word, _) in identifiers(expr) {
            if keywords.contains(&word.as_str()) {
                continue;
            }
            assert!(
                attributes.contains(&word),
                "{word} in {expr:?} is not an attribute of the records"
            );
            named += 1;
        }
        assert!(expr.contains("unwrap llm_cost_usd"), "{expr}");
        assert!(named >= 3, "{expr}");
    }
}

#[test]
fn the_collector_config_has_a_metrics_and_a_logs_pipeline() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/grafana/otel-collector.yaml"
    );
    let config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let pipelines = &config["service"]["pipelines"];
    for (name, exporter) in [("metrics", "prometheus"), ("logs", "otlphttp/loki")] {
        let pipeline = &pipelines[name];
        assert_eq!(pipeline["receivers"][0], "otlp", "{name}");
        let exporters: Vec<&str> = pipeline["exporters"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert!(exporters.contains(&exporter), "{name}: {exporters:?}");
        for e in exporters {
            assert!(
                config["exporters"].get(e).is_some(),
                "{e} is used but not defined"
            );
        }
    }
    let compose_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/grafana/docker-compose.yml"
    );
    let compose: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(compose_path).unwrap()).unwrap();
    assert!(compose["services"].get("loki").is_some());
}
