//! One run's aggregate while it is open, and the [`RunSummary`] it becomes.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};

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
}

/// What a run has accumulated so far.
#[derive(Debug, Default)]
pub(crate) struct RunAggregate {
    pub(crate) run_id: Option<Arc<str>>,
    usage: RunUsage,
    by_step: Vec<StepUsage>,
    prompt: PromptBreakdown,
    warnings: Vec<String>,
    error: bool,
    /// A summary has been made (closed, or drained at shutdown): later calls are not added.
    finished: bool,
}

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
        }
    }
}

/// A run span's aggregate, shared between the span's extensions and the ledger's index of
/// open runs (so the guard can summarise runs still open at shutdown).
#[derive(Debug)]
pub(crate) struct RunCell {
    pub(crate) key: u64,
    pub(crate) started: Instant,
    agg: Mutex<RunAggregate>,
}

impl RunCell {
    pub(crate) fn new(key: u64, run_id: Option<Arc<str>>) -> Self {
        Self {
            key,
            started: Instant::now(),
            agg: Mutex::new(RunAggregate::new(run_id)),
        }
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
