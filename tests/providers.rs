//! Every provider fixture normalises to the OpenTelemetry meaning (input includes cache,
//! output includes reasoning), streams fold right, and the counts reach the JSONL priced.

mod common;

use serde_json::{json, Value};
use tracing::dispatcher;
use tracing_llm_usage::{llm_call_span, Usage, UsageError, UsageLayer, UsageStream};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/providers/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn stream(name: &str, mut s: UsageStream) -> Usage {
    let path = format!(
        "{}/tests/fixtures/providers/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    for line in std::fs::read_to_string(path).unwrap().lines() {
        s.push(&serde_json::from_str(line).unwrap()).unwrap();
    }
    s.usage().unwrap()
}

/// (input, output, total, cache_read, cache_write, cache_write_1h, reasoning)
fn counts(u: &Usage) -> [u64; 7] {
    [
        u.input,
        u.output,
        u.total,
        u.cache_read,
        u.cache_write,
        u.cache_write_1h,
        u.reasoning,
    ]
}

#[test]
fn openai_chat_and_its_stream() {
    let u = Usage::from_openai(&fixture("openai_chat.json")).unwrap();
    assert_eq!(counts(&u), [1117, 946, 2063, 1024, 0, 0, 704]);
    assert_eq!(u.cost_usd, None);
    assert_eq!(u.service_tier.as_deref(), Some("default"));
    // the usage object alone works too (the tier is beside it, in the reply)
    let alone = Usage::from_openai(&fixture("openai_chat.json")["usage"]).unwrap();
    assert_eq!((counts(&alone), &alone.modality), (counts(&u), &u.modality));
    let s = stream("openai_chat_stream.jsonl", UsageStream::openai());
    assert_eq!(counts(&s), [2500, 120, 2620, 2048, 0, 0, 0]);
}

#[test]
fn openai_responses_and_its_stream() {
    let u = Usage::from_openai_responses(&fixture("openai_responses.json")).unwrap();
    assert_eq!(counts(&u), [5200, 1830, 7030, 4096, 0, 0, 1536]);
    let s = stream(
        "openai_responses_stream.jsonl",
        UsageStream::openai_responses(),
    );
    assert_eq!(counts(&s), counts(&u));
    assert_eq!(u.service_tier.as_deref(), Some("flex"));
}

#[test]
fn anthropic_adds_the_cache_to_input_and_its_stream_keeps_the_latest() {
    let u = Usage::from_anthropic(&fixture("anthropic.json")).unwrap();
    // 2095 uncached + 38000 read + 2048 written
    assert_eq!(counts(&u), [42_143, 503, 42_646, 38_000, 2048, 1024, 0]);
    // message_start says 1 output token, the deltas 250 then 503: cumulative, not 754
    let s = stream("anthropic_stream.jsonl", UsageStream::anthropic());
    assert_eq!(counts(&s), counts(&u));
}

#[test]
fn gemini_adds_thoughts_to_output_and_its_stream_keeps_the_last() {
    let u = Usage::from_gemini(&fixture("gemini.json")).unwrap();
    assert_eq!(counts(&u), [12_840, 2093, 14_933, 8192, 0, 0, 1481]);
    let t = u.modality.get(tracing_llm_usage::Modality::Text).unwrap();
    assert_eq!((t.input, t.cache_read), (Some(12_840), Some(8192)));
    // The stream's last chunk has the counts, not their split by modality.
    let s = stream("gemini_stream.jsonl", UsageStream::gemini());
    assert_eq!(counts(&s), counts(&u));
}

#[test]
fn bedrock_adds_the_cache_to_input() {
    let u = Usage::from_bedrock(&fixture("bedrock.json")).unwrap();
    assert_eq!(counts(&u), [11_770, 412, 12_182, 8192, 2048, 0, 0]);
    let s = stream("bedrock_stream.jsonl", UsageStream::bedrock());
    assert_eq!(s, u);
}

#[test]
fn xai_counts_reasoning_outside_completion_and_reports_cost_in_ticks() {
    let u = Usage::from_xai(&fixture("xai.json")).unwrap();
    assert_eq!(counts(&u), [32, 103, 135, 6, 0, 0, 94]);
    assert_eq!(u.cost_usd, Some(0.001_580_5));
}

#[test]
fn mistral_openrouter_and_ollama() {
    let u = Usage::from_mistral(&fixture("mistral.json")).unwrap();
    assert_eq!(counts(&u), [1210, 316, 1526, 1024, 0, 0, 0]);
    let u = Usage::from_openai(&fixture("openrouter.json")).unwrap();
    assert_eq!(counts(&u), [4200, 380, 4580, 3000, 0, 0, 0]);
    assert_eq!(u.cost_usd, Some(0.01833));
    let u = Usage::from_ollama(&fixture("ollama.json")).unwrap();
    assert_eq!(counts(&u), [26, 282, 308, 0, 0, 0, 0]);
}

#[test]
fn absent_or_malformed_usage_is_a_clear_error() {
    assert!(matches!(
        Usage::from_openai(&json!({"id": "x", "choices": []})),
        Err(UsageError::Missing {
            provider: "OpenAI",
            ..
        })
    ));
    assert_eq!(
        Usage::from_anthropic(&json!({"usage": {"input_tokens": -1, "output_tokens": 3}})),
        Err(UsageError::Malformed {
            field: "input_tokens".into(),
            value: "-1".into()
        })
    );
    assert_eq!(
        Usage::from_gemini(&json!({"usageMetadata": {"promptTokenCount": "12"}}))
            .unwrap_err()
            .to_string(),
        "usage field promptTokenCount is not a token count: \"12\""
    );
    assert!(Usage::from_openai(&json!({"usage": {"prompt_tokens": 1.5}})).is_err());
    assert!(Usage::from_ollama(&json!({"model": "llama3.2", "done": false})).is_err());
    assert!(UsageStream::anthropic().usage().is_err());
    let mut s = UsageStream::openai();
    assert!(s.push(&json!({"usage": {"prompt_tokens": "x"}})).is_err());
}

#[test]
fn record_on_carries_every_count_to_the_priced_line() {
    let (d, handle, guard, buf) = common::setup(UsageLayer::builder());
    let response = fixture("anthropic.json");
    dispatcher::with_default(&d, || {
        let span = llm_call_span!(
            step = "summary",
            model = "claude-sonnet-4-5-20250929",
            provider = "anthropic"
        );
        Usage::from_anthropic(&response).unwrap().record_on(&span);
        drop(span);
        let span = llm_call_span!(model = "grok-4", provider = "x_ai");
        Usage::from_xai(&fixture("xai.json"))
            .unwrap()
            .record_on(&span);
    });
    drop(guard);
    let lines = buf.lines();
    let c = common::calls(&lines);
    assert_eq!(
        c[0]["tokens"],
        json!({"input": 42143, "output": 503, "total": 42646, "cache_read": 38000,
               "cache_write": 2048, "reasoning": 0})
    );
    // claude-sonnet-4-5: 2095 plain × 3e-6, 38000 read × 3e-7, 1024 5-minute writes × 3.75e-6,
    // 1024 1-hour writes × 6e-6, 503 out × 1.5e-5
    let want = 2095.0 * 3e-6 + 38_000.0 * 3e-7 + 1024.0 * 3.75e-6 + 1024.0 * 6e-6 + 503.0 * 1.5e-5;
    assert!((c[0]["cost_usd"].as_f64().unwrap() - want).abs() < 1e-9);
    assert_eq!(c[0]["cost_source"], "local");
    assert_eq!(c[0]["warnings"], json!([]));
    assert_eq!(c[1]["cost_usd"], 0.0015805);
    assert_eq!(c[1]["cost_source"], "provider");
    assert_eq!(c[1]["tokens"]["reasoning"], 94);
    assert_eq!(handle.totals().calls, 2);
}

#[cfg(feature = "tiktoken")]
#[test]
fn estimated_counts_are_marked_estimated_in_the_log() {
    let (d, _handle, guard, buf) = common::setup(UsageLayer::builder());
    dispatcher::with_default(&d, || {
        let span = llm_call_span!(model = "gpt-4", provider = "openai");
        Usage::estimated("gpt-4", "tiktoken is great!", "hello world").record_on(&span);
    });
    drop(guard);
    let lines = buf.lines();
    let c = common::calls(&lines);
    assert_eq!(c[0]["estimated"], true);
    assert_eq!(c[0]["tokens"]["input"], 6);
    assert_eq!(c[0]["tokens"]["output"], 2);
}

/// The helpers keep what the replies say by modality and tier, and the line is priced by it.
#[test]
fn modalities_and_tiers_reach_the_priced_line() {
    let (d, _handle, guard, buf) = common::setup(UsageLayer::builder());
    let audio = Usage::from_openai(&fixture("openai_audio.json")).unwrap();
    let flex = Usage::from_openai(&fixture("openai_flex.json")).unwrap();
    let gemini = Usage::from_gemini(&fixture("gemini_audio.json")).unwrap();
    let anthropic = Usage::from_anthropic(&fixture("anthropic.json")).unwrap();
    assert_eq!(flex.service_tier.as_deref(), Some("flex"));
    assert_eq!(audio.service_tier.as_deref(), Some("default"));
    assert_eq!(anthropic.service_tier.as_deref(), Some("standard"));
    let a = audio
        .modality
        .get(tracing_llm_usage::Modality::Audio)
        .unwrap();
    assert_eq!((a.input, a.output), (Some(1000), Some(2000)));
    let g = gemini
        .modality
        .get(tracing_llm_usage::Modality::Audio)
        .unwrap();
    assert_eq!((g.input, g.output), (Some(6000), None));
    dispatcher::with_default(&d, || {
        for (usage, model, provider) in [
            (&audio, "gpt-audio", "openai"),
            (&flex, "gpt-5", "openai"),
            (&gemini, "gemini-2.5-flash", "gcp.gemini"),
        ] {
            let span = llm_call_span!(model = model, provider = provider);
            usage.record_on(&span);
        }
    });
    drop(guard);
    let lines = buf.lines();
    let c = common::calls(&lines);
    let cost = |i: usize| c[i]["cost_usd"].as_f64().unwrap();
    // gpt-audio: 2,000 text in × 2.5e-6, 1,000 audio in × 3.2e-5, 500 text out × 1e-5,
    // 2,000 audio out × 6.4e-5.
    assert!((cost(0) - 0.17).abs() < 1e-9, "{}", c[0]);
    // gpt-5 flex: 8,000 in × 6.25e-7, 2,000 cached × 6.25e-8, 5,000 out × 5e-6.
    assert!((cost(1) - 0.030125).abs() < 1e-9, "{}", c[1]);
    assert_eq!(c[1]["service_tier"], "flex");
    // gemini-2.5-flash (Gemini's API): 4,000 text in × 3e-7, 6,000 audio in × 1e-6, 1,000 out
    // × 2.5e-6.
    assert!((cost(2) - 0.0097).abs() < 1e-9, "{}", c[2]);
}

/// Bedrock and Mistral replies priced as LiteLLM's file prices their models.
#[test]
fn bedrock_and_mistral_replies_are_priced_from_the_file() {
    let (d, _handle, guard, buf) = common::setup(UsageLayer::builder());
    let bedrock = Usage::from_bedrock(&fixture("bedrock.json")).unwrap();
    let mistral = Usage::from_mistral(&fixture("mistral.json")).unwrap();
    dispatcher::with_default(&d, || {
        let span = llm_call_span!(
            model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            provider = "aws.bedrock"
        );
        bedrock.record_on(&span);
        drop(span);
        let span = llm_call_span!(model = "mistral-large-latest", provider = "mistral_ai");
        mistral.record_on(&span);
    });
    drop(guard);
    let lines = buf.lines();
    let c = common::calls(&lines);
    let cost = |i: usize| c[i]["cost_usd"].as_f64().unwrap();
    // us.anthropic.claude-sonnet-4-5 (cross-region, 10 % above the base): 1,530 plain × 3.3e-6,
    // 8,192 read × 3.3e-7, 2,048 written × 4.125e-6, 412 out × 1.65e-5.
    let want = 1_530.0 * 3.3e-6 + 8_192.0 * 3.3e-7 + 2_048.0 * 4.125e-6 + 412.0 * 1.65e-5;
    assert!((cost(0) - want).abs() < 1e-9, "{} {want}", c[0]);
    // mistral-large-latest: 186 plain × 5e-7, 1,024 cached × 5e-8, 316 out × 1.5e-6.
    let want = 186.0 * 5e-7 + 1_024.0 * 5e-8 + 316.0 * 1.5e-6;
    assert!((cost(1) - want).abs() < 1e-9, "{} {want}", c[1]);
}

/// Every helper refuses every other API's reply with an error naming the right helper:
/// never `Ok` with zero tokens.
#[test]
fn each_helper_refuses_the_other_apis_replies() {
    type Helper = fn(&Value) -> Result<Usage, UsageError>;
    let helpers: [(&str, &str, Helper); 8] = [
        ("chat", "Usage::from_openai", Usage::from_openai),
        ("chat", "Usage::from_xai", Usage::from_xai),
        ("chat", "Usage::from_mistral", Usage::from_mistral),
        (
            "responses",
            "Usage::from_openai_responses",
            Usage::from_openai_responses,
        ),
        ("anthropic", "Usage::from_anthropic", Usage::from_anthropic),
        ("gemini", "Usage::from_gemini", Usage::from_gemini),
        ("bedrock", "Usage::from_bedrock", Usage::from_bedrock),
        ("ollama", "Usage::from_ollama", Usage::from_ollama),
    ];
    let replies = [
        ("chat", "openai_chat.json", "Usage::from_openai"),
        ("chat", "openai_audio.json", "Usage::from_openai"),
        ("chat", "mistral.json", "Usage::from_openai"),
        ("chat", "openrouter.json", "Usage::from_openai"),
        ("chat", "xai.json", "Usage::from_openai"),
        (
            "responses",
            "openai_responses.json",
            "Usage::from_openai_responses",
        ),
        ("anthropic", "anthropic.json", "Usage::from_anthropic"),
        ("gemini", "gemini.json", "Usage::from_gemini"),
        ("gemini", "gemini_audio.json", "Usage::from_gemini"),
        ("bedrock", "bedrock.json", "Usage::from_bedrock"),
        ("ollama", "ollama.json", "Usage::from_ollama"),
    ];
    let mut checked = 0;
    for (kind, file, right) in replies {
        let reply = fixture(file);
        for (helper_kind, name, helper) in helpers {
            let got = helper(&reply);
            if helper_kind == kind {
                assert!(got.is_ok(), "{name} on {file}: {got:?}");
            } else {
                match got {
                    Err(UsageError::WrongShape {
                        helper, instead, ..
                    }) => {
                        assert_eq!((helper, instead), (name, right), "{file}");
                    }
                    other => panic!("{name} on {file}: {other:?}"),
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 88);
    assert_eq!(
        Usage::from_openai(&fixture("openai_responses.json"))
            .unwrap_err()
            .to_string(),
        "Usage::from_openai was given an OpenAI Responses API reply: use \
         Usage::from_openai_responses"
    );
    // A reply without any usage is Missing, for every helper.
    for (_, name, helper) in helpers {
        assert!(
            matches!(helper(&json!({"id": "x"})), Err(UsageError::Missing { .. })),
            "{name}"
        );
    }
}
