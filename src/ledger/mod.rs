//! In-memory aggregation: open runs, orphan runs (a `run_id` with no run span), the last
//! finished run summaries, and process totals.
//!
//! Memory is bounded by what is open at once: a run's cell leaves the index when its span
//! closes, orphans live in a fixed-capacity LRU, and recent summaries in a fixed ring.

mod by_attribute;
mod run;
mod totals;
mod usage;

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use hashbrown::HashMap;
use lru::LruCache;

pub(crate) use run::{Held, RunCell};
pub use run::{RunStatus, RunSummary};
pub(crate) use totals::GroupKey;
pub use totals::OTHER;
pub use usage::{RunUsage, StepUsage, Totals};

use crate::record::CallRecord;
use by_attribute::AttributeTotals;
use run::RunAggregate;
use totals::GroupTotals;

const OPEN_SHARDS: usize = 16;

/// Open run cells by their ledger key, one map per shard.
type OpenRuns = Mutex<HashMap<u64, Arc<RunCell>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Sums stay valid numbers even if a panic poisoned the lock.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Orphan {
    first_seen: Instant,
    agg: RunAggregate,
}

/// Limits of the in-memory ledger.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LedgerLimits {
    pub(crate) recent_runs: usize,
    pub(crate) orphan_runs: NonZeroUsize,
    pub(crate) max_groups: usize,
}

pub(crate) struct Ledger {
    open: Box<[OpenRuns]>,
    next_key: AtomicU64,
    orphans: Mutex<LruCache<Arc<str>, Orphan>>,
    recent: Mutex<VecDeque<Arc<RunSummary>>>,
    recent_cap: usize,
    pub(crate) groups: GroupTotals,
    /// Totals per value of each of the builder's attributes.
    pub(crate) attributes: AttributeTotals,
    /// The builder's clock, for summaries' timestamps as for calls'.
    clock: Option<crate::layer::Clock>,
}

impl Ledger {
    pub(crate) fn new(
        limits: LedgerLimits,
        clock: Option<crate::layer::Clock>,
        attributes: &[crate::Name],
    ) -> Self {
        Self {
            attributes: AttributeTotals::new(attributes, limits.max_groups),
            clock,
            open: (0..OPEN_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            next_key: AtomicU64::new(0),
            orphans: Mutex::new(LruCache::new(limits.orphan_runs)),
            recent: Mutex::new(VecDeque::with_capacity(limits.recent_runs.min(4096))),
            recent_cap: limits.recent_runs,
            groups: GroupTotals::new(limits.max_groups),
        }
    }

    /// `s` timestamped by the builder's clock, when it has one.
    fn stamped(&self, mut s: RunSummary) -> RunSummary {
        if let Some(clock) = &self.clock {
            s.timestamp = clock();
        }
        s
    }

    fn shard(&self, key: u64) -> &OpenRuns {
        &self.open[(key % OPEN_SHARDS as u64) as usize]
    }

    /// Registers a run span that just opened.
    pub(crate) fn open_run(&self, run_id: Option<Arc<str>>, waiting: bool) -> Arc<RunCell> {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let cell = Arc::new(RunCell::new(key, run_id, waiting));
        lock(self.shard(key)).insert(key, cell.clone());
        cell
    }

    /// The run span closed: its summary, unless one was made already (at shutdown).
    pub(crate) fn close_run(&self, cell: &RunCell, status: RunStatus) -> Option<RunSummary> {
        lock(self.shard(cell.key)).remove(&cell.key);
        let summary = self.stamped(cell.finish(status)?);
        self.remember(&summary);
        Some(summary)
    }

    /// Adds a call to its run (the run span's `cell`, else the orphan run its `run_id` names)
    /// and to the totals; returns the summary of an orphan run evicted to make room.
    pub(crate) fn add_call(
        &self,
        cell: Option<&Arc<RunCell>>,
        rec: &CallRecord,
    ) -> Option<RunSummary> {
        let evicted = match (cell, &rec.run_id) {
            (Some(cell), _) => {
                cell.add(rec);
                None
            }
            (None, Some(id)) => self.add_orphan(id, rec),
            (None, None) => None,
        };
        self.groups.add(rec);
        self.attributes.add(rec);
        evicted
    }

    /// Adds a call whose run has no run span; returns the summary of an evicted orphan.
    fn add_orphan(&self, run_id: &Arc<str>, rec: &CallRecord) -> Option<RunSummary> {
        let evicted = {
            let mut orphans = lock(&self.orphans);
            if let Some(o) = orphans.get_mut(&**run_id) {
                o.agg.add(rec);
                return None;
            }
            let mut agg = RunAggregate::new(Some(run_id.clone()));
            agg.add(rec);
            let orphan = Orphan {
                first_seen: Instant::now(),
                agg,
            };
            orphans.push(run_id.clone(), orphan)
        };
        let (id, o) = evicted?;
        let summary = self.stamped(orphan_summary(id, &o));
        self.remember(&summary);
        Some(summary)
    }

    fn remember(&self, summary: &RunSummary) {
        if self.recent_cap == 0 {
            return;
        }
        let summary = Arc::new(summary.clone());
        let mut recent = lock(&self.recent);
        if recent.len() >= self.recent_cap {
            recent.pop_front();
        }
        recent.push_back(summary);
    }

    /// Summaries (`incomplete`) of every run still open and every orphan; empties the ledger.
    pub(crate) fn drain(&self) -> Vec<(Vec<Held>, RunSummary)> {
        let mut out = Vec::new();
        for shard in self.open.iter() {
            let cells: Vec<_> = lock(shard).drain().map(|(_, c)| c).collect();
            for cell in cells {
                let held = cell.take_held();
                if let Some(s) = cell.finish(RunStatus::Incomplete) {
                    out.push((held, self.stamped(s)));
                }
            }
        }
        let orphans: Vec<_> = {
            let mut o = lock(&self.orphans);
            std::iter::from_fn(|| o.pop_lru()).collect()
        };
        out.extend(
            orphans
                .into_iter()
                .map(|(id, o)| (Vec::new(), self.stamped(orphan_summary(id, &o)))),
        );
        for (_, s) in &out {
            self.remember(s);
        }
        out
    }

    /// Runs open now (run spans not yet closed, plus orphans).
    pub(crate) fn open_runs(&self) -> usize {
        let spans: usize = self.open.iter().map(|s| lock(s).len()).sum();
        spans + lock(&self.orphans).len()
    }

    /// The newest summary for `run_id`: finished runs first, then open ones.
    pub(crate) fn run(&self, run_id: &str) -> Option<RunSummary> {
        let finished = lock(&self.recent)
            .iter()
            .rev()
            .find(|s| &*s.run_id == run_id)
            .map(|s| (**s).clone());
        if finished.is_some() {
            return finished;
        }
        for shard in self.open.iter() {
            let cells: Vec<_> = lock(shard).values().cloned().collect();
            for cell in cells {
                if cell.lock().run_id.as_deref() == Some(run_id) {
                    return cell.snapshot().map(|s| self.stamped(s));
                }
            }
        }
        let orphans = lock(&self.orphans);
        let o = orphans.peek(run_id)?;
        let id: Arc<str> = Arc::from(run_id);
        Some(
            self.stamped(o.agg.summary(
                id,
                o.first_seen.elapsed().as_secs_f64(),
                RunStatus::Running,
            )),
        )
    }

    /// The last finished run summaries, oldest first.
    pub(crate) fn recent(&self) -> Vec<RunSummary> {
        lock(&self.recent).iter().map(|s| (**s).clone()).collect()
    }
}

fn orphan_summary(id: Arc<str>, o: &Orphan) -> RunSummary {
    o.agg.summary(
        id,
        o.first_seen.elapsed().as_secs_f64(),
        RunStatus::Incomplete,
    )
}
