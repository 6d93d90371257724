//! The [`UsageLayer`]: span lifecycle → call records → ledger and sinks.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tracing_core::span::{Attributes, Id, Record};
use tracing_core::subscriber::Interest;
use tracing_core::{LevelFilter, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::budget::{BudgetEvent, BudgetEventKind};
use crate::clock;
use crate::fields::{
    classify, operation_of, usage_in_attributes, usage_recorded, CallFields, Operation,
    ScopeFields, SpanRole,
};
use crate::format::encode;
use crate::ledger::{Ledger, RunCell, RunStatus, RunSummary};
use crate::name::Name;
use crate::pricing::{PriceTable, ServiceTier};
use crate::record::{CallRecord, CostSource, LineKind, Tokens};
use crate::sink::queue::{Item, Queue};
use crate::sink::writer::SinkStats;
use crate::UsageHandle;

/// A [`tracing_subscriber::Layer`] that counts the tokens and cost of `llm_call` spans per run
/// and per step, and writes one JSON line per call and per finished run.
///
/// Built with [`UsageLayer::builder`]; see the crate documentation for an example.
#[derive(Clone)]
pub struct UsageLayer {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for UsageLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageLayer")
            .field("span_name", &self.inner.span_name)
            .finish_non_exhaustive()
    }
}

/// State shared by the layer, its handles and its guard.
pub(crate) struct Inner {
    pub(crate) span_name: Box<str>,
    pub(crate) ledger: Ledger,
    /// Where finished calls and lines go, off the caller's thread: the JSONL and database
    /// writers and the metrics (`None` when there are none of them).
    pub(crate) sink: Option<Queue>,
    pub(crate) sink_stats: Arc<SinkStats>,
    pub(crate) db_stats: Arc<SinkStats>,
    pub(crate) prices: PriceTable,
    pub(crate) unpriced: RwLock<BTreeSet<Arc<str>>>,
    pub(crate) price_version: Option<Name>,
    pub(crate) invalid_values: AtomicU64,
    pub(crate) budgets: crate::budget::Budgets,
    pub(crate) on_budget: Option<BudgetCallback>,
    pub(crate) budget_counter: Option<opentelemetry::metrics::Counter<u64>>,
    pub(crate) clock: Option<Clock>,
    pub(crate) callback_panics: AtomicU64,
    /// Spans that do something at close, counted by a hash of their id.
    pub(crate) closing: ClosingFilter,
    /// `chat`, the operation of a call that names none (made once, not per call).
    pub(crate) default_operation: Name,
    /// The `gen_ai.operation.name` values whose GenAI spans are calls.
    pub(crate) inference_operations: Box<[Box<str>]>,
    /// What the layer could not count, and the callsites it has warned about.
    pub(crate) blind_spots: BlindSpots,
    /// The subscriber this layer is part of, to ask tracing-opentelemetry for span ids.
    #[cfg(feature = "trace-context")]
    pub(crate) dispatch: std::sync::OnceLock<tracing_core::dispatcher::WeakDispatch>,
    /// The delivery of log records of the OTLP pipeline given with `.otlp(…)`.
    #[cfg(feature = "otlp")]
    pub(crate) log_delivery: Option<Arc<crate::otlp::DeliveryStats>>,
}

/// Spans whose usage the layer cannot count: reported once per callsite on stderr and
/// counted for [`crate::LayerStats`].
#[derive(Default)]
pub(crate) struct BlindSpots {
    /// Spans that recorded token usage but are not calls.
    pub(crate) uncounted_spans: AtomicU64,
    /// Call and run callsites that a filter of the whole subscriber disables.
    pub(crate) disabled_callsites: AtomicU64,
    /// Call spans whose usage an enclosed call span had already counted.
    pub(crate) nested_duplicates: AtomicU64,
    /// (what, callsite) pairs already reported.
    warned: Mutex<hashbrown::HashSet<(u8, usize)>>,
}

const WARN_UNCOUNTED: u8 = 0;
const WARN_DISABLED: u8 = 1;
const WARN_DUPLICATE: u8 = 2;

impl BlindSpots {
    /// Whether this is the first report of `what` for the callsite of `meta`.
    fn first(&self, what: u8, meta: &Metadata<'_>) -> bool {
        let key = (what, meta as *const Metadata<'_> as usize);
        self.warned
            .lock()
            .map(|mut w| w.insert(key))
            .unwrap_or(false)
    }
}

/// Where a span was declared, for warnings: `name` (target `t`, level `L`).
fn describe(meta: &Metadata<'_>) -> String {
    format!(
        "span {:?} (target {:?}, level {})",
        meta.name(),
        meta.target(),
        meta.level()
    )
}

/// Run ids made for agent invocations outside any run: unique in the process, and across
/// restarts by the process's start time.
fn agent_run_id(agent: Option<&str>) -> Arc<str> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| crate::record::Timestamp::now().unix_ms());
    let n = SEQ.fetch_add(1, Ordering::Relaxed) + 1;
    Arc::from(format!("{}-{start:x}-{n}", agent.unwrap_or("invoke_agent")))
}

/// Which span ids may need work at close: a counter per hash bucket of the id, raised when a
/// call or run span opens and lowered when it closes. A zero bucket means the closing span is
/// none of ours, and the registry lookup is skipped: the common case in a busy service.
pub(crate) struct ClosingFilter {
    buckets: Box<[AtomicU32]>,
}

impl Default for ClosingFilter {
    fn default() -> Self {
        Self {
            buckets: (0..CLOSING_BUCKETS).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

const CLOSING_BUCKETS: usize = 4096;

impl ClosingFilter {
    fn bucket(&self, id: &Id) -> &AtomicU32 {
        // The registry's ids are slab indices (plus a generation): multiplying spreads them.
        let h = id.into_u64().wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 52;
        &self.buckets[h as usize % CLOSING_BUCKETS]
    }

    fn opened(&self, id: &Id) {
        self.bucket(id).fetch_add(1, Ordering::Relaxed);
    }

    fn closed(&self, id: &Id) {
        let bucket = self.bucket(id);
        // One atomic operation in the common case; a close we never saw open (the count
        // was zero) is undone, so the count never stays below zero.
        if bucket.fetch_sub(1, Ordering::Relaxed) == 0 {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn may_be_ours(&self, id: &Id) -> bool {
        self.bucket(id).load(Ordering::Relaxed) != 0
    }
}

/// Each count of `tokens` beyond what `inner` already counted (saturating at zero).
fn tokens_beyond(tokens: &Tokens, inner: &Tokens) -> Tokens {
    Tokens {
        input: tokens.input.saturating_sub(inner.input),
        output: tokens.output.saturating_sub(inner.output),
        total: tokens.total.saturating_sub(inner.total),
        cache_read: tokens.cache_read.saturating_sub(inner.cache_read),
        cache_write: tokens.cache_write.saturating_sub(inner.cache_write),
        reasoning: tokens.reasoning.saturating_sub(inner.reasoning),
    }
}

/// `a + b`, count by count (saturating).
fn tokens_sum(a: &Tokens, b: &Tokens) -> Tokens {
    Tokens {
        input: a.input.saturating_add(b.input),
        output: a.output.saturating_add(b.output),
        total: a.total.saturating_add(b.total),
        cache_read: a.cache_read.saturating_add(b.cache_read),
        cache_write: a.cache_write.saturating_add(b.cache_write),
        reasoning: a.reasoning.saturating_add(b.reasoning),
    }
}

/// The `on_budget` callback.
pub(crate) type BudgetCallback = Arc<dyn Fn(&BudgetEvent) + Send + Sync>;
/// An injected clock for call timestamps.
pub(crate) type Clock = Arc<dyn Fn() -> crate::record::Timestamp + Send + Sync>;

/// An `llm_call` span's fields so far and when it opened.
struct CallState {
    fields: CallFields,
    started: Instant,
    /// What the call spans inside this one counted (one provider request is counted once,
    /// by the innermost span that carries its usage).
    inner: Tokens,
    inner_calls: u32,
    /// The OpenTelemetry trace and span ids of this span (feature `trace-context`).
    trace: Option<([u8; 16], [u8; 8])>,
}

/// A watched span already reported as uncounted.
struct Uncounted;

/// A span that hands `run_id`/`step`/`task`/`agent` down; `run` is set when it is a run.
struct ScopeState {
    fields: ScopeFields,
    run: Option<Arc<RunCell>>,
}

impl UsageLayer {
    /// A builder with the defaults: span name `llm_call`, no JSONL output, 1,024 recent runs.
    pub fn builder() -> crate::UsageLayerBuilder {
        crate::UsageLayerBuilder::default()
    }

    /// A handle to read the aggregates from anywhere (cheap to clone, `Send + Sync`).
    pub fn handle(&self) -> UsageHandle {
        UsageHandle {
            inner: self.inner.clone(),
        }
    }
}

impl Inner {
    /// Queues a line the caller encodes into `encode` (summaries and budget events: a few per
    /// run), if anything writes lines; `item` says which kind it is.
    fn emit_line(&self, item: fn(Vec<u8>) -> Item, encode: impl FnOnce(&mut Vec<u8>)) {
        if let Some(sink) = self.sink.as_ref().filter(|s| s.has_writers()) {
            let mut line = Vec::with_capacity(512);
            encode(&mut line);
            if !line.is_empty() {
                sink.push(item(line));
            }
        }
    }

    /// A budget crossing: its line, the counter, and the callback (after every lock of ours
    /// is released; a panic in it is caught and reported, never unwound into the caller).
    fn report_budget(&self, event: &BudgetEvent) {
        self.emit_line(Item::Line, |buf| encode::budget(event, buf));
        if event.event == BudgetEventKind::Exceeded {
            if let Some(counter) = &self.budget_counter {
                counter.add(
                    1,
                    &[opentelemetry::KeyValue::new(
                        "llm.budget.name",
                        event.budget.clone(),
                    )],
                );
            }
        }
        if let Some(cb) = &self.on_budget {
            let cb = cb.clone();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(event)));
            if outcome.is_err() && self.callback_panics.fetch_add(1, Ordering::Relaxed) == 0 {
                eprintln!("tracing-llm-usage: the on_budget callback panicked; the panic was caught (further ones are only counted)");
            }
        }
    }

    pub(crate) fn emit_summary(&self, summary: &RunSummary) {
        self.emit_line(Item::Summary, |buf| encode::summary(summary, buf));
    }

    fn price(&self, rec: &mut CallRecord, provider_cost: Option<f64>) {
        rec.price_version = self.price_version.clone();
        if let Some(c) = provider_cost {
            rec.cost_usd = Some(c);
            rec.cost_source = CostSource::Provider;
            return;
        }
        if self.prices.is_empty() {
            // Pricing turned off (`.prices(PriceTable::new())`): nothing to look up or warn about.
            rec.cost_source = CostSource::Unpriced;
            return;
        }
        let tier = rec
            .service_tier
            .as_deref()
            .map_or(ServiceTier::Standard, ServiceTier::from_field);
        let cost = rec.model.as_ref().and_then(|model| {
            self.prices.cost_interned(
                model,
                rec.provider.as_ref(),
                &rec.tokens,
                rec.cache_write_1h,
                tier,
                rec.modality.as_deref(),
            )
        });
        match cost {
            Some(c) => {
                rec.cost_usd = Some(c);
                rec.cost_source = CostSource::Local;
            }
            None => {
                rec.cost_source = CostSource::Unpriced;
                self.note_unpriced(rec.model.as_deref());
            }
        }
    }

    /// Remembers an unpriced model for the handle, and warns once per model per process.
    fn note_unpriced(&self, model: Option<&str>) {
        let model = model.unwrap_or("(no model)");
        let known = self
            .unpriced
            .read()
            .map(|set| set.contains(model))
            .unwrap_or(true);
        if known {
            return;
        }
        if let Ok(mut set) = self.unpriced.write() {
            set.insert(Arc::from(model));
        }
        static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
        let first = WARNED
            .lock()
            .map(|mut w| w.insert(model.to_owned()))
            .unwrap_or(false);
        if first {
            // stderr, not a tracing event: an event from inside the layer would re-enter it.
            eprintln!(
                "tracing-llm-usage: no price for model \"{}\"; its calls are logged with \
                 cost_usd null (add it with a price override)",
                crate::inert::terminal(model)
            );
        }
    }

    /// The call span closed: inherit context from ancestors, build the record, add it to its
    /// run and the totals, and queue its line.
    fn close_call<S>(&self, span: &SpanRef<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        // Read in place: the state stays in the span's extensions and is dropped with them.
        let mut ext = span.extensions_mut();
        let Some(state) = ext.get_mut::<CallState>() else {
            return;
        };
        let now = Instant::now();
        let latency = now.saturating_duration_since(state.started);
        let (inner, inner_calls, trace) = (state.inner, state.inner_calls, state.trace);
        let f = &mut state.fields;
        let mut tokens = f.tokens();
        if inner_calls > 0 {
            // Call spans inside this one counted their requests already.
            let own_usage = f.has_usage();
            tokens = tokens_beyond(&tokens, &inner);
            if !own_usage {
                // A wrapper (an agent's `chat` around its turns, a user's `llm_call` around
                // a client's span): it only handed its step, task and agent down.
                return;
            }
            if tokens == Tokens::default() {
                drop(ext);
                self.blind_spots
                    .nested_duplicates
                    .fetch_add(1, Ordering::Relaxed);
                let meta = span.metadata();
                if self.blind_spots.first(WARN_DUPLICATE, meta) {
                    eprintln!(
                        "tracing-llm-usage: {} recorded the same usage as the call span inside \
                         it; counted once, by the inner span",
                        describe(meta)
                    );
                }
                return;
            }
            f.warnings.push(format!(
                "{} input and {} output tokens of this span were counted by {inner_calls} \
                 call span(s) inside it and are not counted again",
                inner.input, inner.output
            ));
        }

        let mut step = f.step.take();
        let mut task = f.task.take();
        let mut agent = f.agent();
        let mut run_id = f.run_id.take();
        let own_run_id = run_id.is_some();
        let mut cell: Option<Arc<RunCell>> = None;
        let mut run_found = false;
        let mut next = span.parent();
        while let Some(ancestor) = next {
            next = ancestor.parent();
            let ext = ancestor.extensions();
            if let Some(outer) = ext.get::<CallState>() {
                // An enclosing call span: its context applies, and it learns what was
                // counted inside it.
                let o = &outer.fields;
                if step.is_none() {
                    step.clone_from(&o.step);
                }
                if task.is_none() {
                    task.clone_from(&o.task);
                }
                if agent.is_none() {
                    agent = o.agent();
                }
                if run_id.is_none() {
                    run_id.clone_from(&o.run_id);
                }
                drop(ext);
                if let Some(outer) = ancestor.extensions_mut().get_mut::<CallState>() {
                    outer.inner = tokens_sum(&outer.inner, &tokens);
                    outer.inner_calls = outer.inner_calls.saturating_add(1);
                }
                continue;
            }
            let Some(scope) = ext.get::<ScopeState>() else {
                continue;
            };
            if step.is_none() {
                step.clone_from(&scope.fields.step);
            }
            if task.is_none() {
                task.clone_from(&scope.fields.task);
            }
            if agent.is_none() {
                agent = scope.fields.agent().cloned();
            }
            if !run_found {
                if let Some(run) = &scope.run {
                    run_found = true;
                    // A run id on the call itself names its run; an enclosing run span with
                    // another id is not it.
                    if !own_run_id || scope.fields.run_id == run_id {
                        run_id.clone_from(&scope.fields.run_id);
                        cell = Some(run.clone());
                    }
                } else if run_id.is_none() {
                    run_id.clone_from(&scope.fields.run_id);
                }
            }
            if run_found && step.is_some() && task.is_some() && agent.is_some() {
                break;
            }
        }

        let model = f
            .response_model
            .clone()
            .or_else(|| f.model.clone())
            .or_else(|| f.request_model.clone());
        let request_model = f.request_model.take().or_else(|| f.model.take());
        let mut rec = CallRecord {
            timestamp: match &self.clock {
                Some(c) => c(),
                None => clock::timestamp_at(now),
            },
            event: LineKind::LlmCall,
            run_id,
            step,
            model,
            provider: f.provider(),
            task,
            agent,
            tokens,
            prompt_breakdown: std::mem::take(&mut f.prompt),
            cost_usd: None,
            cost_source: CostSource::Unpriced,
            price_version: None,
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            estimated: f.estimated,
            error: f.error.take(),
            warnings: std::mem::take(&mut f.warnings),
            stream: f.stream,
            ttft_ms: f.ttft_ms,
            modality: f.modality.take(),
            operation: f
                .operation
                .take()
                .unwrap_or_else(|| self.default_operation.clone()),
            request_model,
            service_tier: f.service_tier.take(),
            cache_write_1h: f.cache_write_1h(),
            trace,
        };
        let (provider_cost, invalid) = (f.cost_usd, f.invalid);
        drop(ext);
        self.price(&mut rec, provider_cost);
        if invalid > 0 {
            self.invalid_values
                .fetch_add(u64::from(invalid), Ordering::Relaxed);
        }

        let evicted = match (&cell, &rec.run_id) {
            (Some(cell), _) => {
                cell.add(&rec);
                None
            }
            (None, Some(id)) => self.ledger.add_orphan(id, &rec),
            (None, None) => None,
        };
        self.ledger.groups.add(&rec);
        let crossings = if self.budgets.is_empty() {
            Vec::new()
        } else {
            self.budgets.add(&rec)
        };
        // The record moves to the sink, whose worker encodes its line and records its
        // measurements; the lines it causes follow it.
        if let Some(sink) = &self.sink {
            sink.push_call(rec);
        }
        for event in &crossings {
            self.report_budget(event);
        }
        if let Some(summary) = evicted {
            self.budgets.forget(&summary.run_id);
            self.emit_summary(&summary);
        }
    }

    /// A run span closed: its summary leaves memory as a line.
    fn close_run<S>(&self, span: &SpanRef<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(state) = span.extensions_mut().remove::<ScopeState>() else {
            return;
        };
        let Some(cell) = state.run else {
            return;
        };
        if state.fields.error {
            cell.lock().mark_error();
        }
        if let Some(summary) = self.ledger.close_run(&cell, RunStatus::Success) {
            self.budgets.forget(&summary.run_id);
            self.emit_summary(&summary);
        }
    }
}

impl Inner {
    /// A span opened that is a call: its state goes into its extensions.
    fn open_call<S>(&self, attrs: &Attributes<'_>, id: &Id, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        self.closing.opened(id);
        let started = Instant::now();
        if let Some(span) = ctx.span(id) {
            // Recorded in place, once the state is in the extensions: the state is 500
            // bytes, and each move of it is a copy.
            let mut ext = span.extensions_mut();
            ext.replace(CallState {
                fields: CallFields::default(),
                started,
                inner: Tokens::default(),
                inner_calls: 0,
                trace: None,
            });
            if let Some(state) = ext.get_mut::<CallState>() {
                attrs.record(&mut state.fields);
            }
            drop(ext);
            #[cfg(feature = "trace-context")]
            if let Some(trace) = self.otel_ids(id) {
                if let Some(state) = span.extensions_mut().get_mut::<CallState>() {
                    state.trace = Some(trace);
                }
            }
        }
    }

    /// The trace and span ids tracing-opentelemetry gives the span `id` (its layer runs
    /// first when it sits below this one), without holding any extensions.
    #[cfg(feature = "trace-context")]
    fn otel_ids(&self, id: &Id) -> Option<([u8; 16], [u8; 8])> {
        use opentelemetry::trace::TraceContextExt;
        let dispatch = self.dispatch.get()?.upgrade()?;
        let cx = tracing_opentelemetry::get_otel_context(id, &dispatch)?;
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid()
            .then(|| (sc.trace_id().to_bytes(), sc.span_id().to_bytes()))
    }

    /// A span opened that hands context down; `run` when it is a run. An `invoke_agent`
    /// span outside any run (`agent_run`) becomes a run of its own.
    fn open_scope<S>(
        &self,
        attrs: &Attributes<'_>,
        id: &Id,
        ctx: &Context<'_, S>,
        run: bool,
        agent_run: bool,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut fields = ScopeFields::default();
        attrs.record(&mut fields);
        let span = ctx.span(id);
        let run = run
            || (agent_run
                && fields.run_id.is_none()
                && span.as_ref().is_some_and(|s| !inside_run(s)));
        if run && fields.run_id.is_none() {
            fields.run_id = Some(agent_run_id(fields.agent().map(|a| &**a)));
        }
        if run {
            self.closing.opened(id);
        }
        let run = run.then(|| self.ledger.open_run(fields.run_id.clone()));
        if let Some(span) = span {
            span.extensions_mut().replace(ScopeState { fields, run });
        }
    }

    /// A span that is not a call recorded token usage (`field`): reported once per
    /// callsite, counted once per span, and noted in its run's summary.
    fn uncounted<S>(&self, span: &SpanRef<'_, S>, field: &str)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        {
            let mut ext = span.extensions_mut();
            if ext.get_mut::<Uncounted>().is_some() {
                return;
            }
            ext.insert(Uncounted);
        }
        self.blind_spots
            .uncounted_spans
            .fetch_add(1, Ordering::Relaxed);
        let meta = span.metadata();
        let what = describe(meta);
        if self.blind_spots.first(WARN_UNCOUNTED, meta) {
            eprintln!(
                "tracing-llm-usage: {what} recorded token usage ({field}) but is not an LLM \
                 call, so it is not counted; name it {:?} (the builder's `span_name`), or give \
                 it a `gen_ai.operation.name` of an inference operation ({}; the builder's \
                 `genai_operations` adds more)",
                self.span_name,
                self.inference_operations.join(", "),
            );
        }
        let mut next = span.parent();
        while let Some(ancestor) = next {
            next = ancestor.parent();
            let cell = ancestor
                .extensions()
                .get::<ScopeState>()
                .and_then(|s| s.run.clone());
            if let Some(cell) = cell {
                cell.lock()
                    .warn(&format!("{what} recorded token usage and was not counted"));
                break;
            }
        }
    }

    /// A call or run callsite that the rest of the subscriber disables: its spans never
    /// reach the layer. Reported once per callsite.
    fn disabled(&self, meta: &Metadata<'_>) {
        if !self.blind_spots.first(WARN_DISABLED, meta) {
            return;
        }
        self.blind_spots
            .disabled_callsites
            .fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "tracing-llm-usage: {} is disabled by a filter on the whole subscriber, so its LLM \
             usage is not counted. Put level filters on the output layers instead \
             (`fmt::layer().with_filter(EnvFilter::from_default_env())`) and leave UsageLayer \
             unfiltered.",
            describe(meta)
        );
    }
}

/// Whether a span has a run among its ancestors (a run span, or a span naming a `run_id`).
fn inside_run<S>(span: &SpanRef<'_, S>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut next = span.parent();
    while let Some(ancestor) = next {
        next = ancestor.parent();
        let ext = ancestor.extensions();
        if ext
            .get::<ScopeState>()
            .is_some_and(|s| s.run.is_some() || s.fields.run_id.is_some())
            || ext
                .get::<CallState>()
                .is_some_and(|c| c.fields.run_id.is_some())
        {
            return true;
        }
    }
    false
}

impl<S> Layer<S> for UsageLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        // Calls and runs are asked about at every span, so that `enabled` sees whether the
        // rest of the subscriber would drop them; everything else is settled here.
        if classify(meta, &self.inner.span_name).is_accounting() {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        if !meta.is_span() {
            return true;
        }
        if classify(meta, &self.inner.span_name).is_accounting() && !ctx.enabled(meta) {
            self.inner.disabled(meta);
        }
        true
    }

    #[cfg(feature = "trace-context")]
    fn on_register_dispatch(&self, dispatch: &tracing_core::Dispatch) {
        let _ = self.inner.dispatch.set(dispatch.downgrade());
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // Calls may be spans of any level: a global level filter must not hide them before
        // `register_callsite` and `enabled` can see that it does.
        Some(LevelFilter::TRACE)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let inner = &*self.inner;
        match classify(attrs.metadata(), &inner.span_name) {
            SpanRole::Ignored => {}
            SpanRole::Call => inner.open_call(attrs, id, &ctx),
            SpanRole::Scope { run, op } => {
                // genai's agent spans: no usage fields, but an operation.
                let invoke = op
                    && !run
                    && operation_of(attrs, &inner.inference_operations)
                        == Operation::Agent { invoke: true };
                inner.open_scope(attrs, id, &ctx, run, invoke)
            }
            SpanRole::GenAi => match operation_of(attrs, &inner.inference_operations) {
                Operation::Inference => inner.open_call(attrs, id, &ctx),
                Operation::Agent { invoke } => inner.open_scope(attrs, id, &ctx, false, invoke),
                Operation::Other => {
                    if let (Some(field), Some(span)) = (usage_in_attributes(attrs), ctx.span(id)) {
                        inner.uncounted(&span, field);
                    }
                }
            },
            SpanRole::Watched => {
                if let (Some(field), Some(span)) = (usage_in_attributes(attrs), ctx.span(id)) {
                    inner.uncounted(&span, field);
                }
            }
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        match classify(span.metadata(), &self.inner.span_name) {
            SpanRole::Ignored => {}
            SpanRole::Call | SpanRole::GenAi | SpanRole::Scope { .. } | SpanRole::Watched => {
                let update = {
                    let mut ext = span.extensions_mut();
                    if let Some(state) = ext.get_mut::<CallState>() {
                        values.record(&mut state.fields);
                        return;
                    }
                    let Some(state) = ext.get_mut::<ScopeState>() else {
                        drop(ext);
                        // A GenAI span of another operation, or a watched span.
                        if let Some(field) = usage_recorded(values) {
                            self.inner.uncounted(&span, field);
                        }
                        return;
                    };
                    values.record(&mut state.fields);
                    state
                        .run
                        .clone()
                        .map(|cell| (cell, state.fields.run_id.clone(), state.fields.error))
                };
                // The run cell's lock is taken only after the extensions guard is gone.
                if let Some((cell, run_id, error)) = update {
                    let mut agg = cell.lock();
                    agg.run_id = run_id;
                    if error {
                        agg.mark_error();
                    }
                }
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if !self.inner.closing.may_be_ours(&id) {
            return;
        }
        let Some(span) = ctx.span(&id) else {
            return;
        };
        match classify(span.metadata(), &self.inner.span_name) {
            SpanRole::Ignored
            | SpanRole::Watched
            | SpanRole::Scope {
                run: false,
                op: false,
            } => {}
            SpanRole::Call | SpanRole::GenAi | SpanRole::Scope { .. } => {
                // What the span became when it opened decides: a call, a run, or neither.
                let (call, run) = {
                    let ext = span.extensions();
                    (
                        ext.get::<CallState>().is_some(),
                        ext.get::<ScopeState>().is_some_and(|s| s.run.is_some()),
                    )
                };
                if call {
                    self.inner.closing.closed(&id);
                    self.inner.close_call(&span);
                } else if run {
                    self.inner.closing.closed(&id);
                    self.inner.close_run(&span);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_filter_counts_open_spans_per_bucket() {
        let f = ClosingFilter::default();
        let (a, b) = (Id::from_u64(7), Id::from_u64(8));
        assert!(!f.may_be_ours(&a));
        f.opened(&a);
        f.opened(&a); // an id reused while the first span's close is under way
        f.closed(&a);
        assert!(f.may_be_ours(&a));
        f.closed(&a);
        f.closed(&a); // a close we never saw open: stays at zero
        assert!(!f.may_be_ours(&a));
        f.opened(&b);
        assert!(!f.may_be_ours(&a) || f.bucket(&a).as_ptr() == f.bucket(&b).as_ptr());
        assert!(f.may_be_ours(&b));
    }
}
