//! `--db`: the database as a source for every report, and `llm-usage import`.
//!
//! A report reads the stored lines in their logged order, through the same parser and
//! aggregation as files, so its numbers are the files' to the byte. `import` loads files into
//! the database; rows already there (same line, see `tracing_llm_usage::store`) are skipped.

use std::io::{self, Read};
use std::sync::mpsc;

use tracing_llm_usage::store::{display_target, Field, GroupBy, LineFilter, Store};

use super::agg::{Acc, Dim, Needs};
use super::read::{self, Filters, Input};

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
        Some((db.has_lines().ok()?, totals, budget))
    });
    let (any, totals, budget) = read.ok().flatten()?;
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
    Some(Ok(summed(agg, any)))
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

/// What an import did.
#[derive(Debug, Default)]
pub(crate) struct Imported {
    /// Lines read.
    pub(crate) lines: u64,
    /// Rows added (the rest were there already, or skipped).
    pub(crate) added: u64,
    /// Lines that could not be stored: (input, line number, reason), the first 10.
    pub(crate) problems: Vec<(String, u64, String)>,
    pub(crate) problem_count: u64,
}

/// Loads `inputs` into `target` (created and migrated if need be), in transactions of about
/// [`TRANSACTION_BYTES`] of lines whatever the files' sizes; prints a line per input on stdout
/// once its lines are stored.
pub(crate) fn import(
    inputs: &[Input],
    target: &str,
    out: &mut dyn io::Write,
) -> Result<Imported, String> {
    let at = |e: tracing_llm_usage::store::StoreError| format!("{}: {e}", display_target(target));
    // A new SQLite file is loaded beside its place, without a journal, and moved there when
    // complete: nothing half-loaded is ever at `target` (a failed load deletes its file).
    let aside = new_sqlite_file(target);
    let mut db = Store::open(aside.as_ref().map_or(target, |(_, work)| work)).map_err(at)?;
    db.prepare_bulk().map_err(at)?;
    if aside.is_some() {
        db.write_unjournaled().map_err(at)?;
    }
    let bar = read::progress(read::total_bytes(inputs));
    let mut load = Load {
        files: inputs.iter().map(|_| Imported::default()).collect(),
        names: inputs.iter().map(Input::name).collect(),
        pending: Vec::new(),
        bytes: 0,
        reported: 0,
    };
    let (tx, rx) = mpsc::sync_channel::<read::Batch>(2);
    let (pool_tx, pool_rx) = mpsc::channel::<Vec<u8>>();
    let pool_rx = std::sync::Mutex::new(pool_rx);
    std::thread::scope(|s| {
        let reader_bar = bar.clone();
        // The reader thread reads and splits the next block while this one is stored.
        let reader = s.spawn(move || {
            for (i, input) in inputs.iter().enumerate() {
                read::open(input, reader_bar.clone(), &Filters::default())
                    .and_then(|mut r| read::split(i, &mut *r, &tx, &pool_rx))
                    .map_err(|e| (i, e))?;
            }
            Ok::<(), (usize, io::Error)>(())
        });
        let stored = (|| {
            for batch in rx.iter() {
                // The inputs before this one are read whole.
                load.report(&mut db, inputs, batch.input, out)?;
                load.bytes += batch.bytes.len();
                match load.pending.last_mut() {
                    Some((i, blocks)) if *i == batch.input => blocks.push(batch.bytes),
                    _ => load.pending.push((batch.input, vec![batch.bytes])),
                }
                if load.bytes >= TRANSACTION_BYTES {
                    for b in load.store(&mut db)? {
                        let _ = pool_tx.send(b);
                    }
                }
            }
            load.store(&mut db).map(drop)
        })();
        let read = reader.join().unwrap_or_else(|_| {
            Err((inputs.len(), io::Error::other("the reader thread panicked")))
        });
        stored?;
        // Every input read is stored; one that failed to read is not reported as loaded.
        let read_whole = read.as_ref().map_or_else(|(i, _)| *i, |()| inputs.len());
        load.report(&mut db, inputs, read_whole, out)?;
        read.map_err(|(i, e)| {
            let name = load.names.get(i).map_or("<input>", String::as_str);
            format!("{name}: {e}")
        })
    })?;
    db.finish_bulk().map_err(at)?;
    drop(db);
    if let Some((file, _)) = aside {
        let place = target.strip_prefix("sqlite:").unwrap_or(target);
        file.persist_noclobber(place)
            .map_err(|e| format!("{}: {}", display_target(target), e.error))?;
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut all = Imported::default();
    for file in load.files {
        all.lines += file.lines;
        all.added += file.added;
        all.problem_count += file.problem_count;
        all.problems.extend(file.problems);
    }
    all.problems.truncate(10);
    Ok(all)
}

/// For a SQLite `target` that does not exist: a new file beside it to load (deleted when
/// dropped), and its path.
fn new_sqlite_file(target: &str) -> Option<(tempfile::TempPath, String)> {
    if tracing_llm_usage::store::is_postgres(target) {
        return None;
    }
    let path = target.strip_prefix("sqlite:").unwrap_or(target);
    let place = std::path::Path::new(path);
    if path == ":memory:" || place.symlink_metadata().is_ok() || place.file_name().is_none() {
        return None;
    }
    let dir = match place.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".llm-usage-import-");
    // The mode a store the library makes has (group-readable, as the JSONL files).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o640));
    let file = builder.tempfile_in(dir).ok()?.into_temp_path();
    let work = file.to_str()?.to_owned();
    Some((file, work))
}

/// How many bytes of lines one import transaction holds.
const TRANSACTION_BYTES: usize = 64 << 20;

/// An import under way: each input's counts, and the blocks read but not stored yet.
struct Load {
    files: Vec<Imported>,
    names: Vec<String>,
    /// (input, its blocks in order), inputs in order.
    pending: Vec<(usize, Vec<Vec<u8>>)>,
    bytes: usize,
    /// Inputs before this one are reported.
    reported: usize,
}

impl Load {
    /// Stores the pending blocks in one transaction; gives the blocks back for reuse.
    fn store(&mut self, db: &mut Store) -> Result<Vec<Vec<u8>>, String> {
        let pending = std::mem::take(&mut self.pending);
        self.bytes = 0;
        let mut parts: Vec<Vec<&str>> = Vec::with_capacity(pending.len());
        // The line number of each text given to the store, per part.
        let mut numbers: Vec<Vec<u64>> = Vec::with_capacity(pending.len());
        let mut problems: Vec<Vec<(u64, String)>> = Vec::with_capacity(pending.len());
        for (input, blocks) in &pending {
            let file = &mut self.files[*input];
            let (mut texts, mut lines, mut bad) = (Vec::new(), Vec::new(), Vec::new());
            for raw in blocks.iter().flat_map(|b| b.split(|&b| b == b'\n')) {
                // The piece after the last `\n` is empty.
                if raw.is_empty() {
                    continue;
                }
                file.lines += 1;
                let text = match read::skipped(raw) {
                    Some(reason) => Err(reason.to_owned()),
                    None => std::str::from_utf8(raw).map_err(|e| format!("invalid UTF-8: {e}")),
                };
                match text {
                    Ok(t) => {
                        texts.push(t);
                        lines.push(file.lines);
                    }
                    Err(reason) => bad.push((file.lines, reason)),
                }
            }
            parts.push(texts);
            numbers.push(lines);
            problems.push(bad);
        }
        let slices: Vec<&[&str]> = parts.iter().map(Vec::as_slice).collect();
        let done = db.insert_parts(&slices).map_err(|e| {
            let name = pending.first().map_or("<input>", |(i, _)| &self.names[*i]);
            format!("{name}: {e}")
        })?;
        for ((((input, _), done), numbers), mut bad) in
            pending.iter().zip(done).zip(&numbers).zip(problems)
        {
            let file = &mut self.files[*input];
            file.added += done.added;
            bad.extend(done.rejected.into_iter().map(|(i, r)| (numbers[i], r)));
            bad.sort_by_key(|(line, _)| *line);
            for (line, reason) in bad {
                file.problem_count += 1;
                if file.problems.len() < 10 {
                    file.problems
                        .push((self.names[*input].clone(), line, reason));
                }
            }
        }
        Ok(pending.into_iter().flat_map(|(_, b)| b).collect())
    }

    /// Logs and prints the inputs before `upto` whose lines are all stored.
    fn report(
        &mut self,
        db: &mut Store,
        inputs: &[Input],
        upto: usize,
        out: &mut dyn io::Write,
    ) -> Result<(), String> {
        let stored_upto = self.pending.first().map_or(upto, |(i, _)| (*i).min(upto));
        while self.reported < stored_upto {
            let i = self.reported;
            let file = &self.files[i];
            if let Input::File(p) = &inputs[i] {
                let path = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
                db.log_import(&path.display().to_string(), file.lines, file.added)
                    .map_err(|e| format!("{}: {e}", self.names[i]))?;
            }
            let _ = writeln!(
                out,
                "{}: {} lines, {} rows added, {} already there, {} skipped",
                tracing_llm_usage::__private::terminal(&self.names[i]),
                file.lines,
                file.added,
                file.lines - file.added - file.problem_count,
                file.problem_count
            );
            self.reported += 1;
        }
        Ok(())
    }
}
