//! ns per `llm_call` span, each case in its own dispatcher, the calls inside a run span:
//! the floor (registry + empty layer), the peers a user would otherwise stack (JSON `fmt` layer
//! to a non-blocking file, tracing-opentelemetry's `MetricsLayer`, and the two together), and
//! ours at each stage up to the full pipeline with pricing.
//!
//! ```text
//! cargo bench --bench pipeline -- --measurement-time 3
//! ```

#[path = "../examples/pipelines/mod.rs"]
mod pipelines;

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use pipelines::Stages;
use tracing::{dispatcher, info_span, Dispatch};

/// Runs one case in its own dispatcher, inside a run span, writing into a fresh directory that
/// is removed after it: a case's gigabyte of dirty pages must not be written back to disk
/// while the next case is measured.
fn bench_in(
    c: &mut Criterion,
    name: &str,
    make: impl FnOnce(&Path) -> (Dispatch, pipelines::Guards),
    f: fn(),
) {
    bench_in_run(c, name, make, f, || info_span!("run", run_id = "bench-run"));
}

/// [`bench_in`] inside the run span `run` makes.
fn bench_in_run(
    c: &mut Criterion,
    name: &str,
    make: impl FnOnce(&Path) -> (Dispatch, pipelines::Guards),
    f: fn(),
    run: fn() -> tracing::Span,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (d, guards) = make(dir.path());
    dispatcher::with_default(&d, || {
        let run = run();
        let _in_run = run.enter();
        c.bench_function(name, |b| b.iter(f));
    });
    drop(guards);
    drop(dir);
}

fn pipeline(c: &mut Criterion) {
    bench_in(c, "a_floor", |_| pipelines::floor(), pipelines::llm_call);
    bench_in(
        c,
        "a2_layer_lower_bound",
        |_| pipelines::bound(),
        pipelines::llm_call,
    );
    bench_in(
        c,
        "peer_fmt_json_file",
        pipelines::peer_fmt_json,
        pipelines::llm_call,
    );
    bench_in(
        c,
        "peer_metrics_layer",
        |_| pipelines::peer_metrics(),
        pipelines::llm_call_with_metric_event,
    );
    bench_in(
        c,
        "peers_pair",
        pipelines::peers,
        pipelines::llm_call_with_metric_event,
    );
    let ours = |stages| move |dir: &Path| pipelines::ours(dir, stages);
    bench_in(
        c,
        "b_ours_unrelated_span",
        ours(Stages::FULL),
        pipelines::unrelated,
    );
    bench_in(
        c,
        "c_aggregate_only",
        ours(Stages::AGGREGATE),
        pipelines::llm_call,
    );
    bench_in(
        c,
        "d_aggregate_jsonl",
        ours(Stages::JSONL),
        pipelines::llm_call,
    );
    bench_in(
        c,
        "e_aggregate_jsonl_otel",
        ours(Stages::JSONL_OTEL),
        pipelines::llm_call,
    );
    bench_in(
        c,
        "f_full_pipeline_priced",
        ours(Stages::FULL),
        pipelines::llm_call,
    );
    // The full pipeline with three attributes: two from the run span, one from the call's.
    bench_in_run(
        c,
        "f2_full_pipeline_priced_3_attributes",
        pipelines::ours_attributed,
        pipelines::llm_call_attributed,
        || {
            info_span!(
                "run",
                run_id = "bench-run",
                tenant = "acme",
                feature = "summaries"
            )
        },
    );
    // The same pair and full pipeline with the lines discarded by the writer threads.
    bench_in(
        c,
        "peers_pair_discarding",
        |_| pipelines::peers_discarding(),
        pipelines::llm_call_with_metric_event,
    );
    bench_in(
        c,
        "g_full_pipeline_discarding",
        |_| pipelines::ours_discarding(Stages::FULL),
        pipelines::llm_call,
    );
    bench_in_run(
        c,
        "g2_full_pipeline_discarding_3_attributes",
        |_| pipelines::ours_attributed_discarding(),
        pipelines::llm_call_attributed,
        || {
            info_span!(
                "run",
                run_id = "bench-run",
                tenant = "acme",
                feature = "summaries"
            )
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = pipeline
}
criterion_main!(benches);
