//! The [`UsageLayer`]: span lifecycle → call records → ledger and outputs.
//!
//! A call span's close reads as the data flows: [`attribution`] (which run, step, task,
//! agent), the record, [`pricer`], the ledger, [`budgeting`], and [`outputs`] (the queue to
//! the writers and metrics). [`blind_spots`] reports what cannot be counted; [`closing`]
//! skips the spans that are none of ours.

mod attribution;
mod blind_spots;
mod budgeting;
mod closing;
mod outputs;
mod pricer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tracing_core::span::{Attributes, Id, Record};
use tracing_core::subscriber::Interest;
use tracing_core::{LevelFilter, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::attributes::AttributeKeys;
use crate::clock;
use crate::fields::{
    classify, operation_of, usage_in_attributes, usage_recorded, CallFields, Operation, Recording,
    ScopeFields, SpanRole,
};
use crate::ledger::{Held, Ledger, RunStatus, RunSummary};
use crate::name::Name;
use crate::record::{CallRecord, CostSource, LineKind, Tokens};
use crate::replay::Replayed;
use crate::UsageHandle;
use attribution::{inside_run, made_run_id, Attribution, CallState, Own, ScopeState};
pub(crate) use blind_spots::BlindSpots;
pub(crate) use budgeting::{BudgetCallback, Budgeting};
pub(crate) use closing::ClosingFilter;
pub(crate) use outputs::Outputs;
pub(crate) use pricer::Pricer;

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

/// State shared by the layer, its handles and its guard, by concern.
pub(crate) struct Inner {
    /// The span name of the user's own calls (`llm_call`).
    pub(crate) span_name: Box<str>,
    /// The `gen_ai.operation.name` values whose GenAI spans are calls.
    pub(crate) inference_operations: Box<[Box<str>]>,
    /// `chat`, the operation of a call that names none (made once, not per call).
    pub(crate) default_operation: Name,
    pub(crate) clock: Option<Clock>,
    /// Spans that do something at close, counted by a hash of their id.
    pub(crate) closing: ClosingFilter,
    /// Runs, open and recent, and the process totals.
    pub(crate) ledger: Ledger,
    pub(crate) pricer: Pricer,
    pub(crate) budgeting: Budgeting,
    pub(crate) outputs: Outputs,
    /// Field values that could not be used.
    pub(crate) invalid_values: AtomicU64,
    /// What the layer could not count, and the callsites it has warned about.
    pub(crate) blind_spots: BlindSpots,
    /// The span fields that attribute spend (`tenant`, `prompt.version`…): none by default.
    pub(crate) attribute_keys: AttributeKeys,
    /// The subscriber this layer is part of, to ask tracing-opentelemetry for span ids.
    #[cfg(feature = "trace-context")]
    pub(crate) dispatch: std::sync::OnceLock<tracing_core::dispatcher::WeakDispatch>,
}

/// The run summary's warning when a call of the run had no usage.
const NO_USAGE_RUN_WARNING: &str =
    "a call recorded no token usage: the run's tokens and cost leave it out (cost_source \"no_usage\")";

/// An injected clock for call timestamps.
pub(crate) type Clock = Arc<dyn Fn() -> crate::record::Timestamp + Send + Sync>;

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
    /// What a span is to this layer: [`classify`]'s answer, and a span that declares one of
    /// the builder's attributes is a scope that hands it down.
    fn role(&self, meta: &Metadata<'_>) -> SpanRole {
        match classify(meta, &self.span_name) {
            SpanRole::Ignored if self.attribute_keys.declared_by(meta) => SpanRole::Scope {
                run: false,
                op: false,
            },
            role => role,
        }
    }

    /// The call span closed: attribution → record → price → ledger → queue.
    fn close_call<S>(&self, span: &SpanRef<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        // Read in place: the state stays in the span's extensions and is dropped with them.
        let mut ext = span.extensions_mut();
        let replayed = ext.get_mut::<Replayed>().map(|r| *r);
        let Some(state) = ext.get_mut::<CallState>() else {
            return;
        };
        // A span replayed from another process carries its own times and ids.
        let (timestamp, latency, trace) = match replayed {
            Some(r) => (r.end, r.duration, Some(r.ids)),
            None => {
                let now = Instant::now();
                let stamp = match &self.clock {
                    Some(c) => c(),
                    None => clock::timestamp_at(now),
                };
                (
                    stamp,
                    now.saturating_duration_since(state.started),
                    state.trace,
                )
            }
        };
        let tokens = match attribution::own_tokens(state) {
            Own::Tokens(tokens) => tokens,
            Own::Wrapper => return,
            Own::Duplicate => {
                drop(ext);
                self.nested_duplicate(span.metadata());
                return;
            }
        };
        let f = &mut state.fields;
        let no_usage = !f.has_usage() && f.cost_usd.is_none();
        if no_usage {
            f.warnings.push(blind_spots::NO_USAGE_WARNING.to_owned());
        }
        let at = attribution::attribute(span, f, &tokens, &self.attribute_keys);
        let cell = at.cell.clone();
        let mut rec = self.call_record(f, at, tokens, timestamp, latency, trace);
        let (provider_cost, invalid) = (f.cost_usd, f.invalid);
        drop(ext);

        if no_usage {
            self.no_usage(span.metadata());
            rec.price_version = self.pricer.price_version.clone();
            rec.cost_source = CostSource::NoUsage;
            if let Some(cell) = &cell {
                cell.lock().warn(NO_USAGE_RUN_WARNING);
            }
        } else {
            self.pricer.price(&mut rec, provider_cost);
        }
        if invalid > 0 {
            self.invalid_values
                .fetch_add(u64::from(invalid), Ordering::Relaxed);
        }
        let evicted = self.ledger.add_call(cell.as_ref(), &rec);
        let crossings = self.budgeting.check(&rec);
        for event in &crossings {
            self.budgeting.notify(event);
        }
        // The record moves to the queue, whose worker encodes its line and records its
        // measurements; the budget lines it caused follow it. A run still waiting for its
        // id keeps them until the id is recorded.
        match cell.as_ref().filter(|c| c.waits()) {
            Some(waiting) => {
                if let Some((rec, crossings)) = waiting.hold(rec, crossings) {
                    self.emit(rec, &crossings);
                }
            }
            // The common case: the record moves straight to the queue.
            None => self.emit(rec, &crossings),
        }
        if let Some(summary) = evicted {
            self.run_finished(summary);
        }
    }

    /// A call's line, then the budget lines it caused.
    fn emit(&self, rec: CallRecord, crossings: &[crate::budget::BudgetEvent]) {
        self.outputs.push_call(rec);
        for event in crossings {
            self.outputs.emit_budget(event);
        }
    }

    /// Writes the lines a run kept while it waited for its id.
    pub(crate) fn release(&self, held: Vec<Held>) {
        for h in held {
            match h {
                Held::Call(rec) => self.outputs.push_call(*rec),
                Held::Budget(event) => self.outputs.emit_budget(&event),
            }
        }
    }

    /// The call's record, unpriced, from its fields and where it belongs.
    fn call_record(
        &self,
        f: &mut CallFields,
        at: Attribution,
        tokens: Tokens,
        timestamp: crate::record::Timestamp,
        latency: std::time::Duration,
        trace: Option<([u8; 16], [u8; 8])>,
    ) -> CallRecord {
        let model = f
            .response_model
            .clone()
            .or_else(|| f.model.clone())
            .or_else(|| f.request_model.clone());
        let request_model = f.request_model.take().or_else(|| f.model.take());
        CallRecord {
            timestamp,
            event: LineKind::LlmCall,
            run_id: at.run_id,
            step: at.step,
            model,
            provider: f.provider(),
            task: at.task,
            agent: at.agent,
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
            attributes: at.attributes,
            trace,
        }
    }

    /// A run left memory (its span closed, or it was evicted): its budgets are forgotten and
    /// its summary written.
    pub(crate) fn run_finished(&self, summary: RunSummary) {
        self.budgeting.budgets.forget(&summary.run_id);
        self.outputs.emit_summary(summary);
    }

    /// A run span closed: its summary leaves memory as a line.
    fn close_run<S>(&self, span: &SpanRef<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let (state, replayed) = {
            let mut ext = span.extensions_mut();
            (
                ext.remove::<ScopeState>(),
                ext.get_mut::<Replayed>().map(|r| *r),
            )
        };
        let Some(ScopeState {
            run: Some(cell),
            fields,
            ..
        }) = state
        else {
            return;
        };
        if fields.error {
            cell.lock().mark_error();
        }
        // A run that never recorded its id writes its lines under the id it was given.
        self.release(cell.take_held());
        let status = match replayed {
            Some(r) if r.incomplete => RunStatus::Incomplete,
            _ => RunStatus::Success,
        };
        if let Some(mut summary) = self.ledger.close_run(&cell, status) {
            if let Some(r) = replayed {
                summary.timestamp = r.end;
                summary.elapsed_seconds = (r.duration.as_secs_f64() * 1000.0).round() / 1000.0;
            }
            self.run_finished(summary);
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
                attrs.record(&mut Recording {
                    fields: &mut state.fields,
                    keys: &self.attribute_keys,
                });
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
        attrs.record(&mut Recording {
            fields: &mut fields,
            keys: &self.attribute_keys,
        });
        let span = ctx.span(id);
        // A span that declares `run_id` but has not recorded it yet waits for it: its calls'
        // lines are kept until it comes (or the run ends), so that lines and summary agree.
        let waiting = run && fields.run_id.is_none();
        let run = run
            || (agent_run
                && fields.run_id.is_none()
                && span.as_ref().is_some_and(|s| !inside_run(s)));
        let mut unnamed_agent_run = false;
        if waiting {
            fields.run_id = Some(made_run_id(Some("run")));
        } else if run && fields.run_id.is_none() {
            unnamed_agent_run = fields.agent().is_none();
            fields.run_id = Some(made_run_id(fields.agent().map(|a| &**a)));
        }
        if run {
            self.closing.opened(id);
        }
        let run = run.then(|| self.ledger.open_run(fields.run_id.clone(), waiting));
        if let (Some(cell), Some(span)) = (&run, &span) {
            if !self.attribute_keys.is_empty() {
                let attributes = attribution::scope_attributes(span, &fields, &self.attribute_keys);
                cell.lock().set_attributes(attributes);
            }
        }
        if let Some(span) = span {
            span.extensions_mut().replace(ScopeState {
                fields,
                run,
                unnamed_agent_run,
                waiting,
            });
        }
    }
}

impl<S> Layer<S> for UsageLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        // Calls and runs are asked about at every span, so that `enabled` sees whether the
        // rest of the subscriber would drop them; everything else is settled here.
        if self.inner.role(meta).is_accounting() {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        if !meta.is_span() {
            return true;
        }
        if self.inner.role(meta).is_accounting() && !ctx.enabled(meta) {
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
        match inner.role(attrs.metadata()) {
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
        match self.inner.role(span.metadata()) {
            SpanRole::Ignored => {}
            SpanRole::Call | SpanRole::GenAi | SpanRole::Scope { .. } | SpanRole::Watched => {
                let update = {
                    let mut ext = span.extensions_mut();
                    let keys = &self.inner.attribute_keys;
                    if let Some(state) = ext.get_mut::<CallState>() {
                        values.record(&mut Recording {
                            fields: &mut state.fields,
                            keys,
                        });
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
                    let before = state.fields.run_id.clone();
                    values.record(&mut Recording {
                        fields: &mut state.fields,
                        keys,
                    });
                    if state.unnamed_agent_run {
                        if let Some(agent) = state.fields.agent() {
                            state.fields.run_id = Some(made_run_id(Some(agent)));
                            state.unnamed_agent_run = false;
                        }
                    }
                    // The id a waiting run was waiting for.
                    let arrived = state.waiting && state.fields.run_id != before;
                    if arrived {
                        state.waiting = false;
                    }
                    state.run.clone().map(|cell| {
                        let id = state.fields.run_id.clone();
                        // A run's attributes may be recorded after it opened (`Empty` at first).
                        let attributes = (!keys.is_empty())
                            .then(|| attribution::scope_attributes(&span, &state.fields, keys));
                        (
                            cell,
                            id,
                            state.fields.error,
                            arrived.then_some(before),
                            attributes,
                        )
                    })
                };
                // The run cell's lock is taken only after the extensions guard is gone.
                if let Some((cell, run_id, error, arrived, attributes)) = update {
                    {
                        let mut agg = cell.lock();
                        agg.run_id.clone_from(&run_id);
                        if error {
                            agg.mark_error();
                        }
                        if let Some(attributes) = attributes {
                            agg.set_attributes(attributes);
                        }
                    }
                    if let (Some(old), Some(new)) = (arrived.flatten(), run_id) {
                        self.inner.budgeting.budgets.rename(&old, &new);
                        self.inner.release(cell.take_held());
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
        match self.inner.role(span.metadata()) {
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
