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

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use pipelines::Stages;
use tracing::{dispatcher, info_span, Dispatch};

fn bench_in(c: &mut Criterion, name: &str, (d, guards): (Dispatch, pipelines::Guards), f: fn()) {
    dispatcher::with_default(&d, || {
        let run = info_span!("run", run_id = "bench-run");
        let _in_run = run.enter();
        c.bench_function(name, |b| b.iter(f));
    });
    drop(guards);
}

fn pipeline(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    bench_in(c, "a_floor", pipelines::floor(), pipelines::llm_call);
    bench_in(
        c,
        "peer_fmt_json_file",
        pipelines::peer_fmt_json(&path.join("fmt")),
        pipelines::llm_call,
    );
    bench_in(
        c,
        "peer_metrics_layer",
        pipelines::peer_metrics(),
        pipelines::llm_call_with_metric_event,
    );
    bench_in(
        c,
        "peers_pair",
        pipelines::peers(&path.join("pair")),
        pipelines::llm_call_with_metric_event,
    );
    let ours = |name: &str, stages| pipelines::ours(&path.join(name), stages);
    bench_in(
        c,
        "b_ours_unrelated_span",
        ours("b", Stages::FULL),
        pipelines::unrelated,
    );
    bench_in(
        c,
        "c_aggregate_only",
        ours("c", Stages::AGGREGATE),
        pipelines::llm_call,
    );
    bench_in(
        c,
        "d_aggregate_jsonl",
        ours("d", Stages::JSONL),
        pipelines::llm_call,
    );
    bench_in(
        c,
        "e_aggregate_jsonl_otel",
        ours("e", Stages::JSONL_OTEL),
        pipelines::llm_call,
    );
    bench_in(
        c,
        "f_full_pipeline_priced",
        ours("f", Stages::FULL),
        pipelines::llm_call,
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
