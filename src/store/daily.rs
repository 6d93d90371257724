//! The daily sums (`llm_daily`): the calls' sums per UTC day, model, provider and step, kept
//! in the transaction that adds the calls and by a trigger when calls are deleted, so that a
//! question over whole days reads a few rows a day, not every call. Task and agent are left
//! out: an application may give each request a task of its own, and the sums would be as
//! many as the calls (a question about them reads the calls).
//!
//! A row's key `k` is the JSON array of its day and fields (`NULL` and `""` differ there);
//! its measures are [`query::MEASURES`], summed. Keeping them never fails the transaction
//! that adds the calls: a sum too large to hold exactly (past 2⁵³ in SQLite, which sums
//! them as doubles here, past 2⁶³−1 in PostgreSQL) is clamped and its row marked
//! `overflow`, and a store with such a row answers from its calls instead.

use super::query::{self, Engine, MEASURES};
#[cfg(feature = "sqlite")]
use super::row::{int, Row};

/// The key of a group, over the row `r` whose day is `day`.
fn key(engine: Engine, day: &str, r: &str) -> String {
    let fields = format!("{day}, {r}model, {r}provider, {r}step");
    match engine {
        Engine::Sqlite => format!("json_array({fields})"),
        Engine::Postgres => format!("CAST(json_build_array({fields}) AS TEXT)"),
    }
}

/// The columns of `llm_daily`, in order.
fn columns() -> String {
    let measures: Vec<&str> = MEASURES.iter().map(|(c, _)| *c).collect();
    format!(
        "k, day, model, provider, step, {}, overflow",
        measures.join(", ")
    )
}

/// The largest sum a row holds exactly, in the engine's SQL.
fn exact_limit(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "9007199254740992.0",
        Engine::Postgres => "9223372036854775807",
    }
}

/// The sum of `expr` over a group, clamped to what a row holds exactly (`negate`: its
/// negation), and whether it had to be.
fn clamped_sum(engine: Engine, expr: &str, negate: bool) -> (String, String) {
    let sign = if negate { "-" } else { "" };
    let limit = exact_limit(engine);
    // SQLite's `sum` of integers fails past 2⁶³−1; `total` never fails.
    let sum = match engine {
        Engine::Sqlite => format!("total({expr})"),
        Engine::Postgres => format!("coalesce(sum({expr}), 0)"),
    };
    let value = match engine {
        Engine::Sqlite => format!("{sign}CAST(max(min({sum}, {limit}), -{limit}) AS INTEGER)"),
        Engine::Postgres => {
            format!("{sign}CAST(GREATEST(LEAST({sum}, {limit}), -{limit}) AS BIGINT)")
        }
    };
    (value, format!("abs({sum}) > {limit}"))
}

/// Adds to `llm_daily` the sums of the calls `source` (rows of `llm_usage` under `where_`)
/// holds, each measure's sum negated when `negate`.
fn add_from(engine: Engine, source: &str, where_: &str, negate: bool) -> String {
    let (mut sums, mut overflows) = (Vec::new(), Vec::new());
    for (_, expr) in MEASURES {
        let (sum, overflow) = clamped_sum(engine, &query::measure(engine, expr, ""), negate);
        sums.push(sum);
        overflows.push(overflow);
    }
    sums.push(format!(
        "CASE WHEN {} THEN 1 ELSE 0 END",
        overflows.join(" OR ")
    ));
    format!(
        "INSERT INTO llm_daily ({}) SELECT {}, day, model, provider, step, {} \
         FROM (SELECT {} AS day, * FROM {source}{where_}) AS u WHERE true \
         GROUP BY day, model, provider, step {}",
        columns(),
        key(engine, "day", ""),
        sums.join(", "),
        query::day_of(engine, ""),
        on_conflict(engine)
    )
}

/// What adding a group to its row of `llm_daily` does when the row is there.
fn on_conflict(engine: Engine) -> String {
    let limit = exact_limit(engine);
    let (lo, hi) = match engine {
        Engine::Sqlite => ("max", "min"),
        Engine::Postgres => ("GREATEST", "LEAST"),
    };
    let mut updates: Vec<String> = MEASURES
        .iter()
        .map(|(c, _)| {
            // Added as numbers that cannot overflow, clamped as above (an addition past the
            // limit marks the row too).
            let sum = format!("CAST(llm_daily.{c} AS NUMERIC) + excluded.{c}");
            format!("{c} = {lo}({hi}({sum}, {limit}), -{limit})")
        })
        .collect();
    let past: Vec<String> = MEASURES
        .iter()
        .map(|(c, _)| format!("abs(CAST(llm_daily.{c} AS NUMERIC) + excluded.{c}) >= {limit}"))
        .collect();
    updates.push(format!(
        "overflow = CASE WHEN llm_daily.overflow = 1 OR excluded.overflow = 1 OR {} THEN 1 \
         ELSE 0 END",
        past.join(" OR ")
    ));
    format!("ON CONFLICT (k) DO UPDATE SET {}", updates.join(", "))
}

/// Adds the calls numbered after `after` up to `last` (`seq`): those one transaction added
/// (PostgreSQL sums them where they are).
#[cfg(feature = "postgres")]
pub(crate) fn add(engine: Engine, after: i64, last: i64) -> String {
    add_from(
        engine,
        "llm_usage",
        &format!(" WHERE seq > {after} AND seq <= {last}"),
        false,
    )
}

/// Makes the daily sums again from every stored call.
pub(crate) fn rebuild(engine: Engine) -> String {
    format!(
        "DELETE FROM llm_daily; {};",
        add_from(engine, "llm_usage", "", false)
    )
}

/// The triggers that take deleted calls out of the daily sums (SQLite: a row at a time;
/// PostgreSQL: a statement's rows at once, and all of them on `TRUNCATE`).
pub(crate) fn triggers(engine: Engine) -> String {
    match engine {
        Engine::Sqlite => {
            let sets: Vec<String> = MEASURES
                .iter()
                .map(|(c, expr)| {
                    format!(
                        "{c} = {c} - coalesce({}, 0)",
                        query::measure(engine, expr, "old.")
                    )
                })
                .collect();
            format!(
                "CREATE TRIGGER llm_usage_undaily AFTER DELETE ON llm_usage BEGIN \
                 UPDATE llm_daily SET {} WHERE k = {}; END;",
                sets.join(", "),
                key(engine, &query::day_of(engine, "old."), "old.")
            )
        }
        Engine::Postgres => format!(
            "CREATE FUNCTION llm_daily_removed() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN {}; RETURN NULL; END $$;
             CREATE FUNCTION llm_daily_cleared() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN DELETE FROM llm_daily; RETURN NULL; END $$;
             CREATE TRIGGER llm_usage_undaily AFTER DELETE ON llm_usage
             REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION llm_daily_removed();
             CREATE TRIGGER llm_usage_uncleared AFTER TRUNCATE ON llm_usage
             FOR EACH STATEMENT EXECUTE FUNCTION llm_daily_cleared();",
            add_from(engine, "removed", "", true)
        ),
    }
}

/// A group of calls: its day and fields (model, provider, step).
#[cfg(feature = "sqlite")]
type Group<'a> = (&'a str, [Option<&'a str>; 3]);

/// The daily sums of the calls one transaction added, summed as they are inserted (SQLite:
/// in the process, much cheaper than summing them again in SQL), each measure as
/// [`MEASURES`] defines it.
#[cfg(feature = "sqlite")]
#[derive(Default)]
pub(crate) struct Added<'a> {
    groups: hashbrown::HashMap<Group<'a>, [i128; MEASURES.len()]>,
}

#[cfg(feature = "sqlite")]
impl<'a> Added<'a> {
    /// Adds the call `r`, which was stored.
    pub(crate) fn add(&mut self, r: &'a Row<'_>) {
        let f = &r.fields;
        let t = &f.tokens;
        let group = (
            r.timestamp.get(..10).unwrap_or(&r.timestamp),
            [f.model.as_deref(), f.provider.as_deref(), f.step.as_deref()],
        );
        let cost = f.cost_usd;
        let source = f.cost_source.as_deref();
        let row: [i64; MEASURES.len()] = [
            1,
            i64::from(f.error.is_some()),
            int(t.input),
            int(t.output),
            int(t.total),
            int(t.cache_read),
            int(t.cache_write),
            int(t.reasoning),
            cost.map_or(0, crate::pricing::CostSum::nanos_of),
            i64::from(cost.is_some()),
            i64::from(source == Some("no_usage")),
            i64::from(source == Some("provider") && cost.is_some()),
            if f.estimated { int(t.total) } else { 0 },
        ];
        let sums = self.groups.entry(group).or_insert([0; MEASURES.len()]);
        for (s, v) in sums.iter_mut().zip(row) {
            *s += i128::from(v);
        }
    }

    /// Adds the groups to `llm_daily` (SQLite), clamped and marked as the SQL sums are.
    pub(crate) fn store(&self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        if self.groups.is_empty() {
            return Ok(());
        }
        let values: Vec<String> = (1..=MEASURES.len() + 5).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO llm_daily ({}) VALUES (json_array(?1, ?2, ?3, ?4), {}) {}",
            columns(),
            values.join(", "),
            on_conflict(Engine::Sqlite)
        );
        let mut stmt = tx.prepare_cached(&sql)?;
        // What SQLite's sums hold exactly (see `exact_limit`).
        let limit: i128 = 1 << 53;
        for ((day, fields), sums) in &self.groups {
            stmt.raw_bind_parameter(1, day)?;
            for (i, v) in fields.iter().enumerate() {
                stmt.raw_bind_parameter(i + 2, v)?;
            }
            let mut overflow = 0i64;
            for (i, s) in sums.iter().enumerate() {
                if s.abs() > limit {
                    overflow = 1;
                }
                let v = i64::try_from((*s).clamp(-limit, limit)).unwrap_or(0);
                stmt.raw_bind_parameter(i + 5, v)?;
            }
            stmt.raw_bind_parameter(MEASURES.len() + 5, overflow)?;
            stmt.raw_execute()?;
        }
        Ok(())
    }
}
