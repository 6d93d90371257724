//! The layer's behaviour, one scoped dispatcher per test: attribution, field names, the exact
//! JSONL lines, bad values, runs and orphans, the handle.

mod common;

use common::{calls, setup, stable, summaries, summary};
use serde_json::json;
use tracing::{dispatcher, field::Empty, info_span};
use tracing_llm_usage::{ModelPrice, PriceTable, Rates, RunStatus, UsageLayer};

/// Replaces the two values that vary (timestamp, latency) with fixed text.
fn mask(line: &str) -> String {
    let ts = line.find("\"timestamp\":\"").unwrap() + 13;
    let mut s = format!("{}TS{}", &line[..ts], &line[ts + 24..]);
    let lat = s.find("\"latency_ms\":").unwrap() + 13;
    let end = lat + s[lat..].find(',').unwrap();
    s.replace_range(lat..end, "0");
    s
}

fn call(step: &str, model: &str, input: u64, output: u64) {
    let span = info_span!(
        "llm_call",
        step = step,
        model = model,
        provider = "anthropic",
        tokens.input = Empty,
        tokens.output = Empty
    );
    span.record("tokens.input", input);
    span.record("tokens.output", output);
}

#[test]
fn one_run_with_several_steps_writes_exact_lines() {
    let (d, handle, guard, buf) = setup(UsageLayer::builder());
    dispatcher::with_default(&d, || {
        let run = info_span!("run", run_id = "run-def456");
        let _in_run = run.enter();
        let span = info_span!(
            "llm_call",
            step = "persona_generation",
            model = "claude-sonnet-4-5-20250929",
            provider = "anthropic",
            tokens.input = 42000u64,
            tokens.output = 7500u64,
            prompt.system = 2100,
            prompt.data = 38000,
            prompt.instructions = 1900
        );
        drop(span);
        call(
            "persona_generation",
            "claude-sonnet-4-5-20250929",
            1000,
            500,
        );
        call(
            "summary_generation",
            "claude-sonnet-4-5-20250929",
            2200,
            750,
        );
    });
    drop(guard);

    let text = buf.text();
    let first = text.lines().next().unwrap();
    // The bundled LiteLLM figures: $3 / $15 per million input / output tokens.
    assert_eq!(
        mask(first),
        format!(
            r#"{{"timestamp":"TS","event":"llm_call","run_id":"run-def456","step":"persona_generation","model":"claude-sonnet-4-5-20250929","provider":"anthropic","task":null,"agent":null,"tokens":{{"input":42000,"output":7500,"total":49500,"cache_read":0,"cache_write":0,"reasoning":0}},"prompt_breakdown":{{"system":2100,"data":38000,"instructions":1900}},"cost_usd":0.2385,"cost_source":"local","price_version":"{}","latency_ms":0,"estimated":false,"error":null,"warnings":[]}}"#,
            PriceTable::bundled().version()
        )
    );

    let lines = buf.lines();
    assert_eq!(calls(&lines).len(), 3);
    assert_eq!(lines.len(), 4, "three calls and one summary");
    let s = summary(&lines, "run-def456");
    let persona = 0.2385 + (1000.0 * 3e-6 + 500.0 * 15e-6);
    let summary_step = 2200.0 * 3e-6 + 750.0 * 15e-6;
    let cost = |v: &serde_json::Value| v.as_f64().unwrap();
    assert!((cost(&s["usage"]["cost_usd"]) - (persona + summary_step)).abs() < 1e-9);
    assert!((cost(&s["by_step"][0]["cost_usd"]) - persona).abs() < 1e-9);
    assert!((cost(&s["by_step"][1]["cost_usd"]) - summary_step).abs() < 1e-9);
    let mut s = stable(s);
    s["usage"]["cost_usd"] = json!(null);
    s["by_step"][0]["cost_usd"] = json!(null);
    s["by_step"][1]["cost_usd"] = json!(null);
    assert_eq!(
        s,
        json!({
            "event": "run_summary", "run_id": "run-def456", "status": "success",
            "usage": {"input_tokens": 45200, "output_tokens": 8750, "total_tokens": 53950,
                      "call_count": 3, "cost_usd": null, "unpriced_calls": 0},
            "by_step": [
                {"step": "persona_generation", "input_tokens": 43000, "output_tokens": 8000,
                 "calls": 2, "cost_usd": null},
                {"step": "summary_generation", "input_tokens": 2200, "output_tokens": 750,
                 "calls": 1, "cost_usd": null}
            ],
            "prompt_breakdown": {"system": 2100, "data": 38000, "instructions": 1900}
        })
    );
    // The summary line keeps DESIGN's key order.
    let summary_text = text.lines().last().unwrap();
    let order: Vec<usize> = [
        "\"timestamp\"",
        "\"event\"",
        "\"run_id\"",
        "\"status\"",
        "\"elapsed_seconds\"",
        "\"usage\"",
        "\"by_step\"",
        "\"prompt_breakdown\"",
    ]
    .iter()
    .map(|k| summary_text.find(k).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{summary_text}");

    let totals = handle.totals();
    assert_eq!(
        (totals.calls, totals.input_tokens, totals.output_tokens),
        (3, 45200, 8750)
    );
    assert_eq!(totals.unpriced_calls, 0);
    assert!((totals.cost_usd - (persona + summary_step)).abs() < 1e-9);
    let run = handle.run("run-def456").unwrap();
    assert_eq!(run.status, RunStatus::Success);
    assert_eq!(run.usage.total_tokens, 53950);
    assert_eq!(handle.stats().lines_written, 4);
}

#[test]
fn steps_task_and_agent_are_inherited_from_the_nearest_ancestor() {
    let (d, handle, guard, buf) = setup(UsageLayer::builder());
    dispatcher::with_default(&d, || {
        let run = info_span!("run", run_id = "r-nested", task = "report");
        let _r = run.enter();
        let phase = info_span!("phase", step = "analysis", gen_ai.agent.name = "planner");
        let _p = phase.enter();
        let unrelated = info_span!("http_request", url = "x");
        let _u = unrelated.enter();
        // inherits step, task, agent
        drop(info_span!(
            "llm_call",
            model = "m",
            tokens.input = 10,
            tokens.output = 1
        ));
        let inner = info_span!("sub", step = "analysis.detail");
        let _i = inner.enter();
        // nearest step wins
        drop(info_span!(
            "llm_call",
            model = "m",
            tokens.input = 20,
            tokens.output = 2
        ));
        // the call's own fields win over ancestors
        drop(info_span!(
            "llm_call",
            model = "m",
            step = "own",
            agent = "solo",
            tokens.input = 30,
            tokens.output = 3
        ));
    });
    drop(guard);
    let lines = buf.lines();
    let c = calls(&lines);
    let got: Vec<_> = c
        .iter()
        .map(|l| {
            (
                l["step"].clone(),
                l["task"].clone(),
                l["agent"].clone(),
                l["run_id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                json!("analysis"),
                json!("report"),
                json!("planner"),
                json!("r-nested")
            ),
            (
                json!("analysis.detail"),
                json!("report"),
                json!("planner"),
                json!("r-nested")
            ),
            (
                json!("own"),
                json!("report"),
                json!("solo"),
                json!("r-nested")
            ),
        ]
    );
    let s = summary(&lines, "r-nested");
    assert_eq!(s["by_step"].as_array().unwrap().len(), 3);
    assert_eq!(s["usage"]["input_tokens"], 60);
    let steps: Vec<_> = handle
        .by_step()
        .into_iter()
        .map(|g| g.usage.input_tokens)
        .collect();
    assert_eq!(steps, vec![30, 20, 10], "sorted by tokens when unpriced");
}

#[test]
fn a_multi_turn_tool_loop_adds_up_in_one_step() {
    let (d, _handle, guard, buf) = setup(UsageLayer::builder());
    dispatcher::with_default(&d, || {
        let run = info_span!("run", run_id = "loop");
        let _r = run.enter();
        let step = info_span!("agent_loop", step = "tool_loop");
        let _s = step.enter();
        // each turn resends the growing conversation
        for turn in 0..6u64 {
            let span = info_span!(
                "llm_call",
                model = "gpt-4o",
                provider = "openai",
                tokens.input = Empty,
                tokens.output = Empty,
                tokens.cache_read = Empty
            );
            span.record("tokens.input", 1000 + 400 * turn);
            span.record("tokens.output", 100 + turn);
            span.record("tokens.cache_read", 1000 * u64::from(turn > 0));
        }
    });
    drop(guard);
    let lines = buf.lines();
    let s = summary(&lines, "loop");
    // gpt-4o: $2.50 input, $1.25 cached input, $10 output per million
    let want = 7000.0 * 2.5e-6 + 5000.0 * 1.25e-6 + 615.0 * 1e-5;
    assert!((s["by_step"][0]["cost_usd"].as_f64().unwrap() - want).abs() < 1e-9);
    let mut by_step = s["by_step"].clone();
    by_step[0]["cost_usd"] = json!(null);
    assert_eq!(
        by_step,
        json!([{"step": "tool_loop", "input_tokens": 12000, "output_tokens": 615, "calls": 6,
                "cost_usd": null}])
    );
    let cache: u64 = calls(&lines)
        .iter()
        .map(|l| l["tokens"]["cache_read"].as_u64().unwrap())
        .sum();
    assert_eq!(cache, 5000);
}

#[test]
fn fields_recorded_after_creation_count_and_rank_wins() {
    let (d, handle, guard, buf) = setup(UsageLayer::builder());
    dispatcher::with_default(&d, || {
        let run = info_span!("run", run_id = Empty);
        let _r = run.enter();
        run.record("run_id", "late-run");
        let span = info_span!(
            "llm_call",
            model = Empty,
            input_tokens = 5,
            tokens.input = Empty,
            tokens.output = Empty,
            tokens.total = Empty,
            prompt.data = Empty,
            error = Empty
        );
        span.record("model", "gpt-4.1");
        // tokens.input outranks input_tokens whatever the order of recording
        span.record("tokens.input", 700);
        span.record("tokens.output", "30");
        span.record("prompt.data", 650u64);
        span.record("error", "rate_limited");
        drop(span);
        let span = info_span!("llm_call", tokens.input = 1, input_tokens = Empty);
        span.record("input_tokens", 999); // ranks below tokens.input: ignored
    });
    drop(guard);
    let lines = buf.lines();
    let c = calls(&lines);
    assert_eq!(c[0]["model"], "gpt-4.1");
    assert_eq!(
        c[0]["tokens"],
        json!({"input":700,"output":30,"total":730,"cache_read":0,"cache_write":0,"reasoning":0})
    );
    assert_eq!(c[0]["prompt_breakdown"], json!({"data": 650}));
    assert_eq!(c[0]["error"], "rate_limited");
    assert_eq!(c[0]["run_id"], "late-run");
    assert_eq!(c[1]["tokens"]["input"], 1);
    let s = summary(&lines, "late-run");
    assert_eq!(s["status"], "error", "a failed call fails the run");
    assert_eq!(handle.totals().errors, 1);
}

#[test]
fn opentelemetry_genai_names_are_read() {
    // No local prices: by_model then sorts by tokens alone.
    let (d, handle, guard, buf) = setup(UsageLayer::builder().prices(PriceTable::new()));
    dispatcher::with_default(&d, || {
        let run = info_span!("invoke_agent", run_id = 42u64);
        let _r = run.enter();
        let span = info_span!(
            "llm_call",
            gen_ai.operation.name = "chat",
            gen_ai.system = "gemini",
            gen_ai.request.model = "gemini-2.5-pro",
            gen_ai.response.model = "gemini-2.5-pro-001",
            gen_ai.agent.name = "researcher",
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.usage.cache_read.input_tokens = Empty,
            gen_ai.usage.cache_creation.input_tokens = Empty,
            gen_ai.usage.reasoning.output_tokens = Empty
        );
        span.record("gen_ai.usage.input_tokens", 5000i64);
        span.record("gen_ai.usage.output_tokens", 900i64);
        span.record("gen_ai.usage.cache_read.input_tokens", 3000i64);
        span.record("gen_ai.usage.cache_creation.input_tokens", 500i64);
        span.record("gen_ai.usage.reasoning.output_tokens", 600i64);
        drop(span);
        // prompt_tokens / completion_tokens (OpenAI's names) and xai mapping
        drop(info_span!(
            "llm_call",
            gen_ai.system = "xai",
            model = "grok-4",
            prompt_tokens = 11,
            completion_tokens = 4
        ));
        // gen_ai.provider.name outranks gen_ai.system
        drop(info_span!(
            "llm_call",
            gen_ai.system = "openai",
            gen_ai.provider.name = "azure.ai.openai",
            model = "gpt-4o",
            tokens.input = 1,
            tokens.output = 1
        ));
    });
    drop(guard);
    let lines = buf.lines();
    let c = calls(&lines);
    assert_eq!(c[0]["run_id"], "42");
    assert_eq!(c[0]["provider"], "gcp.gemini");
    assert_eq!(
        c[0]["model"], "gemini-2.5-pro-001",
        "the response model wins"
    );
    assert_eq!(c[0]["agent"], "researcher");
    assert_eq!(
        c[0]["tokens"],
        json!({"input":5000,"output":900,"total":5900,"cache_read":3000,"cache_write":500,"reasoning":600})
    );
    assert_eq!(c[1]["provider"], "x_ai");
    assert_eq!(c[1]["tokens"]["total"], 15);
    assert_eq!(c[2]["provider"], "azure.ai.openai");
    let t = handle.totals();
    assert_eq!(
        (
            t.input_tokens,
            t.output_tokens,
            t.cache_read_tokens,
            t.cache_write_tokens,
            t.reasoning_tokens
        ),
        (5012, 905, 3000, 500, 600)
    );
    let models: Vec<_> = handle
        .by_model()
        .into_iter()
        .map(|g| g.key.unwrap().to_string())
        .collect();
    assert_eq!(models, vec!["gemini-2.5-pro-001", "grok-4", "gpt-4o"]);
}

#[test]
fn bad_values_are_not_counted_and_are_named() {
    let (d, handle, guard, buf) = setup(UsageLayer::builder());
    dispatcher::with_default(&d, || {
        let span = info_span!(
            "llm_call",
            run_id = "bad",
            model = "m",
            tokens.input = Empty,
            tokens.output = Empty,
            tokens.cache_read = Empty,
            tokens.cache_write = Empty,
            tokens.reasoning = Empty,
            prompt.system = Empty,
            tokens.estimated = Empty,
            cost_usd = Empty,
            tokens.total = Empty
        );
        span.record("tokens.input", -5i64);
        span.record("tokens.output", 1.5f64);
        span.record("tokens.cache_read", "abc");
        span.record("tokens.cache_write", u128::MAX);
        span.record("tokens.reasoning", true);
        span.record("prompt.system", f64::NAN);
        span.record("tokens.estimated", "maybe");
        span.record("cost_usd", -1.0f64);
        span.record("tokens.total", format_args!("{}", 12));
        drop(span);
        drop(info_span!(
            "llm_call",
            run_id = "bad",
            tokens.input = "  77 ",
            tokens.output = 3.0f64
        ));
    });
    drop(guard);
    let lines = buf.lines();
    let c = calls(&lines);
    assert_eq!(
        c[0]["warnings"],
        json!([
            "tokens.input: negative (-5)",
            "tokens.output: not a whole number (1.5)",
            "tokens.cache_read: not a number (a string of 3 bytes)",
            "tokens.cache_write: exceeds u64 (340282366920938463463374607431768211455)",
            "tokens.reasoning: not a number (true)",
            "prompt.system: not a number (NaN)",
            "tokens.estimated: not a boolean (a string of 5 bytes)",
            "cost_usd: not a cost in USD (-1)",
            "tokens.total: 12 differs from input + output (0)"
        ])
    );
    assert_eq!(
        c[0]["tokens"],
        json!({"input":0,"output":0,"total":12,"cache_read":0,"cache_write":0,"reasoning":0})
    );
    assert_eq!(c[0]["cost_usd"], json!(null));
    assert_eq!(c[1]["tokens"]["input"], 77);
    assert_eq!(c[1]["tokens"]["output"], 3);
    assert_eq!(c[1]["warnings"], json!([]));
    assert_eq!(handle.stats().invalid_values, 8);
    assert_eq!(handle.totals().input_tokens, 77);
}

#[test]
fn provider_cost_and_price_table() {
    let prices = PriceTable::new().with(
        "claude-sonnet-4-5",
        ModelPrice::new(Rates {
            input: Some(3e-6),
            output: Some(15e-6),
            cache_read: Some(3e-7),
            cache_write: Some(3.75e-6),
            ..Rates::default()
        }),
    );
    let version = prices.version();
    let (d, handle, guard, buf) = setup(UsageLayer::builder().prices(prices));
    dispatcher::with_default(&d, || {
        let run = info_span!("run", run_id = "priced");
        let _r = run.enter();
        drop(info_span!(
            "llm_call",
            step = "a",
            model = "claude-sonnet-4-5",
            tokens.input = 10000,
            tokens.output = 2000,
            tokens.cache_read = 6000,
            tokens.cache_write = 1000
        ));
        drop(info_span!(
            "llm_call",
            step = "a",
            model = "openrouter/x",
            cost_usd = 0.0123,
            tokens.input = 1,
            tokens.output = 1
        ));
        drop(info_span!(
            "llm_call",
            step = "b",
            model = "unknown-model",
            tokens.input = 5,
            tokens.output = 5
        ));
    });
    drop(guard);
    let lines = buf.lines();
    let c = calls(&lines);
    let want = 3000.0 * 3e-6 + 6000.0 * 3e-7 + 1000.0 * 3.75e-6 + 2000.0 * 15e-6;
    assert!((c[0]["cost_usd"].as_f64().unwrap() - want).abs() < 1e-9);
    assert_eq!(c[0]["cost_source"], "local");
    assert_eq!(c[0]["price_version"], json!(&*version));
    assert_eq!(c[1]["cost_usd"], 0.0123);
    assert_eq!(c[1]["cost_source"], "provider");
    assert_eq!(
        c[2]["cost_usd"],
        json!(null),
        "an unknown model is never $0"
    );
    assert_eq!(c[2]["cost_source"], "unpriced");
    let s = summary(&lines, "priced");
    assert!((s["usage"]["cost_usd"].as_f64().unwrap() - (want + 0.0123)).abs() < 1e-9);
    assert!((s["by_step"][0]["cost_usd"].as_f64().unwrap() - (want + 0.0123)).abs() < 1e-9);
    assert_eq!(s["by_step"][1]["cost_usd"], json!(null));
    let t = handle.totals();
    assert!((t.cost_usd - (want + 0.0123)).abs() < 1e-9);
    assert_eq!(t.unpriced_calls, 1);
}

#[test]
fn an_empty_price_table_turns_local_pricing_off() {
    let (d, handle, guard, buf) = setup(UsageLayer::builder().prices(PriceTable::new()));
    dispatcher::with_default(&d, || {
        drop(info_span!(
            "llm_call",
            model = "gpt-4o",
            tokens.input = 10,
            tokens.output = 2
        ));
        drop(info_span!(
            "llm_call",
            model = "gpt-4o",
            cost_usd = 0.5,
            tokens.input = 1
        ));
    });
    drop(guard);
    let lines = buf.lines();
    let c = calls(&lines);
    assert_eq!(c[0]["cost_usd"], json!(null));
    assert_eq!(c[0]["cost_source"], "unpriced");
    assert_eq!(
        c[1]["cost_usd"], 0.5,
        "a provider-reported cost is still taken"
    );
    assert_eq!(c[1]["cost_source"], "provider");
    assert_eq!(handle.totals().unpriced_calls, 1);
    assert!(
        handle.unpriced_models().is_empty(),
        "no table, nothing missing from it"
    );
}

#[test]
fn calls_without_a_run_span_are_orphans_in_a_bounded_lru() {
    let (d, handle, guard, buf) = setup(UsageLayer::builder().orphan_runs(2));
    dispatcher::with_default(&d, || {
        for id in ["o1", "o2", "o1", "o3"] {
            drop(info_span!(
                "llm_call",
                run_id = id,
                tokens.input = 10,
                tokens.output = 1
            ));
        }
        assert_eq!(handle.open_runs(), 2);
        // o2 was least recently used when o3 arrived
        assert_eq!(handle.run("o2").unwrap().status, RunStatus::Incomplete);
        assert_eq!(handle.run("o1").unwrap().status, RunStatus::Running);
    });
    drop(guard);
    let lines = buf.lines();
    let ids: Vec<_> = summaries(&lines)
        .iter()
        .map(|s| s["run_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        vec!["o2", "o1", "o3"],
        "evicted first, the rest at shutdown"
    );
    let o1 = summary(&lines, "o1");
    assert_eq!(o1["status"], "incomplete");
    assert_eq!(o1["usage"]["call_count"], 2);
    assert_eq!(o1["usage"]["input_tokens"], 20);
    assert_eq!(handle.open_runs(), 0);
}

#[test]
fn a_run_span_recording_error_fails_the_run_and_unrelated_spans_cost_nothing() {
    let (d, handle, guard, buf) = setup(UsageLayer::builder().recent_runs(2));
    dispatcher::with_default(&d, || {
        for i in 0..3 {
            let run = info_span!("run", run_id = i, error = Empty);
            let _r = run.enter();
            drop(info_span!("llm_call", tokens.input = 1, tokens.output = 1));
            if i == 2 {
                run.record("error", "tool failed");
            }
            drop(info_span!("unrelated", x = 1));
        }
        drop(info_span!("not_a_call", tokens.input = 100));
    });
    drop(guard);
    let lines = buf.lines();
    assert_eq!(lines.len(), 6);
    assert_eq!(summary(&lines, "2")["status"], "error");
    assert_eq!(summary(&lines, "1")["status"], "success");
    let recent: Vec<_> = handle
        .recent_runs()
        .into_iter()
        .map(|r| r.run_id.to_string())
        .collect();
    assert_eq!(recent, vec!["1", "2"], "the last two, oldest first");
    assert_eq!(handle.totals().calls, 3);
}

#[test]
fn custom_span_name() {
    let (d, handle, guard, buf) = setup(UsageLayer::builder().span_name("chat_completion"));
    dispatcher::with_default(&d, || {
        drop(info_span!(
            "chat_completion",
            tokens.input = 3,
            tokens.output = 4
        ));
        drop(info_span!(
            "llm_call",
            tokens.input = 100,
            tokens.output = 100
        ));
    });
    drop(guard);
    assert_eq!(calls(&buf.lines()).len(), 1);
    assert_eq!(handle.totals().total_tokens, 7);
}

#[test]
fn rolling_files_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("nested/llm_usage_logs");
    let (layer, guard) = UsageLayer::builder().jsonl_dir(&logs).build().unwrap();
    use tracing_subscriber::prelude::*;
    let d = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    dispatcher::with_default(&d, || {
        let run = info_span!("run", run_id = "file-run");
        let _r = run.enter();
        call("s", "m", 5, 6);
    });
    drop(guard);
    let files: Vec<_> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_str().unwrap().to_owned();
    let today = tracing_llm_usage::Timestamp::now().to_string();
    assert_eq!(name, format!("llm_usage.{}.jsonl", &today[..10]));
    let lines = common::parse_lines(&std::fs::read_to_string(&files[0]).unwrap());
    assert_eq!(lines.len(), 2);
    assert_eq!(summary(&lines, "file-run")["usage"]["total_tokens"], 11);
}

#[test]
fn an_uncreatable_log_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = UsageLayer::builder()
        .jsonl_dir(file.join("logs"))
        .build()
        .unwrap_err();
    assert!(
        matches!(err, tracing_llm_usage::Error::LogDir { .. }),
        "{err:?}"
    );
    assert!(err
        .to_string()
        .starts_with("cannot create the usage log directory"));
}

/// A run span that records its `run_id` after its first call is one run: every line carries
/// the id, the summary counts them, and a budget line names the run; a run that never records
/// one goes by a made-up `run-…` id, never an agent's.
#[test]
fn a_run_id_recorded_late_names_every_line_of_its_run() {
    use tracing::field::Empty;
    use tracing_llm_usage::{Budget, ModelPrice, PriceTable};
    let prices = PriceTable::new().with("m", ModelPrice::per_million(1.0, 1.0));
    let (d, handle, guard, buf) = setup(
        UsageLayer::builder()
            .prices(prices)
            .budget(Budget::per_run("cap").tokens(150).warn_at(None)),
    );
    dispatcher::with_default(&d, || {
        let run = info_span!("run", run_id = Empty);
        run.in_scope(|| {
            drop(info_span!(
                "llm_call",
                model = "m",
                tokens.input = 100u64,
                tokens.output = 0u64
            ));
            drop(info_span!(
                "llm_call",
                model = "m",
                tokens.input = 100u64,
                tokens.output = 0u64
            ));
        });
        // Nothing of the run is written before its id is known.
        run.record("run_id", "late-run");
        run.in_scope(|| {
            drop(info_span!(
                "llm_call",
                model = "m",
                tokens.input = 100u64,
                tokens.output = 0u64
            ));
        });
        drop(run);
        let never = info_span!("run", run_id = Empty);
        never.in_scope(|| {
            drop(info_span!(
                "llm_call",
                model = "m",
                tokens.input = 1u64,
                tokens.output = 0u64
            ));
        });
    });
    drop(guard);
    let lines = buf.lines();
    let calls = calls(&lines);
    assert_eq!(calls.len(), 4);
    for c in &calls[..3] {
        assert_eq!(c["run_id"], "late-run", "{c}");
    }
    let s = summary(&lines, "late-run");
    assert_eq!(s["usage"]["call_count"], 3);
    assert_eq!(s["usage"]["input_tokens"], 300);
    // The budget line the second call caused names the run, and follows its call.
    let kinds: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds[..4],
        ["llm_call", "llm_call", "budget_exceeded", "llm_call"]
    );
    assert_eq!(
        (lines[2]["scope_id"].as_str(), lines[2]["run_id"].as_str()),
        (Some("late-run"), Some("late-run"))
    );
    let never = calls[3]["run_id"].as_str().unwrap();
    assert!(never.starts_with("run-"), "{never}");
    assert_eq!(summary(&lines, never)["usage"]["call_count"], 1);
    assert!(handle
        .recent_runs()
        .iter()
        .all(|r| !r.run_id.starts_with("invoke_agent")));
}

/// The builder's clock stamps run summaries as it stamps calls; a 1-hour cache-write count
/// above the cache writes is flagged and written as the part it can be.
#[test]
fn summaries_follow_the_clock_and_odd_cache_counts_are_flagged() {
    use tracing_llm_usage::Timestamp;
    let at = Timestamp::parse("2025-12-14T10:00:00Z").unwrap();
    let (d, _handle, guard, buf) = setup(UsageLayer::builder().clock(move || at));
    dispatcher::with_default(&d, || {
        let run = info_span!("run", run_id = "clocked");
        run.in_scope(|| {
            drop(info_span!(
                "llm_call",
                model = "claude-sonnet-4-5",
                tokens.input = 1_000u64,
                tokens.output = 0u64,
                tokens.cache_write = 100u64,
                tokens.cache_write_1h = 500u64
            ));
        });
    });
    drop(guard);
    let lines = buf.lines();
    let s = summary(&lines, "clocked");
    assert_eq!(s["timestamp"], "2025-12-14T10:00:00.000Z");
    let c = calls(&lines)[0];
    assert_eq!(c["timestamp"], "2025-12-14T10:00:00.000Z");
    assert_eq!(c["cache_write_1h"], 100);
    assert_eq!(
        c["warnings"],
        json!(["tokens.cache_write_1h: 500 is more than tokens.cache_write (100); 100 are priced as 1-hour writes"])
    );
    // 900 plain at 3e-6, 100 one-hour writes at 6e-6.
    assert!((c["cost_usd"].as_f64().unwrap() - (900.0 * 3e-6 + 100.0 * 6e-6)).abs() < 1e-12);
}
