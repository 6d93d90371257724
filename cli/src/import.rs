//! `llm-usage import`: files into a database, skipping rows already there (same line, see
//! `tracing_llm_usage::store`).
//!
//! Three threads, each working on the next transaction while the one after it stores the
//! last: the reader reads and splits the files into blocks, the parser turns a transaction's
//! blocks into rows, this thread stores them.

use std::io;
use std::sync::mpsc;

use tracing_llm_usage::store::{display_target, Parsed, Parser, Store};

use super::read::{self, Filters, Input};

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

/// How many bytes of lines one import transaction holds.
const TRANSACTION_BYTES: usize = 32 << 20;

/// A transaction's blocks: (input, its blocks in order), inputs in order.
type Blocks = Vec<(usize, Vec<Vec<u8>>)>;

self_cell::self_cell!(
    /// One transaction: its blocks, and the rows parsed from them.
    struct Transaction {
        owner: Blocks,
        #[covariant]
        dependent: Rows,
    }
);

/// A transaction's rows, and each part's lines (a part is one input's blocks).
struct Rows<'a> {
    parsed: Parsed<'a>,
    parts: Vec<PartLines>,
}

/// The lines of one part of a transaction.
#[derive(Default)]
struct PartLines {
    /// Lines read.
    lines: u64,
    /// The line number of each text given to the parser.
    numbers: Vec<u64>,
    /// Lines skipped before parsing: (line number, why).
    skipped: Vec<(u64, String)>,
}

/// Parses `blocks` into a transaction; `seen` counts each input's lines so far.
fn parse(blocks: Blocks, parser: &mut Parser, seen: &mut [u64]) -> Transaction {
    Transaction::new(blocks, |blocks| {
        let mut texts: Vec<Vec<&str>> = Vec::with_capacity(blocks.len());
        let mut parts = Vec::with_capacity(blocks.len());
        for (input, part_blocks) in blocks {
            let (mut part, mut part_texts) = (PartLines::default(), Vec::new());
            for raw in part_blocks.iter().flat_map(|b| b.split(|&b| b == b'\n')) {
                // The piece after the last `\n` is empty.
                if raw.is_empty() {
                    continue;
                }
                seen[*input] += 1;
                part.lines += 1;
                let line = seen[*input];
                let text = match read::skipped(raw) {
                    Some(reason) => Err(reason.to_owned()),
                    None => std::str::from_utf8(raw).map_err(|e| format!("invalid UTF-8: {e}")),
                };
                match text {
                    Ok(t) => {
                        part_texts.push(t);
                        part.numbers.push(line);
                    }
                    Err(reason) => part.skipped.push((line, reason)),
                }
            }
            texts.push(part_texts);
            parts.push(part);
        }
        let slices: Vec<&[&str]> = texts.iter().map(Vec::as_slice).collect();
        Rows {
            parsed: parser.parse_parts(&slices),
            parts,
        }
    })
}

/// A parsed transaction, and the inputs before which every line is in it or an earlier one.
struct ParsedTransaction {
    transaction: Transaction,
    read_upto: usize,
}

/// Loads `inputs` into `target` (created and migrated if need be), in transactions of about
/// [`TRANSACTION_BYTES`] of lines whatever the files' sizes; prints a line per input on stdout
/// once its lines are stored.
pub(crate) fn import(
    inputs: &[Input],
    target: &str,
    out: &mut dyn io::Write,
) -> Result<Imported, String> {
    import_in(inputs, target, out, TRANSACTION_BYTES)
}

/// [`import`] in transactions of about `transaction_bytes` of lines.
fn import_in(
    inputs: &[Input],
    target: &str,
    out: &mut dyn io::Write,
    transaction_bytes: usize,
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
        reported: 0,
    };
    let (block_tx, block_rx) = mpsc::sync_channel::<read::Batch>(2);
    // One transaction waits while one is stored: the parser is never more than one ahead.
    let (parsed_tx, parsed_rx) = mpsc::sync_channel::<ParsedTransaction>(0);
    let (pool_tx, pool_rx) = mpsc::channel::<Vec<u8>>();
    let (spent_tx, spent_rx) = mpsc::channel::<Transaction>();
    let pool_rx = std::sync::Mutex::new(pool_rx);
    std::thread::scope(|s| {
        let reader_bar = bar.clone();
        let pool_rx = &pool_rx;
        let reader = s.spawn(move || {
            for (i, input) in inputs.iter().enumerate() {
                read::open(input, reader_bar.clone(), &Filters::default())
                    .and_then(|mut r| read::split(i, &mut *r, &block_tx, pool_rx))
                    .map_err(|e| (i, e))?;
            }
            Ok::<(), (usize, io::Error)>(())
        });
        let parser = s.spawn(move || {
            let stages = Stages {
                blocks: block_rx,
                parsed: parsed_tx,
                spent: spent_rx,
                pool: pool_tx,
            };
            parse_transactions(inputs.len(), transaction_bytes, &stages);
        });
        // The receiver goes with the closure: when storing fails, the parser and then the
        // reader find nobody to send to and stop.
        let stored = (|| {
            for next in parsed_rx {
                load.store(&mut db, &next.transaction)?;
                // Freed, and its blocks given back to the reader, by the parser.
                let _ = spent_tx.send(next.transaction);
                load.report(&mut db, inputs, next.read_upto, out)?;
            }
            Ok::<_, String>((load, db))
        })();
        // A parser that died sent nothing more: what it had not sent is not stored.
        let parsed = parser.join();
        let read = reader.join().unwrap_or_else(|_| {
            Err((inputs.len(), io::Error::other("the reader thread panicked")))
        });
        let (mut load, mut db) = stored?;
        parsed.map_err(|_| "the parser thread panicked: the import is incomplete".to_owned())?;
        // Every input read is stored; one that failed to read is not reported as loaded.
        let read_whole = read.as_ref().map_or_else(|(i, _)| *i, |()| inputs.len());
        load.report(&mut db, inputs, read_whole, out)?;
        read.map_err(|(i, e)| {
            let name = load.names.get(i).map_or("<input>", String::as_str);
            format!("{name}: {e}")
        })?;
        Ok((load, db))
    })
    .and_then(|(load, mut db)| {
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
    })
}

/// The parser thread's channels.
struct Stages {
    /// From the reader.
    blocks: mpsc::Receiver<read::Batch>,
    /// To the thread that stores.
    parsed: mpsc::SyncSender<ParsedTransaction>,
    /// Transactions stored, to free here rather than on the thread that stores.
    spent: mpsc::Receiver<Transaction>,
    /// Blocks back to the reader.
    pool: mpsc::Sender<Vec<u8>>,
}

/// The parser thread: gathers blocks into transactions of `transaction_bytes`, parses each
/// and sends it on, until the reader is done or nobody takes them.
fn parse_transactions(inputs: usize, transaction_bytes: usize, stages: &Stages) {
    let mut parser = Parser::default();
    let mut seen = vec![0u64; inputs];
    let (mut pending, mut bytes): (Blocks, usize) = (Vec::new(), 0);
    let mut send = |pending: Blocks| {
        // Inputs before the last one in the transaction are read whole.
        let read_upto = pending.last().map_or(0, |(i, _)| *i);
        let transaction = parse(pending, &mut parser, &mut seen);
        stages
            .parsed
            .send(ParsedTransaction {
                transaction,
                read_upto,
            })
            .is_ok()
    };
    for batch in &stages.blocks {
        for spent in stages.spent.try_iter() {
            for b in spent.into_owner().into_iter().flat_map(|(_, b)| b) {
                let _ = stages.pool.send(b);
            }
        }
        bytes += batch.bytes.len();
        match pending.last_mut() {
            Some((i, part)) if *i == batch.input => part.push(batch.bytes),
            _ => pending.push((batch.input, vec![batch.bytes])),
        }
        if bytes >= transaction_bytes {
            bytes = 0;
            if !send(std::mem::take(&mut pending)) {
                return;
            }
        }
    }
    if !pending.is_empty() {
        send(pending);
    }
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

/// An import under way: each input's counts.
struct Load {
    files: Vec<Imported>,
    names: Vec<String>,
    /// Inputs before this one are reported.
    reported: usize,
}

impl Load {
    /// Stores a transaction and counts what it did.
    fn store(&mut self, db: &mut Store, transaction: &Transaction) -> Result<(), String> {
        transaction.with_dependent(|blocks, rows| {
            let done = db.insert_parsed(&rows.parsed).map_err(|e| {
                let name = blocks.first().map_or("<input>", |(i, _)| &self.names[*i]);
                format!("{name}: {e}")
            })?;
            for (((input, _), done), part) in blocks.iter().zip(done).zip(&rows.parts) {
                let file = &mut self.files[*input];
                file.lines += part.lines;
                file.added += done.added;
                let mut bad = part.skipped.clone();
                bad.extend(done.rejected.into_iter().map(|(i, r)| (part.numbers[i], r)));
                bad.sort_by_key(|(line, _)| *line);
                for (line, reason) in bad {
                    file.problem_count += 1;
                    if file.problems.len() < 10 {
                        file.problems
                            .push((self.names[*input].clone(), line, reason));
                    }
                }
            }
            Ok(())
        })
    }

    /// Logs and prints the inputs before `upto` not reported yet: their lines are all stored.
    fn report(
        &mut self,
        db: &mut Store,
        inputs: &[Input],
        upto: usize,
        out: &mut dyn io::Write,
    ) -> Result<(), String> {
        while self.reported < upto {
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

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    fn call(n: usize) -> String {
        format!(
            r#"{{"timestamp":"2025-12-14T10:30:15.123Z","event":"llm_call","run_id":"r{n}","tokens":{{"input":{n},"output":1}}}}"#
        )
    }

    /// Transactions of one block each (the second file spans two blocks): every input is
    /// counted in its own line, a skipped line is named by its number in its file, and the
    /// store holds what one transaction would have stored.
    #[test]
    fn inputs_are_counted_alike_however_the_transactions_fall() {
        let dir = tempfile::tempdir().unwrap();
        let a: Vec<String> = (0..10)
            .map(|n| if n == 4 { "{".to_owned() } else { call(n) })
            .collect();
        // More than a block (1 MiB): the bad line is in the second.
        let c: Vec<String> = (10..12_010)
            .map(|n| {
                if n == 11_999 {
                    "not json".to_owned()
                } else {
                    call(n)
                }
            })
            .collect();
        let files = [
            ("a.jsonl", a.join("\n") + "\n"),
            ("b.jsonl", String::new()),
            ("c.jsonl", c.join("\n") + "\n"),
        ];
        let inputs: Vec<Input> = files
            .iter()
            .map(|(name, text)| {
                let p = dir.path().join(name);
                std::fs::write(&p, text).unwrap();
                Input::File(p)
            })
            .collect();
        assert!(files[2].1.len() > 1 << 20);
        let mut outs = Vec::new();
        let mut counts = Vec::new();
        for (i, bytes) in [TRANSACTION_BYTES, 1].into_iter().enumerate() {
            let target = dir.path().join(format!("{i}.sqlite"));
            let target = target.to_str().unwrap();
            let mut out = Vec::new();
            let done = import_in(&inputs, target, &mut out, bytes).unwrap();
            assert_eq!(
                (done.lines, done.added, done.problem_count),
                (12_010, 12_008, 2)
            );
            let problems: Vec<(String, u64)> = done
                .problems
                .iter()
                .map(|(f, l, _)| (f.clone(), *l))
                .collect();
            assert_eq!(
                problems,
                [(inputs[0].name(), 5), (inputs[2].name(), 11_990)]
            );
            let mut db = Store::open(target).unwrap();
            counts.push(db.line_count().unwrap());
            outs.push(String::from_utf8(out).unwrap());
        }
        assert_eq!(counts, [12_008, 12_008]);
        assert_eq!(outs[0], outs[1]);
        assert_eq!(
            outs[1],
            format!(
                "{}: 10 lines, 9 rows added, 0 already there, 1 skipped\n\
                 {}: 0 lines, 0 rows added, 0 already there, 0 skipped\n\
                 {}: 12000 lines, 11999 rows added, 0 already there, 1 skipped\n",
                inputs[0].name(),
                inputs[1].name(),
                inputs[2].name()
            )
        );
    }
}
