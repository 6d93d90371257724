//! `--db`: the database as a source for every report, and `llm-usage import`.
//!
//! A report reads the stored lines in their logged order, through the same parser and
//! aggregation as files, so its numbers are the files' to the byte. `import` loads files into
//! the database; rows already there (same line, see `tracing_llm_usage::store`) are skipped.

use std::io::{self, Read};
use std::sync::mpsc;

use tracing_llm_usage::store::{display_target, Field, GroupBy, LineFilter, Store};

use super::agg::{Acc, Dim};
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

/// `by <dim>` summed by the database, when it can give exactly what the lines would: a field
/// or the day, with no attribute to match; `None` when it cannot (or fails: the report then
/// reads the lines, and says what is wrong with them).
pub(crate) fn by(target: &str, filters: &Filters, dim: Dim) -> Option<read::Scan> {
    let (any, groups) = groups(target, filters, dim)?.ok()?;
    let mut agg = super::agg::Aggregate::default();
    agg.by.insert(dim, groups);
    Some(read::Scan {
        agg,
        replay: None,
        problems: Vec::new(),
        problem_count: 0,
        torn: 0,
        lines: u64::from(any),
    })
}

fn groups(
    target: &str,
    filters: &Filters,
    dim: Dim,
) -> Option<io::Result<(bool, hashbrown::HashMap<String, Acc>)>> {
    let by = match dim {
        Dim::Step => GroupBy::Field(Field::Step),
        Dim::Model => GroupBy::Field(Field::Model),
        Dim::Provider => GroupBy::Field(Field::Provider),
        Dim::Task => GroupBy::Field(Field::Task),
        Dim::Agent => GroupBy::Field(Field::Agent),
        Dim::Day => GroupBy::Day,
        Dim::Run => return None,
    };
    let filter = line_filter(filters);
    if !filter.attributes.is_empty() {
        return None;
    }
    let result = (|| {
        let mut db = open_existing(target)?;
        let any = db.has_lines().map_err(io::Error::other)?;
        let sums = db.sum_calls(&filter, by).map_err(io::Error::other)?;
        Ok((any, sums))
    })();
    Some(result.map(|(any, sums)| {
        let groups = sums
            .into_iter()
            .map(|s| {
                let key = s.key.clone().unwrap_or_else(|| super::agg::NONE.to_owned());
                (key, Acc::from_sums(&s))
            })
            .collect();
        (any, groups)
    }))
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

/// How many files were imported into `target`, and how many lines it holds: what `stats`
/// shows as `files` and `lines`.
pub(crate) fn imported_files(target: &str) -> io::Result<(u64, u64)> {
    let mut db = open_existing(target)?;
    let files = db.imported_files().map_err(io::Error::other)?;
    let lines = db.line_count().map_err(io::Error::other)?;
    Ok((files, lines))
}

fn open_existing(target: &str) -> io::Result<Store> {
    Store::open_existing(target).map_err(io::Error::other)
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

/// Loads `inputs` into `target` (created and migrated if need be), one transaction per block
/// of lines; prints a line per input on stdout.
pub(crate) fn import(
    inputs: &[Input],
    target: &str,
    out: &mut dyn io::Write,
) -> Result<Imported, String> {
    let mut db = Store::open(target).map_err(|e| format!("{}: {e}", display_target(target)))?;
    db.prepare_bulk()
        .map_err(|e| format!("{}: {e}", display_target(target)))?;
    let bar = read::progress(read::total_bytes(inputs));
    let mut all = Imported::default();
    for (i, input) in inputs.iter().enumerate() {
        let name = input.name();
        let mut file = Imported::default();
        let (tx, rx) = mpsc::sync_channel::<read::Batch>(2);
        let (pool_tx, pool_rx) = mpsc::channel::<Vec<u8>>();
        let pool_rx = std::sync::Mutex::new(pool_rx);
        let result = std::thread::scope(|s| {
            let bar = bar.clone();
            let reader = s.spawn(move || {
                read::open(input, bar, &Filters::default())
                    .and_then(|mut r| read::split(i, &mut *r, &tx, &pool_rx))
            });
            // The reader thread reads and splits the next block while this one is stored.
            let stored = (|| {
                // Blocks are gathered into large transactions: every commit rewrites the index
                // pages it touched, so fewer commits write far less.
                let mut group: Vec<Vec<u8>> = Vec::new();
                let mut bytes = 0;
                for batch in rx.iter() {
                    bytes += batch.bytes.len();
                    group.push(batch.bytes);
                    if bytes >= TRANSACTION_BYTES {
                        store(&mut db, &group, &name, &mut file)?;
                        for b in group.drain(..) {
                            let _ = pool_tx.send(b);
                        }
                        bytes = 0;
                    }
                }
                store(&mut db, &group, &name, &mut file)
            })();
            drop(rx);
            let read = reader
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the reader thread panicked")));
            stored?;
            read.map_err(|e| format!("{name}: {e}"))
        });
        result?;
        if let Input::File(p) = input {
            let path = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
            db.log_import(&path.display().to_string(), file.lines, file.added)
                .map_err(|e| format!("{}: {e}", display_target(target)))?;
        }
        let _ = writeln!(
            out,
            "{}: {} lines, {} rows added, {} already there, {} skipped",
            tracing_llm_usage::__private::terminal(&name),
            file.lines,
            file.added,
            file.lines - file.added - file.problem_count,
            file.problem_count
        );
        all.lines += file.lines;
        all.added += file.added;
        all.problem_count += file.problem_count;
        all.problems.extend(file.problems);
    }
    db.finish_bulk()
        .map_err(|e| format!("{}: {e}", display_target(target)))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    all.problems.truncate(10);
    Ok(all)
}

/// How many bytes of lines one import transaction holds.
const TRANSACTION_BYTES: usize = 64 << 20;

/// Stores blocks of lines in one transaction.
fn store(
    db: &mut Store,
    blocks: &[Vec<u8>],
    name: &str,
    file: &mut Imported,
) -> Result<(), String> {
    let mut texts = Vec::new();
    // The line number of each text given to the store.
    let mut numbers = Vec::new();
    let mut problems = Vec::new();
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
                numbers.push(file.lines);
            }
            Err(reason) => problems.push((file.lines, reason)),
        }
    }
    let done = db.insert(&texts).map_err(|e| format!("{name}: {e}"))?;
    file.added += done.added;
    problems.extend(done.rejected.into_iter().map(|(i, r)| (numbers[i], r)));
    problems.sort_by_key(|(line, _)| *line);
    for (line, reason) in problems {
        file.problem_count += 1;
        if file.problems.len() < 10 {
            file.problems.push((name.to_owned(), line, reason));
        }
    }
    Ok(())
}
