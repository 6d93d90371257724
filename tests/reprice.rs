//! Re-pricing reproduces the bill: every line the layer writes under a table, re-priced with
//! that table (`PriceTable::line_cost`, what `llm-usage --prices` and `reprice` do), costs
//! what the line says, whatever its tier, cache writes, modality counts or context length;
//! a provider-reported cost is kept; a call without usage has none.

mod common;

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::Value;
use tracing::field::Empty;
use tracing::{dispatcher, info_span};
use tracing_llm_usage::format::decode;
use tracing_llm_usage::{PriceTable, UsageLayer};

const LITELLM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/litellm/model_prices_subset.json"
);

fn litellm() -> &'static PriceTable {
    static T: OnceLock<PriceTable> = OnceLock::new();
    T.get_or_init(|| PriceTable::from_litellm_path(LITELLM).expect("the LiteLLM fixture"))
}

/// One call as a span records it.
#[derive(Clone, Debug)]
struct Call {
    model: &'static str,
    provider: &'static str,
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    cache_write_1h: u64,
    reasoning: u64,
    tier: Option<&'static str>,
    audio_in: Option<u64>,
    audio_out: Option<u64>,
    provider_cost: Option<f64>,
}

/// The lines `calls` give under `table`.
fn lines(table: &PriceTable, calls: &[Call]) -> Vec<Value> {
    let (d, _handle, guard, buf) = common::setup(UsageLayer::builder().prices(table.clone()));
    dispatcher::with_default(&d, || {
        for c in calls {
            let span = info_span!(
                "llm_call",
                model = c.model,
                provider = c.provider,
                tokens.input = c.input,
                tokens.output = c.output,
                tokens.cache_read = c.cache_read,
                tokens.cache_write = c.cache_write,
                tokens.cache_write_1h = c.cache_write_1h,
                tokens.reasoning = c.reasoning,
                service_tier = Empty,
                gen_ai.usage.audio.input_tokens = Empty,
                gen_ai.usage.audio.output_tokens = Empty,
                cost_usd = Empty,
            );
            if let Some(t) = c.tier {
                span.record("service_tier", t);
            }
            if let Some(n) = c.audio_in {
                span.record("gen_ai.usage.audio.input_tokens", n);
            }
            if let Some(n) = c.audio_out {
                span.record("gen_ai.usage.audio.output_tokens", n);
            }
            if let Some(v) = c.provider_cost {
                span.record("cost_usd", v);
            }
            drop(span);
        }
    });
    drop(guard);
    common::calls(&buf.lines()).into_iter().cloned().collect()
}

/// The line's cost under `table`, read back as the command reads it.
fn repriced(table: &PriceTable, line: &Value) -> Option<f64> {
    let text = line.to_string();
    let decoded = decode::parse(text.as_bytes()).unwrap();
    table.line_cost(&decoded)
}

fn call(model: &'static str, provider: &'static str) -> Call {
    Call {
        model,
        provider,
        input: 0,
        output: 0,
        cache_read: 0,
        cache_write: 0,
        cache_write_1h: 0,
        reasoning: 0,
        tier: None,
        audio_in: None,
        audio_out: None,
        provider_cost: None,
    }
}

#[track_caller]
fn near(got: Option<f64>, want: f64, what: &str) {
    let got = got.unwrap_or_else(|| panic!("{what}: no cost"));
    assert!((got - want).abs() < 1e-9, "{what}: got {got}, want {want}");
}

/// The review's cases, each computed by hand from LiteLLM's rates.
#[test]
fn the_review_cases_cost_what_the_file_says_and_reprice_to_it() {
    let table = PriceTable::bundled();
    let sonnet = Call {
        input: 100_000,
        cache_read: 60_000,
        cache_write: 30_000,
        cache_write_1h: 10_000,
        output: 2_000,
        ..call("claude-sonnet-4-5", "anthropic")
    };
    // 10k plain at 3e-6, 60k read at 3e-7, 20k 5-minute writes at 3.75e-6, 10k 1-hour writes
    // at 6e-6, 2k out at 1.5e-5.
    let sonnet_cost = 0.03 + 0.018 + 0.075 + 0.06 + 0.03;
    // 10k in of which 2k cached, 5k out.
    let tiered = |model, tier| Call {
        input: 10_000,
        cache_read: 2_000,
        output: 5_000,
        tier,
        ..call(model, "openai")
    };
    let cases = [
        (sonnet, sonnet_cost),
        // gpt-5: 8k at 1.25e-6, 2k at 1.25e-7, 5k at 1e-5; batch and flex halve each rate.
        (tiered("gpt-5", None), 0.06025),
        (tiered("gpt-5", Some("default")), 0.06025),
        (tiered("gpt-5", Some("batch")), 0.030125),
        (tiered("gpt-5", Some("flex")), 0.030125),
        (tiered("gpt-5", Some("priority")), 0.1205),
        // o3: 8k at 2e-6, 2k at 5e-7, 5k at 8e-6; flex: 1e-6, 2.5e-7, 4e-6; priority: 3.5e-6,
        // 8.75e-7, 1.4e-5.
        (tiered("o3", None), 0.057),
        (tiered("o3", Some("flex")), 0.0285),
        (tiered("o3", Some("priority")), 0.09975),
        // gemini-2.5-pro above 200k input, batch: 300k at 1.25e-6, 1k out at 7.5e-6.
        (
            Call {
                input: 300_000,
                output: 1_000,
                tier: Some("batch"),
                ..call("gemini-2.5-pro", "gcp.vertex_ai")
            },
            0.3825,
        ),
        // gpt-audio: 2k text in at 2.5e-6 and 1k audio at 3.2e-5; 500 text out at 1e-5 and 2k
        // audio out at 6.4e-5.
        (
            Call {
                input: 3_000,
                output: 2_500,
                audio_in: Some(1_000),
                audio_out: Some(2_000),
                ..call("gpt-audio", "openai")
            },
            0.005 + 0.032 + 0.005 + 0.128,
        ),
        // A provider-reported cost is the bill.
        (
            Call {
                input: 100_000,
                output: 10_000,
                provider_cost: Some(0.5),
                ..call("gpt-5", "openai")
            },
            0.5,
        ),
    ];
    let calls: Vec<Call> = cases.iter().map(|(c, _)| c.clone()).collect();
    let got = lines(&table, &calls);
    assert_eq!(got.len(), cases.len());
    for ((c, want), line) in cases.iter().zip(&got) {
        let what = format!("{} {:?}", c.model, c.tier);
        near(line["cost_usd"].as_f64(), *want, &what);
        near(repriced(&table, line), *want, &format!("{what}, re-priced"));
    }
    assert_eq!(got[3]["service_tier"], "batch");
    assert_eq!(got[0]["cache_write_1h"], 10_000);
    assert_eq!(got[11]["cost_source"], "provider");
    // Under another table too, the provider's cost stays.
    near(
        repriced(&PriceTable::new(), &got[11]),
        0.5,
        "provider, empty table",
    );
}

/// Models with every kind of rate: tiers, 1-hour writes, long context, audio.
const MODELS: [(&str, &str); 7] = [
    ("claude-sonnet-4-5", "anthropic"),
    ("claude-opus-4-5", "anthropic"),
    ("gpt-5", "openai"),
    ("o3", "openai"),
    ("gemini-2.5-pro", "gcp.vertex_ai"),
    ("gemini-2.5-flash", "gcp.gemini"),
    ("gpt-audio", "openai"),
];

fn any_call() -> impl Strategy<Value = Call> {
    let input = prop_oneof![0u64..2_000, 199_990u64..200_010, 0u64..400_000];
    (
        0..MODELS.len(),
        input,
        0u64..50_000,
        (0u64..=4, 0u64..=4, 0u64..=4, 0u64..=4),
        prop_oneof![
            Just(None),
            Just(Some("batch")),
            Just(Some("flex")),
            Just(Some("priority")),
            Just(Some("default")),
        ],
        (
            proptest::option::of(0u64..=4),
            proptest::option::of(0u64..=4),
        ),
    )
        .prop_map(
            |(m, input, output, (read, write, hour, reasoning), tier, (ain, aout))| {
                let (model, provider) = MODELS[m];
                let cache_read = input * read / 10;
                let cache_write = input * write / 10;
                Call {
                    input,
                    output,
                    cache_read,
                    cache_write,
                    cache_write_1h: cache_write * hour / 4,
                    reasoning: output * reasoning / 4,
                    tier,
                    audio_in: ain.map(|a| (input - cache_read - cache_write) * a / 4),
                    audio_out: aout.map(|a| output * a / 8),
                    ..call(model, provider)
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_line_reprices_to_its_own_cost(calls in proptest::collection::vec(any_call(), 1..8)) {
        for table in [&PriceTable::bundled(), litellm()] {
            let got = lines(table, &calls);
            prop_assert_eq!(got.len(), calls.len());
            for (c, line) in calls.iter().zip(&got) {
                let logged = line["cost_usd"].as_f64();
                prop_assert!(logged.is_some(), "{:?} unpriced: {}", c, line);
                let again = repriced(table, line);
                let (logged, again) = (logged.unwrap(), again.unwrap());
                prop_assert!((logged - again).abs() < 1e-9, "{:?}: {} then {}", c, logged, again);
            }
        }
    }
}
