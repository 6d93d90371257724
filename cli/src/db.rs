//! `--db`: the database as a source for every report.
//!
//! A report reads the stored lines in their logged order, through the same parser and
//! aggregation as files, so its numbers are the files' to the byte (`import` fills it).

use std::io::{self, Read};
use std::sync::mpsc;

use tracing_llm_usage::store::{display_target, Field, GroupBy, LineFilter, Store};

use super::agg::{Acc, Dim, Needs};
use super::read::{self, Filters};

/// How many bytes of lines travel from the database thread at a time.
const CHUNK: usize = 1 << 20;

/// The stored lines as one byte stream, `\n`-separated, read by a thread of its own.
pub(crate) struct DbLines {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for DbLines {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk?;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The conditions of `filters` as the store takes them: every value a bound parameter.
fn line_filter(filters: &Filters) -> LineFilter {
    let mut f = LineFilter::default();
    f.since.clone_from(&filters.since);
    f.until.clone_from(&filters.until);
    f.until_exclusive = filters.until_exclusive;
    for (field, value) in [
        (Field::RunId, &filters.run),
        (Field::Model, &filters.model),
        (Field::Step, &filters.step),
    ] {
        if let Some(v) = value {
            f.fields.push((field, v.clone()));
        }
    }
    for (k, v) in &filters.wheres {
        match Field::parse(k) {
            Some(field) => f.fields.push((field, v.clone())),
            None => f.attributes.push((k.clone(), v.clone())),
        }
    }
    f
}

/// `stats` computed by the database, when it can give exactly what the lines would: no
/// attribute to match; `None` when it cannot (or a query fails: the report then reads the
/// lines, and says what is wrong with them). A database that cannot be opened is an error.
pub(crate) fn stats(target: &str, filters: &Filters) -> Option<Result<read::Scan, String>> {
    let filter = line_filter(filters);
    if !filter.attributes.is_empty() {
        return None;
    }
    let mut db = match open_existing(target) {
        Ok(db) => db,
        Err(e) => return Some(Err(format!("{}: {e}", display_target(target)))),
    };
    // A budget line carries the step and model of the call that crossed it: a filter on a
    // call field is applied to the budget lines themselves (few), as to files.
    let fields = filters.model.is_some()
        || filters.step.is_some()
        || filters.wheres.iter().any(|(k, _)| k != "run_id");
    let read = db.snapshot(|db| {
        let totals = db.totals(&filter).ok()?;
        let mut budget = Vec::new();
        if fields {
            let mut kept: Vec<(String, u64)> = Vec::new();
            db.for_each_budget_line(&filter, &mut |text| {
                if let Ok(l) = tracing_llm_usage::format::decode::parse_str(text) {
                    if filters.keep(&l) {
                        match kept.iter_mut().find(|(e, _)| *e == *l.event) {
                            Some((_, n)) => *n += 1,
                            None => kept.push((l.event.to_string(), 1)),
                        }
                    }
                }
            })
            .ok()?;
            budget = kept;
        } else {
            budget.clone_from(&totals.events);
        }
        let stored = (db.imported_files().ok()?, db.line_count().ok()?);
        Some((db.has_lines().ok()?, totals, budget, stored))
    });
    let (any, totals, budget, stored) = read.ok().flatten()?;
    let mut all = Acc::from_sums(&totals.calls);
    all.first = totals.first;
    all.last = totals.last;
    let agg = super::agg::Aggregate {
        all,
        run_count: super::runs::RunCount::counted(totals.calls.runs),
        summaries: totals.summaries,
        budget_counted: budget,
        ..Default::default()
    };
    let mut scan = summed(agg, any);
    scan.stored = Some(stored);
    Some(Ok(scan))
}

/// A report's input summed by the database: no line read, none skipped; `any` whether the
/// store holds a line at all (an empty store is an error, as an empty file is).
fn summed(agg: super::agg::Aggregate, any: bool) -> read::Scan {
    read::Scan {
        agg,
        replay: None,
        problems: Vec::new(),
        problem_count: 0,
        torn: 0,
        lines: u64::from(any),
        stored: None,
    }
}

/// `by <dim>` summed by the database, when it can give exactly what the lines would: a field,
/// the day or the run, with no attribute to match; `None` when it cannot (or fails: the
/// report then reads the lines, and says what is wrong with them).
pub(crate) fn by(target: &str, filters: &Filters, dim: Dim) -> Option<read::Scan> {
    let by = match dim {
        Dim::Step => GroupBy::Field(Field::Step),
        Dim::Model => GroupBy::Field(Field::Model),
        Dim::Provider => GroupBy::Field(Field::Provider),
        Dim::Task => GroupBy::Field(Field::Task),
        Dim::Agent => GroupBy::Field(Field::Agent),
        Dim::Run => GroupBy::Field(Field::RunId),
        Dim::Day => GroupBy::Day,
    };
    let filter = line_filter(filters);
    if !filter.attributes.is_empty() {
        return None;
    }
    let mut agg = super::agg::Aggregate::default();
    let mut groups: hashbrown::HashMap<String, Acc> = hashbrown::HashMap::new();
    let any = (|| {
        let mut db = open_existing(target).ok()?;
        let any = db.has_lines().ok()?;
        db.for_each_sum(&filter, by, &mut |s| match (dim, &s.key) {
            // A run is kept as `by run` over files keeps it: compactly.
            (Dim::Run, Some(id)) => agg.runs.sums.upsert(id).set_sums(&s),
            (_, key) => {
                let key = key.clone().unwrap_or_else(|| super::agg::NONE.to_owned());
                groups.insert(key, Acc::from_sums(&s));
            }
        })
        .ok()?;
        Some(any)
    })()?;
    agg.runs.seal();
    if !groups.is_empty() {
        agg.by.insert(dim, groups);
    }
    Some(summed(agg, any))
}

/// `run list` computed by the database, when it can give exactly what the lines would (no
/// attribute to match): each run's calls summed by a `GROUP BY run_id`, and its summaries
/// (a line a run) read and kept as from files. `None` when it cannot, or a query fails: the
/// report then reads the lines, and says what is wrong with them.
pub(crate) fn run_list(target: &str, filters: &Filters, needs: &Needs) -> Option<read::Scan> {
    let filter = line_filter(filters);
    if !filter.attributes.is_empty() {
        return None;
    }
    let mut agg = super::agg::Aggregate::default();
    let mut db = open_existing(target).ok()?;
    // The runs' sums and their summaries as of one moment of a store being written.
    let read = db.snapshot(|db| {
        let any = db.has_lines().ok()?;
        db.for_each_sum(&filter, GroupBy::RunSpan, &mut |s| {
            if let Some(id) = &s.key {
                agg.runs.set_listed(id, &s);
            }
        })
        .ok()?;
        let mut n = 0;
        db.for_each_summary_line(&filter, &mut |text| {
            if let Ok(l) = tracing_llm_usage::format::decode::parse_str(text) {
                if filters.keep(&l) {
                    agg.add(&l, (0, 0, n), needs);
                }
            }
            n += 1;
        })
        .ok()?;
        Some(any)
    });
    let any = read.ok().flatten()?;
    agg.runs.seal();
    Some(summed(agg, any))
}

/// Streams the lines of the database `target` that `filters` may keep (the database
/// narrows them by its indexes; the report applies `filters` again, exactly). The database
/// must exist: a report never creates one.
pub(crate) fn lines(target: &str, filters: &Filters) -> io::Result<DbLines> {
    let mut backend = open_existing(target)?;
    let filter = line_filter(filters);
    let (tx, rx) = mpsc::sync_channel(4);
    std::thread::Builder::new()
        .name("llm-usage-db".into())
        .spawn(move || {
            let mut chunk = Vec::with_capacity(CHUNK);
            let result = backend.for_each_line_where(&filter, &mut |line| {
                chunk.extend_from_slice(line.as_bytes());
                chunk.push(b'\n');
                if chunk.len() >= CHUNK {
                    let _ = tx.send(Ok(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))));
                }
            });
            let _ = tx.send(result.map(|()| chunk).map_err(io::Error::other));
        })?;
    Ok(DbLines {
        rx,
        chunk: Vec::new(),
        at: 0,
    })
}

/// Sums the calls stored in `target` per day again.
pub(crate) fn rebuild_daily_sums(target: &str) -> Result<(), String> {
    let at = |e: tracing_llm_usage::store::StoreError| format!("{}: {e}", display_target(target));
    let mut db = Store::open_existing(target).map_err(at)?;
    db.rebuild_daily_sums().map_err(at)
}

/// Says on stderr which imports into `target` (open as `db`) started and have not
/// finished: a report of it leaves out what they had still to store.
fn warn_unfinished_imports(target: &str, db: &mut Store) {
    let Ok(loads) = db.unfinished_imports() else {
        return;
    };
    let Some(first) = loads.first() else { return };
    let more = match loads.len() - 1 {
        0 => String::new(),
        n => format!(", and {n} more"),
    };
    eprintln!(
        "llm-usage: {}: an import started at {} ({}{more}) has not finished: these figures \
         leave out what it had still to store (running it again completes it)",
        display_target(target),
        first.started_at,
        first.process
    );
}

/// How many files were imported into `target`, and how many lines it holds: what `stats`
/// shows as `files` and `lines`.
pub(crate) fn imported_files(target: &str) -> io::Result<(u64, u64)> {
    let mut db = open_existing(target)?;
    let files = db.imported_files().map_err(io::Error::other)?;
    let lines = db.line_count().map_err(io::Error::other)?;
    Ok((files, lines))
}

/// Opens `target` for a report; the first time, says which imports into it have not
/// finished (on the connection the report uses: none is opened for it alone).
fn open_existing(target: &str) -> io::Result<Store> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let mut db = Store::open_existing(target).map_err(io::Error::other)?;
    WARNED.call_once(|| warn_unfinished_imports(target, &mut db));
    Ok(db)
}
