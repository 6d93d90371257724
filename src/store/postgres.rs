//! PostgreSQL: a synchronous client (the `postgres` crate), one transaction per batch with
//! prepared inserts; `seq` comes from one sequence shared by the tables.

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Transaction};

use crate::format::decode::SummaryUsage;

use super::row::{int, Row, Table};
use super::{check_version, pending, query, schema, Backend, CallSums, StoreError};

// One statement per table and chunk: each column travels as an array, `unnest` turns them
// back into rows. A round trip per chunk instead of one per row.
const INSERT_USAGE: &str = "INSERT INTO llm_usage (seq, id, timestamp, run_id, step, task,
    agent, provider, model, input_tokens, output_tokens, total_tokens, cache_read_tokens,
    cache_write_tokens, reasoning_tokens, cost_usd, cost_source, price_version,
    response_time_ms, estimated, error, line, stream, ttft_ms, modality, attributes)
    SELECT seq, id, CAST(ts AS timestamptz), run_id, step, task, agent, provider, model, i, o,
        t, cr, cw, r, cost, cost_source, price_version, ms, est, error, line, stream, ttft,
        CAST(modality AS jsonb), CAST(attributes AS jsonb)
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::text[], $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[],
        $13::bigint[], $14::bigint[], $15::bigint[], $16::float8[], $17::text[], $18::text[],
        $19::bigint[], $20::bool[], $21::text[], $22::text[], $23::bool[], $24::bigint[],
        $25::text[], $26::text[])
        AS u(seq, id, ts, run_id, step, task, agent, provider, model, i, o, t, cr, cw, r, cost,
        cost_source, price_version, ms, est, error, line, stream, ttft, modality, attributes)
    ON CONFLICT (id) DO NOTHING";
const INSERT_RUN: &str = "INSERT INTO llm_runs (seq, id, timestamp, run_id, status,
    elapsed_seconds, call_count, input_tokens, output_tokens, total_tokens, cost_usd, line,
    attributes)
    SELECT seq, id, CAST(ts AS timestamptz), run_id, status, elapsed, calls, i, o, t, cost, line,
        CAST(attributes AS jsonb)
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[],
        $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::float8[], $12::text[],
        $13::text[])
        AS u(seq, id, ts, run_id, status, elapsed, calls, i, o, t, cost, line, attributes)
    ON CONFLICT (id) DO NOTHING";
const INSERT_EVENT: &str = "INSERT INTO llm_events (seq, id, timestamp, event, run_id, line)
    SELECT seq, id, CAST(ts AS timestamptz), event, run_id, line
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
        AS u(seq, id, ts, event, run_id, line)
    ON CONFLICT (id) DO NOTHING";
/// Rows per statement.
const CHUNK: usize = 5_000;
/// Serialises the reservation of `seq` numbers between writers.
const SEQ_LOCK: i64 = 0x6c6c_6d5f_7365_7121;
/// Serialises concurrent migrations of one database (an arbitrary, fixed key).
const MIGRATION_LOCK: i64 = 0x6c6c_6d5f_7573_6167;

/// Ids of a chunk already stored: each table asked for its own rows' ids.
const STORED: &str = "SELECT id FROM llm_usage WHERE id = ANY($1)
    UNION ALL SELECT id FROM llm_runs WHERE id = ANY($2)
    UNION ALL SELECT id FROM llm_events WHERE id = ANY($3)";

/// A PostgreSQL database.
pub(crate) struct Postgres {
    client: Client,
    /// In a large load (`import`) into tables that have rows: chunks' ids are looked up
    /// first, and only the rows not there are sent (a reloaded file is mostly rows already
    /// there: their ids travel, not every column and the line).
    bulk: bool,
    /// Whether the last chunk looked up was mostly there (then the next is looked up too).
    probing: bool,
    /// Chunks inserted without a look-up since the last one: every 8th is looked up anyway,
    /// so a load finds rows already there again after a run of new ones.
    unprobed: u32,
    /// In a large load (`import`), into any tables.
    loading: bool,
}

impl Postgres {
    /// Connects to `url` (with libpq's TLS parameters, see `postgres_tls`) and brings the
    /// schema up to date.
    pub(crate) fn open(url: &str) -> Result<Self, StoreError> {
        let mut client = super::postgres_tls::connect(url)?;
        migrate(&mut client)?;
        Ok(Self {
            client,
            bulk: false,
            loading: false,
            probing: false,
            unprobed: 0,
        })
    }
}

fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(schema::VERSION_TABLE)?;
    let found: i64 = tx
        .query_one(
            "SELECT coalesce(max(version), 0)::bigint FROM llm_schema",
            &[],
        )?
        .get(0);
    check_version(found)?;
    let todo = pending(&schema::POSTGRES, found);
    if !todo.is_empty() {
        for sql in todo {
            tx.batch_execute(sql)?;
        }
        if found < schema::DAILY_VERSION {
            tx.batch_execute(&super::daily::triggers(query::Engine::Postgres))?;
            tx.batch_execute(&super::daily::rebuild(query::Engine::Postgres))?;
        }
        tx.execute("DELETE FROM llm_schema", &[])?;
        tx.execute(
            "INSERT INTO llm_schema (version) VALUES ($1)",
            &[&schema::VERSION],
        )?;
    }
    tx.commit()?;
    Ok(())
}

impl Postgres {
    /// Calls `each` with the rows of `sql` as they come off the connection, never held whole.
    /// Not through a portal: PostgreSQL plans a query a portal may suspend without parallel
    /// workers, and a whole-table sum wants them.
    fn stream(
        &mut self,
        sql: &query::Sql,
        each: &mut dyn FnMut(&::postgres::Row) -> Result<(), ::postgres::Error>,
    ) -> Result<(), StoreError> {
        let mut rows = self.client.query_raw(sql.text.as_str(), params(sql))?;
        while let Some(row) = rows.next()? {
            each(&row)?;
        }
        Ok(())
    }
}

impl Backend for Postgres {
    fn insert(&mut self, rows: &[Row<'_>], ends: &[usize]) -> Result<Vec<u64>, StoreError> {
        let mut added = vec![0; ends.len()];
        if rows.is_empty() {
            return Ok(added);
        }
        let mut tx = self.client.transaction()?;
        // A block of `seq` numbers, so the lines keep their order across the tables.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SEQ_LOCK])?;
        let first: i64 = tx.query_one("SELECT nextval('llm_seq')", &[])?.get(0);
        let n = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        tx.execute("SELECT setval('llm_seq', $1)", &[&(first + n - 1)])?;
        let numbered: Vec<(i64, &Row<'_>)> = (first..).zip(rows).collect();
        let parts = ends.iter().scan(0, |start, &end| {
            let part = numbered.get(*start..end).unwrap_or_default();
            *start = end;
            Some(part)
        });
        for (part, chunk) in parts
            .enumerate()
            .flat_map(|(p, rows)| rows.chunks(CHUNK).map(move |c| (p, c)))
        {
            let new;
            let chunk = if self.bulk && (self.probing || self.unprobed >= 8) {
                let ids = |t: Table| -> Vec<&str> {
                    chunk
                        .iter()
                        .filter(|(_, r)| r.table == t)
                        .map(|(_, r)| r.id.as_str())
                        .collect()
                };
                let (usage, runs, events) =
                    (ids(Table::Usage), ids(Table::Runs), ids(Table::Events));
                let stored: std::collections::HashSet<String> = tx
                    .query(STORED, &[&usage, &runs, &events])?
                    .iter()
                    .map(|row| row.try_get::<_, String>(0))
                    .collect::<Result<_, _>>()?;
                // Look-ups pay off while most rows are there.
                self.probing = stored.len() * 2 >= chunk.len();
                self.unprobed = 0;
                new = chunk
                    .iter()
                    .filter(|(_, r)| !stored.contains(&r.id))
                    .copied()
                    .collect::<Vec<_>>();
                &new[..]
            } else {
                self.unprobed += 1;
                chunk
            };
            added[part] += insert_usage(&mut tx, chunk)?
                + insert_runs(&mut tx, chunk)?
                + insert_events(&mut tx, chunk)?;
        }
        if rows.iter().any(|r| r.table == Table::Usage) {
            let last = first + n - 1;
            tx.batch_execute(&super::daily::add(query::Engine::Postgres, first - 1, last))?;
        }
        tx.commit()?;
        Ok(added)
    }

    fn lines(&mut self, each: &mut dyn FnMut(&str)) -> Result<(), StoreError> {
        let mut all = query::Sql::new();
        all.text = schema::ALL_LINES.to_owned();
        self.lines_where(&all, each)
    }

    fn engine(&self) -> query::Engine {
        query::Engine::Postgres
    }

    fn lines_where(
        &mut self,
        sql: &query::Sql,
        each: &mut dyn FnMut(&str),
    ) -> Result<(), StoreError> {
        self.stream(sql, &mut |row| {
            each(row.try_get::<_, &str>(0)?);
            Ok(())
        })
    }

    fn sums(&mut self, sql: &query::Sql, each: &mut dyn FnMut(CallSums)) -> Result<(), StoreError> {
        // A group per run may be millions of rows.
        self.stream(sql, &mut |r| {
            let n = |i: usize| -> Result<u64, ::postgres::Error> {
                Ok(r.try_get::<_, Option<i64>>(i)?
                    .map_or(0, |v| u64::try_from(v).unwrap_or(0)))
            };
            each(query::call_sums(
                r.try_get(0)?,
                r.try_get(query::COST_COLUMN)?,
                sql.tail,
                n,
                |i| r.try_get(i),
            )?);
            Ok(())
        })
    }

    fn texts(&mut self, sql: &query::Sql) -> Result<Vec<Vec<Option<String>>>, StoreError> {
        let rows = self.client.query(sql.text.as_str(), &params(sql))?;
        Ok(rows
            .iter()
            .map(|r| (0..r.len()).map(|i| r.try_get(i)).collect())
            .collect::<Result<_, _>>()?)
    }

    fn execute(&mut self, sql: &query::Sql) -> Result<u64, StoreError> {
        Ok(self.client.execute(sql.text.as_str(), &params(sql))?)
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        let mut tx = self.client.transaction()?;
        tx.batch_execute(sql)?;
        tx.commit()?;
        Ok(())
    }

    fn begin_read(&mut self) -> Result<(), StoreError> {
        // Repeatable read: every statement sees the snapshot of the first (parallel
        // workers included; serializable would forbid them).
        self.client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        Ok(())
    }

    fn end_read(&mut self) -> Result<(), StoreError> {
        self.client.batch_execute("COMMIT")?;
        Ok(())
    }

    fn any_line(&mut self) -> Result<bool, StoreError> {
        Ok(self.client.query_one(query::ANY_LINE, &[])?.try_get(0)?)
    }

    fn line_count(&mut self) -> Result<u64, StoreError> {
        let n: i64 = self.client.query_one(query::LINE_COUNT, &[])?.try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn explain(&mut self, sql: &query::Sql) -> Result<String, StoreError> {
        let rows = self
            .client
            .query(format!("EXPLAIN {}", sql.text).as_str(), &params(sql))?;
        let lines: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<_, String>(0))
            .collect::<Result<_, _>>()?;
        Ok(lines.join("\n"))
    }

    fn bulk(&mut self) -> Result<(), StoreError> {
        let empty: bool = self
            .client
            .query_one(
                "SELECT NOT EXISTS (SELECT 1 FROM llm_usage) AND NOT EXISTS (SELECT 1 FROM llm_runs)",
                &[],
            )?
            .get(0);
        self.bulk = !empty;
        self.loading = true;
        self.probing = true;
        self.unprobed = 0;
        Ok(())
    }

    fn end_bulk(&mut self) -> Result<(), StoreError> {
        self.bulk = false;
        if std::mem::take(&mut self.loading) {
            // Until the pages a load wrote are marked all-visible, index-only scans (the
            // distinct runs of `stats`, the daily sums) visit the table too: several times
            // slower until autovacuum comes by. Vacuuming costs what was loaded (visible pages
            // are skipped). A role that may not vacuum gets a warning from the server; a
            // failure leaves the stored rows as they are.
            let _ = self
                .client
                .batch_execute("VACUUM (ANALYZE) llm_usage, llm_runs, llm_events, llm_daily");
        }
        Ok(())
    }

    fn log_import(&mut self, path: &str, lines: u64, added: u64) -> Result<(), StoreError> {
        self.client.execute(
            "INSERT INTO llm_imports (path, imported_at, lines, added) VALUES ($1, now(), $2, $3)",
            &[&path, &int(lines), &int(added)],
        )?;
        Ok(())
    }

    fn imported_files(&mut self) -> Result<u64, StoreError> {
        let n: i64 = self
            .client
            .query_one("SELECT count(DISTINCT path) FROM llm_imports", &[])?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// A statement's parameters as the client takes them.
fn params(sql: &query::Sql) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    sql.params
        .iter()
        .map(|p| p as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

/// The rows of `chunk` that go to `table`.
fn of<'r, 'a>(chunk: &'r [(i64, &'r Row<'a>)], table: Table) -> Vec<(i64, &'r Row<'a>)> {
    chunk
        .iter()
        .filter(|(_, r)| r.table == table)
        .copied()
        .collect()
}

/// One column of `rows`.
fn col<'r, 'a: 'r, T>(rows: &[(i64, &'r Row<'a>)], f: impl Fn(&'r Row<'a>) -> T) -> Vec<T> {
    rows.iter().map(|(_, r)| f(r)).collect()
}

fn seqs(rows: &[(i64, &Row<'_>)]) -> Vec<i64> {
    rows.iter().map(|(s, _)| *s).collect()
}

fn insert_usage(tx: &mut Transaction<'_>, chunk: &[(i64, &Row<'_>)]) -> Result<u64, StoreError> {
    let rows = of(chunk, Table::Usage);
    if rows.is_empty() {
        return Ok(0);
    }
    let count = |f: fn(&Row<'_>) -> u64| col(&rows, |r| int(f(r)));
    Ok(tx.execute(
        INSERT_USAGE,
        &[
            &seqs(&rows),
            &col(&rows, |r| r.id.as_str()),
            &col(&rows, |r| r.timestamp.as_str()),
            &col(&rows, |r| r.fields.run_id.as_deref()),
            &col(&rows, |r| r.fields.step.as_deref()),
            &col(&rows, |r| r.fields.task.as_deref()),
            &col(&rows, |r| r.fields.agent.as_deref()),
            &col(&rows, |r| r.fields.provider.as_deref()),
            &col(&rows, |r| r.fields.model.as_deref()),
            &count(|r| r.fields.tokens.input),
            &count(|r| r.fields.tokens.output),
            &count(|r| r.fields.tokens.total),
            &count(|r| r.fields.tokens.cache_read),
            &count(|r| r.fields.tokens.cache_write),
            &count(|r| r.fields.tokens.reasoning),
            &col(&rows, |r| r.fields.cost_usd),
            &col(&rows, |r| r.fields.cost_source.as_deref()),
            &col(&rows, |r| r.fields.price_version.as_deref()),
            &col(&rows, |r| r.fields.latency_ms.map(int)),
            &col(&rows, |r| r.fields.estimated),
            &col(&rows, |r| r.fields.error.as_deref()),
            &col(&rows, |r| r.line),
            &col(&rows, |r| r.fields.stream),
            &col(&rows, |r| r.fields.ttft_ms.map(int)),
            &col(&rows, |r| r.fields.modality_json()),
            &col(&rows, |r| r.fields.attributes.as_deref()),
        ],
    )?)
}

fn insert_runs(tx: &mut Transaction<'_>, chunk: &[(i64, &Row<'_>)]) -> Result<u64, StoreError> {
    let rows = of(chunk, Table::Runs);
    if rows.is_empty() {
        return Ok(0);
    }
    let usage: Vec<SummaryUsage> = col(&rows, |r| r.fields.usage.clone().unwrap_or_default());
    let count = |f: fn(&SummaryUsage) -> u64| usage.iter().map(|u| int(f(u))).collect::<Vec<_>>();
    Ok(tx.execute(
        INSERT_RUN,
        &[
            &seqs(&rows),
            &col(&rows, |r| r.id.as_str()),
            &col(&rows, |r| r.timestamp.as_str()),
            &col(&rows, |r| r.fields.run_id.as_deref()),
            &col(&rows, |r| r.fields.status.as_deref()),
            &col(&rows, |r| r.fields.elapsed_seconds),
            &count(|u| u.call_count),
            &count(|u| u.input_tokens),
            &count(|u| u.output_tokens),
            &count(|u| u.total_tokens),
            &usage.iter().map(|u| u.cost_usd).collect::<Vec<_>>(),
            &col(&rows, |r| r.line),
            &col(&rows, |r| r.fields.attributes.as_deref()),
        ],
    )?)
}

fn insert_events(tx: &mut Transaction<'_>, chunk: &[(i64, &Row<'_>)]) -> Result<u64, StoreError> {
    let rows = of(chunk, Table::Events);
    if rows.is_empty() {
        return Ok(0);
    }
    Ok(tx.execute(
        INSERT_EVENT,
        &[
            &seqs(&rows),
            &col(&rows, |r| r.id.as_str()),
            &col(&rows, |r| r.timestamp.as_str()),
            &col(&rows, |r| &*r.fields.event),
            &col(&rows, |r| r.fields.run_id.as_deref()),
            &col(&rows, |r| r.line),
        ],
    )?)
}
