//! Costs pinned against LiteLLM's own figures (a subset of its price file in
//! `tests/fixtures/litellm/`), each computed by hand in the comment beside it.

use std::sync::OnceLock;

use proptest::prelude::Strategy as _;
use tracing_llm_usage::{ModelPrice, PriceError, PriceTable, Rates, ServiceTier, Tokens};

const LITELLM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/litellm/model_prices_subset.json"
);

/// How many of the fixture's entries are per-token prices.
const LOADED: usize = 127;

fn litellm() -> &'static PriceTable {
    static T: OnceLock<PriceTable> = OnceLock::new();
    T.get_or_init(|| PriceTable::from_litellm_path(LITELLM).expect("the LiteLLM fixture"))
}

fn tokens(input: u64, output: u64, cache_read: u64, cache_write: u64, reasoning: u64) -> Tokens {
    Tokens {
        input,
        output,
        total: input.saturating_add(output),
        cache_read,
        cache_write,
        reasoning,
    }
}

#[track_caller]
fn assert_cost(
    model: &str,
    provider: Option<&str>,
    t: Tokens,
    write_1h: u64,
    tier: ServiceTier,
    want: f64,
) {
    for table in [litellm(), &PriceTable::bundled()] {
        let got = table
            .cost(model, provider, &t, write_1h, tier)
            .unwrap_or_else(|| panic!("{model} is unpriced"));
        assert!((got - want).abs() < 1e-9, "{model}: got {got}, want {want}");
    }
}

#[test]
fn anthropic_cache_reads_and_5_minute_and_1_hour_writes() {
    // claude-sonnet-4-5: in 3e-6, out 1.5e-5, cache read 3e-7, write 3.75e-6, 1h write 6e-6.
    // 100k input = 20k plain + 60k read + 20k written (5k of them for an hour).
    let want =
        20_000.0 * 3e-6 + 60_000.0 * 3e-7 + 15_000.0 * 3.75e-6 + 5_000.0 * 6e-6 + 2_000.0 * 1.5e-5;
    assert_cost(
        "claude-sonnet-4-5",
        Some("anthropic"),
        tokens(100_000, 2_000, 60_000, 20_000, 0),
        5_000,
        ServiceTier::Standard,
        want,
    );
}

#[test]
fn anthropic_batch_and_dated_fallback() {
    // A date LiteLLM does not list falls back to the undated entry; batch: in 1.5e-6,
    // out 7.5e-6, cache read 1.5e-7.
    let want = 9_000.0 * 1.5e-6 + 1_000.0 * 1.5e-7 + 800.0 * 7.5e-6;
    assert_cost(
        "claude-sonnet-4-5-20991231",
        Some("anthropic"),
        tokens(10_000, 800, 1_000, 0, 0),
        0,
        ServiceTier::Batch,
        want,
    );
    assert_eq!(
        litellm()
            .lookup("claude-sonnet-4-5-20991231", None)
            .unwrap()
            .0,
        "claude-sonnet-4-5"
    );
}

#[test]
fn openai_gpt_4o_cached_and_batch() {
    // in 2.5e-6, cached 1.25e-6, out 1e-5
    let want = 3_000.0 * 2.5e-6 + 2_000.0 * 1.25e-6 + 500.0 * 1e-5;
    assert_cost(
        "gpt-4o",
        Some("openai"),
        tokens(5_000, 500, 2_000, 0, 0),
        0,
        ServiceTier::Standard,
        want,
    );
    // batch: in 1.25e-6, out 5e-6; no batch cache rate in the file: OpenAI's batch halves
    // every rate, as its input rate shows (1.25e-6 / 2.5e-6), so 1.25e-6 × 0.5
    let want = 3_000.0 * 1.25e-6 + 2_000.0 * 6.25e-7 + 500.0 * 5e-6;
    assert_cost(
        "gpt-4o",
        Some("openai"),
        tokens(5_000, 500, 2_000, 0, 0),
        0,
        ServiceTier::from_field("batch"),
        want,
    );
}

#[test]
fn openai_gpt_5_reasoning_at_the_output_rate_and_flex() {
    // no reasoning rate: reasoning is output; flex in 6.25e-7, cached 6.25e-8, out 5e-6
    let want = 1_000.0 * 6.25e-7 + 1_000.0 * 6.25e-8 + 3_000.0 * 5e-6;
    assert_cost(
        "gpt-5",
        Some("openai"),
        tokens(2_000, 3_000, 1_000, 0, 2_400),
        0,
        ServiceTier::Flex,
        want,
    );
}

#[test]
fn openai_o3_priority() {
    // priority: in 3.5e-6, cached 8.75e-7, out 1.4e-5
    let want = 4_000.0 * 3.5e-6 + 1_000.0 * 8.75e-7 + 700.0 * 1.4e-5;
    assert_cost(
        "o3",
        Some("openai"),
        tokens(5_000, 700, 1_000, 0, 500),
        0,
        ServiceTier::Priority,
        want,
    );
}

#[test]
fn gemini_long_context_applies_to_every_token() {
    // gemini/gemini-2.5-pro above 200k input (cache included): in 2.5e-6, cache read 2.5e-7,
    // out 1.5e-5. 150k plain + 60k cached = 210k > 200k.
    let want = 150_000.0 * 2.5e-6 + 60_000.0 * 2.5e-7 + 4_000.0 * 1.5e-5;
    assert_cost(
        "gemini/gemini-2.5-pro",
        Some("gcp.gemini"),
        tokens(210_000, 4_000, 60_000, 0, 0),
        0,
        ServiceTier::Standard,
        want,
    );
    // exactly 200k is not above: in 1.25e-6, cache read 1.25e-7, out 1e-5
    let want = 140_000.0 * 1.25e-6 + 60_000.0 * 1.25e-7 + 4_000.0 * 1e-5;
    assert_cost(
        "gemini/gemini-2.5-pro",
        Some("gcp.gemini"),
        tokens(200_000, 4_000, 60_000, 0, 0),
        0,
        ServiceTier::Standard,
        want,
    );
}

#[test]
fn gemini_batch_above_200k() {
    // gemini/…: above-200k batch: in 1.25e-6, out 7.5e-6
    let want = 300_000.0 * 1.25e-6 + 1_000.0 * 7.5e-6;
    assert_cost(
        "gemini/gemini-2.5-pro",
        None,
        tokens(300_000, 1_000, 0, 0, 0),
        0,
        ServiceTier::Batch,
        want,
    );
}

#[test]
fn gemini_flash_reasoning_rate_via_provider_prefix() {
    // gemini-2.5-flash: in 3e-7, out 2.5e-6, reasoning 2.5e-6 (own rate, same figure)
    let want = 10_000.0 * 3e-7 + 200.0 * 2.5e-6 + 800.0 * 2.5e-6;
    assert_cost(
        "gemini-2.5-flash",
        Some("gcp.gemini"),
        tokens(10_000, 1_000, 0, 0, 800),
        0,
        ServiceTier::Standard,
        want,
    );
}

#[test]
fn own_reasoning_rate_differs_from_output() {
    // dashscope/qwen-turbo: in 5e-8, out 2e-7, reasoning 5e-7 (full file only)
    let got = litellm()
        .cost(
            "dashscope/qwen-turbo",
            None,
            &tokens(1_000, 3_000, 0, 0, 2_000),
            0,
            ServiceTier::Standard,
        )
        .unwrap();
    let want = 1_000.0 * 5e-8 + 1_000.0 * 2e-7 + 2_000.0 * 5e-7;
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
}

#[test]
fn xai_by_provider_prefix_and_long_context() {
    // xai/grok-4.3 for model "grok-4.3" from provider x_ai; above 200k: in 2.5e-6, cache read
    // 4e-7, out 5e-6
    let want = 200_000.0 * 2.5e-6 + 50_000.0 * 4e-7 + 3_000.0 * 5e-6;
    assert_cost(
        "grok-4.3",
        Some("x_ai"),
        tokens(250_000, 3_000, 50_000, 0, 0),
        0,
        ServiceTier::Standard,
        want,
    );
    assert_eq!(
        litellm().lookup("grok-4.3", Some("xai")).unwrap().0,
        "xai/grok-4.3"
    );
}

#[test]
fn mistral_and_deepseek() {
    // mistral/mistral-large-latest: in 5e-7, cache read 5e-8, out 1.5e-6
    let want = 900.0 * 5e-7 + 100.0 * 5e-8 + 100.0 * 1.5e-6;
    assert_cost(
        "mistral-large-latest",
        Some("mistral_ai"),
        tokens(1_000, 100, 100, 0, 0),
        0,
        ServiceTier::Standard,
        want,
    );
    // deepseek-v4-pro: in 1.32e-6, cache hit 4.4e-8, out 3.96e-6
    let want = 6_000.0 * 1.32e-6 + 4_000.0 * 4.4e-8 + 1_000.0 * 3.96e-6;
    assert_cost(
        "deepseek-v4-pro",
        Some("deepseek"),
        tokens(10_000, 1_000, 4_000, 0, 0),
        0,
        ServiceTier::Standard,
        want,
    );
    // deepseek-chat has a deprecation date (2026-07-24) and is still billed: bundled.
    assert!(litellm().get("deepseek/deepseek-chat").is_some());
    assert!(PriceTable::bundled()
        .lookup("deepseek-chat", Some("deepseek"))
        .is_some());
}

#[test]
fn bedrock_region_prefixes() {
    // A region LiteLLM lists is its own entry: jp. in 3.3e-6, out 1.65e-5
    let want = 1_000.0 * 3.3e-6 + 100.0 * 1.65e-5;
    assert_cost(
        "jp.anthropic.claude-sonnet-4-5-20250929-v1:0",
        Some("aws.bedrock"),
        tokens(1_000, 100, 0, 0, 0),
        0,
        ServiceTier::Standard,
        want,
    );
    // One it does not list falls back to the base id: in 3e-6, out 1.5e-5; above 200k:
    // in 6e-6, cache read 6e-7, 1h write 1.2e-5, out 2.25e-5
    let model = "ca.anthropic.claude-sonnet-4-5-20250929-v1:0";
    assert_eq!(
        litellm().lookup(model, Some("aws.bedrock")).unwrap().0,
        "anthropic.claude-sonnet-4-5-20250929-v1:0"
    );
    let want = 190_000.0 * 6e-6 + 10_000.0 * 6e-7 + 5_000.0 * 1.2e-5 + 1_000.0 * 2.25e-5;
    assert_cost(
        model,
        Some("aws.bedrock"),
        tokens(205_000, 1_000, 10_000, 5_000, 0),
        5_000,
        ServiceTier::Standard,
        want,
    );
}

#[test]
fn unknown_models_are_unpriced_never_zero() {
    for table in [litellm(), &PriceTable::bundled()] {
        assert!(table.lookup("acme-secret-model", Some("openai")).is_none());
        assert_eq!(
            table.cost(
                "acme-secret-model",
                None,
                &tokens(1, 1, 0, 0, 0),
                0,
                ServiceTier::Standard
            ),
            None
        );
    }
}

#[test]
fn the_litellm_file_loads_as_is() {
    let t = litellm();
    // Every entry priced per token in a token mode (chat, completion, responses, embedding,
    // audio, image generation, realtime); per-image or per-second prices, video and rerank
    // are left out, odd ones skipped and counted.
    assert_eq!(t.len(), LOADED);
    assert!(t.get("gpt-4o").is_some());
    assert!(
        t.get("dall-e-3").is_none(),
        "dall-e-3 is priced per image, not per token"
    );
    let bundled = PriceTable::bundled();
    assert_eq!(bundled.date(), Some("2026-11-22"));
    assert!(bundled.len() > 500);
    for model in [
        "gpt-4.1",
        "claude-sonnet-4-5",
        "gemini/gemini-2.5-pro",
        "xai/grok-4.3",
        "mistral/mistral-large-latest",
        "deepseek/deepseek-v4-pro",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    ] {
        assert_eq!(
            bundled.get(model),
            t.get(model),
            "{model}: bundled figures differ"
        );
    }
    assert_ne!(bundled.version(), t.version());
}

#[test]
fn hostile_litellm_entries_are_skipped() {
    let json = r#"{
        "sample_spec": {"input_cost_per_token": 0.0},
        "good": {"mode": "chat", "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},
        "negative": {"mode": "chat", "input_cost_per_token": -1e-6, "output_cost_per_token": 2e-6},
        "text": {"mode": "chat", "input_cost_per_token": "cheap", "output_cost_per_token": 2e-6},
        "half": {"mode": "chat", "input_cost_per_token": 1e-6},
        "huge": {"mode": "chat", "input_cost_per_token": 1e308, "output_cost_per_token": 1e308},
        "image": {"mode": "image_generation", "output_cost_per_image": 0.04},
        "not_an_object": 42
    }"#;
    let t = PriceTable::from_litellm_json(json.as_bytes()).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t.skipped(), 4);
    // an overflowing cost is no cost, never infinity
    assert_eq!(
        t.cost(
            "huge",
            None,
            &tokens(u64::MAX, u64::MAX, 0, 0, 0),
            0,
            ServiceTier::Standard
        ),
        None
    );
    assert!(matches!(
        PriceTable::from_litellm_json(&b"[1,2"[..]),
        Err(PriceError::Json(_))
    ));
}

#[test]
fn toml_overrides() {
    let text = r#"
        [models."acme-ft-7b"]
        input = 0.8
        output = 3.2
        cache_read = 0.08

        [models."acme-ft-7b".batch]
        input = 0.4
        output = 1.6

        [[models."acme-ft-7b".long_context]]
        above_tokens = 100000
        input = 1.6
        output = 6.4
    "#;
    let overrides = PriceTable::from_toml_str(text).unwrap();
    let t = PriceTable::bundled().merge(&overrides);
    let cost = |tok: Tokens, tier| t.cost("acme-ft-7b", None, &tok, 0, tier).unwrap();
    let want = 900.0 * 0.8e-6 + 100.0 * 0.08e-6 + 50.0 * 3.2e-6;
    assert!((cost(tokens(1_000, 50, 100, 0, 0), ServiceTier::Standard) - want).abs() < 1e-12);
    // The batch card has no cache rate: the standard one at the batch factor (0.4 / 0.8).
    let want = 900.0 * 0.4e-6 + 100.0 * 0.04e-6 + 50.0 * 1.6e-6;
    assert!((cost(tokens(1_000, 50, 100, 0, 0), ServiceTier::Batch) - want).abs() < 1e-12);
    let want = 150_000.0 * 1.6e-6 + 10.0 * 6.4e-6;
    assert!((cost(tokens(150_000, 10, 0, 0, 0), ServiceTier::Standard) - want).abs() < 1e-12);
    assert!(
        t.get("gpt-4o").is_some(),
        "merging keeps the bundled models"
    );

    for bad in [
        "[models.x]\ninput = -1.0\noutput = 1.0\n",
        "[models.x]\ninput = nan\noutput = 1.0\n",
        "[models.x]\ninput = 1.0\n",
        "[models.x]\ninput = 1.0\noutput = 1.0\ncolour = 3\n",
        "not toml at all [",
    ] {
        assert!(PriceTable::from_toml_str(bad).is_err(), "{bad}");
    }
    let err = PriceTable::from_toml_str("[models.x]\ninput = -1.0\noutput = 1.0\n").unwrap_err();
    assert_eq!(err.to_string(), "model x: input = -1 is not a price");
}

#[test]
fn a_model_price_built_by_hand() {
    let p = ModelPrice::new(Rates::per_million(3.0, 15.0));
    let c = p
        .cost(
            &tokens(1_000_000, 1_000_000, 0, 0, 0),
            0,
            ServiceTier::Priority,
        )
        .unwrap();
    assert!((c - 18.0).abs() < 1e-9, "{c}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Whatever the figures in a LiteLLM entry (negative, tiny, huge, strings) and whatever the
    /// token counts, a cost is either absent or a finite, non-negative number.
    #[test]
    fn a_cost_is_never_negative_nan_or_infinite(
        rates in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::num::f64::NORMAL.prop_map(serde_json::Value::from),
                proptest::prelude::Just(serde_json::json!(1e308)),
                proptest::prelude::Just(serde_json::json!(-0.0)),
                proptest::prelude::Just(serde_json::json!("0.1")),
                proptest::prelude::Just(serde_json::Value::Null),
            ],
            6,
        ),
        counts in proptest::collection::vec(proptest::prelude::any::<u64>(), 6),
        cache_1h in proptest::prelude::any::<u64>(),
        tier in 0usize..4,
    ) {
        let entry = serde_json::json!({ "m": {
            "mode": "chat",
            "input_cost_per_token": rates[0],
            "output_cost_per_token": rates[1],
            "cache_read_input_token_cost": rates[2],
            "cache_creation_input_token_cost": rates[3],
            "output_cost_per_reasoning_token": rates[4],
            "input_cost_per_token_above_200k_tokens": rates[5],
        }});
        let text = entry.to_string();
        if let Ok(table) = PriceTable::from_litellm_json(text.as_bytes()) {
            let tiers = [ServiceTier::Standard, ServiceTier::Batch, ServiceTier::Flex, ServiceTier::Priority];
            let t = tokens(counts[0], counts[1], counts[2], counts[3], counts[4]);
            if let Some(c) = table.cost("m", None, &t, cache_1h, tiers[tier]) {
                proptest::prop_assert!(c.is_finite() && c >= 0.0, "{c} from {text}");
            }
        }
    }
}

#[test]
fn infinite_override_prices_are_refused() {
    for bad in [
        "[models.x]\ninput = inf\noutput = 1.0\n",
        "[models.x]\ninput = 1.0\noutput = -inf\n",
        "[models.x]\ninput = 1.0\noutput = 1.0\n[models.x.batch]\ninput = nan\n",
        "[models.x]\ninput = 1.0\noutput = 1.0\ncache_read = -0.5\n",
    ] {
        assert!(PriceTable::from_toml_str(bad).is_err(), "{bad}");
    }
}

#[test]
fn audio_tokens_are_priced_at_the_audio_rates() {
    use tracing_llm_usage::{Modality, ModalitySlot, ModalityTokens};
    let mut m = ModalityTokens::default();
    m.set(Modality::Text, ModalitySlot::Input, 400);
    m.set(Modality::Audio, ModalitySlot::Input, 600);
    m.set(Modality::Audio, ModalitySlot::CacheRead, 100);
    m.set(Modality::Text, ModalitySlot::Output, 50);
    let t = tokens(1000, 50, 100, 0, 0);
    for table in [litellm(), &PriceTable::bundled()] {
        let (_, price) = table
            .lookup("gemini-2.5-flash", Some("gcp.gemini"))
            .unwrap();
        // text: 400 × $0.30/M; audio: 500 × $1.00/M plain, 100 × $0.10/M cached;
        // output: 50 × $2.50/M.
        let with = price
            .cost_with_modality(&t, 0, ServiceTier::Standard, Some(&m))
            .unwrap();
        assert!((with - 7.55e-4).abs() < 1e-12, "{with}");
        // Without the breakdown every input token is at the text rates:
        // 900 × $0.30/M + 100 × $0.03/M + 50 × $2.50/M.
        let without = price.cost(&t, 0, ServiceTier::Standard).unwrap();
        assert!((without - 3.98e-4).abs() < 1e-12, "{without}");
    }
    // A model without audio rates prices the breakdown at its text rates.
    let (_, gpt) = litellm().lookup("gpt-4.1", Some("openai")).unwrap();
    assert_eq!(
        gpt.cost_with_modality(&t, 0, ServiceTier::Standard, Some(&m)),
        gpt.cost(&t, 0, ServiceTier::Standard)
    );
}

/// The expected per-token rates of a LiteLLM entry, read from the file as the loader's
/// documentation says: an image-generation entry's output is its image output rate, an
/// embedding's output rate is 0 when the file gives none.
fn file_rates(entry: &serde_json::Value) -> (f64, f64) {
    let input = entry["input_cost_per_token"]
        .as_f64()
        .expect("an input rate");
    let output = entry["output_cost_per_token"]
        .as_f64()
        .or_else(|| match entry["mode"].as_str() {
            Some("image_generation") => entry["output_cost_per_image_token"].as_f64(),
            Some("embedding") => Some(0.0),
            _ => None,
        })
        .expect("an output rate");
    (input, output)
}

#[test]
fn names_people_use_are_priced_as_the_file_prices_them() {
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(LITELLM).unwrap()).unwrap();
    let names = include_str!("fixtures/pricing/names.tsv");
    let t = tokens(1_000, 500, 0, 0, 0);
    let mut checked = 0;
    for line in names
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let [name, provider, key] = cols[..] else {
            panic!("three columns: {line:?}");
        };
        let provider = (provider != "-").then_some(provider);
        let (input, output) = file_rates(&file[key]);
        let want = 1_000.0 * input + 500.0 * output;
        for (which, table) in [("the file", litellm()), ("bundled", &PriceTable::bundled())] {
            let (matched, _) = table
                .lookup(name, provider)
                .unwrap_or_else(|| panic!("{which}: {name} ({provider:?}) is unpriced"));
            assert_eq!(matched, key, "{which}: {name} ({provider:?})");
            let got = table
                .cost(name, provider, &t, 0, ServiceTier::Standard)
                .unwrap();
            assert!(
                (got - want).abs() < 1e-12,
                "{which}: {name}: got {got}, want {want}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 60, "{checked} names");
}

/// Every model the README and the docs name in an example is priced by the bundled table.
#[test]
fn every_model_the_docs_name_is_priced() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut texts = vec![std::fs::read_to_string(format!("{root}/README.md")).unwrap()];
    for entry in std::fs::read_dir(format!("{root}/docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            texts.push(std::fs::read_to_string(path).unwrap());
        }
    }
    let table = PriceTable::bundled();
    let mut named = std::collections::BTreeSet::new();
    for text in &texts {
        // `model = "x"`, `"model":"x"`, `.model("x")`, `model: "x"`.
        for marker in ["model = \"", "\"model\":\"", ".model(\"", "model: \""] {
            for (at, _) in text.match_indices(marker) {
                let rest = &text[at + marker.len()..];
                if let Some(end) = rest.find('"') {
                    named.insert(rest[..end].to_owned());
                }
            }
        }
    }
    assert!(named.len() >= 3, "{named:?}");
    let unpriced: Vec<_> = named
        .iter()
        .filter(|m| table.lookup(m, None).is_none())
        .collect();
    assert!(
        unpriced.is_empty(),
        "the docs name unpriced models: {unpriced:?}"
    );
}

/// An override prices the model's dated names too, unless the overrides name the dated one.
#[test]
fn overrides_win_by_specificity() {
    let t = tokens(1_000_000, 0, 0, 0, 0);
    let cost = |table: &PriceTable, m: &str| {
        table
            .cost(m, Some("anthropic"), &t, 0, ServiceTier::Standard)
            .unwrap()
    };
    let bundled = PriceTable::bundled();
    assert!(bundled.get("claude-sonnet-4-5-20250929").is_some());
    assert!((cost(&bundled, "claude-sonnet-4-5-20250929") - 3.0).abs() < 1e-9);

    let base_only =
        PriceTable::from_toml_str("[models.\"claude-sonnet-4-5\"]\ninput = 2.0\noutput = 10.0\n")
            .unwrap();
    let table = bundled.clone().merge(&base_only);
    assert!((cost(&table, "claude-sonnet-4-5") - 2.0).abs() < 1e-9);
    assert!((cost(&table, "claude-sonnet-4-5-20250929") - 2.0).abs() < 1e-9);
    assert!((cost(&table, "anthropic/claude-sonnet-4-5-20250929") - 2.0).abs() < 1e-9);
    // Other models keep the bundled prices.
    assert!((cost(&table, "claude-opus-4-5") - 5.0).abs() < 1e-9);

    let both = PriceTable::from_toml_str(
        "[models.\"claude-sonnet-4-5\"]\ninput = 2.0\noutput = 10.0\n\
         [models.\"claude-sonnet-4-5-20250929\"]\ninput = 2.5\noutput = 10.0\n",
    )
    .unwrap();
    let table = bundled.clone().merge(&both);
    assert!((cost(&table, "claude-sonnet-4-5") - 2.0).abs() < 1e-9);
    assert!((cost(&table, "claude-sonnet-4-5-20250929") - 2.5).abs() < 1e-9);

    // `insert` is an override too; a later merge wins over an earlier one.
    let mut inserted = bundled.clone();
    inserted.insert("claude-sonnet-4-5", ModelPrice::per_million(1.0, 1.0));
    assert!((cost(&inserted, "claude-sonnet-4-5-20250929") - 1.0).abs() < 1e-9);
    let later = inserted.merge(&base_only);
    assert!((cost(&later, "claude-sonnet-4-5-20250929") - 2.0).abs() < 1e-9);
    // Each table is its own version.
    assert_ne!(bundled.version(), table.version());
    assert_ne!(table.version(), bundled.clone().merge(&base_only).version());
}

/// The loader takes every mode priced per token, and leaves the others out quietly.
#[test]
fn audio_image_embedding_and_realtime_entries_load() {
    let t = PriceTable::bundled();
    for m in [
        "text-embedding-3-small",
        "gpt-4o-transcribe",
        "gpt-4o-mini-tts",
        "gpt-image-1",
        "gpt-realtime",
    ] {
        assert!(t.get(m).is_some(), "{m}");
    }
    // Priced per second or per character only: not a per-token price, not an error.
    assert!(t.get("whisper-1").is_none());
    assert_eq!(
        litellm().skipped(),
        PriceTable::from_litellm_path(LITELLM).unwrap().skipped()
    );
    assert!(t.len() >= 2_000, "{}", t.len());
}

/// `LLM_USAGE_PRICES` replaces the default table without a rebuild; a file that cannot be
/// loaded fails `build()` with its path; a table given to `.prices()` is used as given.
#[test]
fn the_environment_names_the_default_table() {
    use tracing::{dispatcher, info_span};
    use tracing_subscriber::prelude::*;

    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("prices.toml");
    std::fs::write(&toml, "[models.\"gpt-4o\"]\ninput = 1.0\noutput = 2.0\n").unwrap();
    let line_of = |builder: tracing_llm_usage::UsageLayerBuilder| {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let out = buf.clone();
        let (layer, guard) = builder
            .jsonl_writer(move || Writer(out.clone()))
            .build()
            .unwrap();
        let d = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        dispatcher::with_default(&d, || {
            drop(info_span!(
                "llm_call",
                model = "gpt-4o",
                tokens.input = 1_000_000u64,
                tokens.output = 0u64
            ));
        });
        drop(guard);
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        serde_json::from_str::<serde_json::Value>(text.lines().next().unwrap()).unwrap()
    };
    struct Writer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Writer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    std::env::set_var(tracing_llm_usage::pricing::PRICES_ENV, &toml);
    let line = line_of(tracing_llm_usage::UsageLayer::builder());
    assert!(
        (line["cost_usd"].as_f64().unwrap() - 1.0).abs() < 1e-9,
        "{line}"
    );
    let want = PriceTable::from_file_or_overrides(&toml).unwrap().version();
    assert_eq!(line["price_version"], &*want);
    // An explicit table wins over the environment.
    let line = line_of(tracing_llm_usage::UsageLayer::builder().prices(PriceTable::bundled()));
    assert!(
        (line["cost_usd"].as_f64().unwrap() - 2.5).abs() < 1e-9,
        "{line}"
    );

    let bad = dir.path().join("prices.json");
    std::fs::write(&bad, "not json").unwrap();
    std::env::set_var(tracing_llm_usage::pricing::PRICES_ENV, &bad);
    let err = tracing_llm_usage::UsageLayer::builder()
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("LLM_USAGE_PRICES: {}: ", bad.display())),
        "{text}"
    );
    std::env::remove_var(tracing_llm_usage::pricing::PRICES_ENV);
}

/// Where the file gives a tier no rate for a kind of token, the tier's factor applies to the
/// standard rate, and the line says so; a model without the tier is priced at the standard
/// rates, said too.
#[test]
fn tier_fallbacks_follow_the_tier_and_are_said() {
    use tracing::{dispatcher, info_span};
    use tracing_subscriber::prelude::*;
    let t = PriceTable::bundled();
    // gemini-2.5-pro flex above 200k: no flex long-context card; the flex factor (6.25e-7 /
    // 1.25e-6 = 0.5) on the long-context rates 2.5e-6 in, 1.5e-5 out.
    let tok = tokens(300_000, 1_000, 0, 0, 0);
    let got = t
        .cost(
            "gemini-2.5-pro",
            Some("gcp.vertex_ai"),
            &tok,
            0,
            ServiceTier::Flex,
        )
        .unwrap();
    assert!(
        (got - (300_000.0 * 1.25e-6 + 1_000.0 * 7.5e-6)).abs() < 1e-9,
        "{got}"
    );
    // claude-sonnet-4-5 batch: 1-hour writes at 6e-6 × 0.5, beside the batch 5-minute writes.
    let tok = tokens(100_000, 2_000, 60_000, 30_000, 0);
    let got = t
        .cost(
            "claude-sonnet-4-5",
            Some("anthropic"),
            &tok,
            10_000,
            ServiceTier::Batch,
        )
        .unwrap();
    let want = 10_000.0 * 1.5e-6
        + 60_000.0 * 1.5e-7
        + 20_000.0 * 1.875e-6
        + 10_000.0 * 3e-6
        + 2_000.0 * 7.5e-6;
    assert!((got - want).abs() < 1e-9, "{got} {want}");

    // The lines say which rates were derived.
    let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let out = buf.clone();
    struct W(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for W {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (layer, guard) = tracing_llm_usage::UsageLayer::builder()
        .prices(PriceTable::bundled())
        .jsonl_writer(move || W(out.clone()))
        .build()
        .unwrap();
    let d = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    dispatcher::with_default(&d, || {
        for (model, tier, cache_read) in [
            ("gpt-4o", "batch", 2_000u64),
            ("gpt-4o", "batch", 0),
            ("gpt-audio", "flex", 0),
        ] {
            drop(info_span!(
                "llm_call",
                model,
                provider = "openai",
                service_tier = tier,
                tokens.input = 5_000u64,
                tokens.output = 500u64,
                tokens.cache_read = cache_read
            ));
        }
    });
    drop(guard);
    let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0]["warnings"],
        serde_json::json!(["service tier batch: the price table has no batch rate for cache read at this size; priced at the standard rate × 0.5 (the tier's rate over the standard one)"])
    );
    // No cached tokens: every rate used is the tier's own.
    assert_eq!(lines[1]["warnings"], serde_json::json!([]));
    assert_eq!(
        lines[2]["warnings"],
        serde_json::json!(["service tier flex: the price table has no flex rates for this model; priced at the standard rates"])
    );
}
