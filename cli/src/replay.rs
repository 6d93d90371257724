//! `budget`: the calls replayed against a limit per day and/or per run, in the order they were
//! written (files in name order, lines in file order), without keeping them: workers hand over
//! each batch's calls, and one thread replays the batches in order as they become ready.

use std::collections::BTreeMap;
use std::sync::mpsc;

use hashbrown::HashMap;

use super::runs::{IdTable, Keyed};

/// What the replay needs of one call.
#[derive(Debug)]
pub(crate) struct Spend {
    pub(crate) timestamp: String,
    pub(crate) run_id: Option<String>,
    pub(crate) step: Option<String>,
    pub(crate) usd: f64,
    pub(crate) tokens: u64,
}

/// What readers and workers tell the replay.
pub(crate) enum Msg {
    /// The calls of one batch (possibly none).
    Batch {
        input: usize,
        index: usize,
        calls: Vec<Spend>,
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
}

/// A scope (day or run) that crossed its limit.
#[derive(Clone, Debug)]
pub(crate) struct Crossing {
    pub(crate) scope: &'static str,
    pub(crate) id: String,
    pub(crate) limit: f64,
    /// The scope's total over the whole replay.
    pub(crate) total: f64,
    pub(crate) at: String,
    pub(crate) run: Option<String>,
    pub(crate) step: Option<String>,
}

/// A scope's running total; `seen` orders scopes by their first call.
#[derive(Clone, Copy, Default)]
struct Book {
    id: [u32; 3],
    total: f64,
    seen: u64,
    crossed: bool,
}

impl Keyed for Book {
    fn new(id: [u32; 3]) -> Self {
        Self {
            id,
            ..Self::default()
        }
    }
    fn id_ref(&self) -> [u32; 3] {
        self.id
    }
}

/// The replay's state: a book per day and per run (about 100 bytes a run), and the calls that
/// crossed.
#[derive(Default)]
pub(crate) struct Replay {
    limits: Limits,
    days: IdTable<Book>,
    runs: IdTable<Book>,
    /// (scope order, first seen, crossing), the total filled in at the end.
    crossed: Vec<(u8, u64, Crossing)>,
    seq: u64,
}

impl Replay {
    fn add(&mut self, s: &Spend) {
        let amount = if self.limits.tokens {
            s.tokens as f64
        } else {
            s.usd
        };
        let day = s.timestamp.get(..10).unwrap_or("");
        let scopes = [
            (0u8, "day", self.limits.per_day, Some(day)),
            (1, "run", self.limits.per_run, s.run_id.as_deref()),
        ];
        for (order, scope, limit, id) in scopes {
            let (Some(limit), Some(id)) = (limit, id) else {
                continue;
            };
            let books = if order == 0 {
                &mut self.days
            } else {
                &mut self.runs
            };
            let book = books.upsert(id);
            if book.seen == 0 {
                self.seq += 1;
                book.seen = self.seq;
            }
            let before = book.total;
            book.total += amount;
            if before <= limit && book.total > limit && !book.crossed {
                book.crossed = true;
                let seen = book.seen;
                self.crossed.push((
                    order,
                    seen,
                    Crossing {
                        scope,
                        id: id.to_owned(),
                        limit,
                        total: 0.0,
                        at: s.timestamp.clone(),
                        run: s.run_id.clone(),
                        step: s.step.clone(),
                    },
                ));
            }
        }
    }

    /// The crossings, days first, each scope in the order of its first call.
    pub(crate) fn crossings(&self) -> Vec<Crossing> {
        let mut crossed = self.crossed.clone();
        crossed.sort_by_key(|(order, seen, _)| (*order, *seen));
        crossed
            .into_iter()
            .map(|(order, _, mut c)| {
                let books = if order == 0 { &self.days } else { &self.runs };
                c.total = books.get(&c.id).map_or(0.0, |b| b.total);
                c
            })
            .collect()
    }
}

/// Replays the batches `rx` brings, in input and batch order, until every sender is gone.
pub(crate) fn collect(rx: mpsc::Receiver<Msg>, limits: Limits) -> Replay {
    let mut replay = Replay {
        limits,
        ..Replay::default()
    };
    let mut pending: BTreeMap<(usize, usize), Vec<Spend>> = BTreeMap::new();
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
                calls.iter().for_each(|s| replay.add(s));
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
        calls.iter().for_each(|s| replay.add(s));
    }
    replay
}
