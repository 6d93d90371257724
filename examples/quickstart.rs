//! A simulated LLM service (no network, deterministic fake responses) instrumented with
//! `tracing-llm-usage`: three runs (persona generation, summary generation, a multi-turn tool
//! loop) write their JSONL under `./llm_usage_logs/`, and a "Token Usage Summary" per run is
//! printed from the handle.
//!
//! ```text
//! cargo run --example quickstart
//! ```

mod common;

use tracing_llm_usage::UsageLayer;
use tracing_subscriber::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (layer, guard) = UsageLayer::builder()
        .jsonl_dir("./llm_usage_logs")
        .build()?;
    let usage = layer.handle();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))?;

    common::run_all().await;
    common::print_report(&usage);

    drop(guard); // flush every line before exit
    println!(
        "JSONL written under ./llm_usage_logs/ ({} lines)",
        usage.stats().lines_written
    );
    Ok(())
}
