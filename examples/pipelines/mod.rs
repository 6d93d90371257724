//! The pipelines compared by `benches/pipeline.rs` and `examples/throughput.rs`: the floor, the
//! peers a user would otherwise stack (tracing-subscriber's JSON `fmt` layer and
//! tracing-opentelemetry's `MetricsLayer`), and ours at each stage.
#![allow(dead_code)] // each including target uses a subset

use std::path::Path;

use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use tracing::{info, info_span, Dispatch};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_llm_usage::{PriceTable, Rotation, UsageGuard, UsageHandle, UsageLayer};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::Layer;
use tracing_subscriber::prelude::*;

/// The `llm_call` every case makes: step, model, provider and two token counts.
#[inline]
pub fn llm_call() {
    drop(info_span!(
        "llm_call",
        step = "persona_generation",
        model = "claude-sonnet-4-5",
        provider = "anthropic",
        tokens.input = 42_000u64,
        tokens.output = 7_500u64
    ));
}

/// The same span, plus the event `MetricsLayer` turns into a counter and a histogram.
#[inline]
pub fn llm_call_with_metric_event() {
    let span = info_span!(
        "llm_call",
        step = "persona_generation",
        model = "claude-sonnet-4-5",
        provider = "anthropic",
        tokens.input = 42_000u64,
        tokens.output = 7_500u64
    );
    info!(
        parent: &span,
        monotonic_counter.gen_ai_client_token_usage = 49_500u64,
        histogram.gen_ai_client_operation_duration = 0.85f64,
        model = "claude-sonnet-4-5",
        step = "persona_generation"
    );
    drop(span);
}

/// A span the layer does not care about, with as many fields.
#[inline]
pub fn unrelated() {
    drop(info_span!(
        "http_request",
        method = "POST",
        path = "/v1/messages",
        status = 200u64,
        bytes = 7_500u64,
        retry = 0u64
    ));
}

/// A layer that does nothing: with the registry, the cost of tracing itself.
pub struct EmptyLayer;
impl<S: tracing::Subscriber> Layer<S> for EmptyLayer {}

/// Everything a case must keep alive until it is measured, and flush after.
#[derive(Default)]
pub struct Guards {
    pub usage: Option<UsageGuard>,
    pub handle: Option<UsageHandle>,
    pub appender: Option<WorkerGuard>,
    pub meters: Option<SdkMeterProvider>,
}

impl Drop for Guards {
    fn drop(&mut self) {
        drop(self.usage.take());
        drop(self.appender.take());
        if let Some(m) = self.meters.take() {
            let _ = m.shutdown();
        }
    }
}

/// A meter provider with a periodic reader on an in-memory exporter (nothing leaves the
/// process; the reader's thread collects as a real one would).
pub fn meter_provider() -> SdkMeterProvider {
    let reader = PeriodicReader::builder(InMemoryMetricExporter::default()).build();
    SdkMeterProvider::builder().with_reader(reader).build()
}

/// (a) The floor: the registry and an empty layer.
pub fn floor() -> (Dispatch, Guards) {
    (
        Dispatch::new(tracing_subscriber::registry().with(EmptyLayer)),
        Guards::default(),
    )
}

/// The peer `fmt` layer: one JSON line per closed span, to a file through tracing-appender's
/// non-blocking writer (lossless, as billing data needs). Events are left to the metrics peer.
pub fn fmt_json_layer<S>(dir: &Path, guards: &mut Guards) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let file = tracing_appender::rolling::never(dir, "fmt.jsonl");
    let (writer, guard) = NonBlockingBuilder::default().lossy(false).finish(file);
    guards.appender = Some(guard);
    tracing_subscriber::fmt::layer()
        .json()
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(writer)
        .with_filter(filter_fn(|m| m.is_span()))
}

/// Peer 1 alone: the JSON `fmt` layer.
pub fn peer_fmt_json(dir: &Path) -> (Dispatch, Guards) {
    let mut guards = Guards::default();
    let fmt = fmt_json_layer(dir, &mut guards);
    (
        Dispatch::new(tracing_subscriber::registry().with(fmt)),
        guards,
    )
}

/// Peer 2 alone: tracing-opentelemetry's `MetricsLayer`.
pub fn peer_metrics() -> (Dispatch, Guards) {
    let provider = meter_provider();
    let layer = tracing_opentelemetry::MetricsLayer::new(provider.clone());
    let mut guards = Guards::default();
    guards.meters = Some(provider);
    (
        Dispatch::new(tracing_subscriber::registry().with(layer)),
        guards,
    )
}

/// The peers' pair: JSON `fmt` layer and `MetricsLayer` together.
pub fn peers(dir: &Path) -> (Dispatch, Guards) {
    let mut guards = Guards::default();
    let fmt = fmt_json_layer(dir, &mut guards);
    let provider = meter_provider();
    let metrics = tracing_opentelemetry::MetricsLayer::new(provider.clone());
    guards.meters = Some(provider);
    let subscriber = tracing_subscriber::registry().with(fmt).with(metrics);
    (Dispatch::new(subscriber), guards)
}

/// Which stages of our pipeline are on.
#[derive(Clone, Copy, Debug)]
pub struct Stages {
    pub jsonl: bool,
    pub otel: bool,
    pub pricing: bool,
}

impl Stages {
    pub const AGGREGATE: Stages = Stages {
        jsonl: false,
        otel: false,
        pricing: false,
    };
    pub const JSONL: Stages = Stages {
        jsonl: true,
        otel: false,
        pricing: false,
    };
    pub const JSONL_OTEL: Stages = Stages {
        jsonl: true,
        otel: true,
        pricing: false,
    };
    pub const FULL: Stages = Stages {
        jsonl: true,
        otel: true,
        pricing: true,
    };
}

/// Our layer with the given stages; JSONL goes to `dir/llm_usage.jsonl`.
pub fn ours(dir: &Path, stages: Stages) -> (Dispatch, Guards) {
    let mut builder = UsageLayer::builder();
    if !stages.pricing {
        builder = builder.prices(PriceTable::new());
    }
    if stages.jsonl {
        builder = builder.jsonl_dir_with_rotation(dir, Rotation::NEVER);
    }
    let mut guards = Guards::default();
    if stages.otel {
        let provider = meter_provider();
        builder = builder.meter(opentelemetry::metrics::MeterProvider::meter(
            &provider,
            "tracing-llm-usage",
        ));
        guards.meters = Some(provider);
    }
    let (layer, guard) = builder.build().expect("our layer builds");
    guards.handle = Some(layer.handle());
    guards.usage = Some(guard);
    (
        Dispatch::new(tracing_subscriber::registry().with(layer)),
        guards,
    )
}

/// Lines in every file under `dir` whose text contains `needle` (streamed: the files can be
/// larger than the memory being measured).
pub fn count_lines(dir: &Path, needle: &str) -> u64 {
    use std::io::BufRead;
    let mut n = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if let Ok(file) = std::fs::File::open(entry.path()) {
            let lines = std::io::BufReader::new(file).lines();
            n += lines
                .map_while(Result::ok)
                .filter(|l| l.contains(needle))
                .count() as u64;
        }
    }
    n
}
