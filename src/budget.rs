//! Budgets: limits on spend (USD) and tokens per run or per UTC day, optionally for one model
//! or one step. When a call takes a total across a limit, that call is reported once per limit
//! and scope (run or day): a `budget_exceeded` JSONL line, the `on_budget` callback, and the
//! `llm.budget.exceeded` counter; crossing the warning fraction (default 80 %) gives a
//! `budget_warning` line and callback. Enforcement stays the application's choice:
//! [`crate::UsageHandle::remaining`] tells a loop whether to make its next call.
//!
//! A total *exceeds* a limit when it is greater than the limit; a total equal to the limit has
//! nothing remaining. Unpriced calls add tokens but no USD.

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
}

/// One crossing, as written on a `budget_warning` / `budget_exceeded` line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BudgetEvent {
    /// When the crossing call finished.
    pub timestamp: Timestamp,
    /// `budget_warning` or `budget_exceeded`.
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
    /// The total after the crossing call.
    pub value: f64,
    /// The crossing call's run.
    pub run_id: Option<Arc<str>>,
    /// The crossing call's step.
    pub step: Option<Arc<str>>,
    /// The crossing call's model.
    pub model: Option<Arc<str>>,
}

/// Totals of one budget in one scope, and which crossings were reported.
#[derive(Clone, Copy, Debug, Default)]
struct State {
    usd: f64,
    tokens: u64,
    /// Bit per (metric, warning/exceeded) already reported.
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
}

impl Remaining {
    /// Whether any limit is used up.
    pub fn is_exhausted(&self) -> bool {
        self.usd.is_some_and(|u| u <= 0.0) || self.tokens == Some(0)
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
        let tokens = rec.tokens.total;
        let n = self.budgets.len();
        let mut run_states = rec.run_id.as_ref().map(|id| {
            let entry = books
                .runs
                .entry(id.clone())
                .or_insert_with(|| (RunSpend::default(), vec![State::default(); n]));
            entry.0.usd += cost;
            entry.0.tokens = entry.0.tokens.saturating_add(tokens);
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
            for (metric, limit) in b.limits() {
                let (old, new) = (before.total(metric), state.total(metric));
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
                            limit,
                            value: new,
                            run_id: rec.run_id.clone(),
                            step: rec.step.as_ref().map(Arc::from),
                            model: rec.model.as_ref().map(Arc::from),
                        });
                    }
                };
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
                let left = (l - state.usd).max(0.0);
                out.usd = Some(out.usd.map_or(left, |u: f64| u.min(left)));
            }
            if let Some(l) = b.tokens {
                let left = l.saturating_sub(state.tokens);
                out.tokens = Some(out.tokens.map_or(left, |t| t.min(left)));
            }
        }
        out
    }

    /// Forgets a finished run (memory stays bounded by the runs open at once).
    pub(crate) fn forget(&self, run_id: &str) {
        self.lock().runs.remove(run_id);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.budgets.is_empty()
    }
}
