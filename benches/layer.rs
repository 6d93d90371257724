//! ns per `llm_call` span: (a) registry + an empty layer (the floor), (b) our layer with an
//! unrelated span, (c) our layer aggregating only, (d) aggregating and writing JSONL to a file
//! through the background writer.
//!
//! ```text
//! cargo bench --bench layer -- --measurement-time 3
//! ```

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tracing::{dispatcher, info_span, Dispatch};
use tracing_llm_usage::{Rotation, UsageLayer};
use tracing_subscriber::layer::Layer;
use tracing_subscriber::prelude::*;

struct EmptyLayer;
impl<S: tracing::Subscriber> Layer<S> for EmptyLayer {}

fn llm_call() {
    let span = info_span!(
        "llm_call",
        step = "persona_generation",
        model = "claude-sonnet-4-5",
        provider = "anthropic",
        tokens.input = 42_000u64,
        tokens.output = 7_500u64
    );
    drop(span);
}

fn unrelated() {
    let span = info_span!(
        "http_request",
        method = "POST",
        path = "/v1/messages",
        status = 200u64,
        bytes = 7_500u64,
        retry = 0u64
    );
    drop(span);
}

fn bench_in(c: &mut Criterion, name: &str, d: &Dispatch, f: fn()) {
    dispatcher::with_default(d, || {
        // Calls belong to a run, as in a service.
        let run = info_span!("run", run_id = "bench-run");
        let _r = run.enter();
        c.bench_function(name, |b| b.iter(f));
    });
}

fn layer(c: &mut Criterion) {
    let floor = Dispatch::new(tracing_subscriber::registry().with(EmptyLayer));
    bench_in(c, "a_floor_registry_empty_layer", &floor, llm_call);

    let (ours, _guard) = UsageLayer::builder().build().expect("layer");
    let ours = Dispatch::new(tracing_subscriber::registry().with(ours));
    bench_in(c, "b_unrelated_span", &ours, unrelated);
    bench_in(c, "c_aggregate_only", &ours, llm_call);

    let dir = tempfile::tempdir().expect("tempdir");
    let (jsonl, guard) = UsageLayer::builder()
        .jsonl_dir_with_rotation(dir.path(), Rotation::NEVER)
        .build()
        .expect("layer");
    let jsonl = Dispatch::new(tracing_subscriber::registry().with(jsonl));
    bench_in(c, "d_aggregate_and_jsonl_file", &jsonl, llm_call);
    drop(guard);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = layer
}
criterion_main!(benches);
