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

    fn applies(&self, rec: &CallRecord) -> bool {
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

#[derive(Default)]
struct Books {
    /// run id → (its whole spend, one state per budget).
    runs: HashMap<Arc<str>, (RunSpend, Vec<State>)>,
    day: i64,
    days: Vec<State>,
}

/// The budgets of one layer and their running totals.
pub(crate) struct Budgets {
    budgets: Vec<Budget>,
    books: Mutex<Books>,
}

impl Budgets {
    pub(crate) fn new(budgets: Vec<Budget>) -> Self {
        let days = vec![State::default(); budgets.len()];
        Self {
            books: Mutex::new(Books {
                days,
                day: i64::MIN,
                ..Books::default()
            }),
            budgets,
        }
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
        }
        let cost = rec.cost_usd.unwrap_or(0.0);
        let unpriced = rec.cost_usd.is_none();
        let no_usage = rec.cost_source == crate::record::CostSource::NoUsage;
        let tokens = rec.tokens.total;
        let n = self.budgets.len();
        let mut run_states = rec.run_id.as_ref().map(|id| {
            let entry = books
                .runs
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
            let (state, scope_id) = match b.scope {
                BudgetScope::Day => {
                    let date = rec.timestamp.to_string();
                    (&mut books.days[i], date[..10].to_owned())
                }
                BudgetScope::Run => match (&mut run_states, &rec.run_id) {
                    (Some(entry), Some(id)) => (&mut entry.1[i], id.to_string()),
                    _ => continue,
                },
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

    /// A run's books move to the id it recorded after its first calls.
    pub(crate) fn rename(&self, old: &str, new: &Arc<str>) {
        let mut books = self.lock();
        if let Some(entry) = books.runs.remove(old) {
            books.runs.insert(new.clone(), entry);
        }
    }

    /// Forgets a finished run (memory stays bounded by the runs open at once).
    pub(crate) fn forget(&self, run_id: &str) {
        self.lock().runs.remove(run_id);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.budgets.is_empty()
    }
}
