//! One run's aggregate while it is open, and the [`RunSummary`] it becomes.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::attributes::Attributes;
use crate::budget::{BudgetEvent, BudgetScope};
use crate::ledger::usage::{RunUsage, StepUsage};
use crate::record::{CallRecord, LineKind, PromptBreakdown, Timestamp};

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunStatus {
    /// Every call succeeded.
    Success,
    /// A call failed, or the run span recorded an `error` field.
    Error,
    /// The run never closed: written at shutdown, or when an orphan run was evicted.
    Incomplete,
    /// Still open: only in [`crate::UsageHandle::run`] snapshots, never written to a line.
    Running,
}

/// A run's totals: the content of a `run_summary` line, field for field and in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunSummary {
    /// When the summary was made.
    pub timestamp: Timestamp,
    /// Always [`LineKind::RunSummary`].
    pub event: LineKind,
    /// The run id.
    pub run_id: Arc<str>,
    /// How the run ended.
    pub status: RunStatus,
    /// Seconds from the run span's creation to its close (or to the summary, if still open).
    pub elapsed_seconds: f64,
    /// The run's totals.
    pub usage: RunUsage,
    /// Totals per step, in the order the steps first appeared.
    pub by_step: Vec<StepUsage>,
    /// Input tokens per prompt component over all the run's calls.
    pub prompt_breakdown: PromptBreakdown,
    /// What the run saw that was not counted (a span that recorded usage but is not a call);
    /// in the line only when not empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The run span's attributes (its own values, else its ancestors'); in the line only
    /// when not empty.
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub attributes: Attributes,
}

/// What a run has accumulated so far.
#[derive(Debug, Default)]
pub(crate) struct RunAggregate {
    pub(crate) run_id: Option<Arc<str>>,
    usage: RunUsage,
    by_step: Vec<StepUsage>,
    prompt: PromptBreakdown,
    warnings: Vec<String>,
    attributes: Attributes,
    error: bool,
    /// A summary has been made (closed, or drained at shutdown): later calls are not added.
    finished: bool,
    /// The lines of a run whose span has not recorded its `run_id` yet, in order: written,
    /// with the id, when it is recorded or the run ends (`None`: not waiting).
    held: Option<Vec<Held>>,
}

/// A line that waits for its run's id.
#[derive(Debug)]
pub(crate) enum Held {
    /// A call (boxed: a record is large, and held lines are rare).
    Call(Box<CallRecord>),
    /// A budget line the call caused.
    Budget(BudgetEvent),
}

/// The most lines a run waits with for its id; past that, its calls are written with the id
/// it was given, and its summary says so.
const HOLD_CAP: usize = 4096;

impl RunAggregate {
    pub(crate) fn new(run_id: Option<Arc<str>>) -> Self {
        Self {
            run_id,
            ..Self::default()
        }
    }

    pub(crate) fn add(&mut self, rec: &CallRecord) {
        self.usage.add(rec);
        // Steps are interned: the same string is the common case, the text decides otherwise.
        let same = |s: &StepUsage| match (&s.step, &rec.step) {
            (Some(a), Some(b)) => a == b,
            (a, b) => a.is_none() && b.is_none(),
        };
        match self.by_step.iter_mut().find(|s| same(s)) {
            Some(s) => s.add(rec),
            None => {
                let mut s = StepUsage {
                    step: rec.step.clone(),
                    ..StepUsage::default()
                };
                s.add(rec);
                self.by_step.push(s);
            }
        }
        self.prompt.merge(&rec.prompt_breakdown);
        self.error |= rec.is_error();
    }

    /// The run span's attributes, as they are now.
    pub(crate) fn set_attributes(&mut self, attributes: Attributes) {
        self.attributes = attributes;
    }

    pub(crate) fn mark_error(&mut self) {
        self.error = true;
    }

    /// Notes something the summary should say, once (and a bounded number of them).
    pub(crate) fn warn(&mut self, warning: &str) {
        if self.warnings.len() < 16 && !self.warnings.iter().any(|w| w == warning) {
            self.warnings.push(warning.to_owned());
        }
    }

    /// The summary of what is here so far; `Success` becomes `Error` if a call failed.
    pub(crate) fn summary(&self, run_id: Arc<str>, elapsed: f64, status: RunStatus) -> RunSummary {
        let status = match status {
            RunStatus::Success if self.error => RunStatus::Error,
            s => s,
        };
        RunSummary {
            timestamp: Timestamp::now(),
            event: LineKind::RunSummary,
            run_id,
            status,
            // Milliseconds are the precision of every other figure in the log.
            elapsed_seconds: (elapsed * 1000.0).round() / 1000.0,
            usage: self.usage.clone(),
            by_step: self.by_step.clone(),
            prompt_breakdown: self.prompt.clone(),
            warnings: self.warnings.clone(),
            attributes: self.attributes.clone(),
        }
    }
}

/// `e`, made under the run id `old`, under `id` (its run, and a run scope's id).
fn renamed(e: &mut BudgetEvent, old: Option<&str>, id: Option<&Arc<str>>) {
    if e.scope == BudgetScope::Run && old.is_some_and(|o| o == e.scope_id) {
        if let Some(id) = id {
            e.scope_id = id.to_string();
        }
    }
    e.run_id = id.cloned();
}

/// A run span's aggregate, shared between the span's extensions and the ledger's index of
/// open runs (so the guard can summarise runs still open at shutdown).
#[derive(Debug)]
pub(crate) struct RunCell {
    pub(crate) key: u64,
    pub(crate) started: Instant,
    /// The run was opened without its id (it may hold lines): the common run, opened with
    /// its id, never takes its lock to pass a call on.
    waits: bool,
    agg: Mutex<RunAggregate>,
}

impl RunCell {
    /// A run cell; `waiting` when the run's id is not recorded yet (`run_id` is then the id
    /// it goes by until it is).
    pub(crate) fn new(key: u64, run_id: Option<Arc<str>>, waiting: bool) -> Self {
        let mut agg = RunAggregate::new(run_id);
        agg.held = waiting.then(Vec::new);
        Self {
            key,
            started: Instant::now(),
            waits: waiting,
            agg: Mutex::new(agg),
        }
    }

    /// Keeps a call of this run and the budget lines it caused until the run's id is known;
    /// gives them back, carrying the run's id, when the run is not waiting (or waits with too
    /// many lines already).
    pub(crate) fn hold(
        &self,
        mut rec: CallRecord,
        mut events: Vec<BudgetEvent>,
    ) -> Option<(CallRecord, Vec<BudgetEvent>)> {
        let mut agg = self.lock();
        let id = agg.run_id.clone();
        match &mut agg.held {
            Some(held) if held.len() + events.len() < HOLD_CAP => {
                held.push(Held::Call(Box::new(rec)));
                held.extend(events.into_iter().map(Held::Budget));
                None
            }
            Some(_) => {
                agg.warn("the run's run_id was recorded after more calls than the layer waits with; the first of them carry the id it was given");
                Some((rec, events))
            }
            None => {
                // The id may have come since the call read it.
                let old = rec.run_id.clone();
                rec.run_id.clone_from(&id);
                for e in &mut events {
                    renamed(e, old.as_deref(), id.as_ref());
                }
                Some((rec, events))
            }
        }
    }

    /// Whether the run was opened without its id (its calls may have to wait).
    pub(crate) fn waits(&self) -> bool {
        self.waits
    }

    /// Stops waiting: the held lines, now carrying the run's id, in order.
    pub(crate) fn take_held(&self) -> Vec<Held> {
        let mut agg = self.lock();
        let Some(mut held) = agg.held.take() else {
            return Vec::new();
        };
        let id = agg.run_id.clone();
        for h in &mut held {
            match h {
                Held::Call(rec) => rec.run_id.clone_from(&id),
                Held::Budget(e) => {
                    let old = e.run_id.clone();
                    renamed(e, old.as_deref(), id.as_ref());
                }
            }
        }
        held
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, RunAggregate> {
        // A panic elsewhere while holding the lock leaves sums that are still valid numbers.
        self.agg.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a call unless the run was already summarised.
    pub(crate) fn add(&self, rec: &CallRecord) -> bool {
        let mut agg = self.lock();
        if agg.finished {
            return false;
        }
        agg.add(rec);
        true
    }

    /// Makes the run's one summary; `None` if it was made already or the run has no id.
    pub(crate) fn finish(&self, status: RunStatus) -> Option<RunSummary> {
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut agg = self.lock();
        if agg.finished {
            return None;
        }
        agg.finished = true;
        let id = agg.run_id.clone()?;
        Some(agg.summary(id, elapsed, status))
    }

    /// A snapshot of an open run.
    pub(crate) fn snapshot(&self) -> Option<RunSummary> {
        let elapsed = self.started.elapsed().as_secs_f64();
        let agg = self.lock();
        let id = agg.run_id.clone()?;
        Some(agg.summary(id, elapsed, RunStatus::Running))
    }
}
