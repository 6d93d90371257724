//! A rig agent counted by tracing-llm-usage: nothing but the layer and a run span.
//!
//! ```text
//! cargo run -p rig-compat --example agent
//! ```
//!
//! It talks to the local OpenAI-compatible server of this crate; with a real key, build the
//! client with `OpenAIConfig::from_env()` instead.

use rig_agent::prelude::*;
use rig_compat::MockOpenAi;
use rig_core::providers::openai::OpenAIConfig;
use tracing::{info_span, Instrument};
use tracing_llm_usage::UsageLayer;
use tracing_subscriber::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (layer, guard) = UsageLayer::builder()
        .jsonl_writer(std::io::stdout)
        .build()?;
    let usage = layer.handle();
    tracing_subscriber::registry().with(layer).init();

    let server = MockOpenAi::start();
    let mut config = OpenAIConfig::new("sk-local");
    config.base_url = server.base_url.clone();
    let agent = AgentBuilder::new(config.client().chat("gpt-4.1-mini"))
        .name("writer")
        .build();

    async { agent.prompt("Write one line about Rust.").await }
        .instrument(info_span!(
            "workflow",
            run_id = "example-run",
            step = "draft"
        ))
        .await?;

    drop(guard); // the call line and the run summary, on stdout
    if let Some(run) = usage.run("example-run") {
        eprintln!(
            "run {}: {} call(s), {} input and {} output tokens",
            run.run_id, run.usage.call_count, run.usage.input_tokens, run.usage.output_tokens
        );
    }
    Ok(())
}
