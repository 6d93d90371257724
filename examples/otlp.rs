//! The quickstart's workload, exported as OpenTelemetry metrics over OTLP (and written as
//! JSONL). Point it at a collector with the standard variables, e.g. the one in
//! `examples/grafana/`:
//!
//! ```text
//! OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 \
//! OTEL_SERVICE_NAME=llm-demo cargo run --example otlp
//! ```
//!
//! With no collector listening it still runs: export errors are reported by OpenTelemetry and
//! the application is not held up.

mod common;

use tracing_llm_usage::{otlp, UsageLayer};
use tracing_subscriber::{prelude::*, EnvFilter};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let metrics = otlp::init()?;
    let (layer, guard) = UsageLayer::builder()
        .jsonl_dir("./llm_usage_logs")
        .otlp(&metrics)
        .build()?;
    let usage = layer.handle();
    // RUST_LOG filters the printed logs only; the usage layer stays unfiltered.
    let fmt = tracing_subscriber::fmt::layer().with_filter(EnvFilter::from_default_env());
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(fmt).with(layer))?;

    // A few rounds, so that a dashboard has a rate to draw.
    let rounds: u32 = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    for _ in 0..rounds {
        common::run_all(&usage).await;
    }
    common::print_report(&usage);

    drop(guard);
    match metrics.shutdown() {
        Ok(()) => println!("metrics exported"),
        Err(e) => println!("metrics not exported: {e}"),
    }
    Ok(())
}
