//! async-openai 0.43 with the layer, as the README shows: the README's program (the very
//! file, `examples/readme.rs`) run against a local OpenAI-compatible server writes one exact
//! line per request (chat, a stream with `include_usage`, the Responses API) and its run's
//! summary; a request the server fails is a line that says so, its run `error`.

use std::path::Path;

use async_openai::types::chat::{
    ChatCompletionRequestUserMessage, CreateChatCompletionRequestArgs,
};
use async_openai::Client;
use async_openai_compat::{Buf, MockOpenAi, Served};
use serde_json::Value;
use tracing::{info_span, Instrument};
use tracing_llm_usage::{llm_call_span, record_error, Usage, UsageLayer};
use tracing_subscriber::prelude::*;

mod readme {
    include!("../examples/readme.rs");

    /// The README's `main`, run from the test.
    pub(super) fn run() -> Result<(), Box<dyn std::error::Error>> {
        main()
    }
}

/// gpt-4o-mini in LiteLLM's file: 1.5e-7 a token in, 7.5e-8 cached, 6e-7 out.
fn gpt_4o_mini(s: &Served) -> f64 {
    (s.input - s.cached) as f64 * 1.5e-7 + s.cached as f64 * 7.5e-8 + s.output as f64 * 6e-7
}

fn tokens(line: &Value) -> (u64, u64, u64, u64) {
    let t = &line["tokens"];
    let n = |k: &str| t[k].as_u64().unwrap();
    (n("input"), n("output"), n("cache_read"), n("reasoning"))
}

fn failed_lines(lines: &[Value]) -> usize {
    lines.iter().filter(|l| l["event"] == "llm_call").count()
}

fn lines(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        out.extend(
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()),
        );
    }
    out
}

/// The README's block is this example, to the byte.
#[test]
fn the_readme_shows_this_program() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let program = include_str!("../examples/readme.rs");
    let start = readme
        .find("```rust,ignore\n")
        .expect("the README's async-openai block")
        + "```rust,ignore\n".len();
    let end = start + readme[start..].find("```\n").unwrap();
    assert_eq!(&readme[start..end], program);
}

#[test]
fn the_readme_program_and_a_failed_request_are_counted_exactly() {
    let server = MockOpenAi::start();
    std::env::set_var("OPENAI_BASE_URL", &server.base_url);
    std::env::set_var("OPENAI_API_KEY", "test-key");

    // A request the server fails (500), recorded the README's way, in a run of its own.
    let buf = Buf::default();
    let (layer, guard) = UsageLayer::builder()
        .jsonl_writer({
            let buf = buf.clone();
            move || buf.clone()
        })
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        rt.block_on(
            async {
                let client = Client::new();
                let call = llm_call_span!(model = "fail-gpt-4o-mini", provider = "openai");
                let request = CreateChatCompletionRequestArgs::default()
                    .model("fail-gpt-4o-mini")
                    .messages([ChatCompletionRequestUserMessage::from("Hi").into()])
                    .build()
                    .unwrap();
                match client.chat().create(request).instrument(call.clone()).await {
                    Ok(reply) => Usage::from_openai(&serde_json::to_value(&reply).unwrap())
                        .unwrap()
                        .record_on(&call),
                    Err(e) => record_error(&call, &e),
                }
            }
            .instrument(info_span!("run", run_id = "failing")),
        );
    });
    drop(guard);
    let failed = buf.lines();
    let call = failed.iter().find(|l| l["event"] == "llm_call").unwrap();
    assert!(
        call["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{call}"
    );
    assert_eq!(call["cost_usd"], Value::Null);
    assert_eq!(call["cost_source"], "no_usage");
    assert_eq!(tokens(call), (0, 0, 0, 0));
    let summary = failed.iter().find(|l| l["event"] == "run_summary").unwrap();
    assert_eq!(summary["status"], "error");

    // The README's program, as pasted.
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    readme::run().unwrap();
    // async-openai tries a failing request again before it gives up: one line for all.
    let (failed, served): (Vec<Served>, Vec<Served>) =
        server.served().into_iter().partition(|s| s.failed);
    assert!(!failed.is_empty());
    assert_eq!(
        failed_lines(&buf.lines()),
        1,
        "one line for the failed request, whatever its attempts"
    );
    assert_eq!(
        served
            .iter()
            .map(|s| (s.api, s.stream, s.usage_sent))
            .collect::<Vec<_>>(),
        [
            ("chat", false, true),
            ("chat", true, true),
            ("responses", false, true)
        ]
    );
    let all = lines(&dir.path().join("llm_usage_logs"));
    let calls: Vec<&Value> = all.iter().filter(|l| l["event"] == "llm_call").collect();
    assert_eq!(calls.len(), 3);
    let mut cost = 0.0;
    for (s, c) in served.iter().zip(&calls) {
        assert_eq!(tokens(c), (s.input, s.output, s.cached, s.reasoning), "{c}");
        assert_eq!(c["run_id"], "weather-1");
        let want = gpt_4o_mini(s);
        assert!((c["cost_usd"].as_f64().unwrap() - want).abs() < 1e-9, "{c}");
        cost += want;
    }
    let summary = all.iter().find(|l| l["event"] == "run_summary").unwrap();
    assert_eq!(summary["status"], "success");
    assert_eq!(summary["usage"]["call_count"], 3);
    assert!((summary["usage"]["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-9);
}
