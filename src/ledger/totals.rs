//! Process-wide totals per (model, provider, step, task), sharded by thread so that two
//! threads recording calls rarely meet on one lock; merged when read.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hashbrown::{Equivalent, HashMap};

use crate::ledger::usage::Usage;
use crate::record::CallRecord;

/// The bucket that takes every group past the cardinality cap.
pub const OTHER: &str = "__other__";

const SHARDS: usize = 16;

/// The dimensions process totals are kept by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct GroupKey {
    pub(crate) model: Option<Arc<str>>,
    pub(crate) provider: Option<Arc<str>>,
    pub(crate) step: Option<Arc<str>>,
    pub(crate) task: Option<Arc<str>>,
}

/// A borrowed [`GroupKey`]: hashes the same (derived `Hash` of `Option<&str>` and
/// `Option<Arc<str>>` both hash the discriminant then the `str`), so lookups need no clone.
#[derive(Hash)]
struct GroupRef<'a> {
    model: Option<&'a str>,
    provider: Option<&'a str>,
    step: Option<&'a str>,
    task: Option<&'a str>,
}

impl Equivalent<GroupKey> for GroupRef<'_> {
    fn equivalent(&self, k: &GroupKey) -> bool {
        self.model == k.model.as_deref()
            && self.provider == k.provider.as_deref()
            && self.step == k.step.as_deref()
            && self.task == k.task.as_deref()
    }
}

#[repr(align(128))]
struct Shard(Mutex<HashMap<GroupKey, Usage>>);

impl Shard {
    fn lock(&self) -> MutexGuard<'_, HashMap<GroupKey, Usage>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct GroupTotals {
    shards: Box<[Shard]>,
    /// Distinct keys inserted over all shards (a key seen on two shards counts twice, so
    /// the cap errs on the side of less memory).
    groups: AtomicUsize,
    cap: usize,
    other: GroupKey,
}

thread_local! {
    static SHARD_INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
}
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

/// This thread's shard: assigned round-robin on first use, so threads spread evenly.
pub(crate) fn thread_shard() -> usize {
    SHARD_INDEX
        .try_with(|c| {
            let mut i = c.get();
            if i == usize::MAX {
                i = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
                c.set(i);
            }
            i
        })
        .unwrap_or(0)
}

impl GroupTotals {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Shard(Mutex::new(HashMap::new())))
                .collect(),
            groups: AtomicUsize::new(0),
            cap,
            other: {
                let other: Arc<str> = Arc::from(OTHER);
                GroupKey {
                    model: Some(other.clone()),
                    provider: Some(other.clone()),
                    step: Some(other.clone()),
                    task: Some(other),
                }
            },
        }
    }

    pub(crate) fn add(&self, rec: &CallRecord) {
        let key = GroupRef {
            model: rec.model.as_deref(),
            provider: rec.provider.as_deref(),
            step: rec.step.as_deref(),
            task: rec.task.as_deref(),
        };
        let mut shard = self.shards[thread_shard()].lock();
        if let Some(u) = shard.get_mut(&key) {
            u.add(rec);
            return;
        }
        let owned = if self.groups.fetch_add(1, Ordering::Relaxed) < self.cap {
            GroupKey {
                model: rec.model.clone(),
                provider: rec.provider.clone(),
                step: rec.step.clone(),
                task: rec.task.clone(),
            }
        } else {
            self.groups.fetch_sub(1, Ordering::Relaxed);
            self.other.clone()
        };
        shard.entry(owned).or_default().add(rec);
    }

    /// Every group, merged over shards, keyed by `f(key)`.
    pub(crate) fn fold<K: Eq + std::hash::Hash>(
        &self,
        f: impl Fn(&GroupKey) -> K,
    ) -> HashMap<K, Usage> {
        let mut out: HashMap<K, Usage> = HashMap::new();
        for shard in self.shards.iter() {
            for (k, u) in shard.lock().iter() {
                out.entry(f(k)).or_default().merge(u);
            }
        }
        out
    }
}
