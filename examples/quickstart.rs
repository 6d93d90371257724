//! A simulated LLM service (no network, deterministic fake responses) instrumented with
//! `tracing-llm-usage`: three runs (persona generation, summary generation, a multi-turn tool
//! loop) write their JSONL under `./llm_usage_logs/`, and a "Token Usage Summary" per run is
//! printed from the handle. A per-run budget of $0.30 stops the tool loop when it is spent.
//!
//! ```text
//! cargo run --example quickstart
//! ```

mod common;

use tracing_llm_usage::{Budget, UsageLayer};
use tracing_subscriber::{prelude::*, EnvFilter};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (layer, guard) = UsageLayer::builder()
        .jsonl_dir("./llm_usage_logs")
        // At most $0.30 a run, with a warning at 80 %.
        .budget(Budget::per_run("run-usd").usd(0.30))
        .on_budget(|e| {
            println!(
                "{:?}: budget {} for {} at ${:.4} of ${:.2}",
                e.event, e.budget, e.scope_id, e.value, e.limit
            )
        })
        .build()?;
    let usage = layer.handle();
    // RUST_LOG filters the printed logs only; the usage layer stays unfiltered.
    let fmt = tracing_subscriber::fmt::layer().with_filter(EnvFilter::from_default_env());
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(fmt).with(layer))?;

    common::run_all(&usage).await;
    common::print_report(&usage);

    drop(guard); // flush every line before exit
    println!(
        "JSONL written under ./llm_usage_logs/ ({} lines)",
        usage.stats().lines_written
    );
    Ok(())
}
