//! A service's workload, recorded in process and through OpenTelemetry by the tests that
//! compare the two: runs, steps, the layer's own call spans and GenAI-convention ones, a
//! failed call, attributes.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::field::Empty;
use tracing::info_span;
use tracing_llm_usage::UsageLayer;
use tracing_subscriber::prelude::*;

/// Runs [`service`] as a service that both counts in process (`layer`) and exports its spans
/// through tracing-opentelemetry (`provider`).
pub fn run_counted_and_exported(layer: UsageLayer, provider: &SdkTracerProvider) {
    let subscriber = tracing_subscriber::registry()
        .with(layer)
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("service")));
    tracing::subscriber::with_default(subscriber, service);
}

/// Two runs of 4 calls (one failed) in 3 steps, with a tenant attribute: 7 spans, 6 lines.
pub fn service() {
    let run = info_span!("run", run_id = "run-a", tenant = "acme");
    run.in_scope(|| {
        info_span!("plan_step", step = "plan").in_scope(|| {
            let _call = info_span!(
                "llm_call",
                model = "gpt-4o",
                provider = "openai",
                tokens.input = 1200u64,
                tokens.output = 300u64,
                tokens.cache_read = 200u64,
                prompt.system = 800u64,
                prompt.user = 400u64,
            );
        });
        let chat = info_span!(
            "chat gpt-4o-mini",
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = "openai",
            gen_ai.request.model = "gpt-4o-mini",
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            step = "answer",
            tenant = "globex",
        );
        chat.record("gen_ai.usage.input_tokens", 50u64);
        chat.record("gen_ai.usage.output_tokens", 20u64);
        drop(chat);
        let _failed = info_span!(
            "llm_call",
            model = "gpt-4o",
            error = "timeout",
            tokens.input = 10u64
        );
    });
    drop(run);
    let run = info_span!("run", run_id = "run-b");
    run.in_scope(|| {
        let _call = info_span!(
            "llm_call",
            step = "summary",
            model = "claude-sonnet-4-5",
            provider = "anthropic",
            tokens.input = 3000u64,
            tokens.output = 700u64,
            tokens.cache_write = 1000u64,
        );
    });
}
