//! Never a silent zero: a call whose model has no price and a call whose usage never arrived
//! are said to be unknown everywhere the layer speaks (the line, the run summary, the handle,
//! the budgets, the metrics), counted and named; a priced call beside them is priced exactly.

mod common;

use std::sync::{Arc, Mutex};

use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use serde_json::{json, Value};
use tracing::field::Empty;
use tracing::{dispatcher, info_span};
use tracing_llm_usage::{Budget, BudgetEvent, BudgetEventKind, UsageLayer};

/// claude-sonnet-4-5 in LiteLLM's file: 3e-6 a token in, 1.5e-5 out.
const PRICED: f64 = 10_000.0 * 3e-6 + 1_000.0 * 1.5e-5;

/// Histogram (count, sum) of every point of `name` in the last export.
fn histogram(exporter: &InMemoryMetricExporter, name: &str) -> (u64, f64) {
    let all = exporter.get_finished_metrics().unwrap();
    let mut out = (0, 0.0);
    for sm in all.last().unwrap().scope_metrics() {
        for m in sm.metrics().filter(|m| m.name() == name) {
            match m.data() {
                AggregatedMetrics::U64(MetricData::Histogram(h)) => {
                    for p in h.data_points() {
                        out.0 += p.count();
                        out.1 += p.sum() as f64;
                    }
                }
                AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                    for p in h.data_points() {
                        out.0 += p.count();
                        out.1 += p.sum();
                    }
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }
    out
}

#[test]
fn unknown_prices_and_missing_usage_are_null_counted_and_named() {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let events: Arc<Mutex<Vec<BudgetEvent>>> = Arc::default();
    let seen = events.clone();
    let (d, handle, guard, buf) = common::setup(
        UsageLayer::builder()
            .meter(provider.meter("test"))
            .budget(Budget::per_run("run-usd").usd(1.0))
            .budget(Budget::per_day("day-usd").usd(10.0))
            .budget(Budget::per_run("run-tokens").tokens(1_000_000))
            .on_budget(move |e| seen.lock().unwrap().push(e.clone())),
    );
    let snapshot = dispatcher::with_default(&d, || {
        let run = info_span!("run", run_id = "r1");
        let _r = run.enter();
        drop(info_span!(
            "llm_call",
            step = "draft",
            model = "claude-sonnet-4-5",
            provider = "anthropic",
            tokens.input = 10_000u64,
            tokens.output = 1_000u64
        ));
        drop(info_span!(
            "llm_call",
            step = "draft",
            model = "acme-private-7b",
            provider = "acme",
            tokens.input = 500u64,
            tokens.output = 50u64
        ));
        // A stream read without its usage: tokens declared, never recorded.
        drop(info_span!(
            "llm_call",
            step = "review",
            model = "claude-sonnet-4-5",
            provider = "anthropic",
            tokens.input = Empty,
            tokens.output = Empty
        ));
        // A request that failed before any usage.
        drop(info_span!(
            "llm_call",
            step = "review",
            model = "claude-sonnet-4-5",
            provider = "anthropic",
            error = "connection reset"
        ));
        // Before the next call, while the run is open.
        handle.remaining("r1")
    });
    drop(guard);
    provider.force_flush().unwrap();

    let lines = buf.lines();
    let calls = common::calls(&lines);
    assert_eq!(calls.len(), 4);
    let cost = |i: usize| calls[i]["cost_usd"].clone();
    assert!((cost(0).as_f64().unwrap() - PRICED).abs() < 1e-9);
    assert_eq!(calls[0]["cost_source"], "local");
    assert_eq!(
        (cost(1), &calls[1]["cost_source"]),
        (json!(null), &json!("unpriced"))
    );
    for i in [2, 3] {
        assert_eq!(cost(i), json!(null), "{}", calls[i]);
        assert_eq!(calls[i]["cost_source"], "no_usage");
        assert_eq!(calls[i]["tokens"]["total"], 0);
        let warnings = calls[i]["warnings"].as_array().unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| w.as_str().unwrap().contains("no token usage was recorded")),
            "{warnings:?}"
        );
    }
    assert_eq!(calls[3]["error"], "connection reset");

    // The run summary: the priced call's cost, the two unknowns counted apart, a warning.
    let s = common::summary(&lines, "r1");
    assert_eq!(s["status"], "error");
    assert!((s["usage"]["cost_usd"].as_f64().unwrap() - PRICED).abs() < 1e-9);
    assert_eq!(s["usage"]["unpriced_calls"], 3);
    assert_eq!(s["usage"]["call_count"], 4);
    assert!(s["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().contains("no token usage")));

    // The handle.
    let stats = handle.stats();
    assert_eq!(stats.no_usage_calls, 2);
    let totals = handle.totals();
    assert_eq!((totals.calls, totals.unpriced_calls), (4, 3));
    assert!((totals.cost_usd - PRICED).abs() < 1e-9);
    assert_eq!(handle.unpriced_models(), ["acme-private-7b"]);
    assert_eq!(snapshot.unpriced_calls, 3);
    assert!(!snapshot.is_certain());
    assert!((snapshot.usd.unwrap() - (1.0 - PRICED)).abs() < 1e-9);
    let spend = handle.run_spend("r1").unwrap();
    assert_eq!(spend.unpriced_calls, 3);

    // Budgets: one budget_unpriced line per budget and scope, at the first call it could not
    // count, naming the model and why; the token limit meets only the calls without usage.
    let unpriced: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"] == "budget_unpriced")
        .collect();
    let got: Vec<(String, String, String, String)> = unpriced
        .iter()
        .map(|l| {
            (
                l["budget"].as_str().unwrap().to_owned(),
                l["metric"].as_str().unwrap().to_owned(),
                l["model"].as_str().unwrap().to_owned(),
                l["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let row = |b: &str, m: &str, model: &str, r: &str| {
        (b.to_owned(), m.to_owned(), model.to_owned(), r.to_owned())
    };
    assert_eq!(
        got,
        [
            row("run-usd", "usd", "acme-private-7b", "no_price"),
            row("day-usd", "usd", "acme-private-7b", "no_price"),
            row("run-tokens", "tokens", "claude-sonnet-4-5", "no_usage"),
        ]
    );
    assert!((unpriced[0]["value"].as_f64().unwrap() - PRICED).abs() < 1e-9);
    let kinds: Vec<BudgetEventKind> = events.lock().unwrap().iter().map(|e| e.event).collect();
    assert_eq!(kinds, [BudgetEventKind::Unpriced; 3]);

    // Metrics: the cost histogram has the priced call only; token usage leaves out the calls
    // without usage (2 calls x input and output); every call has a duration.
    let (n, sum) = histogram(&exporter, "gen_ai.usage.cost");
    assert_eq!(n, 1);
    assert!((sum - PRICED).abs() < 1e-9);
    let (n, sum) = histogram(&exporter, "gen_ai.client.token.usage");
    assert_eq!((n, sum), (4, 11_550.0));
    let (n, _) = histogram(&exporter, "gen_ai.client.operation.duration");
    assert_eq!(n, 4);
}

#[test]
fn a_usd_budget_limited_to_an_unpriced_model_is_reported_at_build() {
    // The warning goes to stderr; what a test can see is that building still works and the
    // budget then reports the model's calls as unpriced, never as $0 spent.
    let (d, handle, guard, buf) = common::setup(
        UsageLayer::builder().budget(Budget::per_run("opus").usd(0.3).model("acme-unpriced")),
    );
    dispatcher::with_default(&d, || {
        let run = info_span!("run", run_id = "r2");
        let _r = run.enter();
        for _ in 0..3 {
            drop(info_span!(
                "llm_call",
                model = "acme-unpriced",
                tokens.input = 100_000u64,
                tokens.output = 10_000u64
            ));
        }
    });
    let left = handle.remaining("r2");
    assert_eq!(
        left.unpriced_calls, 0,
        "a filtered budget is not in remaining()"
    );
    drop(guard);
    let lines = buf.lines();
    let unpriced = lines
        .iter()
        .filter(|l| l["event"] == "budget_unpriced")
        .count();
    assert_eq!(unpriced, 1, "one line per budget and run, not one per call");
}
