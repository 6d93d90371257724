//! SQLite: one file, WAL mode, one `IMMEDIATE` transaction per batch.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, TransactionBehavior};

use super::row::{int, Row, Table};
use super::{check_version, pending, query, schema, Backend, CallSums, StoreError};

const INSERT_USAGE: &str = "INSERT INTO llm_usage (seq, id, timestamp, run_id, step, task,
    agent, provider, model, input_tokens, output_tokens, total_tokens, cache_read_tokens,
    cache_write_tokens, reasoning_tokens, cost_usd, cost_source, price_version,
    response_time_ms, estimated, error, line, stream, ttft_ms, modality, attributes)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
    ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26) ON CONFLICT (id) DO NOTHING";
const INSERT_RUN: &str = "INSERT INTO llm_runs (seq, id, timestamp, run_id, status,
    elapsed_seconds, call_count, input_tokens, output_tokens, total_tokens, cost_usd, line,
    attributes)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT (id) DO NOTHING";
const INSERT_EVENT: &str = "INSERT INTO llm_events (seq, id, timestamp, event, run_id, line)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING";
const MAX_SEQ: &str = "SELECT max(coalesce((SELECT max(seq) FROM llm_usage), 0),
    coalesce((SELECT max(seq) FROM llm_runs), 0), coalesce((SELECT max(seq) FROM llm_events), 0))";

/// The page cache of a connection, in KiB as `cache_size` takes it when negative: 16 MB
/// (SQLite's default is 2 MB), so the indexes' hot pages stay in memory.
const CACHE_KB: i64 = -16384;

/// A SQLite database file.
pub(crate) struct Sqlite {
    conn: Connection,
    /// Whether a bulk load dropped the secondary indexes.
    unindexed: bool,
    /// Whether a bulk load dropped the count triggers.
    uncounted: bool,
    /// A bulk load into tables that have rows: rows' ids are looked up before they are
    /// inserted (a reloaded file is mostly rows already there, and a lookup binds one short
    /// id, not every column and the line).
    probe: bool,
    /// The largest `seq` stored, kept here while a load into a new file of its own (nobody
    /// else writes it) goes without the `seq` indexes.
    last_seq: Option<i64>,
}

impl Sqlite {
    /// Opens or creates `path`, and brings its schema up to date.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        // A new file gets 16 KiB pages: a row (its line and columns) is about 1 KiB, and
        // bigger pages make loading it and building its indexes about an eighth faster. Set
        // before anything is written (an existing file keeps its size).
        conn.pragma_update(None, "page_size", 16384)?;
        // WAL: readers (a report, `sqlite3`) never block the writer; NORMAL sync is durable
        // across a process crash, which is what a log needs.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "cache_size", CACHE_KB)?;
        migrate(&mut conn)?;
        // A bulk load that never finished left its indexes to be made (cheap when they
        // exist), and its count triggers.
        make_indexes(&conn)?;
        let names: Vec<String> = trigger_names().map(|n| format!("'{n}'")).collect();
        let have: i64 = conn.query_row(
            &format!(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN ({})",
                names.join(", ")
            ),
            [],
            |r| r.get(0),
        )?;
        if usize::try_from(have).ok() != Some(names.len()) {
            recount(&mut conn)?;
        }
        Ok(Self {
            conn,
            unindexed: false,
            uncounted: false,
            probe: false,
            last_seq: None,
        })
    }
}

/// The secondary indexes' names.
fn index_names() -> impl Iterator<Item = &'static str> {
    schema::INDEXES
        .split(';')
        .filter_map(|stmt| stmt.split_whitespace().nth(2))
}

/// The count triggers' names.
fn trigger_names() -> impl Iterator<Item = &'static str> {
    schema::COUNT_TRIGGERS
        .split("CREATE TRIGGER ")
        .filter_map(|stmt| stmt.split_whitespace().next())
}

/// Counts the lines again and makes the count triggers, in one transaction.
fn recount(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for n in trigger_names() {
        tx.execute_batch(&format!("DROP TRIGGER IF EXISTS {n};"))?;
    }
    tx.execute_batch(schema::RECOUNT)?;
    tx.execute_batch(schema::COUNT_TRIGGERS)?;
    tx.commit()?;
    Ok(())
}

/// The secondary indexes, each made unless it exists.
fn if_missing() -> String {
    schema::INDEXES.replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ")
}

/// Makes the secondary indexes a database lacks, and leaves the connection's cache as
/// [`CACHE_KB`]. SQLite sorts an index's keys in runs the size of its cache, on worker
/// threads, and merges them: a small cache and a thread a core make the indexes of a million
/// rows about twice as fast as one sort in a large cache.
fn make_indexes(conn: &Connection) -> Result<(), StoreError> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    conn.pragma_update(None, "cache_size", -2000)?;
    conn.pragma_update(None, "threads", i64::try_from(cores.min(4)).unwrap_or(1))?;
    let made = conn.execute_batch(&if_missing());
    conn.pragma_update(None, "threads", 0)?;
    conn.pragma_update(None, "cache_size", CACHE_KB)?;
    Ok(made?)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(schema::VERSION_TABLE)?;
    let found: i64 = tx.query_row(
        "SELECT coalesce(max(version), 0) FROM llm_schema",
        [],
        |r| r.get(0),
    )?;
    check_version(found)?;
    let todo = pending(&schema::SQLITE, found);
    if !todo.is_empty() {
        for sql in todo {
            tx.execute_batch(sql)?;
        }
        if found < schema::DAILY_VERSION {
            tx.execute_batch(&super::daily::triggers(query::Engine::Sqlite))?;
            tx.execute_batch(&super::daily::rebuild(query::Engine::Sqlite))?;
        }
        tx.execute("DELETE FROM llm_schema", [])?;
        tx.execute(
            "INSERT INTO llm_schema (version) VALUES (?1)",
            [schema::VERSION],
        )?;
    }
    tx.commit()?;
    Ok(())
}

impl Backend for Sqlite {
    fn insert(&mut self, rows: &[Row<'_>], ends: &[usize]) -> Result<Vec<u64>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let last_seq: i64 = match self.last_seq {
            Some(seq) => seq,
            None => tx.query_row(MAX_SEQ, [], |r| r.get(0))?,
        };
        // Inserted in id order, numbered in line order: the ids are hashes, and in order they
        // touch the id index page after page instead of at random.
        let mut order: Vec<(u128, usize)> =
            rows.iter().enumerate().map(|(i, r)| (r.hash, i)).collect();
        order.sort_unstable();
        let mut added = vec![0; ends.len()];
        let mut daily = super::daily::Added::default();
        {
            let mut usage = tx.prepare_cached(INSERT_USAGE)?;
            let mut runs = tx.prepare_cached(INSERT_RUN)?;
            let mut events = tx.prepare_cached(INSERT_EVENT)?;
            let mut there = [
                tx.prepare_cached("SELECT 1 FROM llm_usage WHERE id = ?1")?,
                tx.prepare_cached("SELECT 1 FROM llm_runs WHERE id = ?1")?,
                tx.prepare_cached("SELECT 1 FROM llm_events WHERE id = ?1")?,
            ];
            // Lookups pay off when most rows are there: after the first 64, they go on only
            // if at least half of those were.
            let (mut probing, mut probed, mut found) = (self.probe, 0u32, 0u32);
            for (_, i) in order {
                let r = &rows[i];
                if probing {
                    let table = match r.table {
                        Table::Usage => 0,
                        Table::Runs => 1,
                        Table::Events => 2,
                    };
                    probed += 1;
                    if there[table].exists([&r.id])? {
                        found += 1;
                        continue;
                    }
                    if probed >= 64 && found * 2 < probed {
                        probing = false;
                    }
                }
                let seq = last_seq + 1 + i as i64;
                let f = &r.fields;
                let n = match r.table {
                    Table::Usage => {
                        let t = &f.tokens;
                        usage.execute(params![
                            seq,
                            r.id,
                            r.timestamp,
                            f.run_id.as_deref(),
                            f.step.as_deref(),
                            f.task.as_deref(),
                            f.agent.as_deref(),
                            f.provider.as_deref(),
                            f.model.as_deref(),
                            int(t.input),
                            int(t.output),
                            int(t.total),
                            int(t.cache_read),
                            int(t.cache_write),
                            int(t.reasoning),
                            f.cost_usd,
                            f.cost_source.as_deref(),
                            f.price_version.as_deref(),
                            f.latency_ms.map(int),
                            f.estimated,
                            f.error.as_deref(),
                            r.line,
                            f.stream,
                            f.ttft_ms.map(int),
                            f.modality_json(),
                            f.attributes.as_deref(),
                        ])?
                    }
                    Table::Runs => {
                        let u = f.usage.clone().unwrap_or_default();
                        runs.execute(params![
                            seq,
                            r.id,
                            r.timestamp,
                            f.run_id.as_deref(),
                            f.status.as_deref(),
                            f.elapsed_seconds,
                            int(u.call_count),
                            int(u.input_tokens),
                            int(u.output_tokens),
                            int(u.total_tokens),
                            u.cost_usd,
                            r.line,
                            f.attributes.as_deref(),
                        ])?
                    }
                    Table::Events => events.execute(params![
                        seq,
                        r.id,
                        r.timestamp,
                        &*f.event,
                        f.run_id.as_deref(),
                        r.line,
                    ])?,
                };
                if n == 1 && r.table == Table::Usage {
                    daily.add(r);
                }
                let part = ends.partition_point(|&end| end <= i);
                if let Some(a) = added.get_mut(part) {
                    *a += n as u64;
                }
            }
        }
        daily.store(&tx)?;
        tx.commit()?;
        if let Some(seq) = &mut self.last_seq {
            *seq += i64::try_from(rows.len()).unwrap_or(i64::MAX);
        }
        Ok(added)
    }

    fn lines(&mut self, each: &mut dyn FnMut(&str)) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare(schema::ALL_LINES)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let text = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            each(text);
        }
        Ok(())
    }

    fn engine(&self) -> query::Engine {
        query::Engine::Sqlite
    }

    fn lines_where(
        &mut self,
        sql: &query::Sql,
        each: &mut dyn FnMut(&str),
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare(&sql.text)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
        while let Some(row) = rows.next()? {
            let text = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            each(text);
        }
        Ok(())
    }

    fn sums(&mut self, sql: &query::Sql, each: &mut dyn FnMut(CallSums)) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare(&sql.text)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
        while let Some(r) = rows.next()? {
            let n = |i: usize| -> rusqlite::Result<u64> {
                Ok(r.get::<_, Option<i64>>(i)?
                    .map_or(0, |v| u64::try_from(v).unwrap_or(0)))
            };
            each(query::call_sums(
                r.get(0)?,
                r.get(query::COST_COLUMN)?,
                sql.tail,
                n,
                |i| r.get(i),
            )?);
        }
        Ok(())
    }

    fn texts(&mut self, sql: &query::Sql) -> Result<Vec<Vec<Option<String>>>, StoreError> {
        let mut stmt = self.conn.prepare(&sql.text)?;
        let columns = stmt.column_count();
        let rows = stmt.query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
            (0..columns)
                .map(|i| r.get::<_, Option<String>>(i))
                .collect()
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn any_line(&mut self) -> Result<bool, StoreError> {
        Ok(self.conn.query_row(query::ANY_LINE, [], |r| r.get(0))?)
    }

    fn line_count(&mut self) -> Result<u64, StoreError> {
        let n: i64 = self.conn.query_row(query::LINE_COUNT, [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn explain(&mut self, sql: &query::Sql) -> Result<String, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", sql.text))?;
        let rows = stmt.query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
            r.get::<_, String>(3)
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?.join("\n"))
    }

    fn bulk(&mut self) -> Result<(), StoreError> {
        let empty: bool = self.conn.query_row(
            "SELECT NOT EXISTS (SELECT 1 FROM llm_usage) AND NOT EXISTS (SELECT 1 FROM llm_runs)",
            [],
            |r| r.get(0),
        )?;
        if !empty {
            // Ids are looked up and inserted all over a big id index: 256 MB of cache keeps
            // it in memory for a load of a few million rows. (Into an empty store, a
            // transaction's rows go in id order, page after page: the usual cache does.)
            self.conn.pragma_update(None, "cache_size", -262_144)?;
        }
        // The count triggers go whatever the tables hold, and the lines are counted again at
        // the end: an insert that fires a trigger writes two tables, so SQLite keeps a copy of
        // every page it touches (a statement journal, to undo it alone), and a load into a
        // store with rows takes twice as long.
        let mut drops: String = trigger_names()
            .map(|n| format!("DROP TRIGGER IF EXISTS {n};"))
            .collect();
        if empty {
            // The `seq` indexes stay: each transaction starts from the largest `seq`, which
            // without them is a scan of everything loaded so far (a load of many files would
            // take time in the square of its size), and appending to them costs little.
            drops.extend(
                index_names()
                    .filter(|n| !n.ends_with("_seq"))
                    .map(|n| format!("DROP INDEX IF EXISTS {n};")),
            );
            self.unindexed = true;
        }
        self.conn.execute_batch(&drops)?;
        self.uncounted = true;
        self.probe = !empty;
        Ok(())
    }

    fn unjournaled(&mut self) -> Result<(), StoreError> {
        // `journal_mode` answers with the mode it set: a query, not an update.
        let _: String = self
            .conn
            .query_row("PRAGMA journal_mode = OFF", [], |r| r.get(0))?;
        self.conn.pragma_update(None, "synchronous", "OFF")?;
        if self.unindexed {
            // Nobody else writes this file: the largest `seq` is kept here, and the `seq`
            // indexes are made at the end with the others (rows go in in id order, so each
            // would take its entries at random).
            let drops: String = index_names()
                .filter(|n| n.ends_with("_seq"))
                .map(|n| format!("DROP INDEX IF EXISTS {n};"))
                .collect();
            self.conn.execute_batch(&drops)?;
            self.last_seq = Some(self.conn.query_row(MAX_SEQ, [], |r| r.get(0))?);
        }
        Ok(())
    }

    fn end_bulk(&mut self) -> Result<(), StoreError> {
        self.probe = false;
        self.last_seq = None;
        if std::mem::take(&mut self.unindexed) {
            make_indexes(&self.conn)?;
        }
        if std::mem::take(&mut self.uncounted) {
            recount(&mut self.conn)?;
        }
        self.conn.pragma_update(None, "cache_size", CACHE_KB)?;
        Ok(())
    }

    fn execute(&mut self, sql: &query::Sql) -> Result<u64, StoreError> {
        let n = self
            .conn
            .execute(&sql.text, rusqlite::params_from_iter(sql.params.iter()))?;
        Ok(n as u64)
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.commit()?;
        Ok(())
    }

    fn begin_read(&mut self) -> Result<(), StoreError> {
        // Deferred: the first read takes the snapshot (in WAL mode, writers go on).
        self.conn.execute_batch("BEGIN")?;
        Ok(())
    }

    fn end_read(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    fn reading(&mut self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "cache_size", -2000)?;
        Ok(())
    }

    fn log_import(&mut self, path: &str, lines: u64, added: u64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO llm_imports (path, imported_at, lines, added) VALUES (?1, ?2, ?3, ?4)",
            params![
                path,
                crate::record::Timestamp::now().to_string(),
                int(lines),
                int(added)
            ],
        )?;
        Ok(())
    }

    fn imported_files(&mut self) -> Result<u64, StoreError> {
        let n: i64 =
            self.conn
                .query_row("SELECT count(DISTINCT path) FROM llm_imports", [], |r| {
                    r.get(0)
                })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("SELECT version FROM llm_schema", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn an_older_database_is_upgraded_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        {
            // A database as migration 1 left it, with a call in it.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(schema::VERSION_TABLE).unwrap();
            conn.execute_batch(schema::SQLITE[0]).unwrap();
            conn.execute("INSERT INTO llm_schema VALUES (1)", [])
                .unwrap();
            conn.execute(
                "INSERT INTO llm_usage (seq, id, timestamp, input_tokens, output_tokens,
                 total_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
                 estimated, line) VALUES (1, 'x', '2025-12-14T10:30:15.123Z', 3, 1, 4, 0, 0,
                 0, 0, '{}')",
                [],
            )
            .unwrap();
        }
        let mut db = Sqlite::open(&path).unwrap();
        assert_eq!(version(&path), schema::VERSION);
        // Migration 2's table exists and the old row is still there.
        assert_eq!(db.imported_files().unwrap(), 0);
        let mut seen = Vec::new();
        db.lines(&mut |l| seen.push(l.to_owned())).unwrap();
        assert_eq!(seen, ["{}"]);
        drop(db);
        // Reopening an up-to-date database changes nothing.
        drop(Sqlite::open(&path).unwrap());
        assert_eq!(version(&path), schema::VERSION);

        Connection::open(&path)
            .unwrap()
            .execute("UPDATE llm_schema SET version = 99", [])
            .unwrap();
        let err = Sqlite::open(&path).err().unwrap();
        assert!(matches!(
            err,
            StoreError::TooNew {
                found: 99,
                supported: schema::VERSION
            }
        ));
        assert!(err.to_string().contains("newer"), "{err}");
    }
}

#[cfg(test)]
mod bulk_tests {
    use super::*;
    use crate::store::Store;

    fn indexes(path: &Path) -> Vec<String> {
        let c = Connection::open(path).unwrap();
        let mut st = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name")
            .unwrap();
        let names = st.query_map([], |r| r.get::<_, String>(0)).unwrap();
        names.map(Result::unwrap).collect()
    }

    #[test]
    fn a_snapshot_reads_one_state_while_another_connection_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        let path = path.to_str().unwrap();
        let line = |input: u32| {
            format!(
                r#"{{"timestamp":"2025-12-14T10:30:15.123Z","event":"llm_call","run_id":"r{input}","tokens":{{"input":{input},"output":2}}}}"#
            )
        };
        let mut writer = Store::open(path).unwrap();
        let mut reader = Store::open_existing(path).unwrap();
        writer.insert(&[&line(7)]).unwrap();
        let all = crate::store::LineFilter::default();
        let seen = reader
            .snapshot(|r| {
                let before = r.totals(&all).unwrap().calls;
                assert_eq!(writer.insert(&[&line(5)]).unwrap().added, 1);
                let after = r.totals(&all).unwrap().calls;
                (before.input, after.input, after.runs)
            })
            .unwrap();
        assert_eq!(seen, (7, 7, 1));
        let now = reader.totals(&all).unwrap().calls;
        assert_eq!((now.input, now.runs), (12, 2));
    }

    #[test]
    fn daily_sums_too_large_to_hold_exactly_are_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        let mut db = Store::open(path.to_str().unwrap()).unwrap();
        let call = |input: u64, at: u32| {
            format!(
                r#"{{"timestamp":"2025-12-14T10:30:0{at}.000Z","event":"llm_call","step":"s","tokens":{{"input":{input},"output":2}}}}"#
            )
        };
        // Summing them is refused by the calls' table and clamped in the daily sums: the
        // storing succeeds, and a report gets the error (and reads the lines), not a clamp.
        let big = call(u64::MAX / 3, 1);
        assert_eq!(db.insert(&[&big, &call(u64::MAX / 3, 2)]).unwrap().added, 2);
        let all = crate::store::LineFilter::default();
        let by_step = crate::store::GroupBy::Field(crate::store::Field::Step);
        assert!(db.sum_calls(&all, by_step).is_err());
        // Within what a row holds, the daily sums answer, and agree with the calls.
        let other = Store::open(dir.path().join("small.db").to_str().unwrap());
        let mut other = other.unwrap();
        other.insert(&[&call(7, 1), &call(5, 2)]).unwrap();
        let sums = other.sum_calls(&all, by_step).unwrap();
        assert_eq!((sums[0].calls, sums[0].input), (2, 12));
    }

    #[test]
    fn a_bulk_load_into_an_empty_database_ends_with_every_index() {
        let dir = tempfile::tempdir().unwrap();
        let (fresh, loaded, cut) = (
            dir.path().join("fresh.db"),
            dir.path().join("loaded.db"),
            dir.path().join("cut.db"),
        );
        drop(Store::open(fresh.to_str().unwrap()).unwrap());
        let want = indexes(&fresh);
        assert_eq!(want.len(), 17, "{want:?}");
        let want_triggers = triggers(&fresh);
        assert_eq!(want_triggers.len(), 7, "{want_triggers:?}");
        let line = r#"{"timestamp":"2025-12-14T10:30:15.123Z","event":"llm_call","run_id":"r","tokens":{"input":7,"output":2}}"#;
        for (path, finish) in [(&loaded, true), (&cut, false)] {
            let mut db = Store::open(path.to_str().unwrap()).unwrap();
            db.prepare_bulk().unwrap();
            assert_eq!(db.insert(&[line]).unwrap().added, 1);
            if finish {
                db.finish_bulk().unwrap();
                assert_eq!(indexes(path), want);
                assert_eq!(triggers(path), want_triggers);
            } else {
                // A load cut short: the next open makes what is missing, and counts.
                assert!(indexes(path).len() < want.len());
                assert_eq!(triggers(path), ["llm_usage_undaily"]);
            }
            drop(db);
            drop(Store::open(path.to_str().unwrap()).unwrap());
            assert_eq!(indexes(path), want);
            assert_eq!(triggers(path), want_triggers);
            let mut db = Store::open(path.to_str().unwrap()).unwrap();
            assert_eq!(db.line_count().unwrap(), 1);
            // The triggers count from there.
            db.insert(&[&line.replace("\"input\":7", "\"input\":8")])
                .unwrap();
            assert_eq!(db.line_count().unwrap(), 2);
        }
    }

    /// A load into a new file nobody else writes goes without the `seq` indexes and numbers
    /// lines from the largest `seq` it keeps: across its transactions, and tables, the lines
    /// read back in the order they were given, and every index is there at the end.
    #[test]
    fn an_unjournaled_load_numbers_lines_in_order_across_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let (fresh, path_str) = (dir.path().join("fresh.db"), path.to_str().unwrap());
        drop(Store::open(fresh.to_str().unwrap()).unwrap());
        let lines: Vec<String> = (0..30)
            .map(|n| match n % 3 {
                0 | 1 => format!(
                    r#"{{"timestamp":"2025-12-14T10:30:{:02}.000Z","event":"llm_call","run_id":"r{n}","tokens":{{"input":{n},"output":1}}}}"#,
                    n
                ),
                _ => format!(
                    r#"{{"timestamp":"2025-12-14T10:30:{:02}.000Z","event":"run_summary","run_id":"r{n}","status":"success"}}"#,
                    n
                ),
            })
            .collect();
        let mut db = Store::open(path_str).unwrap();
        db.prepare_bulk().unwrap();
        db.write_unjournaled().unwrap();
        let made = indexes(&path);
        assert!(
            !made
                .iter()
                .any(|n| n == "llm_usage_seq" || n == "llm_runs_seq"),
            "{made:?}"
        );
        for chunk in lines.chunks(7) {
            let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
            assert_eq!(db.insert(&chunk).unwrap().added, chunk.len() as u64);
        }
        db.finish_bulk().unwrap();
        assert_eq!(indexes(&path), indexes(&fresh));
        let mut read = Vec::new();
        db.for_each_line(&mut |l| read.push(l.to_owned())).unwrap();
        assert_eq!(read, lines);
        // After the load, the next line is numbered after every other.
        let late = lines[0].replace(":00.000Z", ":59.000Z");
        assert_eq!(db.insert(&[&late]).unwrap().added, 1);
        let mut last = String::new();
        db.for_each_line(&mut |l| last = l.to_owned()).unwrap();
        assert_eq!(last, late);
    }

    fn triggers(path: &Path) -> Vec<String> {
        let c = Connection::open(path).unwrap();
        let mut st = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
            .unwrap();
        let names = st.query_map([], |r| r.get::<_, String>(0)).unwrap();
        names.map(Result::unwrap).collect()
    }

    /// `n` distinct lines of every kind, from `from`.
    fn lines(from: u64, n: u64) -> Vec<String> {
        (from..from + n)
            .map(|i| match i % 3 {
                0 => format!(r#"{{"timestamp":"2025-12-14T10:30:15.123Z","event":"llm_call","run_id":"r{i}","tokens":{{"input":{i},"output":2}}}}"#),
                1 => format!(r#"{{"timestamp":"2025-12-14T10:30:16Z","event":"run_summary","run_id":"r{i}","status":"success"}}"#),
                _ => format!(r#"{{"timestamp":"2025-12-14T10:30:17Z","event":"budget_warning","budget":"b{i}"}}"#),
            })
            .collect()
    }

    #[test]
    fn a_load_into_rows_already_there_adds_exactly_the_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        let target = path.to_str().unwrap();
        let mut db = Store::open(target).unwrap();
        let first = lines(0, 300);
        let text: Vec<&str> = first.iter().map(String::as_str).collect();
        assert_eq!(db.insert(&text).unwrap().added, 300);
        drop(db);
        // Mostly there (lookups go on), then mostly new (lookups stop after 64), then all
        // there; each batch in one transaction.
        let all_triggers = triggers(&path);
        assert_eq!(all_triggers.len(), 7);
        for (from, n, new) in [(0, 330, 30), (250, 400, 320), (0, 650, 0)] {
            let mut db = Store::open(target).unwrap();
            db.prepare_bulk().unwrap();
            // Inserts fire no trigger during the load (see `bulk`): the lines are counted at
            // its end.
            assert_eq!(triggers(&path), ["llm_usage_undaily"]);
            let batch = lines(from, n);
            let text: Vec<&str> = batch.iter().map(String::as_str).collect();
            assert_eq!(db.insert(&text).unwrap().added, new, "{from}+{n}");
            db.finish_bulk().unwrap();
            assert_eq!(triggers(&path), all_triggers);
            // Every line of 0..from + n is stored once, and counted once.
            assert_eq!(db.line_count().unwrap(), from + n);
        }
        let c = Connection::open(&path).unwrap();
        let count = |t: &str| -> i64 {
            c.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(
            (count("llm_usage"), count("llm_runs"), count("llm_events")),
            (217, 217, 216)
        );
    }
}
