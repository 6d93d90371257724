//! `--db`: the database as a source for every report, and `llm-usage import`.
//!
//! A report reads the stored lines in their logged order, through the same parser and
//! aggregation as files, so its numbers are the files' to the byte. `import` loads files into
//! the database; rows already there (same line, see `tracing_llm_usage::store`) are skipped.

use std::io::{self, Read};
use std::sync::mpsc;

use tracing_llm_usage::store::{display_target, Store};

use super::read::{self, Input};

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

/// Streams the lines of the database `target` (which must exist: a report never creates one).
pub(crate) fn lines(target: &str) -> io::Result<DbLines> {
    let mut backend = open_existing(target)?;
    let (tx, rx) = mpsc::sync_channel(4);
    std::thread::Builder::new()
        .name("llm-usage-db".into())
        .spawn(move || {
            let mut chunk = Vec::with_capacity(CHUNK);
            let result = backend.for_each_line(&mut |line| {
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

/// How many files were imported into `target`: what `stats` shows as `files`.
pub(crate) fn imported_files(target: &str) -> io::Result<u64> {
    open_existing(target)?
        .imported_files()
        .map_err(io::Error::other)
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
                read::open(input, bar).and_then(|mut r| read::split(i, &mut *r, &tx, &pool_rx))
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
