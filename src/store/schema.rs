//! The tables, as versioned migrations for each engine. A database records the version it is
//! at in `llm_schema`; opening applies the migrations after it, in one transaction each.
//!
//! Migration 1 made the two tables of the design; migration 2 added the indexes, the budget
//! events and the import log; migration 3 the streaming and modality columns of a call;
//! migration 4 the attributes of calls and runs (filled from the stored lines).
//! Never edit a released migration: add one.

/// Migration 2's indexes, the same in both engines.
macro_rules! indexes {
    () => {
        "CREATE INDEX llm_usage_seq ON llm_usage (seq);
        CREATE INDEX llm_usage_time ON llm_usage (timestamp);
        CREATE INDEX llm_usage_model ON llm_usage (model, timestamp);
        CREATE INDEX llm_usage_provider ON llm_usage (provider, timestamp);
        CREATE INDEX llm_usage_step ON llm_usage (step, task);
        CREATE INDEX llm_usage_run ON llm_usage (run_id);
        CREATE INDEX llm_runs_seq ON llm_runs (seq);
        CREATE INDEX llm_runs_run ON llm_runs (run_id);"
    };
}

/// Migration 2's indexes, made again after a bulk load that went without them.
#[cfg(feature = "sqlite")]
pub(crate) const INDEXES: &str = indexes!();

/// The version this build writes.
pub(crate) const VERSION: i64 = 4;

/// SQLite: timestamps are canonical RFC 3339 text (which sorts), booleans 0/1, the modality
/// breakdown as JSON text.
#[cfg(feature = "sqlite")]
pub(crate) const SQLITE: [&str; 4] = [
    "CREATE TABLE llm_usage (
        seq INTEGER NOT NULL,
        id TEXT PRIMARY KEY,
        timestamp TEXT NOT NULL,
        run_id TEXT, step TEXT, task TEXT, agent TEXT, provider TEXT, model TEXT,
        input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
        total_tokens INTEGER NOT NULL, cache_read_tokens INTEGER NOT NULL,
        cache_write_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL,
        cost_usd REAL, cost_source TEXT, price_version TEXT, response_time_ms INTEGER,
        estimated INTEGER NOT NULL, error TEXT,
        line TEXT NOT NULL
    );
    CREATE TABLE llm_runs (
        seq INTEGER NOT NULL,
        id TEXT PRIMARY KEY,
        timestamp TEXT NOT NULL,
        run_id TEXT NOT NULL, status TEXT, elapsed_seconds REAL,
        call_count INTEGER NOT NULL, input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL, total_tokens INTEGER NOT NULL, cost_usd REAL,
        line TEXT NOT NULL
    );",
    concat!(
        indexes!(),
        "    CREATE TABLE llm_events (
        seq INTEGER NOT NULL,
        id TEXT PRIMARY KEY,
        timestamp TEXT NOT NULL,
        event TEXT NOT NULL, run_id TEXT,
        line TEXT NOT NULL
    );
    CREATE INDEX llm_events_seq ON llm_events (seq);
    CREATE TABLE llm_imports (
        path TEXT NOT NULL, imported_at TEXT NOT NULL,
        lines INTEGER NOT NULL, added INTEGER NOT NULL
    );"
    ),
    "ALTER TABLE llm_usage ADD COLUMN stream INTEGER;
    ALTER TABLE llm_usage ADD COLUMN ttft_ms INTEGER;
    ALTER TABLE llm_usage ADD COLUMN modality TEXT;",
    "ALTER TABLE llm_usage ADD COLUMN attributes TEXT;
    ALTER TABLE llm_runs ADD COLUMN attributes TEXT;
    UPDATE llm_usage SET attributes = json_extract(line, '$.attributes')
        WHERE instr(line, '\"attributes\":') > 0;
    UPDATE llm_runs SET attributes = json_extract(line, '$.attributes')
        WHERE instr(line, '\"attributes\":') > 0;",
];

/// PostgreSQL: `timestamptz`, `boolean`, `jsonb` for the modality breakdown, and one sequence
/// that orders lines across tables.
#[cfg(feature = "postgres")]
pub(crate) const POSTGRES: [&str; 4] = [
    "CREATE SEQUENCE llm_seq;
    CREATE TABLE llm_usage (
        seq BIGINT NOT NULL DEFAULT nextval('llm_seq'),
        id TEXT PRIMARY KEY,
        timestamp TIMESTAMPTZ NOT NULL,
        run_id TEXT, step TEXT, task TEXT, agent TEXT, provider TEXT, model TEXT,
        input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL,
        total_tokens BIGINT NOT NULL, cache_read_tokens BIGINT NOT NULL,
        cache_write_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL,
        cost_usd DOUBLE PRECISION, cost_source TEXT, price_version TEXT,
        response_time_ms BIGINT, estimated BOOLEAN NOT NULL, error TEXT,
        line TEXT NOT NULL
    );
    CREATE TABLE llm_runs (
        seq BIGINT NOT NULL DEFAULT nextval('llm_seq'),
        id TEXT PRIMARY KEY,
        timestamp TIMESTAMPTZ NOT NULL,
        run_id TEXT NOT NULL, status TEXT, elapsed_seconds DOUBLE PRECISION,
        call_count BIGINT NOT NULL, input_tokens BIGINT NOT NULL,
        output_tokens BIGINT NOT NULL, total_tokens BIGINT NOT NULL,
        cost_usd DOUBLE PRECISION,
        line TEXT NOT NULL
    );",
    concat!(
        indexes!(),
        "    CREATE TABLE llm_events (
        seq BIGINT NOT NULL DEFAULT nextval('llm_seq'),
        id TEXT PRIMARY KEY,
        timestamp TIMESTAMPTZ NOT NULL,
        event TEXT NOT NULL, run_id TEXT,
        line TEXT NOT NULL
    );
    CREATE INDEX llm_events_seq ON llm_events (seq);
    CREATE TABLE llm_imports (
        path TEXT NOT NULL, imported_at TIMESTAMPTZ NOT NULL,
        lines BIGINT NOT NULL, added BIGINT NOT NULL
    );"
    ),
    "ALTER TABLE llm_usage ADD COLUMN stream BOOLEAN;
    ALTER TABLE llm_usage ADD COLUMN ttft_ms BIGINT;
    ALTER TABLE llm_usage ADD COLUMN modality JSONB;",
    "ALTER TABLE llm_usage ADD COLUMN attributes JSONB;
    ALTER TABLE llm_runs ADD COLUMN attributes JSONB;
    UPDATE llm_usage SET attributes = CAST(line AS jsonb) -> 'attributes'
        WHERE strpos(line, '\"attributes\":') > 0;
    UPDATE llm_runs SET attributes = CAST(line AS jsonb) -> 'attributes'
        WHERE strpos(line, '\"attributes\":') > 0;",
];

/// Creates the version table (one row) if missing.
pub(crate) const VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS llm_schema (version BIGINT NOT NULL)";

/// Every line in log order, for the reports.
pub(crate) const ALL_LINES: &str = "SELECT line FROM (
        SELECT seq, line FROM llm_usage
        UNION ALL SELECT seq, line FROM llm_runs
        UNION ALL SELECT seq, line FROM llm_events
    ) AS l ORDER BY seq";
