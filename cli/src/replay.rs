//! `budget`: the calls replayed against a limit per day and/or per run, in the order they were
//! written (files in name order, lines in file order), without keeping them: workers hand over
//! each batch's calls, and one thread replays the batches in order as they become ready.

use std::collections::BTreeMap;
use std::sync::mpsc;

use hashbrown::HashMap;

use super::runs::{IdRef, IdTable, Keyed};

/// Items of `N` optional strings each, in one buffer (no allocation per string).
#[derive(Debug, Default)]
struct Texts {
    text: String,
}

/// Where an item's strings are in its [`Texts`].
#[derive(Clone, Copy, Debug)]
struct TextRef<const N: usize> {
    at: usize,
    lens: [u32; N],
    /// Bit `i`: string `i` is present.
    present: u8,
}

impl Texts {
    fn push<const N: usize>(&mut self, strings: [Option<&str>; N]) -> TextRef<N> {
        let at = self.text.len();
        let mut lens = [0u32; N];
        let mut present = 0u8;
        for (i, (len, s)) in lens.iter_mut().zip(strings).enumerate() {
            if let Some(s) = s {
                present |= 1 << i;
                self.text.push_str(s);
                // Strings come from lines of at most `read::MAX_LINE` bytes.
                *len = s.len() as u32;
            }
        }
        TextRef { at, lens, present }
    }

    fn get<const N: usize>(&self, r: &TextRef<N>) -> [Option<&str>; N] {
        let mut at = r.at;
        std::array::from_fn(|i| {
            let len = r.lens[i] as usize;
            let s = self.text.get(at..at + len).unwrap_or("");
            at += len;
            (r.present & (1 << i) != 0).then_some(s)
        })
    }
}

/// What the replay needs of one call (its strings in its batch's [`Spends`]).
#[derive(Debug)]
struct Spend {
    /// Timestamp, run id, step, the `--each` attribute's value.
    strings: TextRef<4>,
    /// `--each` was given and the call has no value of its attribute: no limit counts it.
    no_value: bool,
    /// NaN: the call has no cost.
    usd: f64,
    /// `NO_USAGE`: the call recorded no usage.
    tokens: u64,
}

const NO_USAGE: u64 = u64::MAX;

/// One call's spend, borrowed from its batch.
#[derive(Debug)]
struct SpendRef<'a> {
    timestamp: &'a str,
    run_id: Option<&'a str>,
    step: Option<&'a str>,
    /// The `--each` attribute's value.
    value: Option<&'a str>,
    no_value: bool,
    usd: Option<f64>,
    tokens: Option<u64>,
}

/// The calls of one batch.
#[derive(Debug, Default)]
pub(crate) struct Spends {
    texts: Texts,
    calls: Vec<Spend>,
}

impl Spends {
    /// One call: when it was written, its run and step, its cost (`None`: unknown) and tokens
    /// (`None`: no usage was recorded); with `--each`, its value of the attribute (`Some(None)`:
    /// it has none).
    pub(crate) fn push(
        &mut self,
        timestamp: &str,
        run_id: Option<&str>,
        step: Option<&str>,
        usd: Option<f64>,
        tokens: Option<u64>,
        value: Option<Option<&str>>,
    ) {
        let strings = self
            .texts
            .push([Some(timestamp), run_id, step, value.flatten()]);
        self.calls.push(Spend {
            strings,
            no_value: value.is_some_and(|v| v.is_none()),
            usd: usd.filter(|u| u.is_finite()).unwrap_or(f64::NAN),
            tokens: tokens.map_or(NO_USAGE, |t| t.min(NO_USAGE - 1)),
        });
    }

    fn iter(&self) -> impl Iterator<Item = SpendRef<'_>> {
        self.calls.iter().map(|c| {
            let [timestamp, run_id, step, value] = self.texts.get(&c.strings);
            SpendRef {
                timestamp: timestamp.unwrap_or(""),
                run_id,
                step,
                value,
                no_value: c.no_value,
                usd: (!c.usd.is_nan()).then_some(c.usd),
                tokens: (c.tokens != NO_USAGE).then_some(c.tokens),
            }
        })
    }
}

/// What readers and workers tell the replay.
pub(crate) enum Msg {
    /// The calls of one batch (possibly none).
    Batch {
        input: usize,
        index: usize,
        calls: Spends,
    },
    /// An input was read whole, in `batches` batches.
    End { input: usize, batches: usize },
}

/// The limits replayed.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Limits {
    pub(crate) per_day: Option<f64>,
    pub(crate) per_run: Option<f64>,
    pub(crate) tokens: bool,
    /// `--each`: one limit per value of an attribute.
    pub(crate) each: bool,
}

/// A scope (day or run) that crossed its limit.
#[derive(Clone, Debug)]
pub(crate) struct Crossing<'a> {
    pub(crate) scope: &'static str,
    pub(crate) id: &'a str,
    /// With `--each`, the attribute's value the limit is for.
    pub(crate) value: Option<&'a str>,
    pub(crate) limit: f64,
    /// The scope's total over the whole replay.
    pub(crate) total: f64,
    /// The crossing call's timestamp, run and step.
    pub(crate) at: &'a str,
    pub(crate) run: Option<&'a str>,
    pub(crate) step: Option<&'a str>,
    /// The scope's calls the limit could not count (no cost, or for tokens no usage).
    pub(crate) uncounted: u64,
}

/// What one limit could not count over the whole replay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Uncounted {
    /// Calls without a cost (for tokens: without usage).
    pub(crate) calls: u64,
    /// Days or runs with at least one such call.
    pub(crate) scopes: u64,
}

/// A crossing as kept: the scope's book, and the crossing call's timestamp, run and step.
#[derive(Clone, Copy, Debug)]
struct Crossed {
    /// 0: day, 1: run.
    order: u8,
    book: u32,
    strings: TextRef<3>,
}

/// A scope's running total (32 bytes); `seen` orders scopes by their first call.
#[derive(Clone, Copy, Default)]
struct Book {
    id: IdRef,
    total: f64,
    /// Calls the limit could not count.
    uncounted: u64,
    /// The scope's place in the order of first calls (from 1; 0: none yet), and in the top
    /// bit whether it crossed.
    seen: u64,
}

const CROSSED: u64 = 1 << 63;

/// A per-value scope's key: the length of its day or run id, `:`, the id, the value; so any
/// id and value (a `:` in either included) come apart again.
fn value_key(out: &mut String, id: &str, value: &str) {
    use std::fmt::Write as _;
    out.clear();
    let _ = write!(out, "{}:{id}{value}", id.len());
}

/// The (id, value) of a [`value_key`].
fn split_value_key(key: &str) -> Option<(&str, &str)> {
    let (len, rest) = key.split_once(':')?;
    let len: usize = len.parse().ok()?;
    Some((rest.get(..len)?, rest.get(len..)?))
}

impl Keyed for Book {
    fn new(id: IdRef) -> Self {
        Self {
            id,
            ..Self::default()
        }
    }
    fn id_ref(&self) -> IdRef {
        self.id
    }
}

/// The replay's state: a book per day and per run (24 bytes, its id and its index slot), and
/// the calls that crossed.
#[derive(Default)]
pub(crate) struct Replay {
    limits: Limits,
    days: IdTable<Book>,
    runs: IdTable<Book>,
    /// Sorted by [`finish`](Self::finish).
    crossed: Vec<Crossed>,
    crossed_texts: Texts,
    seq: u64,
    /// Per day limit, per run limit.
    uncounted: [Uncounted; 2],
}

impl Replay {
    fn add(&mut self, s: &SpendRef<'_>) {
        // A per-value limit does not count a call without a value.
        if s.no_value {
            return;
        }
        // What a limit cannot count adds nothing to its total and is counted apart.
        let amount = if self.limits.tokens {
            s.tokens.map(|t| t as f64)
        } else {
            s.usd
        };
        let day = super::agg::utc_day(s.timestamp);
        let scopes = [
            (0u8, self.limits.per_day, Some(&*day)),
            (1, self.limits.per_run, s.run_id),
        ];
        let mut keyed = String::new();
        for (order, limit, id) in scopes {
            let (Some(limit), Some(mut id)) = (limit, id) else {
                continue;
            };
            // Per value: the scope is (day or run, value).
            if let Some(value) = s.value {
                value_key(&mut keyed, id, value);
                id = &keyed;
            }
            let books = if order == 0 {
                &mut self.days
            } else {
                &mut self.runs
            };
            let n = books.number(id);
            let book = books.nth_mut(n);
            if book.seen == 0 {
                self.seq += 1;
                book.seen = self.seq;
            }
            let Some(amount) = amount else {
                let u = &mut self.uncounted[usize::from(order)];
                u.calls += 1;
                u.scopes += u64::from(book.uncounted == 0);
                book.uncounted += 1;
                continue;
            };
            let before = book.total;
            book.total += amount;
            // Dollars compared as the lines write them, to the nano-dollar (as the layer does).
            let nano = |v: f64| (v * 1e9).round() / 1e9;
            let (before, after) = (nano(before), nano(book.total));
            if before <= limit && after > limit && book.seen & CROSSED == 0 {
                book.seen |= CROSSED;
                let strings = self
                    .crossed_texts
                    .push([Some(s.timestamp), s.run_id, s.step]);
                self.crossed.push(Crossed {
                    order,
                    book: n,
                    strings,
                });
            }
        }
    }

    fn books(&self, order: u8) -> &IdTable<Book> {
        if order == 0 {
            &self.days
        } else {
            &self.runs
        }
    }

    /// Sorts the crossings: days first, each scope in the order of its first call.
    fn finish(&mut self) {
        let mut crossed = std::mem::take(&mut self.crossed);
        crossed.sort_by_key(|c| (c.order, self.books(c.order).nth(c.book).seen & !CROSSED));
        self.crossed = crossed;
    }

    /// How many scopes crossed their limit.
    pub(crate) fn crossing_count(&self) -> usize {
        self.crossed.len()
    }

    /// The `i`th crossing: days first, each scope in the order of its first call.
    pub(crate) fn crossing(&self, i: usize) -> Option<Crossing<'_>> {
        self.crossed.get(i).map(|c| {
            let books = self.books(c.order);
            let book = books.nth(c.book);
            let [at, run, step] = self.crossed_texts.get(&c.strings);
            let (scope, limit) = if c.order == 0 {
                ("day", self.limits.per_day)
            } else {
                ("run", self.limits.per_run)
            };
            let key = books.id(book);
            let (id, value) = match split_value_key(key).filter(|_| self.limits.each) {
                Some((id, value)) => (id, Some(value)),
                None => (key, None),
            };
            Crossing {
                scope,
                id,
                value,
                limit: limit.unwrap_or(0.0),
                total: book.total,
                at: at.unwrap_or(""),
                run,
                step,
                uncounted: book.uncounted,
            }
        })
    }

    /// What each limit could not count: the per-day limit's, then the per-run limit's (`None`
    /// where that limit was not asked for).
    pub(crate) fn uncounted(&self) -> [(&'static str, Option<f64>, Uncounted); 2] {
        [
            ("day", self.limits.per_day, self.uncounted[0]),
            ("run", self.limits.per_run, self.uncounted[1]),
        ]
    }
}

/// Replays the batches `rx` brings, in input and batch order, until every sender is gone.
pub(crate) fn collect(rx: mpsc::Receiver<Msg>, limits: Limits) -> Replay {
    let mut replay = Replay {
        limits,
        ..Replay::default()
    };
    let mut pending: BTreeMap<(usize, usize), Spends> = BTreeMap::new();
    let mut ends: HashMap<usize, usize> = HashMap::new();
    let (mut input, mut index) = (0usize, 0usize);
    for msg in rx {
        match msg {
            Msg::Batch {
                input: i,
                index: b,
                calls,
            } => {
                pending.insert((i, b), calls);
            }
            Msg::End { input: i, batches } => {
                ends.insert(i, batches);
            }
        }
        loop {
            if let Some(calls) = pending.remove(&(input, index)) {
                calls.iter().for_each(|s| replay.add(&s));
                index += 1;
            } else if ends.get(&input) == Some(&index) {
                input += 1;
                index = 0;
            } else {
                break;
            }
        }
    }
    // An input that ended early (a read error fails the command anyway): what came, in order.
    for calls in pending.into_values() {
        calls.iter().for_each(|s| replay.add(&s));
    }
    replay.finish();
    replay
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_keys_come_apart() {
        let mut k = String::new();
        value_key(&mut k, "2026-01-01", "ac:me");
        assert_eq!(split_value_key(&k), Some(("2026-01-01", "ac:me")));
        value_key(&mut k, "run:1", "");
        assert_eq!(split_value_key(&k), Some(("run:1", "")));
    }

    #[test]
    fn texts_give_back_each_string_and_each_absence() {
        let mut t = Texts::default();
        let a = t.push([Some("2026-01-01T00:00:00Z"), None, Some("")]);
        let b = t.push([None, Some("run-é"), Some("step")]);
        assert_eq!(t.get(&a), [Some("2026-01-01T00:00:00Z"), None, Some("")]);
        assert_eq!(t.get(&b), [None, Some("run-é"), Some("step")]);
    }
}
