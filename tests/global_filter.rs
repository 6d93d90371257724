//! Filters on the whole subscriber versus per-layer filters, and the layer's stderr warnings.
//! Each scenario runs in a child process: it installs a global subscriber, and its stderr is
//! what a user would see.

use std::process::Command;

use tracing::{debug_span, info_span};
use tracing_llm_usage::{PriceTable, UsageGuard, UsageHandle, UsageLayer};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::prelude::*;

const SCENARIO: &str = "LLM_USAGE_TEST_SCENARIO";

/// Runs `test` of this binary again in a child process with `scenario` (and `rust_log`), and
/// returns its stdout and stderr.
fn child(test: &str, scenario: &str, rust_log: &str) -> (String, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(SCENARIO, scenario)
        .env("RUST_LOG", rust_log)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

/// The layer without prices (no unpriced-model warnings), its guard and its handle.
fn usage_layer() -> (UsageLayer, UsageGuard, UsageHandle) {
    let (layer, guard) = UsageLayer::builder()
        .prices(PriceTable::new())
        .build()
        .unwrap();
    let handle = layer.handle();
    (layer, guard, handle)
}

/// The layer's warnings in `stderr`.
fn warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("tracing-llm-usage:"))
        .collect()
}

/// Three info-level calls in a run, then what the handle saw, on stdout.
fn workload(handle: &UsageHandle) {
    let run = info_span!("run", run_id = "r1");
    run.in_scope(|| {
        for _ in 0..3 {
            drop(info_span!(
                "llm_call",
                tokens.input = 10u64,
                tokens.output = 1u64
            ));
        }
        // A debug-level call span: counted whenever the usage layer is unfiltered.
        drop(debug_span!(
            "llm_call",
            tokens.input = 5u64,
            tokens.output = 1u64
        ));
    });
    let stats = handle.stats();
    println!(
        "calls={} input={} disabled={}",
        handle.totals().calls,
        handle.totals().input_tokens,
        stats.disabled_callsites
    );
}

#[test]
fn a_global_level_filter_that_hides_calls_is_reported() {
    if std::env::var(SCENARIO).as_deref() == Ok("global") {
        let (layer, _guard, handle) = usage_layer();
        tracing_subscriber::registry()
            .with(EnvFilter::from_default_env())
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
            .with(layer)
            .init();
        workload(&handle);
        return;
    }
    let (stdout, stderr) = child(
        "a_global_level_filter_that_hides_calls_is_reported",
        "global",
        "warn",
    );
    assert!(stdout.contains("calls=0 input=0 disabled=3"), "{stdout}");
    let w = warnings(&stderr);
    assert_eq!(w.len(), 3, "one warning per callsite: {stderr}");
    assert!(w[0].contains(r#"span "run" (target "global_filter", level INFO)"#));
    assert!(w[1].contains(r#"span "llm_call" (target "global_filter", level INFO)"#));
    assert!(w[2].contains(r#"span "llm_call" (target "global_filter", level DEBUG)"#));
    for line in w {
        assert!(line.contains("is disabled by a filter on the whole subscriber"));
        assert!(line.contains("fmt::layer().with_filter(EnvFilter::from_default_env())"));
    }
}

#[test]
fn per_layer_filters_under_rust_log_warn_count_every_call_silently() {
    if std::env::var(SCENARIO).as_deref() == Ok("per-layer") {
        let (layer, _guard, handle) = usage_layer();
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::sink)
                    .with_filter(EnvFilter::from_default_env()),
            )
            .with(layer)
            .init();
        workload(&handle);
        return;
    }
    let (stdout, stderr) = child(
        "per_layer_filters_under_rust_log_warn_count_every_call_silently",
        "per-layer",
        "warn",
    );
    assert!(stdout.contains("calls=4 input=35 disabled=0"), "{stdout}");
    assert_eq!(warnings(&stderr), Vec::<&str>::new());
}

#[test]
fn a_debug_call_span_counts_with_the_output_layer_filtered_at_info() {
    if std::env::var(SCENARIO).as_deref() == Ok("info") {
        let (layer, _guard, handle) = usage_layer();
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::sink)
                    .with_filter(LevelFilter::INFO),
            )
            .with(layer)
            .init();
        drop(debug_span!(
            "llm_call",
            tokens.input = 5u64,
            tokens.output = 1u64
        ));
        println!("calls={}", handle.totals().calls);
        return;
    }
    let (stdout, stderr) = child(
        "a_debug_call_span_counts_with_the_output_layer_filtered_at_info",
        "info",
        "",
    );
    assert!(stdout.contains("calls=1"), "{stdout}");
    assert_eq!(warnings(&stderr), Vec::<&str>::new());
}

#[test]
fn a_span_that_records_usage_but_is_no_call_warns_once_per_callsite() {
    if std::env::var(SCENARIO).as_deref() == Ok("uncounted") {
        let (layer, _guard, handle) = usage_layer();
        tracing_subscriber::registry().with(layer).init();
        for _ in 0..3 {
            drop(info_span!("chat_request", tokens.input = 10u64));
        }
        println!("uncounted={}", handle.stats().uncounted_spans);
        return;
    }
    let (stdout, stderr) = child(
        "a_span_that_records_usage_but_is_no_call_warns_once_per_callsite",
        "uncounted",
        "",
    );
    assert!(stdout.contains("uncounted=3"), "{stdout}");
    assert_eq!(
        warnings(&stderr),
        vec![
            "tracing-llm-usage: span \"chat_request\" (target \"global_filter\", level INFO) \
             recorded token usage (tokens.input) but is not an LLM call, so it is not counted; \
             name it \"llm_call\" (the builder's `span_name`), or give it a \
             `gen_ai.operation.name` of an inference operation (chat, chat_streaming, \
             text_completion, generate_content, embeddings; the builder's `genai_operations` \
             adds more)"
        ]
    );
}
