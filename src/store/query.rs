//! What a report asks a store for, as SQL: the lines in a time window that match fields and
//! attributes, or the sums of the calls per group. Nothing from the command line becomes SQL
//! text: columns come from [`Field`], every value (an attribute's name included) is a bound
//! parameter, and a value the engines cannot hold (a NUL) is refused.

use super::StoreError;

/// The engine a statement is written for (they differ in placeholders and JSON functions).
/// A build with one engine never makes the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(all(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) enum Engine {
    Sqlite,
    Postgres,
}

/// A column of `llm_usage` a filter or a group names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Field {
    /// `run_id` (every table has it).
    RunId,
    /// `step`.
    Step,
    /// `model`.
    Model,
    /// `provider`.
    Provider,
    /// `task`.
    Task,
    /// `agent`.
    Agent,
}

impl Field {
    /// The field a line key names (`run_id`, `step`, `model`, `provider`, `task`, `agent`).
    pub fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "run_id" => Field::RunId,
            "step" => Field::Step,
            "model" => Field::Model,
            "provider" => Field::Provider,
            "task" => Field::Task,
            "agent" => Field::Agent,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            Field::RunId => "run_id",
            Field::Step => "step",
            Field::Model => "model",
            Field::Provider => "provider",
            Field::Task => "task",
            Field::Agent => "agent",
        }
    }
}

/// Which stored lines a report reads: a time window (canonical RFC 3339 text, as the lines
/// and the `timestamp` columns hold it) and equalities. A call must match every one; a run
/// summary only `run_id` and the attributes; a budget line only `run_id` (a report applies
/// the rest to them, as it does to files).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct LineFilter {
    /// From this instant, inclusive.
    pub since: Option<String>,
    /// Up to this instant (exclusive when `until_exclusive`).
    pub until: Option<String>,
    /// Whether `until` is excluded.
    pub until_exclusive: bool,
    /// Fields that must have these values.
    pub fields: Vec<(Field, String)>,
    /// Attributes (by name) that must have these values (their text).
    pub attributes: Vec<(String, String)>,
}

impl LineFilter {
    /// Refuses what no engine can take as a value: a NUL anywhere, an attribute name with a
    /// `"` or `\` (SQLite's JSON path quotes it) or a control character.
    ///
    /// # Errors
    ///
    /// [`StoreError::Filter`] naming the value.
    pub fn check(&self) -> Result<(), StoreError> {
        let texts = self
            .since
            .iter()
            .chain(&self.until)
            .chain(self.fields.iter().map(|(_, v)| v))
            .chain(self.attributes.iter().flat_map(|(k, v)| [k, v]));
        for t in texts {
            if t.contains('\0') {
                return Err(StoreError::Filter(format!("{t:?} holds a NUL character")));
            }
        }
        for (k, _) in &self.attributes {
            if k.is_empty() || k.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
                return Err(StoreError::Filter(format!(
                    "attribute name {k:?}: a name with a quote, a backslash or a control \
                     character cannot be looked up"
                )));
            }
        }
        Ok(())
    }
}

/// What a group of calls sums to.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct CallSums {
    /// The group's value (`None`: calls without one).
    pub key: Option<String>,
    /// Calls.
    pub calls: u64,
    /// Calls with an error.
    pub errors: u64,
    /// Input tokens.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Total tokens.
    pub total: u64,
    /// Cache-read tokens.
    pub cache_read: u64,
    /// Cache-write tokens.
    pub cache_write: u64,
    /// Reasoning tokens.
    pub reasoning: u64,
    /// The priced calls' cost, summed in nano-dollars.
    pub cost: crate::pricing::CostSum,
    /// Calls with a cost.
    pub priced: u64,
    /// Calls without usage (`cost_source: "no_usage"`).
    pub no_usage: u64,
    /// Calls whose cost the provider reported.
    pub provider_priced: u64,
    /// Total tokens of the calls whose counts were estimated.
    pub estimated_tokens: u64,
    /// Distinct run ids among the calls ([`Store::totals`](super::Store::totals) counts
    /// them; 0 in a group).
    pub runs: u64,
    /// The earliest call's time, canonical RFC 3339 (`2025-12-14T10:30:15.123Z`), for
    /// [`GroupBy::RunSpan`]; else `None`.
    pub first: Option<String>,
    /// The latest call's time, as `first`.
    pub last: Option<String>,
}

/// What the lines a filter keeps add up to: a summary of a time window, computed by the
/// database ([`Store::totals`](super::Store::totals)).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Totals {
    /// The calls' sums, and their distinct runs (`key` is `None`).
    pub calls: CallSums,
    /// Run summaries kept (by the time window, `run_id` and the attributes).
    pub summaries: u64,
    /// The earliest call's timestamp, as its line has it.
    pub first: Option<String>,
    /// The latest call's timestamp, as its line has it.
    pub last: Option<String>,
    /// Budget lines per event (`budget_warning`, ...) kept by the time window and `run_id`.
    pub events: Vec<(String, u64)>,
}

/// How calls are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupBy {
    /// A field.
    Field(Field),
    /// The UTC day (`YYYY-MM-DD`).
    Day,
    /// The run id, as `Field(Field::RunId)`, with each run's first and last call's time
    /// ([`CallSums::first`], [`CallSums::last`]).
    RunSpan,
}

/// What a row of [`sums`] or [`totals`] holds after the sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Nothing.
    None,
    /// The first and the last call's time.
    Span,
}

/// A statement and its parameters, all text.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) params: Vec<String>,
    /// What a row of sums holds after them.
    pub(crate) tail: Tail,
}

impl Sql {
    pub(crate) fn new() -> Self {
        Self {
            text: String::new(),
            params: Vec::new(),
            tail: Tail::None,
        }
    }

    /// A placeholder for `value`, bound as text.
    fn param(&mut self, engine: Engine, value: &str) -> String {
        self.params.push(value.to_owned());
        let n = self.params.len();
        match engine {
            Engine::Sqlite => format!("?{n}"),
            Engine::Postgres => format!("${n}::text"),
        }
    }
}

/// Which conditions a table takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Table {
    Usage,
    Runs,
    Events,
}

/// The conditions of `filter` a row of `table` must meet; `exact` for attribute equalities
/// that must hold as written (else a superset, which the report narrows: an attribute whose
/// value is a number or a boolean is kept for the report to compare as text).
fn conditions(
    sql: &mut Sql,
    engine: Engine,
    filter: &LineFilter,
    table: Table,
    exact: bool,
) -> Vec<String> {
    let mut c = Vec::new();
    let time = |sql: &mut Sql, bound: &str| match engine {
        Engine::Sqlite => sql.param(engine, bound),
        Engine::Postgres => format!("CAST({} AS timestamptz)", sql.param(engine, bound)),
    };
    if let Some(since) = &filter.since {
        c.push(format!("timestamp >= {}", time(sql, since)));
    }
    if let Some(until) = &filter.until {
        let op = if filter.until_exclusive { "<" } else { "<=" };
        c.push(format!("timestamp {op} {}", time(sql, until)));
    }
    for (field, value) in &filter.fields {
        if *field == Field::RunId || table == Table::Usage {
            c.push(format!("{} = {}", field.column(), sql.param(engine, value)));
        }
    }
    if table != Table::Events {
        for (key, value) in &filter.attributes {
            let v = sql.param(engine, value);
            c.push(match (engine, exact) {
                (Engine::Sqlite, _) => {
                    let path = sql.param(engine, &format!("$.\"{key}\""));
                    if exact {
                        format!("json_type(attributes, {path}) = 'text' AND json_extract(attributes, {path}) = {v}")
                    } else {
                        format!(
                            "(json_extract(attributes, {path}) = {v} OR json_type(attributes, \
                             {path}) IN ('integer', 'real', 'true', 'false'))"
                        )
                    }
                }
                (Engine::Postgres, _) => {
                    let k = sql.param(engine, key);
                    if exact {
                        format!("jsonb_typeof(attributes -> {k}) = 'string' AND attributes ->> {k} = {v}")
                    } else {
                        format!(
                            "(attributes ->> {k} = {v} OR jsonb_typeof(attributes -> {k}) IN \
                             ('number', 'boolean'))"
                        )
                    }
                }
            });
        }
    }
    c
}

fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

/// Which of the line tables a query reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lines {
    /// Calls, run summaries and budget lines.
    All,
    /// Run summaries.
    Summaries,
    /// Budget lines.
    Budget,
}

/// Every stored line of `which` tables `filter` may keep, in the order they were logged.
pub(crate) fn lines(engine: Engine, filter: &LineFilter, which: Lines) -> Sql {
    let mut sql = Sql::new();
    let mut parts = Vec::new();
    for (table, name) in [
        (Table::Usage, "llm_usage"),
        (Table::Runs, "llm_runs"),
        (Table::Events, "llm_events"),
    ] {
        let read = match which {
            Lines::All => true,
            Lines::Summaries => table == Table::Runs,
            Lines::Budget => table == Table::Events,
        };
        if !read {
            continue;
        }
        let c = conditions(&mut sql, engine, filter, table, false);
        parts.push(format!("SELECT seq, line FROM {name}{}", where_clause(&c)));
    }
    sql.text = format!(
        "SELECT line FROM ({}) AS l ORDER BY seq",
        parts.join(" UNION ALL ")
    );
    sql
}

/// The sums of the calls `filter` keeps, per `by`. Attribute equalities are exact here: only
/// text values match (a report with a number or boolean to match reads the lines instead).
pub(crate) fn sums(engine: Engine, filter: &LineFilter, by: GroupBy) -> Sql {
    let mut sql = Sql::new();
    let c = conditions(&mut sql, engine, filter, Table::Usage, true);
    let key = match (by, engine) {
        (GroupBy::Field(f), _) => f.column().to_owned(),
        (GroupBy::RunSpan, _) => Field::RunId.column().to_owned(),
        (GroupBy::Day, _) => day_of(engine, ""),
    };
    let mut columns = sum_columns(engine).to_vec();
    if by == GroupBy::RunSpan {
        sql.tail = Tail::Span;
        columns.extend(["min", "max"].map(|f| match engine {
            Engine::Sqlite => format!("{f}(timestamp)"),
            Engine::Postgres => format!(
                "to_char({f}(timestamp) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
            ),
        }));
    }
    // SQLite would group a whole table by walking the key's index, reading the rows in the
    // index's order: a random read a row. `+key` is an expression no index holds, so SQLite
    // reads the table in its order and groups with a sorter, about twice as fast (a window
    // still reads its range through the `timestamp` index).
    let group = match engine {
        Engine::Sqlite => format!("+{key}"),
        Engine::Postgres => key.clone(),
    };
    sql.text = format!(
        "SELECT {key}, {} FROM llm_usage{} GROUP BY {group}",
        columns.join(", "),
        where_clause(&c)
    );
    sql
}

/// The sums of every call `filter` keeps as one row (its key `NULL`).
pub(crate) fn totals(engine: Engine, filter: &LineFilter) -> Sql {
    let mut sql = Sql::new();
    let c = conditions(&mut sql, engine, filter, Table::Usage, true);
    sql.text = format!(
        "SELECT CAST(NULL AS TEXT), {} FROM llm_usage{}",
        sum_columns(engine).join(", "),
        where_clause(&c)
    );
    sql
}

/// How many distinct run ids the calls `filter` keeps have, as text. A statement of its own:
/// beside the sums, a `count(DISTINCT run_id)` keeps PostgreSQL from summing with parallel
/// workers and SQLite from reading only the `run_id` index (whole store: 0.03 s against the
/// 0.3 s it adds to the sums' scan).
pub(crate) fn distinct_runs(engine: Engine, filter: &LineFilter) -> Sql {
    let mut sql = Sql::new();
    let mut c = conditions(&mut sql, engine, filter, Table::Usage, true);
    c.push("run_id IS NOT NULL".to_owned());
    sql.text = format!(
        "SELECT CAST(count(*) AS TEXT) FROM (SELECT DISTINCT run_id FROM llm_usage{}) AS r",
        where_clause(&c)
    );
    sql
}

/// A row of [`sums`] or [`totals`] as [`CallSums`]: the key, then the counts `count(i)` reads
/// (column `i`, a `NULL` sum as 0) and the cost, in [`sum_columns`]' order; after them what
/// `tail` says, the times read by `text(i)`.
pub(crate) fn call_sums<E>(
    key: Option<String>,
    cost: Option<i64>,
    tail: Tail,
    count: impl Fn(usize) -> Result<u64, E>,
    text: impl Fn(usize) -> Result<Option<String>, E>,
) -> Result<CallSums, E> {
    let (first, last) = if tail == Tail::Span {
        (text(14)?, text(15)?)
    } else {
        (None, None)
    };
    Ok(CallSums {
        key,
        calls: count(1)?,
        errors: count(2)?,
        input: count(3)?,
        output: count(4)?,
        total: count(5)?,
        cache_read: count(6)?,
        cache_write: count(7)?,
        reasoning: count(8)?,
        cost: crate::pricing::CostSum::from_nanos(cost.unwrap_or(0)),
        priced: count(10)?,
        no_usage: count(11)?,
        provider_priced: count(12)?,
        estimated_tokens: count(13)?,
        runs: 0,
        first,
        last,
    })
}

/// The column of [`CallSums::cost`] in a row of [`sums`] or [`totals`].
pub(crate) const COST_COLUMN: usize = 9;

/// What a group of calls sums to, in [`CallSums`]' order: each measure's column in
/// `llm_daily`, and its value for one row of `llm_usage` (`{r}` stands for the row: empty in
/// a query over the table, `old.` in a trigger). `{nanos}` is the cost in nano-dollars,
/// rounded as `CostSum::nanos_of` rounds it (in double precision): integer sums, equal in any
/// order. Defined once for the sums over `llm_usage`, the daily sums and their triggers.
pub(crate) const MEASURES: [(&str, &str); 13] = [
    ("calls", "1"),
    ("errors", "CASE WHEN {r}error IS NULL THEN 0 ELSE 1 END"),
    ("input_tokens", "{r}input_tokens"),
    ("output_tokens", "{r}output_tokens"),
    ("total_tokens", "{r}total_tokens"),
    ("cache_read_tokens", "{r}cache_read_tokens"),
    ("cache_write_tokens", "{r}cache_write_tokens"),
    ("reasoning_tokens", "{r}reasoning_tokens"),
    ("cost_nanos", "{nanos}"),
    ("priced", "CASE WHEN {r}cost_usd IS NULL THEN 0 ELSE 1 END"),
    (
        "no_usage",
        "CASE WHEN {r}cost_source = 'no_usage' THEN 1 ELSE 0 END",
    ),
    (
        "provider_priced",
        "CASE WHEN {r}cost_source = 'provider' AND {r}cost_usd IS NOT NULL THEN 1 ELSE 0 END",
    ),
    (
        "estimated_tokens",
        "CASE WHEN {r}estimated THEN {r}total_tokens ELSE 0 END",
    ),
];

/// The measure `expr` of [`MEASURES`] for the row `r` (`""` or `"old."`).
pub(crate) fn measure(engine: Engine, expr: &str, r: &str) -> String {
    let nanos = |c: &str| match engine {
        Engine::Sqlite => format!("CAST({c} * 1e9 + 0.5 AS INTEGER)"),
        Engine::Postgres => {
            format!("CAST(floor({c} * CAST(1e9 AS DOUBLE PRECISION) + 0.5) AS BIGINT)")
        }
    };
    let cost = format!("{r}cost_usd");
    let nanos = format!(
        "CASE WHEN {cost} < 0 THEN -{} ELSE {} END",
        nanos(&format!("-{cost}")),
        nanos(&cost)
    );
    expr.replace("{nanos}", &nanos).replace("{r}", r)
}

/// `sum(expr)` as an integer: PostgreSQL sums bigints as numeric, cast back (an overflow is
/// an error, and the report then reads the lines).
pub(crate) fn int_sum(engine: Engine, expr: &str) -> String {
    match engine {
        Engine::Sqlite => format!("sum({expr})"),
        Engine::Postgres => format!("CAST(sum({expr}) AS BIGINT)"),
    }
}

/// What [`CallSums`] reads after the key, in its order, over rows of `llm_usage`.
pub(crate) fn sum_columns(engine: Engine) -> [String; 13] {
    MEASURES.map(|(_, expr)| int_sum(engine, &measure(engine, expr, "")))
}

/// The same sums over the daily sums' rows.
fn daily_columns(engine: Engine) -> [String; 13] {
    MEASURES.map(|(column, _)| int_sum(engine, column))
}

/// The day of a call (`YYYY-MM-DD`, UTC) as SQL, for the row `r`.
pub(crate) fn day_of(engine: Engine, r: &str) -> String {
    match engine {
        Engine::Sqlite => format!("substr({r}timestamp, 1, 10)"),
        Engine::Postgres => format!("to_char({r}timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD')"),
    }
}

/// The days a filter's window covers, when it covers whole UTC days (`since` at midnight,
/// `until` excluded at midnight, either absent): `(from, to)` with `to` excluded.
fn whole_days(filter: &LineFilter) -> Option<(Option<&str>, Option<&str>)> {
    let midnight = |t: &str| t.len() == 24 && t.ends_with("T00:00:00.000Z");
    let since = match filter.since.as_deref() {
        None => None,
        Some(t) if midnight(t) => Some(&t[..10]),
        Some(_) => return None,
    };
    let until = match filter.until.as_deref() {
        None => None,
        Some(t) if filter.until_exclusive && midnight(t) => Some(&t[..10]),
        Some(_) => return None,
    };
    Some((since, until))
}

/// The sums of the calls `filter` keeps per `by` (`None`: as one row), from the daily sums,
/// when they hold exactly that: whole UTC days, conditions and a group on the fields they
/// keep (model, provider, step, the day), no attribute.
pub(crate) fn daily_sums(engine: Engine, filter: &LineFilter, by: Option<GroupBy>) -> Option<Sql> {
    let (since, until) = whole_days(filter)?;
    let kept = |f: Field| matches!(f, Field::Model | Field::Provider | Field::Step);
    if !filter.attributes.is_empty() || filter.fields.iter().any(|(f, _)| !kept(*f)) {
        return None;
    }
    let key = match by {
        None => "CAST(NULL AS TEXT)".to_owned(),
        Some(GroupBy::Day) => "day".to_owned(),
        Some(GroupBy::Field(f)) if kept(f) => f.column().to_owned(),
        Some(_) => return None,
    };
    let mut sql = Sql::new();
    let mut c = Vec::new();
    if let Some(d) = since {
        c.push(format!("day >= {}", sql.param(engine, d)));
    }
    if let Some(d) = until {
        c.push(format!("day < {}", sql.param(engine, d)));
    }
    for (field, value) in &filter.fields {
        c.push(format!("{} = {}", field.column(), sql.param(engine, value)));
    }
    // A group whose calls were all deleted keeps rows of zeros: it is not a group.
    let group = if by.is_some() {
        format!(" GROUP BY {key} HAVING sum(calls) > 0")
    } else {
        String::new()
    };
    sql.text = format!(
        "SELECT {key}, {} FROM llm_daily{}{group}",
        daily_columns(engine).join(", "),
        where_clause(&c)
    );
    Some(sql)
}

/// How many run summaries `filter` keeps (time, `run_id`, text attributes), as text.
pub(crate) fn summary_count(engine: Engine, filter: &LineFilter) -> Sql {
    let mut sql = Sql::new();
    let c = conditions(&mut sql, engine, filter, Table::Runs, true);
    sql.text = format!(
        "SELECT CAST(count(*) AS TEXT) FROM llm_runs{}",
        where_clause(&c)
    );
    sql
}

/// How many budget lines of each event `filter`'s time window and `run_id` keep, as text
/// (a budget line's other fields are in its line only).
pub(crate) fn event_counts(engine: Engine, filter: &LineFilter) -> Sql {
    let mut sql = Sql::new();
    let c = conditions(&mut sql, engine, filter, Table::Events, true);
    sql.text = format!(
        "SELECT event, CAST(count(*) AS TEXT) FROM llm_events{} GROUP BY event",
        where_clause(&c)
    );
    sql
}

/// The line of the earliest (or the latest) call `filter` keeps, the first logged of those
/// at that instant: two look-ups in the time index (a sort by time and `seq` would read every
/// row).
pub(crate) fn edge_call(engine: Engine, filter: &LineFilter, latest: bool) -> Sql {
    let mut sql = Sql::new();
    let inner = conditions(&mut sql, engine, filter, Table::Usage, true);
    let mut outer = conditions(&mut sql, engine, filter, Table::Usage, true);
    let f = if latest { "max" } else { "min" };
    outer.push(format!(
        "timestamp = (SELECT {f}(timestamp) FROM llm_usage{})",
        where_clause(&inner)
    ));
    sql.text = format!(
        "SELECT line FROM llm_usage{} ORDER BY seq LIMIT 1",
        where_clause(&outer)
    );
    sql
}

/// Notes an import under way: when it started (canonical RFC 3339) and which process runs it.
pub(crate) fn mark_load(engine: Engine, started_at: &str, process: &str) -> Sql {
    let mut sql = Sql::new();
    let (a, b) = (sql.param(engine, started_at), sql.param(engine, process));
    sql.text = format!("INSERT INTO llm_loads (started_at, process) VALUES ({a}, {b})");
    sql
}

/// Forgets the imports noted as started at `up_to` or before: an import that finishes has
/// stored everything an earlier one cut short would have, if it read the same files.
pub(crate) fn unmark_loads(engine: Engine, up_to: &str) -> Sql {
    let mut sql = Sql::new();
    let a = sql.param(engine, up_to);
    sql.text = format!("DELETE FROM llm_loads WHERE started_at <= {a}");
    sql
}

/// The imports under way (or cut short), oldest first.
pub(crate) fn loads() -> Sql {
    let mut sql = Sql::new();
    sql.text = "SELECT started_at, process FROM llm_loads ORDER BY started_at".to_owned();
    sql
}

/// Whether a daily sum was clamped (then the sums are read from the calls), as text.
pub(crate) fn daily_overflow() -> Sql {
    let mut sql = Sql::new();
    sql.text = "SELECT CAST(count(*) AS TEXT) FROM \
                (SELECT 1 FROM llm_daily WHERE overflow <> 0 LIMIT 1) AS o"
        .to_owned();
    sql
}

/// The rows of the three line tables, as the triggers count them.
pub(crate) const LINE_COUNT: &str =
    "SELECT CAST(coalesce(sum(lines), 0) AS BIGINT) FROM llm_counts";

/// Whether the store holds any line at all.
pub(crate) const ANY_LINE: &str = "SELECT EXISTS (SELECT 1 FROM llm_usage) OR EXISTS \
     (SELECT 1 FROM llm_runs) OR EXISTS (SELECT 1 FROM llm_events)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_parameters_never_text() {
        let filter = LineFilter {
            since: Some("2026-01-01T00:00:00.000Z".into()),
            fields: vec![
                (Field::Model, "'; DROP TABLE llm_usage; --".into()),
                (Field::RunId, "'; DROP TABLE llm_runs; --".into()),
            ],
            attributes: vec![("tenant".into(), "$.x".into())],
            ..LineFilter::default()
        };
        for engine in [Engine::Sqlite, Engine::Postgres] {
            for sql in [
                lines(engine, &filter, Lines::All),
                sums(engine, &filter, GroupBy::Day),
                sums(engine, &filter, GroupBy::RunSpan),
                totals(engine, &filter),
                distinct_runs(engine, &filter),
                summary_count(engine, &filter),
                event_counts(engine, &filter),
                edge_call(engine, &filter, true),
            ] {
                assert!(!sql.text.contains("DROP"), "{}", sql.text);
                assert!(!sql.text.contains("$.x"), "{}", sql.text);
                assert!(sql.params.iter().any(|p| p.contains("DROP")));
            }
        }
    }

    #[test]
    fn a_nul_or_a_quoted_name_is_refused() {
        let mut f = LineFilter {
            fields: vec![(Field::Step, "a\0b".into())],
            ..LineFilter::default()
        };
        assert!(f.check().is_err());
        f.fields.clear();
        f.attributes = vec![("a\"b".into(), "x".into())];
        assert!(f.check().is_err());
        f.attributes = vec![("prompt.version".into(), "v'1".into())];
        assert!(f.check().is_ok());
    }
}
