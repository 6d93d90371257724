//! The tables, as versioned migrations for each engine. A database records the version it is
//! at in `llm_schema`; opening applies the migrations after it, in one transaction each.
//!
//! Migration 1 made the two tables of the design; migration 2 added the indexes, the budget
//! events and the import log; migration 3 the streaming and modality columns of a call;
//! migration 4 the attributes of calls and runs (filled from the stored lines); migration 5
//! time indexes on run summaries and budget lines, and `llm_counts`, the stored lines' count,
//! kept by triggers (so `stats` never counts a whole store); migration 6 `llm_loads`, the
//! imports under way.
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

/// Migration 6's imports under way: a row each, so that a report can say that what it reads
/// is not all there yet.
macro_rules! loads {
    () => {
        "CREATE TABLE llm_loads (started_at TEXT NOT NULL, process TEXT NOT NULL);"
    };
}

/// Migration 6's daily sums ([`super::daily`]; its triggers and its first filling are made
/// by the migration code, from the measures). `$int` is the engine's integer type.
macro_rules! daily_table {
    ($int:literal) => {
        concat!(
            "CREATE TABLE llm_daily (k TEXT PRIMARY KEY, day TEXT NOT NULL, model TEXT,
            provider TEXT, step TEXT, calls ",
            $int,
            " NOT NULL,
            errors ",
            $int,
            " NOT NULL, input_tokens ",
            $int,
            " NOT NULL,
            output_tokens ",
            $int,
            " NOT NULL, total_tokens ",
            $int,
            " NOT NULL,
            cache_read_tokens ",
            $int,
            " NOT NULL, cache_write_tokens ",
            $int,
            " NOT NULL,
            reasoning_tokens ",
            $int,
            " NOT NULL, cost_nanos ",
            $int,
            " NOT NULL,
            priced ",
            $int,
            " NOT NULL, no_usage ",
            $int,
            " NOT NULL,
            provider_priced ",
            $int,
            " NOT NULL, estimated_tokens ",
            $int,
            " NOT NULL,
            overflow ",
            $int,
            " NOT NULL);
            CREATE INDEX llm_daily_day ON llm_daily (day);
            CREATE INDEX llm_daily_overflow ON llm_daily (overflow) WHERE overflow <> 0;"
        )
    };
}

/// Migration 5's time indexes of run summaries and budget lines: a report's window reads
/// them through these, not by a scan.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
macro_rules! time_indexes {
    () => {
        "CREATE INDEX llm_runs_time ON llm_runs (timestamp);
        CREATE INDEX llm_events_time ON llm_events (timestamp);"
    };
}

/// Migration 5's count of the stored lines (one row).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
macro_rules! count_lines {
    () => {
        "INSERT INTO llm_counts (lines) SELECT (SELECT count(*) FROM llm_usage)
            + (SELECT count(*) FROM llm_runs) + (SELECT count(*) FROM llm_events);"
    };
}

/// Migration 5's SQLite triggers on a line table: a row in, a row out (a `DELETE` of every
/// row goes row by row too: SQLite skips its truncation shortcut for a table with triggers).
#[cfg(feature = "sqlite")]
macro_rules! counted {
    ($t:literal) => {
        concat!(
            "CREATE TRIGGER ",
            $t,
            "_counted AFTER INSERT ON ",
            $t,
            " BEGIN UPDATE llm_counts SET lines = lines + 1; END;
            CREATE TRIGGER ",
            $t,
            "_uncounted AFTER DELETE ON ",
            $t,
            " BEGIN UPDATE llm_counts SET lines = lines - 1; END;"
        )
    };
}

/// Migration 5's SQLite triggers on the three line tables.
#[cfg(feature = "sqlite")]
macro_rules! count_triggers {
    () => {
        concat!(
            counted!("llm_usage"),
            counted!("llm_runs"),
            counted!("llm_events")
        )
    };
}

/// The SQLite count triggers, dropped by a bulk load into an empty database and made again
/// after it with a recount ([`RECOUNT`]).
#[cfg(feature = "sqlite")]
pub(crate) const COUNT_TRIGGERS: &str = count_triggers!();

/// Counts the stored lines again.
#[cfg(feature = "sqlite")]
pub(crate) const RECOUNT: &str = concat!("DELETE FROM llm_counts;", count_lines!());

/// Migration 5's PostgreSQL triggers on a line table: the rows a statement added or removed,
/// and a recount after a `TRUNCATE` (which fires no delete trigger).
#[cfg(feature = "postgres")]
macro_rules! pg_counted {
    ($t:literal) => {
        concat!(
            "CREATE TRIGGER ", $t, "_counted AFTER INSERT ON ", $t,
            " REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION llm_count_added();
            CREATE TRIGGER ", $t, "_uncounted AFTER DELETE ON ", $t,
            " REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION llm_count_removed();
            CREATE TRIGGER ", $t, "_truncated AFTER TRUNCATE ON ", $t,
            " FOR EACH STATEMENT EXECUTE FUNCTION llm_recount();"
        )
    };
}

/// The secondary indexes (migrations 2 and 5), made again after a bulk load that went
/// without them.
#[cfg(feature = "sqlite")]
pub(crate) const INDEXES: &str = concat!(indexes!(), time_indexes!());

/// The version this build writes.
pub(crate) const VERSION: i64 = 6;

/// SQLite: timestamps are canonical RFC 3339 text (which sorts), booleans 0/1, the modality
/// breakdown as JSON text.
#[cfg(feature = "sqlite")]
pub(crate) const SQLITE: [&str; 6] = [
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
    concat!(
        time_indexes!(),
        "CREATE TABLE llm_counts (lines INTEGER NOT NULL);",
        count_lines!(),
        count_triggers!(),
    ),
    concat!(loads!(), daily_table!("INTEGER")),
];

/// PostgreSQL: `timestamptz`, `boolean`, `jsonb` for the modality breakdown, and one sequence
/// that orders lines across tables.
#[cfg(feature = "postgres")]
pub(crate) const POSTGRES: [&str; 6] = [
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
    // Statement triggers with transition tables: one update a statement, however many rows
    // it added (the inserts already take a lock that orders them).
    concat!(
        time_indexes!(),
        "CREATE TABLE llm_counts (lines BIGINT NOT NULL);",
        count_lines!(),
        "CREATE FUNCTION llm_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN UPDATE llm_counts SET lines = lines + (SELECT count(*) FROM added); RETURN NULL;
        END $$;
        CREATE FUNCTION llm_count_removed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN UPDATE llm_counts SET lines = lines - (SELECT count(*) FROM removed); RETURN NULL;
        END $$;
        CREATE FUNCTION llm_recount() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN DELETE FROM llm_counts;",
        count_lines!(),
        "RETURN NULL; END $$;",
        pg_counted!("llm_usage"),
        pg_counted!("llm_runs"),
        pg_counted!("llm_events"),
    ),
    concat!(loads!(), daily_table!("BIGINT")),
];

/// The version that made the daily sums: a database below it gets their triggers and is
/// summed once.
pub(crate) const DAILY_VERSION: i64 = 6;

/// Creates the version table (one row) if missing.
pub(crate) const VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS llm_schema (version BIGINT NOT NULL)";

/// Every line in log order, for the reports.
pub(crate) const ALL_LINES: &str = "SELECT line FROM (
        SELECT seq, line FROM llm_usage
        UNION ALL SELECT seq, line FROM llm_runs
        UNION ALL SELECT seq, line FROM llm_events
    ) AS l ORDER BY seq";
