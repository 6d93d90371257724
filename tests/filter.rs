//! The layer under a per-layer filter (its own test binary: filters change callsite interest,
//! which is process-wide).

mod common;

use common::{calls, summary, Buf};
use tracing::{debug_span, dispatcher, info_span, Level};
use tracing_llm_usage::UsageLayer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

#[test]
fn a_per_layer_filter_keeps_the_run_span_visible() {
    let buf = Buf::default();
    let (layer, guard) = UsageLayer::builder()
        .jsonl_writer(buf.clone())
        .build()
        .unwrap();
    let handle = layer.handle();
    let filter = Targets::new().with_target("app", Level::INFO);
    // A second, unfiltered layer beside ours, as a service would have (its fmt layer).
    let d = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(layer.with_filter(filter))
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink)),
    );
    dispatcher::with_default(&d, || {
        let run = info_span!(target: "app", "run", run_id = "filtered");
        let _r = run.enter();
        // Disabled for our layer: its step must not leak into the calls below it.
        let hidden = debug_span!(target: "app", "detail", step = "hidden-step");
        let _h = hidden.enter();
        let other = info_span!(target: "other", "other_run", run_id = "not-ours");
        let _o = other.enter();
        drop(
            info_span!(target: "app", "llm_call", step = "visible", tokens.input = 9, tokens.output = 1),
        );
        drop(info_span!(target: "app", "llm_call", tokens.input = 1, tokens.output = 1));
        // Filtered out entirely.
        drop(debug_span!(target: "app", "llm_call", tokens.input = 1000, tokens.output = 1000));
    });
    drop(guard);
    let lines = buf.lines();
    let c = calls(&lines);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0]["run_id"], "filtered");
    assert_eq!(c[0]["step"], "visible");
    assert_eq!(c[1]["step"], serde_json::Value::Null);
    let s = summary(&lines, "filtered");
    assert_eq!(s["usage"]["input_tokens"], 10);
    assert_eq!(lines.len(), 3, "no summary for the run the filter hides");
    assert_eq!(handle.totals().calls, 2);
}
