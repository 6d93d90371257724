//! Per-run state, kept as small as the command allows: commands that list no runs keep only a
//! 64-bit hash of each run id, to count them; commands that list runs keep one compact entry a
//! run, with its id in a shared arena.

use hashbrown::HashTable;
use xxhash_rust::xxh3::xxh3_64;

use tracing_llm_usage::format::decode::Line;
use tracing_llm_usage::pricing::CostSum;
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
    /// Runs a database counted (distinct from every hash here: a count has no hashes).
    counted: u64,
}

impl RunCount {
    /// A count a database made (`count(DISTINCT run_id)`).
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn counted(n: u64) -> Self {
        RunCount {
            counted: n,
            ..RunCount::default()
        }
    }

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
        self.counted += o.counted;
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
        let mut n = self.counted;
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
/// Status codes: 0 no status, 1..=4 [`STATUSES`], 5 any other.
const OTHER_STATUS: u64 = STATUSES.len() as u64 + 1;
const STATUS_BITS: u32 = 3;
/// Summary times are kept within ±2^59 ms (±18 million years): the rest of the word holds the
/// status.
const MS_LIMIT: i64 = 1 << 59;

/// What an entry keeps of a run's summaries.
pub(crate) trait Summaries: Copy + std::fmt::Debug {
    /// No summary yet.
    const NONE: Self;
    /// The summary `l`, written at `ms`.
    fn add(&mut self, l: &Line<'_>, ms: i64);
    /// The same run's summaries as another worker saw them.
    fn merge(&mut self, o: &Self);
}

/// Summaries not kept (`by run` shows no status).
impl Summaries for () {
    const NONE: Self = ();
    fn add(&mut self, _: &Line<'_>, _: i64) {}
    fn merge(&mut self, _: &Self) {}
}

/// A run's newest summary: its time and status in one word (time in the high bits, so newer
/// compares greater), and its elapsed seconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Latest {
    when: i64,
    elapsed: f64,
}

impl Latest {
    fn ms(&self) -> i64 {
        self.when >> STATUS_BITS
    }

    fn status_code(&self) -> u64 {
        (self.when & ((1 << STATUS_BITS) - 1)) as u64
    }

    pub(crate) fn status(&self) -> Option<&'static str> {
        match self.status_code() {
            0 => None,
            OTHER_STATUS => Some("other"),
            i => STATUSES.get(i as usize - 1).copied(),
        }
    }

    fn elapsed(&self) -> Option<f64> {
        (!self.elapsed.is_nan()).then_some(self.elapsed)
    }
}

impl Summaries for Latest {
    const NONE: Latest = Latest {
        when: i64::MIN,
        elapsed: f64::NAN,
    };

    /// The summary `l`, written at `ms`, if it is at least as new as the one kept (as
    /// [`merge`](Self::merge) decides).
    fn add(&mut self, l: &Line<'_>, ms: i64) {
        let ms = ms.clamp(-MS_LIMIT + 1, MS_LIMIT - 1);
        let code = match l.status.as_deref() {
            None => 0,
            Some(s) => STATUSES
                .iter()
                .position(|k| *k == s)
                .map_or(OTHER_STATUS, |i| i as u64 + 1),
        };
        self.merge(&Latest {
            when: (ms << STATUS_BITS) | code as i64,
            elapsed: l.elapsed_seconds.unwrap_or(f64::NAN),
        });
    }

    /// The newer of two runs' summaries; one without a status does not hide one with a status.
    fn merge(&mut self, o: &Latest) {
        if o.when == i64::MIN {
            return;
        }
        if self.when == i64::MIN
            || (o.ms() >= self.ms() && (o.status_code() != 0 || self.status_code() == 0))
        {
            *self = *o;
        }
    }
}

/// Whether a summary closes its run: more than one such summary means several runs used the id.
fn is_final(l: &Line<'_>) -> bool {
    matches!(l.status.as_deref(), Some("success" | "error"))
}

/// Where an entry's id is in its table's arena: chunk (23 bits), offset (20 bits) and length
/// (21 bits) in one word. Lines, and so ids, are at most `read::MAX_LINE` (2^20) bytes; 2^23 chunks of [`ARENA`] bytes would be 8 TiB of ids.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdRef(u64);

impl IdRef {
    fn new(chunk: usize, at: usize, len: usize) -> Self {
        let (chunk, at, len) = (chunk as u64, at as u64, len as u64);
        Self((chunk << 41) | ((at & 0xF_FFFF) << 21) | (len & 0x1F_FFFF))
    }

    fn parts(self) -> (usize, usize, usize) {
        (
            (self.0 >> 41) as usize,
            ((self.0 >> 21) & 0xF_FFFF) as usize,
            (self.0 & 0x1F_FFFF) as usize,
        )
    }
}

/// An entry of an [`IdTable`]: it knows where its id is.
pub(crate) trait Keyed {
    /// A new entry for the id stored at `id`.
    fn new(id: IdRef) -> Self;
    /// Where its id is.
    fn id_ref(&self) -> IdRef;
}

/// What a listing keeps of each run, summed from its calls and summaries.
pub(crate) trait RunFacts: Keyed {
    /// One call; `ms` is its time (`None` when it has none that parses).
    fn add_call(&mut self, l: &Line<'_>, ms: Option<i64>);
    /// One summary written at `ms`.
    fn add_summary(&mut self, l: &Line<'_>, ms: i64);
    /// The same run as another worker saw it.
    fn merge(&mut self, o: &Self);
    /// Calls counted.
    fn calls(&self) -> u32;
}

/// `run list` and `run show`: a run's calls, tokens in and out, cost, time span and newest
/// summary, in 72 bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ListedRun {
    id: IdRef,
    pub(crate) calls: u32,
    /// Bit 0: a call was priced; the rest: final summaries (success or error).
    flags: u32,
    pub(crate) input: u64,
    pub(crate) output: u64,
    pub(crate) cost: CostSum,
    /// Unix ms of the first and last call (`i64::MAX`/`MIN` when none).
    pub(crate) first_ms: i64,
    pub(crate) last_ms: i64,
    latest: Latest,
}

impl ListedRun {
    pub(crate) fn priced(&self) -> bool {
        self.flags & 1 == 1
    }

    /// Final summaries: more than one means several runs used the id.
    pub(crate) fn finals(&self) -> u32 {
        self.flags >> 1
    }

    pub(crate) fn elapsed(&self) -> Option<f64> {
        self.latest.elapsed()
    }

    pub(crate) fn status(&self) -> Option<&'static str> {
        self.latest.status()
    }

    pub(crate) fn first(&self) -> Option<String> {
        (self.first_ms != i64::MAX).then(|| Timestamp::from_unix_ms(self.first_ms).to_string())
    }

    pub(crate) fn last(&self) -> Option<String> {
        (self.last_ms != i64::MIN).then(|| Timestamp::from_unix_ms(self.last_ms).to_string())
    }

    /// The run's calls as a database summed them.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    fn set_sums(&mut self, s: &tracing_llm_usage::store::CallSums) {
        self.calls = u32::try_from(s.calls).unwrap_or(u32::MAX);
        self.input = s.input;
        self.output = s.output;
        self.cost = s.cost;
        if s.priced > 0 {
            self.flags |= 1;
        }
        let ms = |t: &Option<String>| {
            t.as_deref()
                .and_then(Timestamp::parse)
                .map(Timestamp::unix_ms)
        };
        if let (Some(first), Some(last)) = (ms(&s.first), ms(&s.last)) {
            self.first_ms = first;
            self.last_ms = last;
        }
    }

    fn add_finals(&mut self, n: u32) {
        let finals = self.finals().saturating_add(n).min(u32::MAX >> 1);
        self.flags = (finals << 1) | (self.flags & 1);
    }
}

impl Keyed for ListedRun {
    fn new(id: IdRef) -> Self {
        Self {
            id,
            calls: 0,
            flags: 0,
            input: 0,
            output: 0,
            cost: CostSum::default(),
            first_ms: i64::MAX,
            last_ms: i64::MIN,
            latest: Latest::NONE,
        }
    }
    fn id_ref(&self) -> IdRef {
        self.id
    }
}

impl RunFacts for ListedRun {
    fn add_call(&mut self, l: &Line<'_>, ms: Option<i64>) {
        self.calls = self.calls.saturating_add(1);
        self.input = self.input.saturating_add(l.tokens.input);
        self.output = self.output.saturating_add(l.tokens.output);
        if let Some(c) = l.cost_usd.filter(|c| c.is_finite()) {
            self.cost.add(c);
            self.flags |= 1;
        }
        if let Some(ms) = ms {
            self.first_ms = self.first_ms.min(ms);
            self.last_ms = self.last_ms.max(ms);
        }
    }

    fn add_summary(&mut self, l: &Line<'_>, ms: i64) {
        if is_final(l) {
            self.add_finals(1);
        }
        self.latest.add(l, ms);
    }

    fn merge(&mut self, o: &Self) {
        self.calls = self.calls.saturating_add(o.calls);
        self.flags |= o.flags & 1;
        self.add_finals(o.finals());
        self.input = self.input.saturating_add(o.input);
        self.output = self.output.saturating_add(o.output);
        self.cost.merge(o.cost);
        self.first_ms = self.first_ms.min(o.first_ms);
        self.last_ms = self.last_ms.max(o.last_ms);
        self.latest.merge(&o.latest);
    }

    fn calls(&self) -> u32 {
        self.calls
    }
}

/// `by run` and `report --html`: a run's calls, every token sum and cost, in 64 bytes, and what
/// `S` keeps of its summaries (`report --html` shows the newest status: 16 bytes more).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunSums<S> {
    id: IdRef,
    pub(crate) calls: u32,
    pub(crate) unpriced: u32,
    pub(crate) input: u64,
    pub(crate) output: u64,
    pub(crate) total: u64,
    pub(crate) cache_read: u64,
    pub(crate) reasoning: u64,
    pub(crate) cost: CostSum,
    pub(crate) summaries: S,
}

impl<S> RunSums<S> {
    pub(crate) fn priced(&self) -> bool {
        self.unpriced < self.calls
    }

    /// The run's calls as a database summed them.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn set_sums(&mut self, s: &tracing_llm_usage::store::CallSums) {
        let count = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        self.calls = count(s.calls);
        self.unpriced = count(s.calls.saturating_sub(s.priced));
        self.input = s.input;
        self.output = s.output;
        self.total = s.total;
        self.cache_read = s.cache_read;
        self.reasoning = s.reasoning;
        self.cost = s.cost;
    }
}

impl<S: Summaries> Keyed for RunSums<S> {
    fn new(id: IdRef) -> Self {
        Self {
            id,
            calls: 0,
            unpriced: 0,
            input: 0,
            output: 0,
            total: 0,
            cache_read: 0,
            reasoning: 0,
            cost: CostSum::default(),
            summaries: S::NONE,
        }
    }
    fn id_ref(&self) -> IdRef {
        self.id
    }
}

impl<S: Summaries> RunFacts for RunSums<S> {
    fn add_call(&mut self, l: &Line<'_>, _ms: Option<i64>) {
        let t = &l.tokens;
        self.calls = self.calls.saturating_add(1);
        self.input = self.input.saturating_add(t.input);
        self.output = self.output.saturating_add(t.output);
        self.total = self.total.saturating_add(t.total);
        self.cache_read = self.cache_read.saturating_add(t.cache_read);
        self.reasoning = self.reasoning.saturating_add(t.reasoning);
        match l.cost_usd {
            Some(c) if c.is_finite() => self.cost.add(c),
            _ => self.unpriced = self.unpriced.saturating_add(1),
        }
    }

    fn add_summary(&mut self, l: &Line<'_>, ms: i64) {
        self.summaries.add(l, ms);
    }

    fn merge(&mut self, o: &Self) {
        self.calls = self.calls.saturating_add(o.calls);
        self.unpriced = self.unpriced.saturating_add(o.unpriced);
        self.input = self.input.saturating_add(o.input);
        self.output = self.output.saturating_add(o.output);
        self.total = self.total.saturating_add(o.total);
        self.cache_read = self.cache_read.saturating_add(o.cache_read);
        self.reasoning = self.reasoning.saturating_add(o.reasoning);
        self.cost.merge(o.cost);
        self.summaries.merge(&o.summaries);
    }

    fn calls(&self) -> u32 {
        self.calls
    }
}

fn id_in<'a, V: Keyed>(ids: &'a [String], e: &V) -> &'a str {
    let (chunk, at, len) = e.id_ref().parts();
    ids.get(chunk)
        .and_then(|c| c.get(at..at + len))
        .unwrap_or("")
}

/// Entries by id, compactly: entries in chunks (no doubling of one large vector), ids in an
/// arena, an index of entry numbers by the id's hash (dropped by [`seal`](Self::seal) once
/// nothing is added).
pub(crate) struct IdTable<V> {
    ids: Vec<String>,
    entries: Vec<Vec<V>>,
    index: HashTable<u32>,
    sealed: bool,
    len: u32,
}

impl<V> Default for IdTable<V> {
    fn default() -> Self {
        Self {
            ids: Vec::new(),
            entries: Vec::new(),
            index: HashTable::new(),
            sealed: false,
            len: 0,
        }
    }
}

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

    /// Entry numbers, for sorting a listing in 4 bytes a run.
    pub(crate) fn numbers(&self) -> Vec<u32> {
        (0..self.len).collect()
    }

    /// The entry numbered `n` (from [`numbers`](Self::numbers)).
    pub(crate) fn nth(&self, n: u32) -> &V {
        self.entry(n)
    }

    /// The entry numbered `n` (from [`number`](Self::number)), to change.
    pub(crate) fn nth_mut(&mut self, n: u32) -> &mut V {
        self.entry_mut(n)
    }

    pub(crate) fn get(&self, id: &str) -> Option<&V> {
        if self.sealed {
            return self.iter().find(|e| self.id(e) == id);
        }
        let h = xxh3_64(id.as_bytes());
        let n = *self.index.find(h, |&n| self.id(self.entry(n)) == id)?;
        Some(self.entry(n))
    }

    /// Drops the index: entries stay readable, [`get`](Self::get) becomes a scan, and nothing
    /// more may be added.
    pub(crate) fn seal(&mut self) {
        self.index = HashTable::new();
        self.sealed = true;
    }

    /// The entry of `id`, made if new.
    pub(crate) fn upsert(&mut self, id: &str) -> &mut V {
        let n = self.number(id);
        self.entry_mut(n)
    }

    /// The number of `id`'s entry (see [`nth`](Self::nth)), made if new.
    pub(crate) fn number(&mut self, id: &str) -> u32 {
        debug_assert!(!self.sealed, "a sealed table takes no more entries");
        let h = xxh3_64(id.as_bytes());
        let found = {
            let this = &*self;
            this.index
                .find(h, |&n| this.id(this.entry(n)) == id)
                .copied()
        };
        if let Some(n) = found {
            return n;
        }
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

    fn store_id(&mut self, id: &str) -> IdRef {
        // Ids longer than a chunk (never written by the layer) get a chunk of their own.
        if self
            .ids
            .last()
            .is_none_or(|c| c.len() + id.len() > c.capacity())
        {
            self.ids.push(String::with_capacity(ARENA.max(id.len())));
        }
        let chunk_no = self.ids.len() - 1;
        let at = self.ids.last_mut().map_or(0, |c| {
            let at = c.len();
            c.push_str(id);
            at
        });
        IdRef::new(chunk_no, at, id.len())
    }
}

impl<V: RunFacts> IdTable<V> {
    /// Runs with at least one call.
    pub(crate) fn with_calls(&self) -> u64 {
        self.iter().filter(|e| e.calls() > 0).count() as u64
    }

    /// Adds `o`'s runs to this table.
    pub(crate) fn merge_from(&mut self, o: &IdTable<V>) {
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
        self.sealed = false;
        self.len = 0;
    }
}

/// Which listing a command keeps of each run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Listing {
    /// Runs are only counted (a hash a run).
    #[default]
    None,
    /// [`ListedRun`]s.
    Listed,
    /// [`RunSums`] without status.
    Sums,
    /// [`RunSums`] with the newest status.
    SumsWithStatus,
}

/// The runs a command lists, in the table its [`Listing`] calls for.
#[derive(Default)]
pub(crate) struct Runs {
    pub(crate) listed: IdTable<ListedRun>,
    pub(crate) sums: IdTable<RunSums<()>>,
    pub(crate) with_status: IdTable<RunSums<Latest>>,
    /// For the listing: calls without a cost, by a hash of their run's id, for the runs that
    /// have any (a sparse table: most runs have none, and their entries stay as small).
    unpriced: hashbrown::HashMap<u64, u32>,
}

impl Runs {
    pub(crate) fn add_call(&mut self, listing: Listing, id: &str, l: &Line<'_>) {
        match listing {
            Listing::None => {}
            Listing::Listed => {
                let ms = Timestamp::parse(&l.timestamp).map(Timestamp::unix_ms);
                self.listed.upsert(id).add_call(l, ms);
                if l.cost_usd.filter(|c| c.is_finite()).is_none() {
                    *self.unpriced.entry(xxh3_64(id.as_bytes())).or_default() += 1;
                }
            }
            // Sums keep no time span.
            Listing::Sums => self.sums.upsert(id).add_call(l, None),
            Listing::SumsWithStatus => self.with_status.upsert(id).add_call(l, None),
        }
    }

    pub(crate) fn add_summary(&mut self, listing: Listing, id: &str, l: &Line<'_>) {
        let ms = Timestamp::parse(&l.timestamp).map_or(-MS_LIMIT + 1, Timestamp::unix_ms);
        match listing {
            Listing::None => {}
            Listing::Listed => self.listed.upsert(id).add_summary(l, ms),
            // `by run` lists runs by their calls: a run known only by its summary is not one.
            Listing::Sums => {}
            Listing::SumsWithStatus => self.with_status.upsert(id).add_summary(l, ms),
        }
    }

    /// A listed run's calls as a database summed them.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn set_listed(&mut self, id: &str, s: &tracing_llm_usage::store::CallSums) {
        self.listed.upsert(id).set_sums(s);
        let unpriced = s.calls.saturating_sub(s.priced);
        if unpriced > 0 {
            self.unpriced.insert(
                xxh3_64(id.as_bytes()),
                u32::try_from(unpriced).unwrap_or(u32::MAX),
            );
        }
    }

    /// The listed run's calls without a cost.
    pub(crate) fn unpriced(&self, id: &str) -> u32 {
        self.unpriced
            .get(&xxh3_64(id.as_bytes()))
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn merge_from(&mut self, o: &Runs) {
        for (k, n) in &o.unpriced {
            *self.unpriced.entry(*k).or_default() += n;
        }
        self.listed.merge_from(&o.listed);
        self.sums.merge_from(&o.sums);
        self.with_status.merge_from(&o.with_status);
    }

    pub(crate) fn clear(&mut self) {
        self.unpriced.clear();
        self.listed.clear();
        self.sums.clear();
        self.with_status.clear();
    }

    /// Runs with at least one call.
    pub(crate) fn with_calls(&self) -> u64 {
        self.listed.with_calls() + self.sums.with_calls() + self.with_status.with_calls()
    }

    /// Drops the indexes once every run is in (see [`IdTable::seal`]).
    pub(crate) fn seal(&mut self) {
        self.listed.seal();
        self.sums.seal();
        self.with_status.seal();
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

    #[test]
    fn id_refs_keep_their_parts_at_the_limits() {
        for (chunk, at, len) in [
            (0, 0, 0),
            (1, 12, 36),
            ((1 << 23) - 1, ARENA - 1, 1),
            (7, 0, crate::read::MAX_LINE),
        ] {
            assert_eq!(IdRef::new(chunk, at, len).parts(), (chunk, at, len));
        }
    }

    fn summary(ts: &str, status: Option<&str>, elapsed: f64) -> String {
        let status = status.map_or("null".to_owned(), |s| format!("\"{s}\""));
        format!(
            r#"{{"timestamp":"{ts}","event":"run_summary","run_id":"r","status":{status},"elapsed_seconds":{elapsed}}}"#
        )
    }

    fn call(ts: &str, cost: Option<f64>) -> String {
        let cost = cost.map_or("null".to_owned(), |c| c.to_string());
        format!(
            r#"{{"timestamp":"{ts}","event":"llm_call","run_id":"r","tokens":{{"input":3,"output":4,"total":7}},"cost_usd":{cost}}}"#
        )
    }

    fn feed(runs: &mut Runs, listing: Listing, lines: &[String]) {
        for text in lines {
            let l = tracing_llm_usage::format::decode::parse_str(text).expect("a valid line");
            if l.event == "run_summary" {
                runs.add_summary(listing, "r", &l);
            } else {
                runs.add_call(listing, "r", &l);
            }
        }
    }

    #[test]
    fn the_newest_summary_wins_in_any_order_and_across_workers() {
        let lines = [
            call("2026-01-01T00:00:01.000Z", None),
            summary("2026-01-01T00:00:05.000Z", Some("incomplete"), 4.0),
            call("2026-01-01T00:00:09.500Z", Some(0.25)),
            summary("2026-01-01T00:00:10.000Z", Some("success"), 9.5),
            summary("2026-01-01T00:00:20.000Z", Some("error"), 19.0),
            // A summary of an unknown status is "other"; one without a status hides nothing.
            summary("2026-01-01T00:00:30.000Z", None, 29.0),
        ];
        let mut one = Runs::default();
        feed(&mut one, Listing::Listed, &lines);
        let e = one.listed.get("r").expect("the run");
        assert_eq!((e.status(), e.elapsed()), (Some("error"), Some(19.0)));
        assert_eq!((e.calls, e.finals(), e.priced()), (2, 2, true));
        assert_eq!((e.input, e.output, e.cost.usd()), (6, 8, 0.25));
        assert_eq!(e.first().as_deref(), Some("2026-01-01T00:00:01.000Z"));
        assert_eq!(e.last().as_deref(), Some("2026-01-01T00:00:09.500Z"));

        // Split over two workers, merged both ways: the same run.
        for (x, y) in [(0..3, 3..6), (3..6, 0..3)] {
            let (mut a, mut b) = (Runs::default(), Runs::default());
            feed(&mut a, Listing::Listed, &lines[x.clone()]);
            feed(&mut b, Listing::Listed, &lines[y.clone()]);
            let mut all = Runs::default();
            all.merge_from(&a);
            all.merge_from(&b);
            let m = all.listed.get("r").expect("the run");
            assert_eq!((m.status(), m.elapsed()), (Some("error"), Some(19.0)));
            assert_eq!((m.calls, m.finals(), m.cost.usd()), (2, 2, 0.25));
            assert_eq!((m.first_ms, m.last_ms), (e.first_ms, e.last_ms));
        }

        let mut html = Runs::default();
        feed(&mut html, Listing::SumsWithStatus, &lines);
        let h = html.with_status.get("r").expect("the run");
        assert_eq!(h.summaries.status(), Some("error"));
        assert_eq!((h.calls, h.unpriced, h.total), (2, 1, 14));

        let mut other = Runs::default();
        feed(
            &mut other,
            Listing::Listed,
            &[summary("2026-01-01T00:00:01.000Z", Some("paused"), 1.0)],
        );
        let o = other.listed.get("r").expect("the run");
        assert_eq!((o.status(), o.calls, o.priced()), (Some("other"), 0, false));
    }
}
