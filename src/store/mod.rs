//! The `llm_usage` table in SQLite (feature `sqlite`) or PostgreSQL (feature `postgres`): one
//! row per call, one per run summary, written live by the layer
//! ([`UsageLayerBuilder::sqlite`](crate::UsageLayerBuilder::sqlite),
//! [`postgres`](crate::UsageLayerBuilder::postgres)) or loaded from the JSONL afterwards with
//! `llm-usage import`.
//!
//! The tables (the README shows them whole): `llm_usage` (a call per row: id, timestamp,
//! run_id, step, task, agent, provider, model, the six token counts, cost_usd, cost_source,
//! price_version, response_time_ms, estimated, error), `llm_runs` (a run summary per row),
//! `llm_events` (budget lines), `llm_imports` (the files `import` loaded) and `llm_schema`
//! (the schema version). Every row also keeps its JSONL `line` as written, so the reports read
//! from a database are those read from the files, and `seq` keeps the lines' order.
//!
//! A row's `id` is a hash of its line: loading a line that is already there adds nothing.

mod row;
pub(crate) mod schema;
pub(crate) mod sink;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
mod postgres_tls;
#[cfg(feature = "sqlite")]
mod sqlite;

pub(crate) use row::{rows, Keyer, Row};

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
    /// The target names an engine this build does not have.
    #[error("{0}")]
    Unsupported(String),
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

/// What a database can do for the layer and the CLI.
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub(crate) trait Backend: Send {
    /// Inserts `rows` in one transaction; returns how many were new (the others were there).
    fn insert(&mut self, rows: &[Row<'_>]) -> Result<u64, StoreError>;
    /// Calls `each` with every stored line, in the order they were logged.
    fn lines(&mut self, each: &mut dyn FnMut(&str)) -> Result<(), StoreError>;
    /// Readies the connection for a large load (`import`): more cache, worth it only there.
    fn bulk(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Notes that `path` was imported.
    fn log_import(&mut self, path: &str, lines: u64, added: u64) -> Result<(), StoreError>;
    /// How many distinct files have been imported.
    fn imported_files(&mut self) -> Result<u64, StoreError>;
}

/// Whether `target` names a PostgreSQL server rather than a SQLite file.
pub(crate) fn is_postgres(target: &str) -> bool {
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
