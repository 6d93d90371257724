//! Per-run state, kept as small as the command allows: commands that list no runs keep only a
//! 64-bit hash of each run id, to count them; commands that list runs keep one compact entry a
//! run, with its id in a shared arena.

use hashbrown::HashTable;
use xxhash_rust::xxh3::xxh3_64;

use tracing_llm_usage::format::decode::Line;
use tracing_llm_usage::record::Timestamp;

/// Distinct run ids, by their 64-bit xxh3 hash, in sorted vectors (8 bytes a run, and at most
/// half as much again of spare capacity): each worker appends the hashes it sees (a run's calls come close together, so
/// a repeat of the last one is skipped) and sorts out duplicates whenever its vector has
/// doubled; the workers' vectors are counted together at the end. Two ids of a billion runs
/// share a hash with a chance of about 3 in 100 million.
#[derive(Default)]
pub(crate) struct RunCount {
    hashes: Vec<u64>,
    /// Length after the last sort and dedup.
    sorted: usize,
    last: Option<u64>,
    /// Other workers' vectors, each sorted and deduplicated.
    others: Vec<Vec<u64>>,
}

impl RunCount {
    pub(crate) fn add(&mut self, id: &str) {
        let h = xxh3_64(id.as_bytes());
        if self.last == Some(h) {
            return;
        }
        self.last = Some(h);
        if self.hashes.len() == self.hashes.capacity() {
            // Grown by half, not doubled: at most 12 bytes a run with the slack.
            self.hashes.reserve_exact((self.hashes.len() / 2).max(1024));
        }
        self.hashes.push(h);
        if self.hashes.len() >= (2 * self.sorted).max(4096) {
            self.compact();
        }
    }

    fn compact(&mut self) {
        self.hashes.sort_unstable();
        self.hashes.dedup();
        self.sorted = self.hashes.len();
    }

    pub(crate) fn merge(&mut self, mut o: RunCount) {
        o.compact();
        self.others.push(o.hashes);
        self.others.append(&mut o.others);
    }

    /// Sorts the last additions in; call before [`len`](Self::len).
    pub(crate) fn finish(&mut self) {
        self.compact();
        self.hashes.shrink_to_fit();
    }

    /// Distinct hashes across every vector (each sorted and deduplicated).
    pub(crate) fn len(&self) -> u64 {
        let lists: Vec<&[u64]> = std::iter::once(self.hashes.as_slice())
            .chain(self.others.iter().map(Vec::as_slice))
            .filter(|l| !l.is_empty())
            .collect();
        let mut at = vec![0usize; lists.len()];
        let mut n = 0u64;
        loop {
            let next = lists
                .iter()
                .zip(&at)
                .filter_map(|(l, &i)| l.get(i))
                .min()
                .copied();
            let Some(h) = next else { return n };
            n += 1;
            for (l, i) in lists.iter().zip(at.iter_mut()) {
                if l.get(*i) == Some(&h) {
                    *i += 1;
                }
            }
        }
    }
}

/// A run's status, as its newest summary says.
pub(crate) const STATUSES: [&str; 4] = ["success", "error", "incomplete", "running"];
const NO_STATUS: u8 = u8::MAX;
const OTHER_STATUS: u8 = u8::MAX - 1;

/// What the logs say of one run: its calls' sums and its newest summary.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunEntry {
    /// The id's place in the arena: chunk, offset, length.
    id: [u32; 3],
    pub(crate) calls: u32,
    pub(crate) unpriced: u32,
    pub(crate) input: u64,
    pub(crate) output: u64,
    pub(crate) total: u64,
    pub(crate) cache_read: u64,
    pub(crate) reasoning: u64,
    pub(crate) cost: f64,
    /// Unix ms of the first and last call (`i64::MAX`/`MIN` when none).
    pub(crate) first_ms: i64,
    pub(crate) last_ms: i64,
    /// The newest summary's elapsed seconds (NaN: none) and its timestamp.
    elapsed: f64,
    summary_ms: i64,
    status: u8,
    /// Final summaries (`success` or `error`): more than one means several runs used the id.
    pub(crate) finals: u16,
}

impl RunEntry {
    fn new(id: [u32; 3]) -> Self {
        Self {
            id,
            calls: 0,
            unpriced: 0,
            input: 0,
            output: 0,
            total: 0,
            cache_read: 0,
            reasoning: 0,
            cost: 0.0,
            first_ms: i64::MAX,
            last_ms: i64::MIN,
            elapsed: f64::NAN,
            summary_ms: i64::MIN,
            status: NO_STATUS,
            finals: 0,
        }
    }

    pub(crate) fn priced(&self) -> bool {
        self.unpriced < self.calls
    }

    pub(crate) fn elapsed(&self) -> Option<f64> {
        (!self.elapsed.is_nan()).then_some(self.elapsed)
    }

    pub(crate) fn status(&self) -> Option<&'static str> {
        match self.status {
            NO_STATUS => None,
            OTHER_STATUS => Some("other"),
            i => STATUSES.get(usize::from(i)).copied(),
        }
    }

    pub(crate) fn first(&self) -> Option<String> {
        (self.first_ms != i64::MAX).then(|| Timestamp::from_unix_ms(self.first_ms).to_string())
    }

    pub(crate) fn last(&self) -> Option<String> {
        (self.last_ms != i64::MIN).then(|| Timestamp::from_unix_ms(self.last_ms).to_string())
    }

    fn add_call(&mut self, l: &Line<'_>, ms: Option<i64>) {
        let t = &l.tokens;
        self.calls = self.calls.saturating_add(1);
        self.input = self.input.saturating_add(t.input);
        self.output = self.output.saturating_add(t.output);
        self.total = self.total.saturating_add(t.total);
        self.cache_read = self.cache_read.saturating_add(t.cache_read);
        self.reasoning = self.reasoning.saturating_add(t.reasoning);
        match l.cost_usd {
            Some(c) if c.is_finite() => self.cost += c,
            _ => self.unpriced = self.unpriced.saturating_add(1),
        }
        if let Some(ms) = ms {
            self.first_ms = self.first_ms.min(ms);
            self.last_ms = self.last_ms.max(ms);
        }
    }

    fn add_summary(&mut self, l: &Line<'_>, ms: i64) {
        if matches!(l.status.as_deref(), Some("success" | "error")) {
            self.finals = self.finals.saturating_add(1);
        }
        // The newest summary of a run wins (an `incomplete` one may precede it).
        if ms >= self.summary_ms {
            self.summary_ms = ms;
            self.elapsed = l.elapsed_seconds.unwrap_or(f64::NAN);
            self.status = match l.status.as_deref() {
                None => NO_STATUS,
                Some(s) => STATUSES
                    .iter()
                    .position(|k| *k == s)
                    .map_or(OTHER_STATUS, |i| i as u8),
            };
        }
    }

    fn merge(&mut self, o: &RunEntry) {
        self.calls = self.calls.saturating_add(o.calls);
        self.unpriced = self.unpriced.saturating_add(o.unpriced);
        self.input = self.input.saturating_add(o.input);
        self.output = self.output.saturating_add(o.output);
        self.total = self.total.saturating_add(o.total);
        self.cache_read = self.cache_read.saturating_add(o.cache_read);
        self.reasoning = self.reasoning.saturating_add(o.reasoning);
        self.cost += o.cost;
        self.first_ms = self.first_ms.min(o.first_ms);
        self.last_ms = self.last_ms.max(o.last_ms);
        self.finals = self.finals.saturating_add(o.finals);
        if o.summary_ms >= self.summary_ms && (o.status != NO_STATUS || self.status == NO_STATUS) {
            self.summary_ms = o.summary_ms;
            self.elapsed = o.elapsed;
            self.status = o.status;
        }
    }
}

/// An entry of an [`IdTable`]: it knows where its id is.
pub(crate) trait Keyed {
    /// A new entry for the id stored at `id`.
    fn new(id: [u32; 3]) -> Self;
    /// Where its id is: chunk, offset, length.
    fn id_ref(&self) -> [u32; 3];
}

impl Keyed for RunEntry {
    fn new(id: [u32; 3]) -> Self {
        RunEntry::new(id)
    }
    fn id_ref(&self) -> [u32; 3] {
        self.id
    }
}

fn id_in<'a, V: Keyed>(ids: &'a [String], e: &V) -> &'a str {
    let [chunk, at, len] = e.id_ref();
    let (at, len) = (at as usize, len as usize);
    ids.get(chunk as usize)
        .and_then(|c| c.get(at..at + len))
        .unwrap_or("")
}

/// Entries by id, compactly: entries in chunks (no doubling of one large vector), ids in an
/// arena, an index of entry numbers by the id's hash.
pub(crate) struct IdTable<V> {
    ids: Vec<String>,
    entries: Vec<Vec<V>>,
    index: HashTable<u32>,
    len: u32,
}

impl<V> Default for IdTable<V> {
    fn default() -> Self {
        Self {
            ids: Vec::new(),
            entries: Vec::new(),
            index: HashTable::new(),
            len: 0,
        }
    }
}

/// Runs listed by id.
pub(crate) type RunTable = IdTable<RunEntry>;

const CHUNK: usize = 4096;
const ARENA: usize = 1 << 20;

impl<V: Keyed> IdTable<V> {
    pub(crate) fn id(&self, e: &V) -> &str {
        id_in(&self.ids, e)
    }

    fn entry(&self, n: u32) -> &V {
        &self.entries[n as usize / CHUNK][n as usize % CHUNK]
    }

    fn entry_mut(&mut self, n: u32) -> &mut V {
        &mut self.entries[n as usize / CHUNK][n as usize % CHUNK]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().flatten()
    }

    pub(crate) fn get(&self, id: &str) -> Option<&V> {
        let h = xxh3_64(id.as_bytes());
        let n = *self.index.find(h, |&n| self.id(self.entry(n)) == id)?;
        Some(self.entry(n))
    }

    /// The entry of `id`, made if new.
    pub(crate) fn upsert(&mut self, id: &str) -> &mut V {
        let h = xxh3_64(id.as_bytes());
        let found = {
            let this = &*self;
            this.index
                .find(h, |&n| this.id(this.entry(n)) == id)
                .copied()
        };
        let n = match found {
            Some(n) => n,
            None => {
                let id_ref = self.store_id(id);
                let n = self.len;
                if self.entries.last().is_none_or(|c| c.len() == CHUNK) {
                    self.entries.push(Vec::with_capacity(CHUNK));
                }
                if let Some(chunk) = self.entries.last_mut() {
                    chunk.push(V::new(id_ref));
                }
                self.len += 1;
                let (ids, entries) = (&self.ids, &self.entries);
                self.index.insert_unique(h, n, |&m| {
                    let e = &entries[m as usize / CHUNK][m as usize % CHUNK];
                    xxh3_64(id_in(ids, e).as_bytes())
                });
                n
            }
        };
        self.entry_mut(n)
    }

    fn store_id(&mut self, id: &str) -> [u32; 3] {
        // Ids longer than a chunk (never written by the layer) get a chunk of their own.
        if self
            .ids
            .last()
            .is_none_or(|c| c.len() + id.len() > c.capacity())
        {
            self.ids.push(String::with_capacity(ARENA.max(id.len())));
        }
        let chunk_no = (self.ids.len() - 1) as u32;
        let chunk = self.ids.last_mut().map_or(0, |c| {
            let at = c.len();
            c.push_str(id);
            at
        });
        [chunk_no, chunk as u32, id.len() as u32]
    }
}

impl RunTable {
    pub(crate) fn add_call(&mut self, id: &str, l: &Line<'_>) {
        let ms = Timestamp::parse(&l.timestamp).map(Timestamp::unix_ms);
        self.upsert(id).add_call(l, ms);
    }

    pub(crate) fn add_summary(&mut self, id: &str, l: &Line<'_>) {
        let ms = Timestamp::parse(&l.timestamp).map_or(i64::MIN + 1, Timestamp::unix_ms);
        self.upsert(id).add_summary(l, ms);
    }

    pub(crate) fn merge(&mut self, o: RunTable) {
        self.merge_from(&o);
    }

    /// Adds `o`'s runs to this table.
    pub(crate) fn merge_from(&mut self, o: &RunTable) {
        for e in o.iter() {
            self.upsert(o.id(e)).merge(e);
        }
    }
}

impl<V> IdTable<V> {
    /// Forgets every entry, keeping the memory for the next ones.
    pub(crate) fn clear(&mut self) {
        self.ids.truncate(1);
        if let Some(c) = self.ids.first_mut() {
            c.clear();
        }
        self.entries.truncate(1);
        if let Some(c) = self.entries.first_mut() {
            c.clear();
        }
        self.index.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_counted_once_across_workers_and_repeats() {
        let mut a = RunCount::default();
        let mut b = RunCount::default();
        for i in 0..10_000u32 {
            a.add(&format!("run-{}", i % 7_000));
            a.add(&format!("run-{}", i % 7_000));
            b.add(&format!("run-{}", 5_000 + i % 6_000));
        }
        a.merge(b);
        a.finish();
        // run-0 … run-10999
        assert_eq!(a.len(), 11_000);
        assert_eq!(RunCount::default().len(), 0);
    }
}
