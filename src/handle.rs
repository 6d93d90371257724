//! [`UsageHandle`]: read the aggregates from anywhere.

use std::cmp::Ordering as CmpOrdering;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::budget::{Remaining, RunSpend};
use crate::layer::Inner;
use crate::ledger::{GroupKey, RunSummary, Totals};

/// A cheap, clonable, `Send + Sync` view of a [`crate::UsageLayer`]'s aggregates.
#[derive(Clone)]
pub struct UsageHandle {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for UsageHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageHandle").finish_non_exhaustive()
    }
}

/// One group's totals: a step, a model or a provider (`key` is `None` for calls without one).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct GroupUsage {
    /// The step, model or provider.
    pub key: Option<crate::Name>,
    /// Its totals.
    pub usage: Totals,
}

/// The layer's own health counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerStats {
    /// Lines the writer has written.
    pub lines_written: u64,
    /// Lines lost (write errors, shutdown timeout, lines after shutdown).
    pub lines_dropped: u64,
    /// Failed writes (each may have lost several lines).
    pub write_errors: u64,
    /// Field values that could not be used (each also named in its line's `warnings`).
    pub invalid_values: u64,
    /// Lines stored in the database (`.sqlite()`/`.postgres()`; rows already there included).
    pub db_lines_written: u64,
    /// Lines the database lost (a batch that failed after its retries, or the shutdown
    /// timeout).
    pub db_lines_dropped: u64,
    /// Failed database batches.
    pub db_errors: u64,
    /// Spans that recorded token usage but are not calls, so nothing was counted for them
    /// (each callsite also warned about once on stderr).
    pub uncounted_spans: u64,
    /// Call and run callsites that a filter of the whole subscriber disables, so the layer
    /// never sees their spans (each also warned about once on stderr).
    pub disabled_callsites: u64,
    /// Call spans not counted because a call span inside them had counted the same usage.
    pub nested_duplicates: u64,
    /// Calls that closed with no token count recorded: logged with `cost_usd: null` and
    /// `cost_source: "no_usage"` (each callsite also warned about once on stderr, with the
    /// client's fix).
    pub no_usage_calls: u64,
    /// Calls whose attribute value was added to `__other__` in
    /// [`UsageHandle::by_attribute`] (the attribute had `max_groups` values already).
    pub attribute_values_overflowed: u64,
    /// Per-value budget totals forgotten to stay within
    /// [`MAX_BUDGET_VALUES`](crate::budget::MAX_BUDGET_VALUES) (reported once on stderr).
    pub budget_values_evicted: u64,
    /// Metric measurements whose attribute value became `__other__` past
    /// [`metric_attribute_cap`](crate::UsageLayerBuilder::metric_attribute_cap) (warned
    /// about once on stderr).
    pub metric_attribute_overflows: u64,
    /// Log records the OTLP pipeline given with `.otlp(…)` delivered to the collector.
    pub log_records_delivered: u64,
    /// Log records it lost: its buffer was full during an outage, or they were still waiting
    /// at shutdown (reported once on stderr).
    pub log_records_dropped: u64,
}

impl UsageHandle {
    /// Totals over every call the layer has seen.
    pub fn totals(&self) -> Totals {
        let mut total = Totals::default();
        for u in self.inner.ledger.groups.fold(|_| ()).values() {
            total.merge(u);
        }
        total
    }

    /// Totals per step, most expensive first (then most tokens, then by name).
    pub fn by_step(&self) -> Vec<GroupUsage> {
        self.group(|k| k.step.clone())
    }

    /// Totals per model, most expensive first.
    pub fn by_model(&self) -> Vec<GroupUsage> {
        self.group(|k| k.model.clone())
    }

    /// Totals per provider, most expensive first.
    pub fn by_provider(&self) -> Vec<GroupUsage> {
        self.group(|k| k.provider.clone())
    }

    /// Totals per task, most expensive first.
    pub fn by_task(&self) -> Vec<GroupUsage> {
        self.group(|k| k.task.clone())
    }

    /// Totals per value of `attribute` (one of the builder's
    /// [`attributes`](crate::UsageLayerBuilder::attributes)), most expensive first; each
    /// value's text is the key (numbers as JSON writes them). At most
    /// [`max_groups`](crate::UsageLayerBuilder::max_groups) values: later ones are added to
    /// [`crate::OTHER`] (counted in [`LayerStats::attribute_values_overflowed`]). Empty for an
    /// attribute the builder does not name, or no call has a value for.
    pub fn by_attribute(&self, attribute: &str) -> Vec<GroupUsage> {
        let groups = self
            .inner
            .ledger
            .attributes
            .of(attribute)
            .unwrap_or_default();
        sorted(
            groups
                .into_iter()
                .map(|(key, usage)| GroupUsage {
                    key: Some(key),
                    usage,
                })
                .collect(),
        )
    }

    fn group(&self, f: impl Fn(&GroupKey) -> Option<crate::Name>) -> Vec<GroupUsage> {
        sorted(
            self.inner
                .ledger
                .groups
                .fold(f)
                .into_iter()
                .map(|(key, usage)| GroupUsage { key, usage })
                .collect(),
        )
    }

    /// The newest summary of `run_id`: a finished run from the recent ones, else a snapshot
    /// of an open run (status [`crate::RunStatus::Running`]).
    pub fn run(&self, run_id: &str) -> Option<RunSummary> {
        self.inner.ledger.run(run_id)
    }

    /// The last finished run summaries (at most [`crate::UsageLayerBuilder::recent_runs`]),
    /// oldest first.
    pub fn recent_runs(&self) -> Vec<RunSummary> {
        self.inner.ledger.recent()
    }

    /// How many runs are open now (run spans not closed, plus runs known only by id).
    pub fn open_runs(&self) -> usize {
        self.inner.ledger.open_runs()
    }

    /// Models seen without a price (`(no model)` for calls that named none), sorted.
    pub fn unpriced_models(&self) -> Vec<String> {
        self.inner
            .pricer
            .unpriced
            .read()
            .map(|set| set.iter().map(|m| m.to_string()).collect())
            .unwrap_or_default()
    }

    /// What a run has spent so far (its budgets' books while it is open, else its summary).
    pub fn run_spend(&self, run_id: &str) -> Option<RunSpend> {
        self.inner.budgeting.budgets.run_spend(run_id).or_else(|| {
            self.inner.ledger.run(run_id).map(|s| RunSpend {
                usd: s.usage.cost_usd.unwrap_or(0.0),
                tokens: s.usage.total_tokens,
                unpriced_calls: s.usage.unpriced_calls,
            })
        })
    }

    /// What a run may still spend under the per-run budgets (without model or step filters),
    /// the tightest first: a pre-flight check for agent loops.
    pub fn remaining(&self, run_id: &str) -> Remaining {
        self.inner.budgeting.budgets.remaining(run_id)
    }

    /// What calls whose `attribute` is `value` may still spend today (UTC) under the per-day
    /// budgets of that attribute ([`Budget::each`](crate::Budget::each) it, or
    /// [`only`](crate::Budget::only) that value) without model or step filters, the tightest
    /// first: a pre-flight check before a tenant's next call.
    pub fn remaining_for(&self, attribute: &str, value: &str) -> Remaining {
        let now = match &self.inner.clock {
            Some(c) => c(),
            None => crate::record::Timestamp::now(),
        };
        let today = now.unix_ms().div_euclid(86_400_000);
        self.inner
            .budgeting
            .budgets
            .remaining_for(attribute, value, today)
    }

    /// The layer's health counters.
    pub fn stats(&self) -> LayerStats {
        let s = &self.inner.outputs.stats;
        let db = &self.inner.outputs.db_stats;
        let blind = &self.inner.blind_spots;
        #[allow(unused_mut)]
        let mut stats = LayerStats {
            lines_written: s.lines_written.load(Ordering::Relaxed),
            lines_dropped: s.lines_dropped.load(Ordering::Relaxed),
            write_errors: s.write_errors.load(Ordering::Relaxed),
            invalid_values: self.inner.invalid_values.load(Ordering::Relaxed),
            db_lines_written: db.lines_written.load(Ordering::Relaxed),
            db_lines_dropped: db.lines_dropped.load(Ordering::Relaxed),
            db_errors: db.write_errors.load(Ordering::Relaxed),
            uncounted_spans: blind.uncounted_spans.load(Ordering::Relaxed),
            disabled_callsites: blind.disabled_callsites.load(Ordering::Relaxed),
            nested_duplicates: blind.nested_duplicates.load(Ordering::Relaxed),
            no_usage_calls: blind.no_usage_calls.load(Ordering::Relaxed),
            attribute_values_overflowed: self
                .inner
                .ledger
                .attributes
                .overflowed
                .load(Ordering::Relaxed),
            budget_values_evicted: self.inner.budgeting.budgets.values_evicted(),
            metric_attribute_overflows: self.inner.outputs.metric_overflows.load(Ordering::Relaxed),
            ..LayerStats::default()
        };
        #[cfg(feature = "otlp")]
        if let Some(d) = &self.inner.outputs.log_delivery {
            stats.log_records_delivered = d.delivered.load(Ordering::Relaxed);
            stats.log_records_dropped = d.dropped.load(Ordering::Relaxed);
        }
        stats
    }
}

/// Most expensive first, then most tokens, then by key.
fn sorted(mut out: Vec<GroupUsage>) -> Vec<GroupUsage> {
    out.sort_by(|a, b| {
        b.usage
            .cost_usd
            .partial_cmp(&a.usage.cost_usd)
            .unwrap_or(CmpOrdering::Equal)
            .then(b.usage.total_tokens.cmp(&a.usage.total_tokens))
            .then_with(|| a.key.cmp(&b.key))
    });
    out
}
