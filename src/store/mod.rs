//! The `llm_usage` table in SQLite (feature `sqlite`) or PostgreSQL (feature `postgres`): one
//! row per call, one per run summary, written live by the layer
//! ([`UsageLayerBuilder::sqlite`](crate::UsageLayerBuilder::sqlite),
//! [`postgres`](crate::UsageLayerBuilder::postgres)) or loaded from the JSONL afterwards with
//! `llm-usage import`.
//!
//! The tables (the README shows them whole): `llm_usage` (a call per row: id, timestamp,
//! run_id, step, task, agent, provider, model, the six token counts, cost_usd, cost_source,
//! price_version, response_time_ms, estimated, error), `llm_runs` (a run summary per row),
//! `llm_events` (budget lines), `llm_imports` (the files `import` loaded), `llm_loads` (the
//! imports under way), `llm_daily` (the calls' sums per day, model, provider and step: see
//! `docs/store.md`), `llm_counts` and `llm_schema` (the schema version). Every row also keeps
//! its JSONL `line` as written, so the reports read from a database are those read from the
//! files, and `seq` keeps the lines' order.
//!
//! A row's `id` is a hash of its line: loading a line that is already there adds nothing.

mod daily;
mod query;
mod row;
pub(crate) mod schema;
pub(crate) mod sink;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
mod postgres_tls;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use query::{CallSums, Field, GroupBy, LineFilter, Totals};
pub(crate) use row::{Keyer, Row};

/// A database opened for reading or loading LLM usage log lines: what `llm-usage import` and
/// `--db` use. Lines are stored as they are (every row keeps its line), keyed by a hash of the
/// line, so loading a line that is already there adds nothing.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// use tracing_llm_usage::store::Store;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("usage.db");
/// let mut db = Store::open(path.to_str().unwrap())?;
/// let line = r#"{"timestamp":"2025-12-14T10:30:15.123Z","event":"llm_call","run_id":"r1","tokens":{"input":10,"output":2}}"#;
/// let added = db.insert(&[line, line, "not json"])?;
/// assert_eq!(added.added, 2); // the same bytes twice are two calls
/// assert_eq!(added.rejected.len(), 1);
/// drop(db);
/// let mut db = Store::open(path.to_str().unwrap())?;
/// assert_eq!(db.insert(&[line, line])?.added, 0); // loading them again adds nothing
/// let mut n = 0;
/// db.for_each_line(&mut |_| n += 1)?;
/// assert_eq!(n, 2);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a Store does nothing until lines are inserted or read"]
pub struct Store {
    backend: Box<dyn Backend>,
    parser: Parser,
    /// Whether a read transaction ([`snapshot`](Store::snapshot)) is open.
    in_snapshot: bool,
    /// When the import this store runs started, as noted in `llm_loads`.
    load_started: Option<String>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// An import noted as started and not finished ([`Store::unfinished_imports`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnfinishedImport {
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// The process that ran it (`pid 4242 on build-7`).
    pub process: String,
}

/// This process, as [`UnfinishedImport::process`] names it.
fn process() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty());
    match host {
        Some(h) => format!("pid {} on {h}", std::process::id()),
        None => format!("pid {}", std::process::id()),
    }
}

/// What [`Store::insert`] did.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Inserted {
    /// Rows added (the others were there already, or rejected).
    pub added: u64,
    /// The lines that cannot be stored: (index in the slice given, why).
    pub rejected: Vec<(usize, String)>,
}

/// Lines parsed into rows, borrowing their text: made by [`Parser::parse_parts`], stored by
/// [`Store::insert_parsed`].
#[derive(Debug)]
#[must_use = "parsed lines are stored only by Store::insert_parsed"]
pub struct Parsed<'a> {
    rows: Vec<Row<'a>>,
    /// Where each part's rows end in `rows`.
    ends: Vec<usize>,
    /// Each part's rejected lines (`added` is filled in when stored).
    done: Vec<Inserted>,
}

/// Parses lines into rows as [`Store::insert_parts`] does, away from the store: a load can
/// parse its next lines on one thread while another thread stores the lines before them.
///
/// A row's id counts identical lines (see [`Store::insert`]) as the parser saw them: give one
/// parser a load's lines in order, as one store would be given them.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// use tracing_llm_usage::store::{Parser, Store};
///
/// let line = r#"{"timestamp":"2025-12-14T10:30:15.123Z","event":"llm_call","run_id":"r","tokens":{"input":3,"output":1}}"#;
/// let mut parser = Parser::default();
/// let parsed = std::thread::scope(|s| s.spawn(|| parser.parse_parts(&[&[line, "{"]])).join())
///     .expect("the parser thread");
/// let mut db = Store::open(":memory:")?;
/// let done = db.insert_parsed(&parsed)?;
/// assert_eq!((done[0].added, done[0].rejected.len()), (1, 1));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct Parser {
    keyer: Keyer,
}

impl std::fmt::Debug for Parser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parser").finish_non_exhaustive()
    }
}

impl Parser {
    /// Parses several parts of lines (each a run of one file's lines, say) to be stored in
    /// one transaction; a line that cannot be stored is noted, with its index in its part and
    /// why, and left out.
    pub fn parse_parts<'a>(&mut self, parts: &[&[&'a str]]) -> Parsed<'a> {
        let mut rows = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = Vec::with_capacity(parts.len());
        let mut done: Vec<Inserted> = Vec::with_capacity(parts.len());
        for lines in parts {
            let mut part = Inserted::default();
            for (i, text) in lines.iter().enumerate() {
                match self.keyer.row(text) {
                    Ok(r) => rows.push(r),
                    Err(e) => part.rejected.push((i, e)),
                }
            }
            ends.push(rows.len());
            done.push(part);
        }
        Parsed { rows, ends, done }
    }
}

impl Store {
    /// Opens (and creates and migrates) the database `target` names: a `postgres://` URL
    /// (libpq's `sslmode`, `sslrootcert`, `sslcert`, `sslkey` parameters), or a SQLite file
    /// path, optionally `sqlite:`-prefixed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when it cannot be opened, is newer than this build, or names an engine
    /// this build lacks.
    pub fn open(target: &str) -> Result<Self, StoreError> {
        Ok(Self {
            backend: open(target)?,
            parser: Parser::default(),
            in_snapshot: false,
            load_started: None,
        })
    }

    /// Opens a database that must exist already (a SQLite file is not created), to read it:
    /// a SQLite connection keeps SQLite's default 2 MB page cache, not the 16 MB a writer
    /// keeps (a report scans rows once).
    ///
    /// # Errors
    ///
    /// [`StoreError::Missing`] for a missing SQLite file, else as [`open`](Self::open).
    pub fn open_existing(target: &str) -> Result<Self, StoreError> {
        if !is_postgres(target) {
            let path = target.strip_prefix("sqlite:").unwrap_or(target);
            if !std::path::Path::new(path).is_file() {
                return Err(StoreError::Missing(path.to_owned()));
            }
        }
        let mut db = Self::open(target)?;
        db.backend.reading()?;
        Ok(db)
    }

    /// Readies the connection for a large load (an import): more cache, and a SQLite database
    /// that holds no row yet is loaded without its secondary indexes, which
    /// [`finish_bulk`](Self::finish_bulk) makes afterwards in one go (faster than keeping them
    /// up to date row by row). A load that never finishes leaves them to the next open.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database refuses the settings.
    pub fn prepare_bulk(&mut self) -> Result<(), StoreError> {
        self.backend.bulk()?;
        // Noted before the first row: a report that reads a store while this load is under
        // way (or after it was cut short) says so.
        let started = crate::record::Timestamp::now().to_string();
        let engine = self.backend.engine();
        self.backend
            .execute(&query::mark_load(engine, &started, &process()))?;
        self.load_started = Some(started);
        Ok(())
    }

    /// Writes without a journal and without syncs (SQLite; nothing for PostgreSQL): for a new
    /// file that nobody reads until the load is complete, and that is deleted if it fails, as
    /// `llm-usage import` does when it makes a new database (it loads a file beside the target
    /// and moves it into place at the end). A crash leaves that file unusable: never use this
    /// on a database that holds anything.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database refuses the settings.
    pub fn write_unjournaled(&mut self) -> Result<(), StoreError> {
        self.backend.unjournaled()
    }

    /// Ends a large load begun with [`prepare_bulk`](Self::prepare_bulk).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the indexes cannot be made.
    pub fn finish_bulk(&mut self) -> Result<(), StoreError> {
        self.backend.end_bulk()?;
        if let Some(started) = self.load_started.take() {
            let engine = self.backend.engine();
            self.backend
                .execute(&query::unmark_loads(engine, &started))?;
        }
        Ok(())
    }

    /// Makes the daily sums (`llm_daily`) again from every stored call, in one transaction:
    /// inserts and deletes keep them, an `UPDATE` of a call's row by hand does not.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the transaction fails (the sums stay as they were).
    pub fn rebuild_daily_sums(&mut self) -> Result<(), StoreError> {
        let engine = self.backend.engine();
        self.backend.batch(&daily::rebuild(engine))
    }

    /// The imports that started and have not finished, oldest first: under way, or cut short
    /// (what they had still to store is missing until an import finishes). One that finishes
    /// forgets itself and the ones that started before it.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the query fails.
    pub fn unfinished_imports(&mut self) -> Result<Vec<UnfinishedImport>, StoreError> {
        Ok(self
            .backend
            .texts(&query::loads())?
            .into_iter()
            .filter_map(|r| {
                let mut r = r.into_iter();
                Some(UnfinishedImport {
                    started_at: r.next()??,
                    process: r.next()??,
                })
            })
            .collect())
    }

    /// Stores `lines` (each without its `\n`) in one transaction. Lines that are not LLM usage
    /// log lines are rejected, with their reason, and the rest stored.
    ///
    /// The same bytes again through the same `Store` are another row (two calls identical to
    /// the millisecond); through a newly opened one, in the same order, they add nothing: a
    /// file loaded twice, or loaded after the layer stored its lines live, is stored once.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the transaction fails: nothing of it is stored.
    pub fn insert(&mut self, lines: &[&str]) -> Result<Inserted, StoreError> {
        Ok(self.insert_parts(&[lines])?.pop().unwrap_or_default())
    }

    /// Stores several parts of lines (each a run of one file's lines, say) in one
    /// transaction, and says what each part added and rejected, as [`insert`](Self::insert)
    /// does for one: fewer, larger transactions load faster (each commit writes the index
    /// pages it touched).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the transaction fails: nothing of it is stored.
    pub fn insert_parts(&mut self, parts: &[&[&str]]) -> Result<Vec<Inserted>, StoreError> {
        let parsed = self.parser.parse_parts(parts);
        self.insert_parsed(&parsed)
    }

    /// Stores lines a [`Parser`] parsed, in one transaction, and says what each part added
    /// and rejected, as [`insert_parts`](Self::insert_parts) does. Their ids are the
    /// parser's: this store's own count of identical lines is left as it was.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the transaction fails: nothing of it is stored.
    pub fn insert_parsed(&mut self, parsed: &Parsed<'_>) -> Result<Vec<Inserted>, StoreError> {
        let added = self.backend.insert(&parsed.rows, &parsed.ends)?;
        let mut done = parsed.done.clone();
        for (part, n) in done.iter_mut().zip(added) {
            part.added = n;
        }
        Ok(done)
    }

    /// Calls `each` with every stored line, in the order they were logged.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when reading fails.
    pub fn for_each_line(&mut self, each: &mut dyn FnMut(&str)) -> Result<(), StoreError> {
        self.backend.lines(each)
    }

    /// Calls `each` with the stored lines `filter` may keep, in the order they were logged:
    /// the window and the equalities become the query's conditions (bound parameters, the
    /// time window through the `timestamp` indexes), so only those lines travel. Calls meet
    /// every condition; run summaries and budget lines the ones their tables hold, and the
    /// attribute ones also pass a number or boolean value: a report narrows them as it does
    /// lines from files.
    ///
    /// # Errors
    ///
    /// [`StoreError::Filter`] for a value no engine can take, else when reading fails.
    pub fn for_each_line_where(
        &mut self,
        filter: &LineFilter,
        each: &mut dyn FnMut(&str),
    ) -> Result<(), StoreError> {
        self.read_lines(filter, query::Lines::All, each)
    }

    /// Calls `each` with the budget lines `filter`'s time window and `run_id` keep, in the
    /// order they were logged (the other conditions are the caller's to apply: a budget
    /// line's step, model or attribute is in its line only).
    ///
    /// # Errors
    ///
    /// [`StoreError::Filter`] for a value no engine can take, else when reading fails.
    pub fn for_each_budget_line(
        &mut self,
        filter: &LineFilter,
        each: &mut dyn FnMut(&str),
    ) -> Result<(), StoreError> {
        self.read_lines(filter, query::Lines::Budget, each)
    }

    /// Calls `each` with the run summaries `filter`'s time window, `run_id` and attributes
    /// may keep, in the order they were logged (a number or boolean attribute value passes
    /// too: the caller narrows them as it does lines from files).
    ///
    /// # Errors
    ///
    /// [`StoreError::Filter`] for a value no engine can take, else when reading fails.
    pub fn for_each_summary_line(
        &mut self,
        filter: &LineFilter,
        each: &mut dyn FnMut(&str),
    ) -> Result<(), StoreError> {
        self.read_lines(filter, query::Lines::Summaries, each)
    }

    fn read_lines(
        &mut self,
        filter: &LineFilter,
        which: query::Lines,
        each: &mut dyn FnMut(&str),
    ) -> Result<(), StoreError> {
        filter.check()?;
        let sql = query::lines(self.backend.engine(), filter, which);
        self.backend.lines_where(&sql, each)
    }

    /// The sums of the calls `filter` keeps, per group, computed by the database (attribute
    /// equalities match text values only).
    ///
    /// # Errors
    ///
    /// [`StoreError::Filter`] for a value no engine can take, else when the query fails (a sum
    /// past 2⁶³−1 tokens is one).
    pub fn sum_calls(
        &mut self,
        filter: &LineFilter,
        by: GroupBy,
    ) -> Result<Vec<CallSums>, StoreError> {
        let mut all = Vec::new();
        self.for_each_sum(filter, by, &mut |s| all.push(s))?;
        Ok(all)
    }

    /// Calls `each` with the sums of the calls `filter` keeps, per group, as the database
    /// gives them (a group per run can be millions: they are streamed, not collected). Over
    /// whole UTC days, grouped by and filtered on the fields the daily sums keep, they come
    /// from the daily sums (`llm_daily`).
    ///
    /// # Errors
    ///
    /// As [`sum_calls`](Self::sum_calls).
    pub fn for_each_sum(
        &mut self,
        filter: &LineFilter,
        by: GroupBy,
        each: &mut dyn FnMut(CallSums),
    ) -> Result<(), StoreError> {
        filter.check()?;
        let engine = self.backend.engine();
        let sql = self
            .daily_sums(filter, Some(by))?
            .unwrap_or_else(|| query::sums(engine, filter, by));
        self.backend.sums(&sql, each)
    }

    /// The query of `filter`'s sums per `by` over the daily sums, when they answer it exactly.
    fn daily_sums(
        &mut self,
        filter: &LineFilter,
        by: Option<GroupBy>,
    ) -> Result<Option<query::Sql>, StoreError> {
        let engine = self.backend.engine();
        let Some(sql) = query::daily_sums(engine, filter, by) else {
            return Ok(None);
        };
        let clamped = self.backend.texts(&query::daily_overflow())?;
        let clamped = clamped.first().and_then(|r| r.first()?.as_deref()) != Some("0");
        Ok((!clamped).then_some(sql))
    }

    /// What the lines `filter` keeps add up to, computed by the database: the calls' sums and
    /// distinct runs, the first and last call, the run summaries and the budget lines per
    /// event. Each is one indexed query (the window through the `timestamp` indexes), all in
    /// one read transaction (one snapshot of a store being written); no line travels but the
    /// first and the last call's.
    ///
    /// # Errors
    ///
    /// [`StoreError::Filter`] for a value no engine can take, else when a query fails.
    pub fn totals(&mut self, filter: &LineFilter) -> Result<Totals, StoreError> {
        filter.check()?;
        self.snapshot(|s| s.totals_read(filter))?
    }

    /// Runs `read` in one read transaction: every query it makes sees the same state of a
    /// store that is being written (an import or a live sink commits between them). Within
    /// another snapshot, it is that one.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the transaction cannot be started or ended; `read`'s own result
    /// is returned as it is.
    pub fn snapshot<T>(&mut self, read: impl FnOnce(&mut Self) -> T) -> Result<T, StoreError> {
        if self.in_snapshot {
            return Ok(read(self));
        }
        self.backend.begin_read()?;
        self.in_snapshot = true;
        let out = read(self);
        self.in_snapshot = false;
        self.backend.end_read()?;
        Ok(out)
    }

    fn totals_read(&mut self, filter: &LineFilter) -> Result<Totals, StoreError> {
        let engine = self.backend.engine();
        let mut calls = CallSums::default();
        let sums = self
            .daily_sums(filter, None)?
            .unwrap_or_else(|| query::totals(engine, filter));
        self.backend.sums(&sums, &mut |s| calls = s)?;
        let count = |v: Option<&Option<String>>| -> u64 {
            v.and_then(|v| v.as_deref()?.parse().ok()).unwrap_or(0)
        };
        let runs = self.backend.texts(&query::distinct_runs(engine, filter))?;
        calls.runs = count(runs.first().and_then(|r| r.first()));
        let summaries = self.backend.texts(&query::summary_count(engine, filter))?;
        let summaries = count(summaries.first().and_then(|r| r.first()));
        let events = self
            .backend
            .texts(&query::event_counts(engine, filter))?
            .into_iter()
            .filter_map(|r| Some((r.first()?.clone()?, count(r.get(1)))))
            .collect();
        let mut edge = |latest: bool| -> Result<Option<String>, StoreError> {
            let rows = self
                .backend
                .texts(&query::edge_call(engine, filter, latest))?;
            Ok(rows
                .first()
                .and_then(|r| r.first()?.as_deref())
                .and_then(|line| crate::format::decode::parse_str(line).ok())
                .map(|l| l.timestamp.into_owned()))
        };
        let (first, last) = (edge(false)?, edge(true)?);
        Ok(Totals {
            calls,
            summaries,
            first,
            last,
            events,
        })
    }

    /// How many lines the store holds (calls, run summaries and budget lines).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the query fails.
    pub fn line_count(&mut self) -> Result<u64, StoreError> {
        self.backend.line_count()
    }

    /// Whether the store holds any line.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the query fails.
    pub fn has_lines(&mut self) -> Result<bool, StoreError> {
        self.backend.any_line()
    }

    /// The engine's plan for [`for_each_line_where`](Self::for_each_line_where) (`EXPLAIN
    /// QUERY PLAN` / `EXPLAIN`), one line per step.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the engine refuses.
    #[doc(hidden)]
    pub fn explain_lines(&mut self, filter: &LineFilter) -> Result<String, StoreError> {
        filter.check()?;
        let sql = query::lines(self.backend.engine(), filter, query::Lines::All);
        self.backend.explain(&sql)
    }

    /// Notes that the file `path` was loaded: `lines` read, `added` rows new.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the write fails.
    pub fn log_import(&mut self, path: &str, lines: u64, added: u64) -> Result<(), StoreError> {
        self.backend.log_import(path, lines, added)
    }

    /// How many distinct files have been loaded with [`log_import`](Self::log_import).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when reading fails.
    pub fn imported_files(&mut self) -> Result<u64, StoreError> {
        self.backend.imported_files()
    }
}

/// `target` fit to show: a URL's password replaced by `***`.
pub fn display_target(target: &str) -> String {
    crate::redact::redact_url(target)
}

/// Why a database could not be opened or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite said no.
    #[cfg(feature = "sqlite")]
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL said no (or the connection failed).
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL: {}", chain(.0))]
    Postgres(#[from] ::postgres::Error),
    /// The database was made by a newer version of this crate.
    #[error("the database is at schema version {found}, newer than the {supported} this build knows: use a newer tracing-llm-usage")]
    TooNew {
        /// The version found in `llm_schema`.
        found: i64,
        /// The newest version this build can write.
        supported: i64,
    },
    /// The SQLite file does not exist ([`Store::open_existing`]).
    #[error("no database file {0} (llm-usage import makes one)")]
    Missing(String),
    /// The target names an engine this build does not have.
    #[error("{0}")]
    Unsupported(String),
    /// A filter value no engine can take (a NUL, a quoted attribute name).
    #[error("{0}")]
    Filter(String),
    /// The connection's TLS settings are wrong (an unknown `sslmode`, an unreadable
    /// certificate or key).
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL TLS: {0}")]
    Tls(String),
}

/// An error and its causes (`error performing TLS handshake: server does not support TLS`).
#[cfg(feature = "postgres")]
fn chain(e: &::postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// What a database can do for the layer and [`Store`].
pub(crate) trait Backend: Send {
    /// Inserts `rows` in one transaction; returns how many were new (the others were there)
    /// in each part: `ends` are the parts' ends, the last one `rows.len()`.
    fn insert(&mut self, rows: &[Row<'_>], ends: &[usize]) -> Result<Vec<u64>, StoreError>;
    /// Calls `each` with every stored line, in the order they were logged.
    fn lines(&mut self, each: &mut dyn FnMut(&str)) -> Result<(), StoreError>;
    /// Readies the connection for a large load (`import`): more cache, worth it only there.
    fn bulk(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// No journal, no syncs: for a file that is discarded if the load fails.
    fn unjournaled(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Ends a large load: what `bulk` put off is done now.
    fn end_bulk(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Readies the connection for reports: they scan, and keep no page for long.
    fn reading(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Runs `sql`, which returns no rows; how many rows it changed.
    fn execute(&mut self, sql: &query::Sql) -> Result<u64, StoreError>;
    /// Runs the statements `sql` in one transaction.
    fn batch(&mut self, sql: &str) -> Result<(), StoreError>;
    /// Starts a read transaction: the statements until [`end_read`](Self::end_read) see one
    /// snapshot of the store.
    fn begin_read(&mut self) -> Result<(), StoreError>;
    /// Ends the read transaction.
    fn end_read(&mut self) -> Result<(), StoreError>;
    /// The engine, for the statements [`query`] writes.
    fn engine(&self) -> query::Engine;
    /// Calls `each` with the lines `sql` (from [`query::lines`]) selects.
    fn lines_where(
        &mut self,
        sql: &query::Sql,
        each: &mut dyn FnMut(&str),
    ) -> Result<(), StoreError>;
    /// Calls `each` with the rows of `sql` (from [`query::sums`] or [`query::totals`]), as
    /// they come.
    fn sums(&mut self, sql: &query::Sql, each: &mut dyn FnMut(CallSums)) -> Result<(), StoreError>;
    /// The rows of `sql`, whose every column is text (or `NULL`).
    fn texts(&mut self, sql: &query::Sql) -> Result<Vec<Vec<Option<String>>>, StoreError>;
    /// Whether any table has a row.
    fn any_line(&mut self) -> Result<bool, StoreError>;
    /// The rows of the three line tables.
    fn line_count(&mut self) -> Result<u64, StoreError>;
    /// The plan of `sql`.
    fn explain(&mut self, sql: &query::Sql) -> Result<String, StoreError>;
    /// Notes that `path` was imported.
    fn log_import(&mut self, path: &str, lines: u64, added: u64) -> Result<(), StoreError>;
    /// How many distinct files have been imported.
    fn imported_files(&mut self) -> Result<u64, StoreError>;
}

/// Whether `target` names a PostgreSQL server rather than a SQLite file.
pub fn is_postgres(target: &str) -> bool {
    target.starts_with("postgres://") || target.starts_with("postgresql://")
}

/// Creates the SQLite file `path` with the file mode if it does not exist, so that SQLite (which
/// gives its WAL the database's mode) never makes it readable by others. A failure is left to
/// SQLite's own open to report.
pub(crate) fn create_private(path: &str, modes: crate::sink::private_files::Modes) {
    if is_postgres(path) || path == ":memory:" {
        return;
    }
    let path = std::path::Path::new(path.strip_prefix("sqlite:").unwrap_or(path));
    let _ = crate::sink::private_files::create_file(path, modes);
}

/// Opens (and migrates) the database `target` names: a `postgres://` URL, or a SQLite file
/// path (optionally `sqlite:`-prefixed; created if missing).
pub(crate) fn open(target: &str) -> Result<Box<dyn Backend>, StoreError> {
    if is_postgres(target) {
        #[cfg(feature = "postgres")]
        return Ok(Box::new(postgres::Postgres::open(target)?));
        #[cfg(not(feature = "postgres"))]
        return Err(StoreError::Unsupported(
            "this build has no PostgreSQL support (feature `postgres`)".into(),
        ));
    }
    let path = target.strip_prefix("sqlite:").unwrap_or(target);
    #[cfg(feature = "sqlite")]
    create_private(path, crate::sink::private_files::Modes::default());
    #[cfg(feature = "sqlite")]
    return Ok(Box::new(sqlite::Sqlite::open(std::path::Path::new(path))?));
    #[cfg(not(feature = "sqlite"))]
    return Err(StoreError::Unsupported(format!(
        "{path}: this build has no SQLite support (feature `sqlite`)"
    )));
}

/// Refuses a database newer than this build.
fn check_version(found: i64) -> Result<(), StoreError> {
    if found > schema::VERSION {
        return Err(StoreError::TooNew {
            found,
            supported: schema::VERSION,
        });
    }
    Ok(())
}

/// The migrations a database at `found` still needs.
fn pending(migrations: &'static [&'static str], found: i64) -> &'static [&'static str] {
    let done = usize::try_from(found).unwrap_or(0).min(migrations.len());
    &migrations[done..]
}
