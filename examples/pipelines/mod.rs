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

/// The same span with a prompt version, for a layer that reads it as an attribute.
#[inline]
pub fn llm_call_attributed() {
    drop(info_span!(
        "llm_call",
        step = "persona_generation",
        model = "claude-sonnet-4-5",
        provider = "anthropic",
        prompt.version = "v3",
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

/// The least a layer must do to attribute a call to its run through the registry: keep a
/// state in the call span's extensions (its start and two counts), and at its close take it
/// back, read the clock and add to a sum in the parent span's extensions. Not a product: the
/// lower bound of our design on this machine (ours does the same lookups and locks, plus the
/// fields, the record, the step and group sums).
pub struct BoundLayer;

/// [`BoundLayer`]'s per-call state.
struct BoundCall {
    started: std::time::Instant,
    tokens: [u64; 2],
}

/// [`BoundLayer`]'s per-run sums.
#[derive(Default)]
struct BoundRun(std::sync::Mutex<[u64; 3]>);

impl tracing::field::Visit for BoundCall {
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        match field.name() {
            "tokens.input" => self.tokens[0] = value,
            "tokens.output" => self.tokens[1] = value,
            _ => {}
        }
    }
    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

impl<S> Layer<S> for BoundLayer
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = attrs.metadata();
        if meta.name() == "llm_call" {
            let mut call = BoundCall {
                started: std::time::Instant::now(),
                tokens: [0; 2],
            };
            attrs.record(&mut call);
            if let Some(span) = ctx.span(id) {
                span.extensions_mut().insert(call);
            }
        } else if meta.fields().field("run_id").is_some() {
            if let Some(span) = ctx.span(id) {
                span.extensions_mut().insert(BoundRun::default());
            }
        }
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(call) = span.extensions_mut().remove::<BoundCall>() else {
            return;
        };
        let ms = call.started.elapsed().as_millis() as u64;
        if let Some(parent) = span.parent() {
            if let Some(run) = parent.extensions().get::<BoundRun>() {
                let mut sums = run.0.lock().unwrap_or_else(|p| p.into_inner());
                sums[0] += call.tokens[0];
                sums[1] += call.tokens[1];
                sums[2] += ms;
            }
        }
    }
}

/// The registry and [`BoundLayer`]: the lower bound of a per-call layer.
pub fn bound() -> (Dispatch, Guards) {
    (
        Dispatch::new(tracing_subscriber::registry().with(BoundLayer)),
        Guards::default(),
    )
}

/// The peer `fmt` layer: one JSON line per closed span, to a file through tracing-appender's
/// non-blocking writer (lossless, as billing data needs). Events are left to the metrics peer.
pub fn fmt_json_layer<S>(dir: &Path, guards: &mut Guards) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fmt_json_layer_to(tracing_appender::rolling::never(dir, "fmt.jsonl"), guards)
}

/// The peer `fmt` layer writing through the non-blocking writer to `out`.
pub fn fmt_json_layer_to<S, W>(out: W, guards: &mut Guards) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: std::io::Write + Send + 'static,
{
    let (writer, guard) = NonBlockingBuilder::default().lossy(false).finish(out);
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

/// The peers' pair with the `fmt` lines discarded by the writer thread (`std::io::sink`): the
/// peers' own cost, without the kernel's copy of their lines into the page cache.
pub fn peers_discarding() -> (Dispatch, Guards) {
    let mut guards = Guards::default();
    let fmt = fmt_json_layer_to(std::io::sink(), &mut guards);
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
    ours_with(stages, |b| b.jsonl_dir_with_rotation(dir, Rotation::NEVER))
}

/// Our full pipeline writing each line to a file and as a row of the SQLite file
/// `usage.sqlite` beside it.
#[cfg(feature = "sqlite")]
pub fn ours_sqlite(dir: &Path) -> (Dispatch, Guards) {
    ours_with(Stages::FULL, |b| {
        b.jsonl_dir_with_rotation(dir, Rotation::NEVER)
            .sqlite(dir.join("usage.sqlite"))
    })
}

/// Our full pipeline reading three attributes (`tenant` and `feature` from the run span,
/// `prompt.version` from the call span).
pub fn ours_attributed(dir: &Path) -> (Dispatch, Guards) {
    ours_with(Stages::FULL, |b| {
        b.jsonl_dir_with_rotation(dir, Rotation::NEVER).attributes([
            "tenant",
            "feature",
            "prompt.version",
        ])
    })
}

/// [`ours_attributed`] with the lines discarded by the writer thread.
pub fn ours_attributed_discarding() -> (Dispatch, Guards) {
    ours_with(Stages::FULL, |b| {
        b.jsonl_writer(std::io::sink)
            .attributes(["tenant", "feature", "prompt.version"])
    })
}

/// Our layer with the given stages, the JSONL lines discarded by the writer thread
/// (`std::io::sink`): our own cost, without the kernel's copy of the lines into the page cache.
pub fn ours_discarding(stages: Stages) -> (Dispatch, Guards) {
    ours_with(stages, |b| b.jsonl_writer(std::io::sink))
}

fn ours_with(
    stages: Stages,
    jsonl: impl FnOnce(tracing_llm_usage::UsageLayerBuilder) -> tracing_llm_usage::UsageLayerBuilder,
) -> (Dispatch, Guards) {
    let mut builder = UsageLayer::builder();
    if !stages.pricing {
        builder = builder.prices(PriceTable::new());
    }
    if stages.jsonl {
        builder = jsonl(builder);
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
