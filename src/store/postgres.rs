//! PostgreSQL: a synchronous client (the `postgres` crate), one transaction per batch with
//! prepared inserts; `seq` comes from one sequence shared by the tables.

use postgres::{Client, NoTls};

use super::row::{int, Row, Table};
use super::{check_version, pending, schema, Backend, StoreError};

const INSERT_USAGE: &str = "INSERT INTO llm_usage (id, timestamp, run_id, step, task, agent,
    provider, model, input_tokens, output_tokens, total_tokens, cache_read_tokens,
    cache_write_tokens, reasoning_tokens, cost_usd, cost_source, price_version,
    response_time_ms, estimated, error, line)
    VALUES ($1, CAST($2::text AS timestamptz), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
    $14, $15, $16, $17, $18, $19, $20, $21) ON CONFLICT (id) DO NOTHING";
const INSERT_RUN: &str = "INSERT INTO llm_runs (id, timestamp, run_id, status, elapsed_seconds,
    call_count, input_tokens, output_tokens, total_tokens, cost_usd, line)
    VALUES ($1, CAST($2::text AS timestamptz), $3, $4, $5, $6, $7, $8, $9, $10, $11)
    ON CONFLICT (id) DO NOTHING";
const INSERT_EVENT: &str = "INSERT INTO llm_events (id, timestamp, event, run_id, line)
    VALUES ($1, CAST($2::text AS timestamptz), $3, $4, $5) ON CONFLICT (id) DO NOTHING";
/// Serialises concurrent migrations of one database (an arbitrary, fixed key).
const MIGRATION_LOCK: i64 = 0x6c6c_6d5f_7573_6167;

/// A PostgreSQL database.
pub(crate) struct Postgres {
    client: Client,
}

impl Postgres {
    /// Connects to `url` and brings the schema up to date.
    pub(crate) fn open(url: &str) -> Result<Self, StoreError> {
        let mut config: postgres::Config = url.parse()?;
        if config.get_application_name().is_none() {
            config.application_name("tracing-llm-usage");
        }
        let mut client = config.connect(NoTls)?;
        migrate(&mut client)?;
        Ok(Self { client })
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
        tx.execute("DELETE FROM llm_schema", &[])?;
        tx.execute(
            "INSERT INTO llm_schema (version) VALUES ($1)",
            &[&schema::VERSION],
        )?;
    }
    tx.commit()?;
    Ok(())
}

impl Backend for Postgres {
    fn insert(&mut self, rows: &[Row<'_>]) -> Result<u64, StoreError> {
        let mut tx = self.client.transaction()?;
        let usage = tx.prepare(INSERT_USAGE)?;
        let runs = tx.prepare(INSERT_RUN)?;
        let events = tx.prepare(INSERT_EVENT)?;
        let mut added = 0;
        for r in rows {
            let f = &r.fields;
            added += match r.table {
                Table::Usage => {
                    let t = &f.tokens;
                    tx.execute(
                        &usage,
                        &[
                            &r.id,
                            &r.timestamp,
                            &f.run_id.as_deref(),
                            &f.step.as_deref(),
                            &f.task.as_deref(),
                            &f.agent.as_deref(),
                            &f.provider.as_deref(),
                            &f.model.as_deref(),
                            &int(t.input),
                            &int(t.output),
                            &int(t.total),
                            &int(t.cache_read),
                            &int(t.cache_write),
                            &int(t.reasoning),
                            &f.cost_usd,
                            &f.cost_source.as_deref(),
                            &f.price_version.as_deref(),
                            &f.latency_ms.map(int),
                            &f.estimated,
                            &f.error.as_deref(),
                            &r.line,
                        ],
                    )?
                }
                Table::Runs => {
                    let u = f.usage.clone().unwrap_or_default();
                    tx.execute(
                        &runs,
                        &[
                            &r.id,
                            &r.timestamp,
                            &f.run_id.as_deref(),
                            &f.status.as_deref(),
                            &f.elapsed_seconds,
                            &int(u.call_count),
                            &int(u.input_tokens),
                            &int(u.output_tokens),
                            &int(u.total_tokens),
                            &u.cost_usd,
                            &r.line,
                        ],
                    )?
                }
                Table::Events => tx.execute(
                    &events,
                    &[
                        &r.id,
                        &r.timestamp,
                        &&*f.event,
                        &f.run_id.as_deref(),
                        &r.line,
                    ],
                )?,
            };
        }
        tx.commit()?;
        Ok(added)
    }

    fn lines(&mut self, each: &mut dyn FnMut(&str)) -> Result<(), StoreError> {
        // Streamed: a portal inside a transaction, so a large table is never held whole.
        let mut tx = self.client.transaction()?;
        let portal = tx.bind(schema::ALL_LINES, &[])?;
        loop {
            let batch = tx.query_portal(&portal, 10_000)?;
            if batch.is_empty() {
                break;
            }
            for row in &batch {
                each(row.try_get::<_, &str>(0)?);
            }
        }
        tx.commit()?;
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
