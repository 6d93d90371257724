//! The simulated service shared by the examples: deterministic fake LLM responses (no
//! network) and three kinds of runs, instrumented with `tracing-llm-usage`.

use std::time::Duration;

use tracing::field::Empty;
use tracing::{info_span, Instrument};
use tracing_llm_usage::{RunSummary, UsageHandle};

/// The example's runs: (run id, kind).
pub const RUNS: [(&str, u8); 3] = [
    ("run-persona-001", 0),
    ("run-summary-002", 1),
    ("run-tools-003", 2),
];

/// Runs the three runs concurrently, each in its own task under its own run span.
pub async fn run_all(usage: &UsageHandle) {
    let mut tasks = Vec::new();
    for (run_id, kind) in RUNS {
        let run = info_span!("run", run_id);
        let usage = usage.clone();
        tasks.push(tokio::spawn(
            async move {
                match kind {
                    0 => persona_run().await,
                    1 => summary_run().await,
                    _ => tool_loop_run(&usage, run_id).await,
                }
            }
            .instrument(run),
        ));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Prints every run's table and the totals.
pub fn print_report(usage: &UsageHandle) {
    for (run_id, _) in RUNS {
        if let Some(run) = usage.run(run_id) {
            print_summary(&run);
        }
    }
    let t = usage.totals();
    println!(
        "\nAll runs: {} calls, {} input + {} output = {} tokens ({} cache read), ${:.6}, {} unpriced calls",
        t.calls, t.input_tokens, t.output_tokens, t.total_tokens, t.cache_read_tokens, t.cost_usd, t.unpriced_calls
    );
}

/// What a provider's response tells us about usage.
struct FakeUsage {
    input: u64,
    output: u64,
    cache_read: u64,
}

/// A deterministic stand-in for an LLM client: the usage depends only on the prompt sizes.
async fn fake_llm(
    system: u64,
    data: u64,
    instructions: u64,
    output: u64,
    cache_read: u64,
) -> FakeUsage {
    tokio::time::sleep(Duration::from_millis(5)).await;
    FakeUsage {
        input: system + data + instructions,
        output,
        cache_read,
    }
}

/// One instrumented call: the span is created with `Empty` token fields, the request runs
/// inside it with `.instrument()`, and the usage is recorded from the response.
async fn call_llm(
    step: &str,
    model: &str,
    provider: &str,
    prompt: (u64, u64, u64),
    output: u64,
    cache_read: u64,
) {
    let span = info_span!(
        "llm_call",
        step,
        model,
        provider,
        tokens.input = Empty,
        tokens.output = Empty,
        tokens.cache_read = Empty,
        prompt.system = prompt.0,
        prompt.data = prompt.1,
        prompt.instructions = prompt.2
    );
    let usage = fake_llm(prompt.0, prompt.1, prompt.2, output, cache_read)
        .instrument(span.clone())
        .await;
    span.record("tokens.input", usage.input);
    span.record("tokens.output", usage.output);
    span.record("tokens.cache_read", usage.cache_read);
}

pub async fn persona_run() {
    for (i, data) in [12_000u64, 14_500, 11_200].into_iter().enumerate() {
        call_llm(
            "persona_generation",
            "claude-sonnet-4-5-20250929",
            "anthropic",
            (2_100, data, 1_900),
            2_400 + 100 * i as u64,
            0,
        )
        .await;
    }
    call_llm(
        "summary_generation",
        "gpt-4o-mini",
        "openai",
        (800, 7_500, 400),
        900,
        0,
    )
    .await;
}

pub async fn summary_run() {
    call_llm(
        "summary_generation",
        "gemini-2.5-flash",
        "gcp.gemini",
        (600, 30_000, 300),
        1_200,
        0,
    )
    .await;
    call_llm(
        "summary_generation",
        "gemini-2.5-flash",
        "gcp.gemini",
        (600, 4_000, 300),
        700,
        0,
    )
    .await;
}

pub async fn tool_loop_run(usage: &UsageHandle, run_id: &str) {
    // Each turn resends the conversation so far; the provider's prompt cache serves the
    // part it has seen before. The loop asks, before every call, whether its run still has
    // budget: enforcement is the application's choice.
    let mut history = 0u64;
    for turn in 0..50u64 {
        if usage.remaining(run_id).is_exhausted() {
            println!("tool loop stopped before turn {turn}: run budget spent");
            return;
        }
        let cache_read = history;
        call_llm(
            "tool_loop",
            "gpt-4.1",
            "openai",
            (1_500, history + 800, 200),
            350 + 20 * turn,
            cache_read,
        )
        .await;
        history += 800 + 350 + 20 * turn;
    }
}

pub fn print_summary(run: &RunSummary) {
    let u = &run.usage;
    println!(
        "\nToken Usage Summary: {} ({:?}, {:.2} s)",
        run.run_id, run.status, run.elapsed_seconds
    );
    println!(
        "  {:<22} {:>10} {:>10} {:>10} {:>6} {:>10}",
        "step", "input", "output", "total", "calls", "cost_usd"
    );
    for s in &run.by_step {
        println!(
            "  {:<22} {:>10} {:>10} {:>10} {:>6} {:>10}",
            s.step.as_deref().unwrap_or("-"),
            s.input_tokens,
            s.output_tokens,
            s.input_tokens + s.output_tokens,
            s.calls,
            s.cost_usd.map_or("unpriced".into(), |c| format!("{c:.6}")),
        );
    }
    println!(
        "  {:<22} {:>10} {:>10} {:>10} {:>6} {:>10}",
        "TOTAL",
        u.input_tokens,
        u.output_tokens,
        u.total_tokens,
        u.call_count,
        u.cost_usd.map_or("unpriced".into(), |c| format!("{c:.6}")),
    );
}
