//! The [`UsageLayer`]: span lifecycle → call records → ledger and sinks.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tracing_core::span::{Attributes, Id, Record};
use tracing_core::Subscriber;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::budget::{BudgetEvent, BudgetEventKind};
use crate::clock;
use crate::fields::{classify, CallFields, ScopeFields, SpanRole};
use crate::ledger::{Ledger, RunCell, RunStatus, RunSummary};
use crate::name::Name;
use crate::pricing::{PriceTable, ServiceTier};
use crate::record::{CallRecord, CostSource, LineKind};
use crate::sink::deferred::{Deferred, Item};
use crate::sink::jsonl;
use crate::sink::writer::SinkStats;
use crate::UsageHandle;

/// A [`tracing_subscriber::Layer`] that counts the tokens and cost of `llm_call` spans per run
/// and per step, and writes one F-077 JSON line per call and per finished run.
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
    pub(crate) sink: Option<Deferred>,
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

/// The `on_budget` callback.
pub(crate) type BudgetCallback = Arc<dyn Fn(&BudgetEvent) + Send + Sync>;
/// An injected clock for call timestamps.
pub(crate) type Clock = Arc<dyn Fn() -> crate::record::Timestamp + Send + Sync>;

/// An `llm_call` span's fields so far and when it opened.
struct CallState {
    fields: CallFields,
    started: Instant,
}

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
        self.emit_line(Item::Line, |buf| {
            if serde_json::to_writer(&mut *buf, event).is_ok() {
                buf.push(b'\n');
            } else {
                buf.clear();
            }
        });
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
        self.emit_line(Item::Summary, |buf| jsonl::encode_summary(summary, buf));
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
                "tracing-llm-usage: no price for model {model:?}; its calls are logged with \
                 cost_usd null (add it with a price override)"
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
        let f = &mut state.fields;

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

        let tokens = f.tokens();
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
            operation: f
                .operation
                .take()
                .unwrap_or_else(|| self.default_operation.clone()),
            request_model,
            service_tier: f.service_tier.take(),
            cache_write_1h: f.cache_write_1h(),
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

impl<S> Layer<S> for UsageLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        match classify(attrs.metadata(), &self.inner.span_name) {
            SpanRole::Ignored => {}
            SpanRole::Call => {
                self.inner.closing.opened(id);
                let started = Instant::now();
                if let Some(span) = ctx.span(id) {
                    // Recorded in place, once the state is in the extensions: the state is
                    // 500 bytes, and each move of it is a copy.
                    let mut ext = span.extensions_mut();
                    ext.replace(CallState {
                        fields: CallFields::default(),
                        started,
                    });
                    if let Some(state) = ext.get_mut::<CallState>() {
                        attrs.record(&mut state.fields);
                    }
                }
            }
            SpanRole::Scope { run } => {
                let mut fields = ScopeFields::default();
                attrs.record(&mut fields);
                if run {
                    self.inner.closing.opened(id);
                }
                let run = run.then(|| self.inner.ledger.open_run(fields.run_id.clone()));
                if let Some(span) = ctx.span(id) {
                    span.extensions_mut().replace(ScopeState { fields, run });
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
            SpanRole::Call => {
                if let Some(state) = span.extensions_mut().get_mut::<CallState>() {
                    values.record(&mut state.fields);
                }
            }
            SpanRole::Scope { .. } => {
                let update = {
                    let mut ext = span.extensions_mut();
                    let Some(state) = ext.get_mut::<ScopeState>() else {
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
            SpanRole::Ignored | SpanRole::Scope { run: false } => {}
            SpanRole::Call => {
                self.inner.closing.closed(&id);
                self.inner.close_call(&span);
            }
            SpanRole::Scope { run: true } => {
                self.inner.closing.closed(&id);
                self.inner.close_run(&span);
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
