//! Reading the logs: files (plain or gzip), directories (their `*.jsonl` and `*.jsonl.gz`),
//! or `-` for stdin. One thread reads blocks of whole lines; worker threads parse and
//! aggregate them, so both cores work. Memory is bounded whatever the input: a line longer than
//! [`MAX_LINE`] is skipped as it streams past, never held whole.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::PathBuf;
use std::sync::mpsc;

use super::agg::{Aggregate, Needs};
use super::replay;
use super::runs::{Listing, Runs};
use tracing_llm_usage::format::decode as line;
use tracing_llm_usage::record::Timestamp;

/// Lines longer than this are rejected unread.
pub(crate) const MAX_LINE: usize = 1 << 20;
const BLOCK: usize = 1 << 20;
const TOO_LONG: &[u8] = b"\x01too-long";
const TORN: &[u8] = b"\x01torn";
/// Show a progress bar above this many bytes (when stderr is a terminal).
const PROGRESS_BYTES: u64 = 64 << 20;

/// An input: a file, stdin, or the lines stored in a database (`--db`).
#[derive(Clone, Debug)]
pub(crate) enum Input {
    File(PathBuf),
    Stdin,
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    Db(String),
}

impl Input {
    pub(crate) fn name(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Stdin => "<stdin>".into(),
            // A database URL's password is never shown.
            #[cfg(any(feature = "sqlite", feature = "postgres"))]
            Input::Db(target) => tracing_llm_usage::store::display_target(target),
            #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
            Input::Db(_) => "the database".into(),
        }
    }
}

/// Expands the paths given on the command line.
pub(crate) fn inputs(paths: &[PathBuf]) -> Result<Vec<Input>, String> {
    let default = [PathBuf::from("./llm_usage_logs")];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            out.push(Input::Stdin);
            continue;
        }
        let meta = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        if meta.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    name.ends_with(".jsonl") || name.ends_with(".jsonl.gz")
                })
                .collect();
            files.sort();
            out.extend(files.into_iter().map(Input::File));
        } else {
            out.push(Input::File(p.clone()));
        }
    }
    Ok(out)
}

/// Which lines count: time range and equality filters.
#[derive(Clone, Debug, Default)]
pub(crate) struct Filters {
    /// Inclusive lower bound, canonical form.
    pub(crate) since: Option<String>,
    /// Upper bound, canonical form; exclusive when `until_exclusive`.
    pub(crate) until: Option<String>,
    pub(crate) until_exclusive: bool,
    pub(crate) run: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) step: Option<String>,
    /// `--where KEY=VALUE`, each of which a line must match.
    pub(crate) wheres: Vec<(String, String)>,
}

/// The fields `--where` names directly; any other key is an attribute.
pub(crate) const WHERE_FIELDS: [&str; 6] = ["run_id", "step", "model", "provider", "task", "agent"];

/// `KEY=VALUE` as given to `--where`.
pub(crate) fn where_clause(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!(
            "--where {text:?}: expected KEY=VALUE (a field such as step or model, or an attribute \
             such as tenant)"
        )),
    }
}

/// Whether a line matches `key=value`: a field of the line, else one of its attributes (a
/// budget line: the attribute its per-value budget is about). A line without the key does
/// not match; run summaries are kept by a call field other than `run_id`, as by `--step`.
fn matches_where(l: &line::Line<'_>, key: &str, value: &str) -> bool {
    let field = |v: &Option<std::borrow::Cow<'_, str>>| v.as_deref() == Some(value);
    match key {
        "run_id" => field(&l.run_id),
        k if WHERE_FIELDS.contains(&k) && l.event == "run_summary" => true,
        "step" => field(&l.step),
        "model" => field(&l.model),
        "provider" => field(&l.provider),
        "task" => field(&l.task),
        "agent" => field(&l.agent),
        _ if l.event.starts_with("budget_") => {
            l.attribute.as_deref() == Some(key) && field(&l.attribute_value)
        }
        _ => super::agg::attributes_of(l)
            .iter()
            .any(|(k, v)| k == key && v == value),
    }
}

/// A date (`2025-12-14`, the whole UTC day) or an RFC 3339 instant, as the canonical
/// timestamp text the logs use; for a date as an upper bound, the next day (exclusive).
pub(crate) fn bound(text: &str, upper: bool) -> Result<(String, bool), String> {
    if let Some(date) = parse_date(text) {
        let day = if upper {
            date.next_day().unwrap_or(date)
        } else {
            date
        };
        let ms = day.midnight().assume_utc().unix_timestamp() * 1000;
        return Ok((Timestamp::from_unix_ms(ms).to_string(), upper));
    }
    match Timestamp::parse(text) {
        Some(ts) => Ok((ts.to_string(), false)),
        None => Err(format!(
            "{text:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 timestamp"
        )),
    }
}

fn parse_date(text: &str) -> Option<time::Date> {
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
    time::Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
}

fn canonical(ts: &str) -> std::borrow::Cow<'_, str> {
    // The logs' own form compares as text; anything else is parsed.
    if ts.len() == 24 && ts.ends_with('Z') {
        std::borrow::Cow::Borrowed(ts)
    } else {
        match Timestamp::parse(ts) {
            Some(t) => std::borrow::Cow::Owned(t.to_string()),
            None => std::borrow::Cow::Borrowed(ts),
        }
    }
}

impl Filters {
    pub(crate) fn keep(&self, l: &line::Line<'_>) -> bool {
        if self.since.is_some() || self.until.is_some() {
            let ts = canonical(&l.timestamp);
            if self.since.as_deref().is_some_and(|s| *ts < *s) {
                return false;
            }
            if let Some(u) = self.until.as_deref() {
                if (self.until_exclusive && *ts >= *u) || *ts > *u {
                    return false;
                }
            }
        }
        if self.run.is_some() && l.run_id.as_deref() != self.run.as_deref() {
            return false;
        }
        if l.event != "run_summary" {
            if self.model.is_some() && l.model.as_deref() != self.model.as_deref() {
                return false;
            }
            if self.step.is_some() && l.step.as_deref() != self.step.as_deref() {
                return false;
            }
        }
        self.wheres.iter().all(|(k, v)| matches_where(l, k, v))
    }
}

/// A line that was skipped, and why.
#[derive(Clone, Debug)]
pub(crate) struct Problem {
    pub(crate) input: usize,
    pub(crate) batch: usize,
    pub(crate) line_in_batch: usize,
    pub(crate) reason: String,
}

/// The result of reading everything.
pub(crate) struct Scan {
    pub(crate) agg: Aggregate,
    /// `budget`'s replay of the calls.
    pub(crate) replay: Option<replay::Replay>,
    /// The first problems in input order, with their line numbers: (input name, line, reason).
    pub(crate) problems: Vec<(String, u64, String)>,
    pub(crate) problem_count: u64,
    pub(crate) torn: u64,
    pub(crate) lines: u64,
    /// `stats` summed by a database: the files imported into it and the lines it stores, read
    /// in the snapshot the sums were read in.
    pub(crate) stored: Option<(u64, u64)>,
}

const KEEP_PROBLEMS: usize = 10;

/// Why a piece of a batch is not a line to parse: a [`TOO_LONG`] or [`TORN`] marker.
pub(crate) fn skipped(raw: &[u8]) -> Option<&'static str> {
    if raw == TOO_LONG || raw.len() > MAX_LINE {
        Some("line longer than 1 MB, skipped")
    } else if raw == TORN {
        Some("torn last line (no newline: a writer killed mid-line?), skipped")
    } else {
        None
    }
}

/// A block of whole lines from one input; lines too long or torn are replaced by
/// [`TOO_LONG`] and [`TORN`] markers.
pub(crate) struct Batch {
    pub(crate) input: usize,
    pub(crate) index: usize,
    pub(crate) bytes: Vec<u8>,
}

#[derive(Default)]
struct WorkerOut {
    agg: Aggregate,
    problems: Vec<Problem>,
    problem_count: u64,
    torn: u64,
    /// (input, batch) → lines in it.
    line_counts: Vec<((usize, usize), u64)>,
}

fn work(
    rx: &std::sync::Mutex<mpsc::Receiver<Batch>>,
    filters: &Filters,
    needs: &Needs,
    pool: mpsc::Sender<Vec<u8>>,
    replay: Option<mpsc::Sender<replay::Msg>>,
    runs: &std::sync::Mutex<Runs>,
) -> WorkerOut {
    let mut out = WorkerOut::default();
    loop {
        let batch = match rx.lock().map(|r| r.recv()) {
            Ok(Ok(b)) => b,
            _ => return out,
        };
        // One UTF-8 check for the whole batch (fast on ASCII) instead of one per string; a
        // batch with invalid bytes is parsed line by line, so only the bad lines fail.
        let text = std::str::from_utf8(&batch.bytes).ok();
        let mut n = 0usize;
        let mut start = 0usize;
        let bytes = &batch.bytes;
        for end in memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len())) {
            let raw = &bytes[start..end];
            let from = start;
            start = end + 1;
            if raw.is_empty() {
                n += 1;
                continue;
            }
            let reason = if let Some(reason) = skipped(raw) {
                if raw == TORN {
                    out.torn += 1;
                }
                Some(reason.to_owned())
            } else {
                let parsed = match text {
                    Some(t) => line::parse_str(&t[from..end]),
                    None => line::parse(raw),
                };
                match parsed {
                    Ok(l) => {
                        if filters.keep(&l) {
                            out.agg.add(&l, (batch.input, batch.index, n), needs);
                        }
                        None
                    }
                    Err(e) => Some(e),
                }
            };
            if let Some(reason) = reason {
                out.problem_count += 1;
                if out.problems.len() < KEEP_PROBLEMS {
                    out.problems.push(Problem {
                        input: batch.input,
                        batch: batch.index,
                        line_in_batch: n,
                        reason,
                    });
                }
            }
            n += 1;
        }
        // The empty piece after the last `\n` is not a line.
        out.line_counts
            .push(((batch.input, batch.index), n.saturating_sub(1) as u64));
        if needs.runs != Listing::None {
            // One table for all workers, fed a batch's runs at a time: a run seen by two
            // workers is kept once.
            if let Ok(mut all) = runs.lock() {
                all.merge_from(&out.agg.runs);
            }
            out.agg.runs.clear();
        }
        if let Some(tx) = &replay {
            let _ = tx.send(replay::Msg::Batch {
                input: batch.input,
                index: batch.index,
                calls: std::mem::take(&mut out.agg.spend),
            });
        }
        let _ = pool.send(batch.bytes);
    }
}

/// A progress bar over `total` bytes, for large inputs when stderr is a terminal.
pub(crate) fn progress(total: u64) -> Option<indicatif::ProgressBar> {
    (total > PROGRESS_BYTES && io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style);
        }
        bar
    })
}

/// The total size of the file inputs.
pub(crate) fn total_bytes(inputs: &[Input]) -> u64 {
    inputs
        .iter()
        .filter_map(|i| match i {
            Input::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            Input::Stdin | Input::Db(_) => None,
        })
        .sum()
}

/// Counts bytes read, for the progress bar.
struct Counted<R> {
    inner: R,
    bar: Option<indicatif::ProgressBar>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }
}

/// Opens an input as a stream of bytes (gzip decoded; a database's lines one after another,
/// only those `filters` may keep).
pub(crate) fn open(
    input: &Input,
    bar: Option<indicatif::ProgressBar>,
    filters: &Filters,
) -> io::Result<Box<dyn Read + Send>> {
    let raw: Box<dyn Read + Send> = match input {
        Input::Stdin => Box::new(io::stdin()),
        Input::File(p) => Box::new(File::open(p)?),
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        Input::Db(target) => Box::new(super::db::lines(target, filters)?),
        #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
        Input::Db(_) => {
            let _ = filters;
            return Err(io::Error::other(super::NO_ENGINE));
        }
    };
    let counted = Counted { inner: raw, bar };
    let gz = matches!(input, Input::File(p) if p.extension().is_some_and(|e| e == "gz"));
    Ok(if gz {
        Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(
            counted,
        )))
    } else {
        Box::new(counted)
    })
}

/// Splits one input into batches of whole lines.
pub(crate) fn split(
    input_idx: usize,
    r: &mut dyn Read,
    tx: &mpsc::SyncSender<Batch>,
    pool: &std::sync::Mutex<mpsc::Receiver<Vec<u8>>>,
) -> io::Result<usize> {
    let mut buf: Vec<u8> = Vec::with_capacity(BLOCK + MAX_LINE);
    let mut skipping = false;
    let sent = std::cell::Cell::new(0usize);
    // Nobody takes the blocks any more (the reader's consumer stopped): stop reading.
    let gone = std::cell::Cell::new(false);
    let send = |bytes: Vec<u8>| {
        let batch = Batch {
            input: input_idx,
            index: sent.get(),
            bytes,
        };
        gone.set(tx.send(batch).is_err());
        sent.set(sent.get() + 1);
    };
    loop {
        if gone.get() {
            return Ok(sent.get());
        }
        // Appends into spare capacity: no zero-filling of the block first.
        let n = (&mut *r).take(BLOCK as u64).read_to_end(&mut buf)?;
        let eof = n == 0;
        if skipping {
            match memchr(&buf) {
                Some(nl) => {
                    buf.drain(..=nl);
                    skipping = false;
                    send([TOO_LONG, b"\n"].concat());
                }
                None => {
                    buf.clear();
                    if eof {
                        send([TOO_LONG, b"\n"].concat());
                        return Ok(sent.get());
                    }
                    continue;
                }
            }
        }
        match memchr::memrchr(b'\n', &buf) {
            Some(last) => {
                // A buffer the workers are done with, so blocks are not allocated afresh.
                let recycled = pool.lock().ok().and_then(|p| p.try_recv().ok());
                let mut next = recycled.unwrap_or_else(|| Vec::with_capacity(BLOCK + MAX_LINE));
                next.clear();
                next.extend_from_slice(&buf[last + 1..]);
                buf.truncate(last + 1);
                send(std::mem::replace(&mut buf, next));
            }
            None if buf.len() > MAX_LINE => {
                buf.clear();
                skipping = true;
                continue;
            }
            None => {}
        }
        if eof {
            if !buf.is_empty() {
                send([TORN, b"\n"].concat());
            }
            return Ok(sent.get());
        }
    }
}

fn memchr(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}

/// Reads every input through `threads` workers.
pub(crate) fn scan(
    inputs: &[Input],
    filters: &Filters,
    needs: &Needs,
    limits: Option<replay::Limits>,
) -> Result<Scan, String> {
    let bar = progress(total_bytes(inputs));
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    let (tx, rx) = mpsc::sync_channel::<Batch>(threads * 2);
    let rx = std::sync::Mutex::new(rx);
    let (pool_tx, pool_rx) = mpsc::channel::<Vec<u8>>();
    let mut outs = Vec::new();
    let mut replayed = None;
    let runs = std::sync::Mutex::new(Runs::default());
    let read_result = std::thread::scope(|s| {
        // `budget`: one more thread replays the batches in order as workers finish them.
        let (replay_tx, replay_rx) = mpsc::channel::<replay::Msg>();
        let replayer = limits.map(|l| s.spawn(move || replay::collect(replay_rx, l)));
        let replay_tx = replayer.is_some().then_some(replay_tx);
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let pool = pool_tx.clone();
                let replay = replay_tx.clone();
                s.spawn(|| work(&rx, filters, needs, pool, replay, &runs))
            })
            .collect();
        // Several files are read (and decompressed) at once, each by one reader, so that its
        // batches keep their order.
        let pool_rx = std::sync::Mutex::new(pool_rx);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed = std::sync::Mutex::new(None::<(usize, String)>);
        let readers = threads.min(inputs.len()).max(1);
        std::thread::scope(|rs| {
            for _ in 0..readers {
                rs.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(input) = inputs.get(i) else { return };
                    let read = open(input, bar.clone(), filters)
                        .and_then(|mut r| split(i, &mut *r, &tx, &pool_rx));
                    if let (Ok(batches), Some(replay)) = (&read, &replay_tx) {
                        let _ = replay.send(replay::Msg::End {
                            input: i,
                            batches: *batches,
                        });
                    }
                    if let Err(e) = read {
                        if let Ok(mut f) = failed.lock() {
                            if f.as_ref().is_none_or(|(j, _)| i < *j) {
                                *f = Some((i, format!("{}: {e}", input.name())));
                            }
                        }
                        // No more inputs: the first failure ends the scan.
                        next.store(inputs.len(), std::sync::atomic::Ordering::Relaxed);
                        return;
                    }
                });
            }
        });
        drop(tx);
        let result = match failed.into_inner().ok().flatten() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        };
        for w in workers {
            if let Ok(out) = w.join() {
                outs.push(out);
            }
        }
        drop(replay_tx);
        replayed = replayer.and_then(|r| r.join().ok());
        result
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    read_result?;

    let mut agg = Aggregate::default();
    let mut problems = Vec::new();
    let mut problem_count = 0;
    let mut torn = 0;
    let mut counts = Vec::new();
    for out in outs {
        agg.merge(out.agg);
        problems.extend(out.problems);
        problem_count += out.problem_count;
        torn += out.torn;
        counts.extend(out.line_counts);
    }
    agg.run_count.finish();
    agg.runs = runs.into_inner().unwrap_or_else(|p| p.into_inner());
    // Nothing is added from here on: the indexes' memory goes before listings are sorted.
    agg.runs.seal();
    agg.rows.sort_by_key(|r| r.order);
    agg.budget_lines.sort_by_key(|b| b.order);
    counts.sort();
    let lines = counts.iter().map(|(_, n)| n).sum();
    problems.sort_by_key(|p| (p.input, p.batch, p.line_in_batch));
    problems.truncate(KEEP_PROBLEMS);
    let problems = problems
        .into_iter()
        .map(|p| {
            let before: u64 = counts
                .iter()
                .filter(|((i, b), _)| *i == p.input && *b < p.batch)
                .map(|(_, n)| n)
                .sum();
            let name = inputs.get(p.input).map_or_else(String::new, Input::name);
            (name, before + p.line_in_batch as u64 + 1, p.reason)
        })
        .collect();
    Ok(Scan {
        replay: replayed,
        agg,
        problems,
        problem_count,
        torn,
        lines,
        stored: None,
    })
}
