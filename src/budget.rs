//! Budgets: limits on spend (USD) and tokens per run or per UTC day, optionally for one model
//! or one step. When a call takes a total across a limit, that call is reported once per limit
//! and scope (run or day): a `budget_exceeded` JSONL line, the `on_budget` callback, and the
//! `llm.budget.exceeded` counter; crossing the warning fraction (default 80 %) gives a
//! `budget_warning` line and callback. Enforcement stays the application's choice:
//! [`crate::UsageHandle::remaining`] tells a loop whether to make its next call.
//!
//! A total *exceeds* a limit when it is greater than the limit; a total equal to the limit has
//! nothing remaining.
//!
//! A budget may hold one limit per value of an attribute ([`Budget::each`]: every tenant has
//! its own daily limit) or count only one value ([`Budget::only`]); a call without that
//! attribute is not counted by it. Per-value totals are kept for at most
//! [`MAX_BUDGET_VALUES`] values at once: past that, the least recently seen value is
//! forgotten (its total starts again from zero if it comes back), counted in
//! [`crate::LayerStats::budget_values_evicted`] and reported once on stderr. Per-day totals
//! of past days are dropped when the day changes.
//!
//! A limit never skips what it cannot count. A call in a USD limit's scope with no cost (its
//! model has no price, or no usage was recorded), or in a token limit's scope with no usage,
//! adds nothing to that total, and the first such call in each run or day writes a
//! `budget_unpriced` line naming the model and why, and calls `on_budget` with
//! [`BudgetEventKind::Unpriced`]; [`Remaining::unpriced_calls`] and
//! [`RunSpend::unpriced_calls`] count them, so a loop knows its figure is a floor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::record::{CallRecord, Timestamp};

/// The most (budget, scope, value) totals per-value budgets keep at once.
pub const MAX_BUDGET_VALUES: usize = 10_000;

/// How long a budget's totals accumulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BudgetScope {
    /// One run (calls with the same run id).
    Run,
    /// One UTC day.
    Day,
}

/// What a limit measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BudgetMetric {
    /// Cost in USD (priced calls).
    Usd,
    /// Total tokens.
    Tokens,
}

/// A named limit. Build with [`Budget::per_run`] or [`Budget::per_day`], then `.usd(…)` and/or
/// `.tokens(…)`, optionally `.model(…)`, `.step(…)`, `.warn_at(…)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    name: String,
    scope: BudgetScope,
    usd: Option<f64>,
    tokens: Option<u64>,
    model: Option<String>,
    step: Option<String>,
    each: Option<String>,
    only: Option<(String, String)>,
    warn_at: Option<f64>,
}

impl Budget {
    fn new(name: &str, scope: BudgetScope) -> Self {
        Self {
            name: name.to_owned(),
            scope,
            usd: None,
            tokens: None,
            model: None,
            step: None,
            each: None,
            only: None,
            warn_at: Some(0.8),
        }
    }

    /// A limit on each run.
    pub fn per_run(name: &str) -> Self {
        Self::new(name, BudgetScope::Run)
    }

    /// A limit on each UTC day.
    pub fn per_day(name: &str) -> Self {
        Self::new(name, BudgetScope::Day)
    }

    /// At most this many USD.
    #[must_use]
    pub fn usd(mut self, limit: f64) -> Self {
        self.usd = Some(limit);
        self
    }

    /// At most this many tokens (input + output).
    #[must_use]
    pub fn tokens(mut self, limit: u64) -> Self {
        self.tokens = Some(limit);
        self
    }

    /// Counts only this model's calls.
    #[must_use]
    pub fn model(mut self, model: &str) -> Self {
        self.model = Some(model.to_owned());
        self
    }

    /// Counts only this step's calls.
    #[must_use]
    pub fn step(mut self, step: &str) -> Self {
        self.step = Some(step.to_owned());
        self
    }

    /// One limit per value of `attribute` (one of the builder's
    /// [`attributes`](crate::UsageLayerBuilder::attributes)): every tenant has its own
    /// total, crossings and lines. Calls without the attribute are not counted.
    #[must_use]
    pub fn each(mut self, attribute: &str) -> Self {
        self.each = Some(attribute.to_owned());
        self
    }

    /// Counts only the calls whose `attribute` has this value (its text, as `by` shows it).
    #[must_use]
    pub fn only(mut self, attribute: &str, value: &str) -> Self {
        self.only = Some((attribute.to_owned(), value.to_owned()));
        self
    }

    /// Warns when a total reaches this fraction of the limit (default 0.8; `None` for no
    /// warning).
    #[must_use]
    pub fn warn_at(mut self, fraction: Option<f64>) -> Self {
        self.warn_at = fraction;
        self
    }

    /// The budget's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its scope.
    pub fn scope(&self) -> BudgetScope {
        self.scope
    }

    /// The attributes the budget reads (`each`, `only`).
    pub(crate) fn attributes(&self) -> impl Iterator<Item = &str> {
        self.each
            .as_deref()
            .into_iter()
            .chain(self.only.as_ref().map(|(k, _)| k.as_str()))
    }

    fn applies(&self, rec: &CallRecord) -> bool {
        if let Some((key, value)) = &self.only {
            if !rec.attributes.get(key).is_some_and(|v| same_text(v, value)) {
                return false;
            }
        }
        self.model
            .as_deref()
            .is_none_or(|m| rec.model.as_deref() == Some(m))
            && self
                .step
                .as_deref()
                .is_none_or(|s| rec.step.as_deref() == Some(s))
    }

    fn limits(&self) -> impl Iterator<Item = (BudgetMetric, f64)> + '_ {
        self.usd
            .map(|l| (BudgetMetric::Usd, l))
            .into_iter()
            .chain(self.tokens.map(|l| (BudgetMetric::Tokens, l as f64)))
    }
}

/// Whether an attribute's value reads as `text`.
fn same_text(v: &crate::attributes::AttributeValue, text: &str) -> bool {
    match v {
        crate::attributes::AttributeValue::Str(s) => **s == *text,
        other => other.to_string() == text,
    }
}

/// Whether a limit was exceeded or only approached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BudgetEventKind {
    /// The total passed the warning fraction.
    #[serde(rename = "budget_warning")]
    Warning,
    /// The total passed the limit.
    #[serde(rename = "budget_exceeded")]
    Exceeded,
    /// A call the limit applies to could not be counted (USD: no price or no usage; tokens:
    /// no usage): the total is short of it. Once per budget, metric and run or day.
    #[serde(rename = "budget_unpriced")]
    Unpriced,
}

/// One crossing, as written on a `budget_warning` / `budget_exceeded` / `budget_unpriced`
/// line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BudgetEvent {
    /// When the crossing call finished.
    pub timestamp: Timestamp,
    /// `budget_warning`, `budget_exceeded` or `budget_unpriced`.
    pub event: BudgetEventKind,
    /// The budget's name.
    pub budget: String,
    /// `run` or `day`.
    pub scope: BudgetScope,
    /// The run id or the day (`YYYY-MM-DD`) whose total crossed.
    pub scope_id: String,
    /// `usd` or `tokens`.
    pub metric: BudgetMetric,
    /// The limit (for a warning, still the full limit).
    pub limit: f64,
    /// The total after the crossing call (USD to the nano-dollar); for `budget_unpriced`, the
    /// total of the priced calls.
    pub value: f64,
    /// The crossing call's run.
    pub run_id: Option<Arc<str>>,
    /// The crossing call's step.
    pub step: Option<Arc<str>>,
    /// The crossing call's model.
    pub model: Option<Arc<str>>,
    /// For `budget_unpriced`, why the call has no cost (`no_price` or `no_usage`); absent
    /// from the other lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Arc<str>>,
    /// For a per-value budget (`each`, `only`), the attribute it is about; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<Arc<str>>,
    /// That attribute's value (its text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_value: Option<Arc<str>>,
}

/// Totals of one budget in one scope, and which crossings were reported.
#[derive(Clone, Copy, Debug, Default)]
struct State {
    usd: f64,
    tokens: u64,
    /// Calls the budget could not count: without a cost for a USD limit, without usage for a
    /// token limit.
    unpriced: u64,
    /// Bit per (metric, warning/exceeded/unpriced) already reported.
    reported: u8,
}

impl State {
    fn total(&self, m: BudgetMetric) -> f64 {
        match m {
            BudgetMetric::Usd => self.usd,
            BudgetMetric::Tokens => self.tokens as f64,
        }
    }
}

fn bit(m: BudgetMetric, k: BudgetEventKind) -> u8 {
    match (m, k) {
        (BudgetMetric::Usd, BudgetEventKind::Warning) => 1,
        (BudgetMetric::Usd, BudgetEventKind::Exceeded) => 2,
        (BudgetMetric::Tokens, BudgetEventKind::Warning) => 4,
        (BudgetMetric::Tokens, BudgetEventKind::Exceeded) => 8,
        (BudgetMetric::Usd, BudgetEventKind::Unpriced) => 16,
        (BudgetMetric::Tokens, BudgetEventKind::Unpriced) => 32,
    }
}

/// A USD figure as lines write it (to the nano-dollar); token counts as they are.
fn rounded(metric: BudgetMetric, v: f64) -> f64 {
    match metric {
        BudgetMetric::Usd => crate::record::round_usd(v),
        BudgetMetric::Tokens => v,
    }
}

/// Why a call has no cost, as a `budget_unpriced` line says.
fn unpriced_reason(rec: &CallRecord) -> &'static str {
    match rec.cost_source {
        crate::record::CostSource::NoUsage => "no_usage",
        _ => "no_price",
    }
}

/// Warns on stderr about each USD budget limited to a model `prices` cannot price: every
/// call it meets would be unpriced.
pub(crate) fn warn_unpriced_limits(budgets: &[Budget], prices: &crate::PriceTable) {
    for b in budgets {
        if let (Some(_), Some(model)) = (b.usd, b.model.as_deref()) {
            if prices.lookup(model, None).is_none() {
                eprintln!(
                    "tracing-llm-usage: budget \"{}\" limits the USD spend of model \"{}\", which \
                     the price table does not price: its calls cannot be counted in dollars \
                     (each run or day of them gets a budget_unpriced line); add a price override",
                    crate::inert::terminal(&b.name),
                    crate::inert::terminal(model)
                );
            }
        }
    }
}

/// The spend of one run so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct RunSpend {
    /// USD of its priced calls.
    pub usd: f64,
    /// Its total tokens.
    pub tokens: u64,
    /// Its calls without a cost (no price, or no usage): `usd` is short of them.
    pub unpriced_calls: u64,
}

/// What a run may still spend under its per-run budgets (the tightest of them); `None` where
/// no budget limits that metric.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Remaining {
    /// USD left (0 when spent).
    pub usd: Option<f64>,
    /// Tokens left (0 when spent).
    pub tokens: Option<u64>,
    /// Calls of the run a limit could not count (for dollars: no price or no usage; for
    /// tokens: no usage): when not 0, what is left is an upper bound, not a figure.
    pub unpriced_calls: u64,
}

impl Remaining {
    /// Whether any limit is used up.
    pub fn is_exhausted(&self) -> bool {
        self.usd.is_some_and(|u| u <= 0.0) || self.tokens == Some(0)
    }

    /// Whether the USD figure is exact: every call a USD limit applied to had a cost.
    pub fn is_certain(&self) -> bool {
        self.unpriced_calls == 0
    }
}

/// The key of one per-value total: the budget, its run id or day, the value.
type ValueKey = (usize, Arc<str>, Arc<str>);

#[derive(Default)]
struct Books {
    /// run id → (its whole spend, one state per budget).
    runs: HashMap<Arc<str>, (RunSpend, Vec<State>)>,
    day: i64,
    days: Vec<State>,
    /// Per-value budgets' totals, with when each was last used.
    values: HashMap<ValueKey, (State, u64)>,
    /// Calls seen, the clock of `values`' last use.
    tick: u64,
    /// Values forgotten to stay within [`MAX_BUDGET_VALUES`].
    evicted: u64,
}

/// The per-value total of `key`, made room for if it is new.
fn value_state<'a>(
    values: &'a mut HashMap<ValueKey, (State, u64)>,
    tick: &mut u64,
    evicted: &mut u64,
    key: ValueKey,
    cap: usize,
) -> &'a mut State {
    *tick += 1;
    let now = *tick;
    if !values.contains_key(&key) && values.len() >= cap {
        evict(values, evicted, cap);
    }
    let entry = values.entry(key).or_insert((State::default(), now));
    entry.1 = now;
    &mut entry.0
}

/// Forgets the least recently used sixteenth of the values (at least one).
fn evict(values: &mut HashMap<ValueKey, (State, u64)>, evicted: &mut u64, cap: usize) {
    let mut ticks: Vec<u64> = values.values().map(|(_, t)| *t).collect();
    if ticks.is_empty() {
        return;
    }
    let at = ((cap / 16).max(1) - 1).min(ticks.len() - 1);
    let (_, &mut cutoff, _) = ticks.select_nth_unstable(at);
    let before = values.len();
    values.retain(|_, (_, t)| *t > cutoff);
    let gone = (before - values.len()) as u64;
    if *evicted == 0 && gone > 0 {
        eprintln!(
            "tracing-llm-usage: per-value budgets keep at most {cap} values at once; the least \
             recently seen are forgotten, and their totals start again from zero"
        );
    }
    *evicted += gone;
}

/// The budgets of one layer and their running totals.
pub(crate) struct Budgets {
    budgets: Vec<Budget>,
    books: Mutex<Books>,
    value_cap: usize,
    /// Whether any budget keeps per-value totals of runs (they go with their run).
    run_values: bool,
}

impl Budgets {
    pub(crate) fn new(budgets: Vec<Budget>) -> Self {
        Self::with_value_cap(budgets, MAX_BUDGET_VALUES)
    }

    pub(crate) fn with_value_cap(budgets: Vec<Budget>, value_cap: usize) -> Self {
        let days = vec![State::default(); budgets.len()];
        Self {
            books: Mutex::new(Books {
                days,
                day: i64::MIN,
                ..Books::default()
            }),
            run_values: budgets
                .iter()
                .any(|b| b.each.is_some() && b.scope == BudgetScope::Run),
            budgets,
            value_cap: value_cap.max(1),
        }
    }

    /// Per-value totals forgotten to stay within the cap.
    pub(crate) fn values_evicted(&self) -> u64 {
        self.lock().evicted
    }

    fn lock(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a call; returns the crossings it caused, to report after the lock is released.
    pub(crate) fn add(&self, rec: &CallRecord) -> Vec<BudgetEvent> {
        let mut events = Vec::new();
        let mut books = self.lock();
        let books = &mut *books;
        let day = rec.timestamp.unix_ms().div_euclid(86_400_000);
        if day != books.day {
            books.day = day;
            books.days.iter_mut().for_each(|s| *s = State::default());
            let budgets = &self.budgets;
            books
                .values
                .retain(|(i, _, _), _| budgets[*i].scope != BudgetScope::Day);
        }
        let cost = rec.cost_usd.unwrap_or(0.0);
        let unpriced = rec.cost_usd.is_none();
        let no_usage = rec.cost_source == crate::record::CostSource::NoUsage;
        let tokens = rec.tokens.total;
        let n = self.budgets.len();
        let Books {
            runs,
            days,
            values,
            tick,
            evicted,
            ..
        } = books;
        let mut run_states = rec.run_id.as_ref().map(|id| {
            let entry = runs
                .entry(id.clone())
                .or_insert_with(|| (RunSpend::default(), vec![State::default(); n]));
            entry.0.usd += cost;
            entry.0.tokens = entry.0.tokens.saturating_add(tokens);
            entry.0.unpriced_calls += u64::from(unpriced);
            entry
        });
        for (i, b) in self.budgets.iter().enumerate() {
            if !b.applies(rec) {
                continue;
            }
            // A per-value budget: the call's value of its attribute, or nothing to count.
            let each = match &b.each {
                Some(key) => match rec.attributes.get(key) {
                    Some(v) => Some((key, Arc::<str>::from(v.to_string()))),
                    None => continue,
                },
                None => None,
            };
            let (state, scope_id) = match (b.scope, &mut run_states, &rec.run_id) {
                (BudgetScope::Day, _, _) => {
                    let date = rec.timestamp.to_string();
                    (&mut days[i], date[..10].to_owned())
                }
                (BudgetScope::Run, Some(entry), Some(id)) => (&mut entry.1[i], id.to_string()),
                (BudgetScope::Run, _, _) => continue,
            };
            let state: &mut State = match &each {
                Some((_, value)) => {
                    let key = (i, Arc::from(scope_id.as_str()), value.clone());
                    value_state(values, tick, evicted, key, self.value_cap)
                }
                None => state,
            };
            let (attribute, attribute_value) = match (&each, &b.only) {
                (Some((key, value)), _) => (Some(Arc::from(key.as_str())), Some(value.clone())),
                (None, Some((key, value))) => (
                    Some(Arc::from(key.as_str())),
                    Some(Arc::from(value.as_str())),
                ),
                (None, None) => (None, None),
            };
            let before = *state;
            state.usd += cost;
            state.tokens = state.tokens.saturating_add(tokens);
            if (unpriced && b.usd.is_some()) || (no_usage && b.tokens.is_some()) {
                state.unpriced += 1;
            }
            for (metric, limit) in b.limits() {
                // Compared as the lines write them (dollars to the nano-dollar): three calls of
                // $0.10 make $0.30, not $0.30000000000000004.
                let (old, new) = (
                    rounded(metric, before.total(metric)),
                    rounded(metric, state.total(metric)),
                );
                let mut check = |kind: BudgetEventKind, crossed: bool| {
                    if crossed && state.reported & bit(metric, kind) == 0 {
                        state.reported |= bit(metric, kind);
                        events.push(BudgetEvent {
                            timestamp: rec.timestamp,
                            event: kind,
                            budget: b.name.clone(),
                            scope: b.scope,
                            scope_id: scope_id.clone(),
                            metric,
                            limit: rounded(metric, limit),
                            value: new,
                            run_id: rec.run_id.clone(),
                            step: rec.step.as_ref().map(Arc::from),
                            model: rec.model.as_ref().map(Arc::from),
                            reason: (kind == BudgetEventKind::Unpriced)
                                .then(|| Arc::from(unpriced_reason(rec))),
                            attribute: attribute.clone(),
                            attribute_value: attribute_value.clone(),
                        });
                    }
                };
                // What the limit cannot count: a call without a cost for dollars, a call
                // without usage for tokens.
                let uncounted = match metric {
                    BudgetMetric::Usd => unpriced,
                    BudgetMetric::Tokens => no_usage,
                };
                check(BudgetEventKind::Unpriced, uncounted);
                if let Some(f) = b.warn_at {
                    let t = limit * f;
                    // A call that jumps past the limit itself reports only the excess.
                    check(
                        BudgetEventKind::Warning,
                        old < t && new >= t && new <= limit,
                    );
                }
                check(BudgetEventKind::Exceeded, old <= limit && new > limit);
            }
        }
        events
    }

    /// The run's spend so far (`None` if no call of it was seen).
    pub(crate) fn run_spend(&self, run_id: &str) -> Option<RunSpend> {
        self.lock().runs.get(run_id).map(|(spend, _)| *spend)
    }

    /// What the run may still spend under its unfiltered per-run budgets.
    pub(crate) fn remaining(&self, run_id: &str) -> Remaining {
        let books = self.lock();
        let states = books.runs.get(run_id).map(|(_, s)| s);
        let mut out = Remaining::default();
        for (i, b) in self.budgets.iter().enumerate() {
            if b.scope != BudgetScope::Run || b.model.is_some() || b.step.is_some() {
                continue;
            }
            let state = states.and_then(|s| s.get(i)).copied().unwrap_or_default();
            if let Some(l) = b.usd {
                let left = crate::record::round_usd((l - state.usd).max(0.0));
                out.usd = Some(out.usd.map_or(left, |u: f64| u.min(left)));
            }
            out.unpriced_calls = out.unpriced_calls.max(state.unpriced);
            if let Some(l) = b.tokens {
                let left = l.saturating_sub(state.tokens);
                out.tokens = Some(out.tokens.map_or(left, |t| t.min(left)));
            }
        }
        out
    }

    /// What calls whose `attribute` is `value` may still spend today under the per-day
    /// budgets that limit that attribute (`each` it, or `only` that value) without model or
    /// step filters, the tightest first; `today` is the UTC day (days since the epoch).
    pub(crate) fn remaining_for(&self, attribute: &str, value: &str, today: i64) -> Remaining {
        let books = self.lock();
        let current = books.day == today;
        let date = Timestamp::from_unix_ms(today.saturating_mul(86_400_000)).to_string();
        let date: Arc<str> = Arc::from(&date[..10]);
        let value_key: Arc<str> = Arc::from(value);
        let mut out = Remaining::default();
        for (i, b) in self.budgets.iter().enumerate() {
            if b.scope != BudgetScope::Day || b.model.is_some() || b.step.is_some() {
                continue;
            }
            let state = if b.each.as_deref() == Some(attribute) {
                books
                    .values
                    .get(&(i, date.clone(), value_key.clone()))
                    .map(|(s, _)| *s)
            } else if b
                .only
                .as_ref()
                .is_some_and(|(k, v)| k == attribute && v == value)
            {
                Some(books.days[i])
            } else {
                continue;
            };
            let state = state.filter(|_| current).unwrap_or_default();
            if let Some(l) = b.usd {
                let left = crate::record::round_usd((l - state.usd).max(0.0));
                out.usd = Some(out.usd.map_or(left, |u: f64| u.min(left)));
            }
            out.unpriced_calls = out.unpriced_calls.max(state.unpriced);
            if let Some(l) = b.tokens {
                let left = l.saturating_sub(state.tokens);
                out.tokens = Some(out.tokens.map_or(left, |t| t.min(left)));
            }
        }
        out
    }

    /// A run's books move to the id it recorded after its first calls.
    pub(crate) fn rename(&self, old: &str, new: &Arc<str>) {
        let mut books = self.lock();
        if let Some(entry) = books.runs.remove(old) {
            books.runs.insert(new.clone(), entry);
        }
        if self.run_values {
            let moved: Vec<_> = books
                .values
                .keys()
                .filter(|(i, scope, _)| {
                    self.budgets[*i].scope == BudgetScope::Run && **scope == *old
                })
                .cloned()
                .collect();
            for key in moved {
                if let Some(v) = books.values.remove(&key) {
                    books.values.insert((key.0, new.clone(), key.2), v);
                }
            }
        }
    }

    /// Forgets a finished run (memory stays bounded by the runs open at once).
    pub(crate) fn forget(&self, run_id: &str) {
        let mut books = self.lock();
        books.runs.remove(run_id);
        if self.run_values {
            let budgets = &self.budgets;
            books.values.retain(|(i, scope, _), _| {
                budgets[*i].scope != BudgetScope::Run || **scope != *run_id
            });
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.budgets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::{AttributeValue, Attributes};

    fn call(tenant: &str, tokens: u64) -> CallRecord {
        let mut rec = crate::format::encode::tests::record();
        rec.timestamp = Timestamp::from_unix_ms(1_765_708_215_123);
        rec.cost_usd = Some(0.0);
        rec.tokens.total = tokens;
        rec.attributes = Attributes::from_pairs(vec![(
            crate::Name::from("tenant"),
            AttributeValue::Str(crate::Name::from(tenant)),
        )]);
        rec
    }

    #[test]
    fn per_value_totals_stay_within_the_cap_and_the_idle_go_first() {
        let budgets = Budgets::with_value_cap(
            vec![Budget::per_day("b")
                .tokens(100)
                .each("tenant")
                .warn_at(None)],
            4,
        );
        // Four tenants fill the books; acme stays busy, a fifth tenant evicts the least
        // recently seen (globex), not acme.
        for t in ["globex", "acme", "initech", "umbrella"] {
            assert!(budgets.add(&call(t, 60)).is_empty());
        }
        assert!(budgets.add(&call("acme", 10)).is_empty());
        assert!(budgets.add(&call("hooli", 60)).is_empty());
        assert_eq!(budgets.values_evicted(), 1);
        // acme kept its 70 tokens: 40 more cross; globex starts again from zero.
        let crossed = budgets.add(&call("acme", 40));
        assert_eq!(crossed.len(), 1);
        assert_eq!(crossed[0].attribute_value.as_deref(), Some("acme"));
        assert_eq!(crossed[0].value, 110.0);
        assert!(budgets.add(&call("globex", 60)).is_empty());
    }
}
