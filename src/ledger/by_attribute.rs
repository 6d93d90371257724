//! Process totals per value of each attribute the builder names, for
//! [`crate::UsageHandle::by_attribute`]. Each attribute keeps at most `max_groups` values;
//! past that, new values are added to [`OTHER`](super::OTHER), and counted.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use hashbrown::HashMap;

use crate::attributes::AttributeValue;
use crate::ledger::usage::Totals;
use crate::name::Name;
use crate::record::CallRecord;
use crate::shard::thread_shard;

const SHARDS: usize = 8;

/// One shard's groups (an attribute and a value each) and their totals.
#[derive(Default)]
struct ShardData {
    /// Per attribute: value text → index into `totals`.
    index: Vec<HashMap<Name, usize>>,
    /// (attribute, value, totals).
    totals: Vec<(usize, Name, Totals)>,
    /// An immortal attribute set → the groups its calls add to, and how many of its values
    /// went to `__other__`: the calls of a run repeat their set, and skip the lookups.
    by_set: HashMap<usize, (smallvec::SmallVec<[usize; 4]>, u64)>,
}

/// Sets remembered per shard before the memo starts over.
const SET_MEMO_CAP: usize = 4096;

pub(crate) struct AttributeTotals {
    names: Box<[Name]>,
    shards: Box<[Mutex<ShardData>]>,
    /// Distinct values per attribute over all shards (a value seen on two shards counts
    /// twice, so the cap errs on the side of less memory).
    distinct: Box<[AtomicUsize]>,
    cap: usize,
    /// Calls whose value went to `__other__`.
    pub(crate) overflowed: AtomicU64,
    other: Name,
}

/// The text a value is grouped under (a text value's own name: no copy).
fn text(v: &AttributeValue) -> Name {
    match v {
        AttributeValue::Str(s) => s.clone(),
        other => Name::from(other.to_string().as_str()),
    }
}

impl AttributeTotals {
    pub(crate) fn new(names: &[Name], cap: usize) -> Self {
        Self {
            names: names.into(),
            shards: (0..if names.is_empty() { 0 } else { SHARDS })
                .map(|_| {
                    Mutex::new(ShardData {
                        index: vec![HashMap::new(); names.len()],
                        ..ShardData::default()
                    })
                })
                .collect(),
            distinct: names.iter().map(|_| AtomicUsize::new(0)).collect(),
            cap,
            overflowed: AtomicU64::new(0),
            other: crate::intern::intern(super::OTHER),
        }
    }

    fn lock(m: &Mutex<ShardData>) -> MutexGuard<'_, ShardData> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn add(&self, rec: &CallRecord) {
        if self.shards.is_empty() || rec.attributes.is_empty() {
            return;
        }
        let mut guard = Self::lock(&self.shards[thread_shard() % SHARDS]);
        let shard = &mut *guard;
        let set = rec.attributes.immortal_id();
        if let Some((groups, other)) = set.and_then(|id| shard.by_set.get(&id)) {
            for &g in groups {
                shard.totals[g].2.add(rec);
            }
            if *other > 0 {
                self.overflowed.fetch_add(*other, Ordering::Relaxed);
            }
            return;
        }
        let mut groups = smallvec::SmallVec::<[usize; 4]>::new();
        let mut other = 0;
        for (i, name) in self.names.iter().enumerate() {
            let Some(value) = rec.attributes.get(name) else {
                continue;
            };
            let key = text(value);
            let g = match shard.index[i].get(&*key) {
                Some(&g) => g,
                None => {
                    let key = if self.distinct[i].fetch_add(1, Ordering::Relaxed) < self.cap {
                        key
                    } else {
                        self.distinct[i].fetch_sub(1, Ordering::Relaxed);
                        other += 1;
                        self.other.clone()
                    };
                    match shard.index[i].get(&*key) {
                        Some(&g) => g,
                        None => {
                            shard.totals.push((i, key.clone(), Totals::default()));
                            let g = shard.totals.len() - 1;
                            shard.index[i].insert(key, g);
                            g
                        }
                    }
                }
            };
            shard.totals[g].2.add(rec);
            groups.push(g);
        }
        if other > 0 {
            self.overflowed.fetch_add(other, Ordering::Relaxed);
        }
        if let Some(id) = set {
            if shard.by_set.len() >= SET_MEMO_CAP {
                shard.by_set.clear();
            }
            shard.by_set.insert(id, (groups, other));
        }
    }

    /// The totals per value of `attribute` (`None` if the builder does not name it).
    pub(crate) fn of(&self, attribute: &str) -> Option<HashMap<Name, Totals>> {
        let i = self.names.iter().position(|n| &**n == attribute)?;
        let mut out: HashMap<Name, Totals> = HashMap::new();
        for shard in self.shards.iter() {
            for (a, k, t) in &Self::lock(shard).totals {
                if *a == i {
                    out.entry(k.clone()).or_default().merge(t);
                }
            }
        }
        Some(out)
    }
}
