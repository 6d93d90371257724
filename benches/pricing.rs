//! Loading a price file in LiteLLM's format (the bundled table's, 730 models), and pricing one
//! call.
//!
//! ```text
//! cargo bench --bench pricing
//! ```

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tracing_llm_usage::{PriceTable, ServiceTier, Tokens};

const LITELLM: &[u8] = include_bytes!("../src/pricing/bundled.json");

fn pricing(c: &mut Criterion) {
    let bytes = LITELLM;
    c.bench_function("load_litellm_file", |b| {
        b.iter(|| PriceTable::from_litellm_json(bytes).expect("loads"))
    });
    let table = PriceTable::bundled();
    let tokens = Tokens {
        input: 42_000,
        output: 7_500,
        total: 49_500,
        cache_read: 10_000,
        cache_write: 0,
        reasoning: 0,
    };
    c.bench_function("cost_exact_name", |b| {
        b.iter(|| {
            table.cost(
                "claude-sonnet-4-5-20250929",
                Some("anthropic"),
                &tokens,
                0,
                ServiceTier::Standard,
            )
        })
    });
    c.bench_function("cost_prefixed_name", |b| {
        b.iter(|| table.cost("grok-4.3", Some("x_ai"), &tokens, 0, ServiceTier::Standard))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = pricing
}
criterion_main!(benches);
