//! Spans shaped exactly as real LLM clients write them (rig-core and rig-agent 0.44, genai's
//! `otel` feature, the OpenTelemetry GenAI conventions), counted with nothing but
//! `UsageLayer::builder()` and the application's own run spans.

mod common;

use common::{calls, setup, summaries, summary};
use serde_json::Value;
use tracing::{dispatcher, field::Empty, info_span, Span};
use tracing_llm_usage::{PriceTable, UsageLayer};

/// Text a client records with content telemetry on: it must never reach a line.
const SECRET: &str = "SECRET-CONTENT";

/// rig-core's span for a direct model call (`new_completion_span!`, target `rig::completions`).
fn rig_chat(provider: &str, model: &str) -> Span {
    info_span!(
        target: "rig::completions",
        "chat",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = provider,
        gen_ai.request.model = model,
        gen_ai.system_instructions = Empty,
        gen_ai.request.stream = Empty,
        gen_ai.response.id = Empty,
        gen_ai.response.model = Empty,
        rig.provider_request_id = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.usage.cache_read.input_tokens = Empty,
        gen_ai.usage.cache_creation.input_tokens = Empty,
        gen_ai.usage.tool_use_prompt_tokens = Empty,
        gen_ai.usage.reasoning_tokens = Empty,
        gen_ai.input.messages = Empty,
        gen_ai.output.messages = Empty
    )
}

/// rig-agent's span for one agent turn (`completion_parent_span!`, target `rig::agent_chat`),
/// which rig-core adopts as the provider request's span.
fn rig_agent_turn(agent: &str) -> Span {
    info_span!(
        target: "rig::agent_chat",
        "chat",
        rig.completion_parent = true,
        gen_ai.operation.name = "chat",
        gen_ai.system_instructions = Empty,
        gen_ai.provider.name = Empty,
        gen_ai.request.model = Empty,
        gen_ai.request.stream = Empty,
        gen_ai.response.id = Empty,
        gen_ai.response.model = Empty,
        rig.provider_request_id = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.usage.cache_read.input_tokens = Empty,
        gen_ai.usage.cache_creation.input_tokens = Empty,
        gen_ai.usage.tool_use_prompt_tokens = Empty,
        gen_ai.usage.reasoning_tokens = Empty,
        gen_ai.input.messages = Empty,
        gen_ai.output.messages = Empty,
        gen_ai.agent.name = agent
    )
}

/// rig-agent's root span for an agent run outside any enabled span.
fn rig_invoke_agent(agent: &str) -> Span {
    info_span!(
        target: "rig_agent::agent::telemetry",
        parent: None,
        "invoke_agent",
        gen_ai.operation.name = "invoke_agent",
        gen_ai.agent.name = agent,
        gen_ai.system_instructions = Empty,
        gen_ai.prompt = Empty,
        gen_ai.completion = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.usage.cache_read.input_tokens = Empty,
        gen_ai.usage.cache_creation.input_tokens = Empty,
        gen_ai.usage.tool_use_prompt_tokens = Empty,
        gen_ai.usage.reasoning_tokens = Empty
    )
}

/// rig-agent's span around a tool call.
fn rig_execute_tool(tool: &str) -> Span {
    let span = info_span!(
        target: "rig_agent::agent::telemetry",
        "execute_tool",
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.type = "function",
        gen_ai.tool.name = Empty,
        gen_ai.tool.call.id = Empty,
        gen_ai.tool.call.arguments = Empty,
        gen_ai.tool.call.result = Empty,
        gen_ai.tool.call.outcome = Empty,
        gen_ai.tool.error.type = Empty
    );
    span.record("gen_ai.tool.name", tool);
    span.record("gen_ai.tool.call.arguments", SECRET);
    span.record("gen_ai.tool.call.result", SECRET);
    span
}

/// `Agent::chat`'s `#[instrument]` span: named `chat`, no usage of its own.
fn rig_agent_chat_wrapper(agent: &str) -> Span {
    info_span!(target: "rig_agent::agent::completion", "chat", agent_name = agent)
}

/// A provider's usage as rig normalises it.
#[derive(Clone, Copy)]
struct Served {
    input: u64,
    output: u64,
    cache_read: u64,
    reasoning: u64,
}

const fn served(input: u64, output: u64, cache_read: u64, reasoning: u64) -> Served {
    Served {
        input,
        output,
        cache_read,
        reasoning,
    }
}

/// What rig-core records on a completion span: on adoption the request's identity, after the
/// reply the response and its usage (`SpanCombinator::record_response`), and the content
/// when content telemetry is on.
fn rig_records(span: &Span, model: &str, stream: bool, u: Served) {
    span.record("gen_ai.provider.name", "openai");
    span.record("gen_ai.request.model", model);
    span.record("gen_ai.request.stream", stream);
    span.record("gen_ai.system_instructions", SECRET);
    span.record("gen_ai.input.messages", SECRET);
    span.record("gen_ai.response.id", "resp_1");
    span.record(
        "gen_ai.response.model",
        format!("{model}-2025-04-14").as_str(),
    );
    span.record("gen_ai.usage.input_tokens", u.input);
    span.record("gen_ai.usage.output_tokens", u.output);
    span.record("gen_ai.usage.cache_read.input_tokens", u.cache_read);
    span.record("gen_ai.usage.reasoning_tokens", u.reasoning);
    span.record("gen_ai.output.messages", SECRET);
}

fn tokens(line: &Value) -> (u64, u64, u64, u64) {
    let t = &line["tokens"];
    (
        t["input"].as_u64().unwrap(),
        t["output"].as_u64().unwrap(),
        t["cache_read"].as_u64().unwrap(),
        t["reasoning"].as_u64().unwrap(),
    )
}

fn usage(summary: &Value) -> (u64, u64, u64) {
    let u = &summary["usage"];
    (
        u["input_tokens"].as_u64().unwrap(),
        u["output_tokens"].as_u64().unwrap(),
        u["call_count"].as_u64().unwrap(),
    )
}

#[test]
fn rig_calls_and_agents_are_counted_once_each_without_configuration() {
    let (d, handle, guard, buf) = setup(UsageLayer::builder());
    let turns = [
        served(1200, 80, 1000, 0),
        served(1400, 60, 1200, 32),
        served(1550, 200, 1400, 128),
    ];
    dispatcher::with_default(&d, || {
        // Plain calls, unary and streamed, in a run.
        let run = info_span!("workflow", run_id = "plain");
        run.in_scope(|| {
            let call = rig_chat("openai", "gpt-4.1");
            rig_records(&call, "gpt-4.1", false, served(500, 40, 0, 0));
            drop(call);
            let streamed = rig_chat("openai", "gpt-4.1");
            rig_records(&streamed, "gpt-4.1", true, served(700, 90, 512, 64));
            drop(streamed);
        });
        drop(run);

        // A multi-turn tool agent inside the user's run span (rig-agent reuses the run span as
        // its agent span): one turn span per provider request, tools between them.
        let run = info_span!("workflow", run_id = "agent", step = "answer");
        run.in_scope(|| {
            for (i, u) in turns.iter().enumerate() {
                let turn = rig_agent_turn("weather");
                rig_records(&turn, "gpt-4.1-mini", false, *u);
                drop(turn);
                if i < 2 {
                    drop(rig_execute_tool("forecast"));
                }
            }
        });
        drop(run);

        // A streaming agent records the same usage twice on its turn span; the last value
        // stands.
        let run = info_span!("workflow", run_id = "streaming-agent");
        run.in_scope(|| {
            let turn = rig_agent_turn("weather");
            rig_records(&turn, "gpt-4.1-mini", true, served(300, 20, 0, 0));
            rig_records(&turn, "gpt-4.1-mini", true, served(300, 20, 0, 0));
            drop(turn);
        });
        drop(run);

        // `Agent::chat` with history: its `#[instrument]` span named `chat` wraps the turns.
        let run = info_span!("workflow", run_id = "chat-history");
        run.in_scope(|| {
            let wrapper = rig_agent_chat_wrapper("weather");
            wrapper.in_scope(|| {
                let turn = rig_agent_turn("weather");
                rig_records(&turn, "gpt-4.1-mini", false, served(2000, 50, 1800, 0));
            });
        });
        drop(run);

        // An agent outside any run span: rig-agent opens a root `invoke_agent` span and records
        // the sum of its turns on it at the end.
        let agent = rig_invoke_agent("weather");
        agent.in_scope(|| {
            for u in &turns[..2] {
                let turn = rig_agent_turn("weather");
                rig_records(&turn, "gpt-4.1-mini", false, *u);
            }
        });
        agent.record("gen_ai.usage.input_tokens", 2600u64);
        agent.record("gen_ai.usage.output_tokens", 140u64);
        agent.record("gen_ai.prompt", SECRET);
        agent.record("gen_ai.completion", SECRET);
        drop(agent);
    });
    let agent_run = handle
        .recent_runs()
        .into_iter()
        .find(|r| r.run_id.starts_with("weather-"))
        .expect("the agent invocation is a run");
    drop(guard);
    let text = buf.text();
    assert!(!text.contains(SECRET), "content reached the log:\n{text}");
    let lines = buf.lines();

    let c = calls(&lines);
    assert_eq!(c.len(), 2 + 3 + 1 + 1 + 2, "one line per provider request");
    for line in &c {
        assert_eq!(line["provider"], "openai");
        assert!(line["warnings"].as_array().unwrap().is_empty(), "{line}");
    }
    // Plain calls: the response model, stream flag and every count as served.
    assert_eq!(c[0]["run_id"], "plain");
    assert_eq!(c[0]["model"], "gpt-4.1-2025-04-14");
    assert_eq!(tokens(c[0]), (500, 40, 0, 0));
    assert_eq!(c[0]["stream"], false);
    assert_eq!(tokens(c[1]), (700, 90, 512, 64));
    assert_eq!(c[1]["stream"], true);
    assert_eq!(usage(summary(&lines, "plain")), (1200, 130, 2));

    // The tool agent: three turns, named by the agent, in the run's step.
    for (line, u) in c[2..5].iter().zip(&turns) {
        assert_eq!(line["run_id"], "agent");
        assert_eq!(line["agent"], "weather");
        assert_eq!(line["step"], "answer");
        assert_eq!(tokens(line), (u.input, u.output, u.cache_read, u.reasoning));
    }
    assert_eq!(usage(summary(&lines, "agent")), (4150, 340, 3));

    assert_eq!(tokens(c[5]), (300, 20, 0, 0));
    assert_eq!(usage(summary(&lines, "streaming-agent")), (300, 20, 1));

    // The `chat` wrapper is not a call: one line for the one request.
    assert_eq!(tokens(c[6]), (2000, 50, 1800, 0));
    assert_eq!(usage(summary(&lines, "chat-history")), (2000, 50, 1));

    // The agent outside any run: a run of its own with its turns, the sum on the
    // `invoke_agent` span not counted again.
    let id = agent_run.run_id.to_string();
    assert_eq!(c[7]["run_id"], id.as_str());
    assert_eq!(c[8]["run_id"], id.as_str());
    assert_eq!(agent_run.usage.input_tokens, 2600);
    assert_eq!(agent_run.usage.output_tokens, 140);
    assert_eq!(agent_run.usage.call_count, 2);
    assert_eq!(usage(summary(&lines, &id)), (2600, 140, 2));
    assert_eq!(summaries(&lines).len(), 5);

    let totals = handle.totals();
    assert_eq!(totals.calls, 9);
    assert_eq!(totals.input_tokens, 1200 + 4150 + 300 + 2000 + 2600);
    let stats = handle.stats();
    assert_eq!(stats.uncounted_spans, 0);
    assert_eq!(stats.nested_duplicates, 0);
}

#[test]
fn agent_runs_outside_any_run_get_distinct_ids_naming_the_agent() {
    let (d, handle, guard, _buf) = setup(UsageLayer::builder());
    dispatcher::with_default(&d, || {
        for _ in 0..2 {
            let agent = rig_invoke_agent("planner");
            agent.in_scope(|| {
                let turn = rig_agent_turn("planner");
                rig_records(&turn, "gpt-4.1", false, served(10, 1, 0, 0));
            });
        }
        // Inside a run, an `invoke_agent` span is a scope of that run, not a run.
        let run = info_span!("job", run_id = "outer");
        run.in_scope(|| {
            let agent = info_span!(
                "invoke_agent",
                gen_ai.operation.name = "invoke_agent",
                gen_ai.agent.name = "planner",
                gen_ai.usage.input_tokens = Empty
            );
            agent.in_scope(|| {
                let turn = rig_agent_turn("planner");
                rig_records(&turn, "gpt-4.1", false, served(7, 1, 0, 0));
            });
            agent.record("gen_ai.usage.input_tokens", 7u64);
        });
    });
    let runs = handle.recent_runs();
    drop(guard);
    let ids: Vec<&str> = runs.iter().map(|r| &*r.run_id).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids[0].starts_with("planner-") && ids[1].starts_with("planner-"));
    assert_ne!(ids[0], ids[1]);
    assert_eq!(ids[2], "outer");
    assert_eq!(runs[2].usage.input_tokens, 7);
    assert_eq!(runs[2].usage.call_count, 1);
    assert_eq!(handle.stats().uncounted_spans, 0);
}

#[test]
fn nested_call_spans_count_each_request_once() {
    let (d, handle, guard, buf) = setup(UsageLayer::builder().prices(PriceTable::new()));
    dispatcher::with_default(&d, || {
        let run = info_span!("job", run_id = "nested");
        let _r = run.enter();
        // The README's `llm_call` around a client's own span: the inner span carries the
        // usage, the outer hands its step down and writes no line.
        let outer = info_span!("llm_call", step = "draft", model = "gpt-4.1");
        outer.in_scope(|| {
            let inner = rig_chat("openai", "gpt-4.1");
            rig_records(&inner, "gpt-4.1", false, served(100, 10, 0, 0));
        });
        drop(outer);
        // Both record the same usage: counted once.
        let outer = info_span!(
            "llm_call",
            step = "review",
            tokens.input = Empty,
            tokens.output = Empty
        );
        outer.in_scope(|| {
            let inner = rig_chat("openai", "gpt-4.1");
            rig_records(&inner, "gpt-4.1", false, served(200, 20, 0, 0));
        });
        outer.record("tokens.input", 200u64);
        outer.record("tokens.output", 20u64);
        drop(outer);
        // The outer span reports more than the request inside it: the rest is counted.
        let outer = info_span!(
            "llm_call",
            step = "retry",
            tokens.input = 350u64,
            tokens.output = 30u64
        );
        outer.in_scope(|| {
            let inner = rig_chat("openai", "gpt-4.1");
            rig_records(&inner, "gpt-4.1", false, served(300, 25, 0, 0));
        });
        drop(outer);
    });
    drop(guard);
    let lines = buf.lines();
    let c = calls(&lines);
    assert_eq!(c.len(), 4);
    assert_eq!(
        (c[0]["step"].as_str(), tokens(c[0])),
        (Some("draft"), (100, 10, 0, 0))
    );
    assert_eq!(
        (c[1]["step"].as_str(), tokens(c[1])),
        (Some("review"), (200, 20, 0, 0))
    );
    assert_eq!(
        (c[2]["step"].as_str(), tokens(c[2])),
        (Some("retry"), (300, 25, 0, 0))
    );
    assert_eq!(
        (c[3]["step"].as_str(), tokens(c[3])),
        (Some("retry"), (50, 5, 0, 0))
    );
    assert_eq!(
        c[3]["warnings"][0],
        "300 input and 25 output tokens of this span were counted by 1 call span(s) inside it \
         and are not counted again"
    );
    assert_eq!(usage(summary(&lines, "nested")), (650, 60, 4));
    assert_eq!(handle.stats().nested_duplicates, 1);
}

#[test]
fn a_custom_span_name_does_not_count_rigs_chat_wrapper() {
    // With `.span_name("chat")` every `chat` span is a call, rig-agent's `Agent::chat`
    // wrapper included; it has no usage of its own and wraps a counted turn, so it writes
    // no line.
    let (d, _handle, guard, buf) = setup(UsageLayer::builder().span_name("chat"));
    dispatcher::with_default(&d, || {
        let run = info_span!("job", run_id = "named");
        let _r = run.enter();
        let wrapper = rig_agent_chat_wrapper("weather");
        wrapper.in_scope(|| {
            for u in [served(40, 4, 0, 2), served(50, 5, 0, 0)] {
                let turn = rig_agent_turn("weather");
                rig_records(&turn, "gpt-4.1", false, u);
            }
        });
    });
    drop(guard);
    let lines = buf.lines();
    let c = calls(&lines);
    assert_eq!(c.len(), 2);
    assert_eq!(tokens(c[0]), (40, 4, 0, 2));
    assert_eq!(usage(summary(&lines, "named")), (90, 9, 2));
}

#[test]
fn genai_spans_and_the_conventions_latest_names_are_read() {
    let (d, _handle, guard, buf) = setup(UsageLayer::builder().prices(PriceTable::new()));
    dispatcher::with_default(&d, || {
        let run = info_span!("job", run_id = "genai");
        let _r = run.enter();
        // genai's workflow and agent spans carry no usage: they hand the agent down.
        let workflow = info_span!(
            target: "genai",
            "genai.invoke_workflow",
            gen_ai.operation.name = "invoke_workflow"
        );
        let _w = workflow.enter();
        let agent = info_span!(
            target: "genai",
            "genai.agent",
            gen_ai.operation.name = "invoke_agent",
            gen_ai.agent.name = "researcher"
        );
        let _a = agent.enter();
        let chat = info_span!(
            target: "genai",
            "genai.chat",
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = "anthropic",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.response.model = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.usage.cache_read.input_tokens = Empty,
            gen_ai.usage.cache_creation.input_tokens = Empty,
            gen_ai.usage.reasoning.output_tokens = Empty,
            gen_ai.input.messages = Empty
        );
        chat.record("gen_ai.input.messages", SECRET);
        chat.record("gen_ai.usage.input_tokens", 3000u64);
        chat.record("gen_ai.usage.output_tokens", 400u64);
        chat.record("gen_ai.usage.cache_read.input_tokens", 1000u64);
        chat.record("gen_ai.usage.cache_creation.input_tokens", 500u64);
        chat.record("gen_ai.usage.reasoning.output_tokens", 100u64);
        drop(chat);
        // Embeddings: an inference operation named by the span alone.
        drop(info_span!(
            target: "genai",
            "genai.embeddings",
            gen_ai.request.model = "text-embedding-3-small",
            gen_ai.usage.input_tokens = 64u64
        ));
        // The conventions' current names: cache writes, modalities, time to first chunk.
        let call = info_span!(
            "generate_content",
            gen_ai.operation.name = "generate_content",
            gen_ai.provider.name = "gcp.gemini",
            gen_ai.request.model = "gemini-2.5-flash",
            gen_ai.request.stream = true,
            gen_ai.response.time_to_first_chunk = 0.2504,
            gen_ai.usage.input_tokens = 900u64,
            gen_ai.usage.output_tokens = 80u64,
            gen_ai.usage.cache_write.input_tokens = 300u64,
            gen_ai.usage.cache_creation.input_tokens = 1u64,
            gen_ai.usage.audio.input_tokens = 600u64,
            gen_ai.usage.text.input_tokens = 300u64,
            gen_ai.usage.text.output_tokens = 80u64
        );
        drop(call);
    });
    drop(guard);
    assert!(!buf.text().contains(SECRET));
    let lines = buf.lines();
    let c = calls(&lines);
    assert_eq!(c.len(), 3);
    assert_eq!(c[0]["agent"], "researcher");
    assert_eq!(c[0]["model"], "claude-sonnet-4-5");
    assert_eq!(c[0]["tokens"]["cache_write"], 500);
    assert_eq!(tokens(c[0]), (3000, 400, 1000, 100));
    assert_eq!(c[0].get("stream"), None, "absent when not reported");
    assert_eq!(c[1]["model"], "text-embedding-3-small");
    assert_eq!(c[1]["agent"], "researcher");
    assert_eq!(tokens(c[1]), (64, 0, 0, 0));
    let g = c[2];
    assert_eq!(
        g["tokens"]["cache_write"], 300,
        "the current name outranks the older one"
    );
    assert_eq!(g["stream"], true);
    assert_eq!(g["ttft_ms"], 250);
    assert_eq!(
        g["modality"],
        serde_json::json!({"text": {"input": 300, "output": 80}, "audio": {"input": 600}})
    );
    assert_eq!(usage(summary(&lines, "genai")), (3964, 480, 3));
}

#[test]
fn spans_that_record_usage_but_are_not_calls_are_counted_as_uncounted() {
    let (d, handle, guard, buf) = setup(UsageLayer::builder());
    dispatcher::with_default(&d, || {
        let run = info_span!("job", run_id = "blind");
        let _r = run.enter();
        for _ in 0..2 {
            // A misnamed call span.
            let misnamed = info_span!("openai_request", tokens.input = Empty, tokens.output = 1);
            misnamed.record("tokens.input", 100u64);
        }
        // A GenAI span of an operation that is not configured as a call.
        drop(info_span!(
            target: "rig::modalities",
            "rerank",
            gen_ai.operation.name = "rerank",
            gen_ai.usage.input_tokens = 50u64
        ));
        // Declared but never recorded: nothing to report.
        drop(info_span!("quiet", tokens.input = Empty));
        drop(info_span!(
            "llm_call",
            tokens.input = 5u64,
            tokens.output = 1u64
        ));
    });
    drop(guard);
    let lines = buf.lines();
    assert_eq!(calls(&lines).len(), 1);
    assert_eq!(handle.stats().uncounted_spans, 3);
    let s = summary(&lines, "blind");
    assert_eq!(
        s["warnings"],
        serde_json::json!([
            "span \"openai_request\" (target \"clients\", level INFO) recorded token usage and was not counted",
            "span \"rerank\" (target \"rig::modalities\", level INFO) recorded token usage and was not counted"
        ])
    );
}

#[test]
fn more_inference_operations_can_be_configured() {
    let (d, handle, guard, _buf) =
        setup(UsageLayer::builder().genai_operations(["chat", "rerank"]));
    dispatcher::with_default(&d, || {
        drop(info_span!(
            "rerank",
            gen_ai.operation.name = "rerank",
            gen_ai.usage.input_tokens = 50u64
        ));
        // No longer in the list.
        drop(info_span!(
            "embeddings",
            gen_ai.operation.name = "embeddings",
            gen_ai.usage.input_tokens = 8u64
        ));
    });
    drop(guard);
    assert_eq!(handle.totals().input_tokens, 50);
    assert_eq!(handle.stats().uncounted_spans, 1);
}

#[test]
fn a_call_reporting_audio_tokens_is_priced_at_the_audio_rates() {
    let (d, _handle, guard, buf) = setup(UsageLayer::builder());
    dispatcher::with_default(&d, || {
        for _ in 0..2 {
            // Twice: the second goes through the thread's remembered price.
            drop(info_span!(
                "generate_content",
                gen_ai.operation.name = "generate_content",
                gen_ai.provider.name = "gcp.gemini",
                gen_ai.request.model = "gemini-2.5-flash",
                gen_ai.usage.input_tokens = 1000u64,
                gen_ai.usage.output_tokens = 50u64,
                gen_ai.usage.cache_read.input_tokens = 100u64,
                gen_ai.usage.text.input_tokens = 400u64,
                gen_ai.usage.audio.input_tokens = 600u64,
                gen_ai.usage.audio.cache_read.input_tokens = 100u64
            ));
        }
        // The same call without the breakdown: text rates.
        drop(info_span!(
            "generate_content",
            gen_ai.operation.name = "generate_content",
            gen_ai.provider.name = "gcp.gemini",
            gen_ai.request.model = "gemini-2.5-flash",
            gen_ai.usage.input_tokens = 1000u64,
            gen_ai.usage.output_tokens = 50u64,
            gen_ai.usage.cache_read.input_tokens = 100u64
        ));
    });
    drop(guard);
    let lines = buf.lines();
    let c = calls(&lines);
    let costs: Vec<f64> = c.iter().map(|l| l["cost_usd"].as_f64().unwrap()).collect();
    for (got, want) in costs.iter().zip([7.55e-4, 7.55e-4, 3.98e-4]) {
        assert!((got - want).abs() < 1e-9, "{costs:?}");
    }
}

/// genai 0.7.2's `genai.chat` span (`genai::otel::span::chat_request_span`), field for field.
fn genai_chat(model: &str, stream: bool) -> Span {
    info_span!(
        target: "genai::otel::span",
        "genai.chat",
        "otel.name" = format!("chat {model}").as_str(),
        "otel.kind" = "client",
        "otel.status_code" = Empty,
        "error.type" = Empty,
        "gen_ai.operation.name" = "chat",
        "gen_ai.provider.name" = "openai",
        "gen_ai.request.model" = model,
        "gen_ai.request.stream" = stream,
        "gen_ai.request.temperature" = Empty,
        "gen_ai.request.max_tokens" = Empty,
        "gen_ai.request.top_p" = Empty,
        "gen_ai.request.seed" = Empty,
        "gen_ai.request.stop_sequences" = Empty,
        "gen_ai.output.type" = Empty,
        "server.address" = Empty,
        "server.port" = Empty,
        "gen_ai.response.id" = Empty,
        "gen_ai.response.model" = Empty,
        "gen_ai.response.finish_reasons" = Empty,
        "gen_ai.usage.input_tokens" = Empty,
        "gen_ai.usage.output_tokens" = Empty,
        "gen_ai.usage.cache_read.input_tokens" = Empty,
        "gen_ai.usage.cache_creation.input_tokens" = Empty,
        "gen_ai.usage.reasoning.output_tokens" = Empty,
        "gen_ai.response.time_to_first_chunk" = Empty,
        "gen_ai.system_instructions" = Empty,
        "gen_ai.input.messages" = Empty,
        "gen_ai.output.messages" = Empty,
        "gen_ai.tool.definitions" = Empty,
    )
}

/// genai 0.7.2's agent span (`genai::otel::agent`): the agent's name is recorded after.
fn genai_agent(operation: &'static str) -> Span {
    info_span!(
        target: "genai::otel::agent",
        "genai.agent",
        "otel.name" = "invoke_agent researcher",
        "otel.kind" = "internal",
        "otel.status_code" = Empty,
        "error.type" = Empty,
        "gen_ai.operation.name" = operation,
        "gen_ai.agent.name" = Empty,
        "gen_ai.agent.id" = Empty,
        "gen_ai.agent.description" = Empty,
        "gen_ai.provider.name" = Empty,
        "gen_ai.request.model" = Empty,
    )
}

#[test]
fn genai_0_7_spans_are_counted_as_genai_writes_them() {
    let (d, handle, guard, buf) = setup(UsageLayer::builder().prices(PriceTable::new()));
    dispatcher::with_default(&d, || {
        // In the application's run, inside a workflow and an agent.
        let run = info_span!("job", run_id = "genai-run");
        run.in_scope(|| {
            let workflow = info_span!(
                target: "genai::otel::agent",
                "genai.invoke_workflow",
                "otel.name" = "invoke_workflow research",
                "otel.kind" = "internal",
                "otel.status_code" = Empty,
                "error.type" = Empty,
                "gen_ai.operation.name" = "invoke_workflow",
                "gen_ai.workflow.name" = "research",
            );
            let _w = workflow.enter();
            let agent = genai_agent("invoke_agent");
            agent.record("gen_ai.agent.name", "researcher");
            let _a = agent.enter();
            let chat = genai_chat("gpt-4.1", true);
            chat.record("gen_ai.input.messages", SECRET);
            chat.record("gen_ai.response.model", "gpt-4.1-2025-04-14");
            chat.record("gen_ai.usage.input_tokens", 1500i64);
            chat.record("gen_ai.usage.output_tokens", 120i64);
            chat.record("gen_ai.usage.cache_read.input_tokens", 1024i64);
            chat.record("gen_ai.usage.reasoning.output_tokens", 64i64);
            chat.record("gen_ai.response.time_to_first_chunk", 0.42);
            chat.record("gen_ai.output.messages", SECRET);
            drop(chat);
            // A failed request: genai records `error.type`.
            let failed = genai_chat("gpt-4.1", false);
            failed.record("error.type", "rate_limit_exceeded");
            drop(failed);
            let embed = info_span!(
                target: "genai::otel::span",
                "genai.embeddings",
                "otel.name" = "embeddings text-embedding-3-small",
                "otel.kind" = "client",
                "otel.status_code" = Empty,
                "error.type" = Empty,
                "gen_ai.operation.name" = "embeddings",
                "gen_ai.provider.name" = "openai",
                "gen_ai.request.model" = "text-embedding-3-small",
                "gen_ai.embeddings.dimension.count" = Empty,
                "gen_ai.request.encoding_formats" = Empty,
                "server.address" = Empty,
                "server.port" = Empty,
                "gen_ai.response.model" = Empty,
                "gen_ai.usage.input_tokens" = Empty,
            );
            embed.record("gen_ai.response.model", "text-embedding-3-small");
            embed.record("gen_ai.usage.input_tokens", 48i64);
        });
        // An agent invocation outside any run is a run of its own.
        let agent = genai_agent("invoke_agent");
        agent.in_scope(|| {
            let chat = genai_chat("gpt-4.1", false);
            chat.record("gen_ai.usage.input_tokens", 10i64);
            chat.record("gen_ai.usage.output_tokens", 2i64);
        });
        // genai's AgentSpan records the name after the span opens: the run is named by it.
        let named = genai_agent("invoke_agent");
        named.record("gen_ai.agent.name", "summarizer");
        named.in_scope(|| {
            let chat = genai_chat("gpt-4.1", false);
            chat.record("gen_ai.usage.input_tokens", 7i64);
            chat.record("gen_ai.usage.output_tokens", 1i64);
        });
    });
    drop(guard);
    assert!(!buf.text().contains(SECRET));
    let lines = buf.lines();
    let c = calls(&lines);
    assert_eq!(c.len(), 5);
    assert_eq!(c[0]["run_id"], "genai-run");
    assert_eq!(c[0]["agent"], "researcher");
    assert_eq!(c[0]["model"], "gpt-4.1-2025-04-14");
    assert_eq!(tokens(c[0]), (1500, 120, 1024, 64));
    assert_eq!(
        (c[0]["stream"].clone(), c[0]["ttft_ms"].clone()),
        (Value::Bool(true), 420.into())
    );
    assert_eq!(c[1]["error"], "rate_limit_exceeded");
    assert_eq!(tokens(c[1]), (0, 0, 0, 0));
    assert_eq!(
        (c[2]["model"].as_str(), tokens(c[2])),
        (Some("text-embedding-3-small"), (48, 0, 0, 0))
    );
    let s = summary(&lines, "genai-run");
    assert_eq!(usage(s), (1548, 120, 3));
    assert_eq!(s["status"], "error", "a failed call fails the run");
    let own = handle
        .recent_runs()
        .into_iter()
        .find(|r| r.run_id.starts_with("invoke_agent-"))
        .expect("the agent outside any run is a run");
    assert_eq!((own.usage.input_tokens, own.usage.call_count), (10, 1));
    assert_eq!(c[3]["run_id"], &*own.run_id);
    let named = handle
        .recent_runs()
        .into_iter()
        .find(|r| r.run_id.starts_with("summarizer-"))
        .expect("the named agent's run is named by it");
    assert_eq!((named.usage.input_tokens, named.usage.call_count), (7, 1));
    assert_eq!(c[4]["run_id"], &*named.run_id);
    assert_eq!(summary(&lines, &named.run_id)["usage"]["call_count"], 1);
}
