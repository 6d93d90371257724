//! Count what your LLM calls cost, as one more [`tracing`] subscriber layer.
//!
//! [`UsageLayer`] picks up `llm_call` spans that carry token counts (under this crate's names
//! or the OpenTelemetry GenAI ones), attributes each call to its run (the nearest span with a
//! `run_id` field) and its workflow step, aggregates per run and per step in memory, and
//! writes one JSON line per call and one summary line per finished run (the LLM usage log
//! format), off the caller's thread and without losing lines.
//!
//! # Example
//!
//! ```
//! use tracing::{info_span, field::Empty};
//! use tracing_subscriber::prelude::*;
//! use tracing_llm_usage::UsageLayer;
//!
//! let (layer, guard) = UsageLayer::builder()
//!     .jsonl_writer(std::io::sink) // or .jsonl_dir("./llm_usage_logs")
//!     .build()?;
//! let usage = layer.handle();
//! let subscriber = tracing_subscriber::registry().with(layer);
//!
//! tracing::subscriber::with_default(subscriber, || {
//!     let run = info_span!("run", run_id = "run-1");
//!     let _run = run.enter(); // in async code use `.instrument(run)` instead
//!     let call = info_span!("llm_call", step = "summary", model = "gpt-4o",
//!                           provider = "openai", tokens.input = Empty, tokens.output = Empty);
//!     // ... send the request; then, from the response:
//!     call.record("tokens.input", 1200);
//!     call.record("tokens.output", 300);
//! });
//!
//! let run = usage.run("run-1").expect("the run was summarised");
//! assert_eq!(run.usage.input_tokens, 1200);
//! assert_eq!(run.by_step[0].step.as_deref(), Some("summary"));
//! drop(guard); // flushes every line
//! # Ok::<(), tracing_llm_usage::Error>(())
//! ```
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `otlp` | yes | [`otlp::init`]: metrics and log records over OTLP (gRPC or HTTP/protobuf, TLS) |
//! | `logs` | with `otlp` | [`UsageLayerBuilder::logger_provider`]: every line as an OpenTelemetry log record |
//! | `bound-instruments` | yes | metrics through opentelemetry_sdk 0.33's bound instruments |
//! | `cli` | no | the `llm-usage` command |
//! | `sqlite`, `postgres` | no | rows in SQLite or PostgreSQL, live and by `llm-usage import` |
//! | `trace-context` | no | log records carry tracing-opentelemetry's trace and span ids |
//! | `tiktoken` | no | token counts from text (`estimate`) |
//!
//! # Instrumenting calls
//!
//! * Any span with a `run_id` field is a run; the run's summary is written when it closes.
//! * A call's usage is counted when its `llm_call` span closes; latency is the span's open
//!   time. Token fields recorded after the call must be declared with
//!   [`tracing::field::Empty`], or `span.record` silently does nothing.
//! * `step`, `task`, `agent` and `run_id` are taken from the call span, else from the nearest
//!   ancestor span that has them.
//! * In async code attach spans with [`tracing::Instrument::instrument`]; a `span.enter()`
//!   guard held across `.await` attributes calls to the wrong run.
//! * Filter what is printed, not what is counted: put `RUST_LOG` on the output layers
//!   (`fmt::layer().with_filter(EnvFilter::from_default_env())`) and add `UsageLayer` last,
//!   unfiltered. A filter on the whole subscriber (`registry().with(EnvFilter::new("warn"))`)
//!   disables info-level call spans before any layer sees them; the layer reports such
//!   callsites once on stderr and counts them in [`LayerStats::disabled_callsites`].
//! * If you wrap the layer in a per-layer filter, the filter must admit the run spans (and any
//!   span carrying `step`/`task`/`agent`): spans it disables are invisible to the layer.
//!
//! # Who spent it
//!
//! [`UsageLayerBuilder::attributes`] names the span fields that attribute spend (a tenant, a
//! user, a feature, a prompt version); each is read from the call span, else from its nearest
//! ancestor that has it, and lands in the call's line, its run's summary,
//! [`UsageHandle::by_attribute`], per-value budgets ([`Budget::each`]) and, only when asked
//! ([`UsageLayerBuilder::metric_attributes`]), the metrics:
//!
//! ```
//! use tracing::info_span;
//! use tracing_subscriber::prelude::*;
//! use tracing_llm_usage::UsageLayer;
//!
//! let (layer, guard) = UsageLayer::builder()
//!     .jsonl_writer(std::io::sink)
//!     .attributes(["tenant", "prompt.version"])
//!     .build()?;
//! let usage = layer.handle();
//! tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
//!     let run = info_span!("run", run_id = "run-1", tenant = "acme");
//!     let _run = run.enter();
//!     drop(info_span!("llm_call", model = "gpt-4o", prompt.version = "v3",
//!                     tokens.input = 1200, tokens.output = 300));
//! });
//! let tenants = usage.by_attribute("tenant");
//! assert_eq!(tenants[0].key.as_deref(), Some("acme"));
//! assert_eq!(tenants[0].usage.input_tokens, 1200);
//! drop(guard);
//! # Ok::<(), tracing_llm_usage::Error>(())
//! ```
//!
//! # Real clients
//!
//! Spans written to the OpenTelemetry GenAI conventions are calls without configuration: a
//! span declaring `gen_ai.usage.*` fields whose `gen_ai.operation.name` is an inference
//! operation (`chat`, `chat_streaming`, `text_completion`, `generate_content`, `embeddings`;
//! see [`UsageLayerBuilder::genai_operations`]). rig's `chat` spans and genai's `genai.chat`
//! spans are counted as they are. Agent-level spans (`invoke_agent`, `execute_tool`, …) hand
//! `gen_ai.agent.name` down and are never counted; an `invoke_agent` span outside any run is a
//! run of its own. When call spans nest, each request is counted once, by the innermost span
//! that carries usage. A span that records usage but is not a call is reported once per
//! callsite and counted in [`LayerStats::uncounted_spans`].
//!
//! # Pricing and provider usage
//!
//! Calls are priced from [`PriceTable::bundled`] unless the builder is given another
//! [`PriceTable`] (LiteLLM's price file as is, or TOML overrides). Provider responses turn into
//! normalised counts with [`Usage::from_openai`], [`Usage::from_anthropic`],
//! [`Usage::from_gemini`] and the others, recorded with [`Usage::record_on`] on a span made by
//! [`llm_call_span!`]:
//!
//! ```
//! # let json = serde_json::json!({"usage": {"input_tokens": 10, "output_tokens": 2}});
//! use tracing_llm_usage::{llm_call_span, Usage};
//! let call = llm_call_span!(step = "summary", model = "claude-sonnet-4-5", provider = "anthropic");
//! Usage::from_anthropic(&json)?.record_on(&call);
//! # Ok::<(), tracing_llm_usage::UsageError>(())
//! ```
//!
//! # Field names
//!
//! Token semantics are the OpenTelemetry GenAI ones: input includes cached tokens, output
//! includes reasoning tokens. For each slot the first name present wins:
//!
//! | slot | names |
//! |---|---|
//! | input | `tokens.input`, `gen_ai.usage.input_tokens`, `input_tokens`, `prompt_tokens`, `gen_ai.usage.prompt_tokens` |
//! | output | `tokens.output`, `gen_ai.usage.output_tokens`, `output_tokens`, `completion_tokens`, `gen_ai.usage.completion_tokens` |
//! | total | `tokens.total`, `gen_ai.usage.total_tokens`, `llm.usage.total_tokens` (else input + output) |
//! | cache read | `tokens.cache_read`, `gen_ai.usage.cache_read.input_tokens`, `gen_ai.usage.cache_read_input_tokens` |
//! | cache write | `tokens.cache_write`, `gen_ai.usage.cache_write.input_tokens`, `gen_ai.usage.cache_creation.input_tokens`, `gen_ai.usage.cache_creation_input_tokens` (of which `tokens.cache_write_1h` with a 1-hour lifetime) |
//! | reasoning | `tokens.reasoning`, `gen_ai.usage.reasoning.output_tokens`, `gen_ai.usage.reasoning_tokens` |
//! | modality | `gen_ai.usage.{text,image,audio}.{input_tokens,output_tokens,cache_read.input_tokens}` (subsets, in the line's `modality`) |
//! | streaming | `gen_ai.request.stream`, `gen_ai.is_streaming`, `llm.is_streaming` (`stream`), `gen_ai.response.time_to_first_chunk` in seconds (`ttft_ms`) |
//! | prompt breakdown | every `prompt.<component>` field |
//! | model | `gen_ai.response.model`, `model`, `gen_ai.request.model` |
//! | provider | `provider`, `gen_ai.provider.name`, `gen_ai.system` |
//! | others | `gen_ai.operation.name`, `step`, `task`, `agent` / `gen_ai.agent.name`, `run_id`, `cost_usd`, `service_tier`, `tokens.estimated`, `error` |
//!
//! A value that cannot be a token count (negative, fractional, not a number, beyond `u64`) is
//! not counted: the line's `warnings` names the field and [`LayerStats::invalid_values`]
//! counts it. Nothing panics; sums saturate.
//!
//! [`tracing`]: https://docs.rs/tracing
//! [`tracing::field::Empty`]: https://docs.rs/tracing/latest/tracing/field/struct.Empty.html
//! [`tracing::Instrument::instrument`]: https://docs.rs/tracing/latest/tracing/trait.Instrument.html#method.instrument
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod attributes;
pub mod budget;
mod builder;
mod clock;
mod error;
#[cfg(feature = "tiktoken")]
pub mod estimate;
mod fields;
pub mod format;
mod guard;
mod handle;
mod inert;
mod intern;
mod layer;
mod ledger;
mod name;
pub mod otel;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(any(feature = "otlp", feature = "postgres"))]
mod percent;
pub mod pricing;
pub mod providers;
pub mod record;
#[cfg(any(feature = "otlp", feature = "postgres", feature = "sqlite"))]
mod redact;
pub mod replay;
mod shard;
mod sink;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod store;
#[cfg(any(feature = "otlp", feature = "postgres"))]
mod tls;

pub use budget::{
    Budget, BudgetEvent, BudgetEventKind, BudgetMetric, BudgetScope, Remaining, RunSpend,
};
pub use builder::UsageLayerBuilder;
pub use error::Error;
pub use guard::UsageGuard;
pub use handle::{GroupUsage, LayerStats, UsageHandle};
pub use layer::UsageLayer;
pub use ledger::{RunStatus, RunSummary, RunUsage, StepUsage, Totals, OTHER};
pub use name::Name;
pub use pricing::{ModelPrice, PriceError, PriceTable, Rates, ServiceTier};
pub use providers::{record_error, Usage, UsageError, UsageStream};
pub use record::{
    CallRecord, CostSource, LineKind, Modality, ModalityCounts, ModalitySlot, ModalityTokens,
    PromptBreakdown, Timestamp, Tokens,
};
pub use tracing_appender::rolling::Rotation;

/// Shared with the `llm-usage` command; not part of the API (no semver guarantee).
#[doc(hidden)]
pub mod __private {
    pub use crate::inert::terminal;
    #[cfg(any(feature = "otlp", feature = "postgres"))]
    pub use crate::tls::{certificates, private_key};
}

/// The JSON Schema of both line kinds (`llm_call` and `run_summary`), draft 2020-12.
pub const JSONL_SCHEMA: &str = format::SCHEMA;
