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

/// One shard: per attribute, value text → totals.
type ShardData = Vec<HashMap<Name, Totals>>;

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
                .map(|_| Mutex::new(vec![HashMap::new(); names.len()]))
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
        let mut shard = Self::lock(&self.shards[thread_shard() % SHARDS]);
        for (i, name) in self.names.iter().enumerate() {
            let Some(value) = rec.attributes.get(name) else {
                continue;
            };
            let map = &mut shard[i];
            let key = text(value);
            if let Some(t) = map.get_mut(&*key) {
                t.add(rec);
                continue;
            }
            let key = if self.distinct[i].fetch_add(1, Ordering::Relaxed) < self.cap {
                key
            } else {
                self.distinct[i].fetch_sub(1, Ordering::Relaxed);
                self.overflowed.fetch_add(1, Ordering::Relaxed);
                self.other.clone()
            };
            map.entry(key).or_default().add(rec);
        }
    }

    /// The totals per value of `attribute` (`None` if the builder does not name it).
    pub(crate) fn of(&self, attribute: &str) -> Option<HashMap<Name, Totals>> {
        let i = self.names.iter().position(|n| &**n == attribute)?;
        let mut out: HashMap<Name, Totals> = HashMap::new();
        for shard in self.shards.iter() {
            for (k, t) in &Self::lock(shard)[i] {
                out.entry(k.clone()).or_default().merge(t);
            }
        }
        Some(out)
    }
}
