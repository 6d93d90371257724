//! Process-wide totals per (model, provider, step, task), sharded by thread so that two
//! threads recording calls rarely meet on one lock; merged when read.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use hashbrown::{Equivalent, HashMap};

use crate::ledger::usage::Totals;
use crate::name::Name;
use crate::record::CallRecord;
use crate::shard::thread_shard;

/// The bucket that takes every group past the cardinality cap.
pub const OTHER: &str = "__other__";

const SHARDS: usize = 16;

/// The dimensions process totals are kept by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct GroupKey {
    pub(crate) model: Option<Name>,
    pub(crate) provider: Option<Name>,
    pub(crate) step: Option<Name>,
    pub(crate) task: Option<Name>,
}

/// A borrowed [`GroupKey`]: hashes the same (derived `Hash` of `Option<&str>` and
/// `Option<Name>` both hash the discriminant then the `str`), so lookups need no clone.
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

/// Pointer-keyed entries kept before the fast-path index is reset (it pins the names it is
/// keyed by, so this bounds that memory too).
const PTR_INDEX_CAP: usize = 4096;

#[derive(Default)]
struct ShardData {
    usage: Vec<(GroupKey, Totals)>,
    /// Content → index into `usage`.
    by_content: HashMap<GroupKey, usize>,
    /// Addresses of the record's interned strings → index: the common case (a thread seeing
    /// the same interned names again) hashes four words instead of four strings.
    by_ptr: HashMap<[usize; 4], usize>,
    /// The names `by_ptr` is keyed by, kept alive so their addresses are never reused.
    pinned: Vec<GroupKey>,
    /// The last hit of `by_ptr`: a thread repeating its group skips even that hash.
    last: Option<([usize; 4], usize)>,
}

#[repr(align(128))]
struct Shard(Mutex<ShardData>);

impl Shard {
    fn lock(&self) -> MutexGuard<'_, ShardData> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn addr(s: &Option<Name>) -> usize {
    s.as_ref().map_or(0, Name::addr)
}

pub(crate) struct GroupTotals {
    shards: Box<[Shard]>,
    /// Distinct keys inserted over all shards (a key seen on two shards counts twice, so
    /// the cap errs on the side of less memory).
    groups: AtomicUsize,
    cap: usize,
    other: GroupKey,
}

impl GroupTotals {
    pub(crate) fn new(cap: usize) -> Self {
        let other = crate::intern::intern(OTHER);
        Self {
            shards: (0..SHARDS)
                .map(|_| Shard(Mutex::new(ShardData::default())))
                .collect(),
            groups: AtomicUsize::new(0),
            cap,
            other: GroupKey {
                model: Some(other.clone()),
                provider: Some(other.clone()),
                step: Some(other.clone()),
                task: Some(other),
            },
        }
    }

    pub(crate) fn add(&self, rec: &CallRecord) {
        let ptrs = [
            addr(&rec.model),
            addr(&rec.provider),
            addr(&rec.step),
            addr(&rec.task),
        ];
        let mut guard = self.shards[thread_shard() % SHARDS].lock();
        let shard = &mut *guard;
        let hit = match shard.last {
            Some((last, i)) if last == ptrs => Some(i),
            _ => shard.by_ptr.get(&ptrs).copied(),
        };
        if let Some(i) = hit {
            shard.last = Some((ptrs, i));
            shard.usage[i].1.add(rec);
            return;
        }
        let owned = GroupKey {
            model: rec.model.clone(),
            provider: rec.provider.clone(),
            step: rec.step.clone(),
            task: rec.task.clone(),
        };
        let content = GroupRef {
            model: rec.model.as_deref(),
            provider: rec.provider.as_deref(),
            step: rec.step.as_deref(),
            task: rec.task.as_deref(),
        };
        let i = match shard.by_content.get(&content) {
            Some(&i) => i,
            None => {
                let key = if self.groups.fetch_add(1, Ordering::Relaxed) < self.cap {
                    owned.clone()
                } else {
                    self.groups.fetch_sub(1, Ordering::Relaxed);
                    self.other.clone()
                };
                match shard.by_content.get(&key) {
                    Some(&i) => i,
                    None => {
                        shard.usage.push((key.clone(), Totals::default()));
                        shard.by_content.insert(key, shard.usage.len() - 1);
                        shard.usage.len() - 1
                    }
                }
            }
        };
        shard.usage[i].1.add(rec);
        if shard.by_ptr.len() >= PTR_INDEX_CAP {
            shard.by_ptr.clear();
            shard.pinned.clear();
            shard.last = None;
        }
        shard.by_ptr.insert(ptrs, i);
        shard.pinned.push(owned);
    }

    /// Every group, merged over shards, keyed by `f(key)`.
    pub(crate) fn fold<K: Eq + std::hash::Hash>(
        &self,
        f: impl Fn(&GroupKey) -> K,
    ) -> HashMap<K, Totals> {
        let mut out: HashMap<K, Totals> = HashMap::new();
        for shard in self.shards.iter() {
            for (k, u) in shard.lock().usage.iter() {
                out.entry(f(k)).or_default().merge(u);
            }
        }
        out
    }
}
