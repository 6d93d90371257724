//! Each command's sections, built from one [`Scan`].

use super::agg::{Acc, Dim, NONE};
use super::output::{Cell, Section};
use super::read::Scan;
use super::runs::ListedRun;
use tracing_llm_usage::pricing::CostSum;

fn cost(acc: &Acc) -> Option<f64> {
    (acc.priced > 0).then_some(acc.cost.usd())
}

/// A budget line's limit or value: dollars for a USD budget, a count for a token one.
pub(crate) fn amount(metric: Option<&str>, v: Option<f64>) -> Cell {
    match (metric, v) {
        (Some("usd"), v) => Cell::Usd(v),
        (_, Some(v)) if v >= 0.0 && v.fract() == 0.0 && v < 1e18 => Cell::Int(v as u64),
        (_, v) => Cell::Float(v),
    }
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Groups sorted by cost, then tokens, then key.
pub(crate) fn sorted(groups: Option<&hashbrown::HashMap<String, Acc>>) -> Vec<(&String, &Acc)> {
    let mut v: Vec<_> = groups.map(|g| g.iter().collect()).unwrap_or_default();
    v.sort_by(|(ka, a), (kb, b)| {
        b.cost
            .cmp(&a.cost)
            .then(b.total.cmp(&a.total))
            .then_with(|| ka.cmp(kb))
    });
    v
}

/// Runs that have at least one call in range.
pub(crate) fn run_count(scan: &Scan) -> u64 {
    scan.agg.run_count.len() + scan.agg.runs.with_calls()
}

pub(crate) fn stats(scan: &Scan, files: u64, lines: u64) -> Vec<Section<'_>> {
    let a = &scan.agg.all;
    let mut s = Section::kv("stats");
    let mut kv = |k: &'static str, v: Cell| s.rows.push(vec![Cell::text(k), v]);
    kv("files", Cell::Int(files));
    kv("lines", Cell::Int(lines));
    kv("calls", Cell::Int(a.calls));
    kv("runs", Cell::Int(run_count(scan)));
    kv("run_summaries", Cell::Int(scan.agg.summaries));
    kv("input_tokens", Cell::Int(a.input));
    kv("output_tokens", Cell::Int(a.output));
    kv("total_tokens", Cell::Int(a.total));
    kv("cache_read_tokens", Cell::Int(a.cache_read));
    kv("cache_write_tokens", Cell::Int(a.cache_write));
    kv("reasoning_tokens", Cell::Int(a.reasoning));
    kv("cost_usd", Cell::Usd(cost(a)));
    kv("priced_calls", Cell::Int(a.priced));
    kv("provider_priced_calls", Cell::Int(a.provider_priced));
    kv("unpriced_calls", Cell::Int(a.unpriced));
    kv("no_usage_calls", Cell::Int(a.no_usage));
    kv("failed_calls", Cell::Int(a.errors));
    kv("first", Cell::Text(a.first.clone()));
    kv("last", Cell::Text(a.last.clone()));
    kv(
        "estimated_token_share",
        Cell::Share(ratio(a.estimated_tokens, a.total)),
    );
    let budget = |kind: &str| {
        let counted = scan.agg.budget_counted.iter().filter(|(e, _)| e == kind);
        scan.agg
            .budget_lines
            .iter()
            .filter(|b| b.event == kind)
            .count() as u64
            + counted.map(|(_, n)| n).sum::<u64>()
    };
    kv("budget_warning_lines", Cell::Int(budget("budget_warning")));
    kv(
        "budget_exceeded_lines",
        Cell::Int(budget("budget_exceeded")),
    );
    kv(
        "budget_unpriced_lines",
        Cell::Int(budget("budget_unpriced")),
    );
    kv("skipped_lines", Cell::Int(scan.problem_count));
    vec![s]
}

/// Totals per step; `total` adds a `TOTAL` row (reports; a run's own totals are elsewhere).
fn by_step_section(scan: &Scan, total: bool) -> Section<'_> {
    let mut s = Section::new(
        "by_step",
        vec![
            "step",
            "calls",
            "input",
            "output",
            "cost_usd",
            "unpriced_calls",
        ],
    );
    let row = |k: Cell, acc: &Acc| {
        vec![
            k,
            Cell::Int(acc.calls),
            Cell::Int(acc.input),
            Cell::Int(acc.output),
            Cell::Usd(cost(acc)),
            Cell::Int(acc.unpriced),
        ]
    };
    for (k, acc) in sorted(scan.agg.by.get(&Dim::Step)) {
        s.rows.push(row(Cell::key(k), acc));
    }
    if total {
        s.rows.push(row(Cell::text("TOTAL"), &scan.agg.all));
    }
    s
}

pub(crate) fn report(scan: &Scan) -> Vec<Section<'_>> {
    let a = &scan.agg.all;
    // Each component's share is of the input of the calls that reported components.
    let mut prompt = Section::new(
        "prompt_breakdown",
        vec!["component", "tokens", "share_of_input"],
    );
    let mut components = scan.agg.prompt.clone();
    components.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    for (c, t) in components {
        prompt.rows.push(vec![
            Cell::text(c),
            Cell::Int(t),
            Cell::Share(ratio(t, scan.agg.prompt_input)),
        ]);
    }
    let runs = run_count(scan);
    let in_runs = &scan.agg.in_runs;
    let mut eff = Section::kv("efficiency");
    // docs/format.md defines each figure.
    eff.rows = vec![
        vec![
            Cell::text("output_input_ratio"),
            Cell::Float(ratio(a.output, a.input)),
        ],
        vec![
            Cell::text("cost_per_run"),
            Cell::Usd(cost(in_runs).filter(|_| runs > 0).map(|c| c / runs as f64)),
        ],
        vec![Cell::text("run_calls"), Cell::Int(in_runs.calls)],
        vec![
            Cell::text("cost_per_call"),
            Cell::Usd(cost(a).map(|c| c / a.priced as f64)),
        ],
        vec![Cell::text("priced_calls"), Cell::Int(a.priced)],
        vec![
            Cell::text("prompt_component_input"),
            Cell::Int(scan.agg.prompt_input),
        ],
        vec![
            Cell::text("cache_read_share"),
            Cell::Share(ratio(a.cache_read, a.input)),
        ],
        vec![Cell::text("runs"), Cell::Int(runs)],
        vec![Cell::text("calls"), Cell::Int(a.calls)],
        vec![Cell::text("unpriced_calls"), Cell::Int(a.unpriced)],
        vec![Cell::text("no_usage_calls"), Cell::Int(a.no_usage)],
    ];
    let mut out = vec![by_step_section(scan, true), prompt, eff];
    if !scan.agg.budget_lines.is_empty() {
        let mut b = Section::new(
            "budget_events",
            vec![
                "timestamp",
                "event",
                "budget",
                "scope",
                "scope_id",
                "metric",
                "limit",
                "value",
                "run_id",
            ],
        );
        for l in &scan.agg.budget_lines {
            b.rows.push(vec![
                Cell::text(l.timestamp.clone()),
                Cell::text(l.event.clone()),
                Cell::Text(l.budget.clone()),
                Cell::Text(l.scope.clone()),
                Cell::Text(l.scope_id.clone()),
                Cell::Text(l.metric.clone()),
                amount(l.metric.as_deref(), l.limit),
                // What an unpriced line's total leaves out is the point: no figure to show.
                amount(
                    l.metric.as_deref(),
                    l.value.filter(|_| l.event != "budget_unpriced"),
                ),
                Cell::Text(l.run_id.clone()),
            ]);
        }
        out.push(b);
    }
    out
}

/// The days and runs that would have crossed a limit, and the call that did (the calls
/// replayed in the order they were written).
pub(crate) fn budget(scan: &Scan, tokens: bool, each: bool) -> Vec<Section<'_>> {
    let mut s = Section::new(
        "crossings",
        vec![
            "scope",
            "scope_id",
            "limit",
            "total",
            "crossed_at",
            "crossing_run",
            "crossing_step",
            "uncounted_calls",
        ],
    );

    let value = move |v: f64| {
        if tokens {
            Cell::Int(v as u64)
        } else {
            Cell::Usd(Some(v))
        }
    };
    if each {
        s.headers.insert(2, "attribute_value".into());
    }
    let Some(replay) = &scan.replay else {
        return vec![s];
    };
    let s = s.lazy(replay.crossing_count(), move |i| {
        let Some(c) = replay.crossing(i) else {
            return Vec::new();
        };
        let mut row = vec![
            Cell::text(c.scope),
            Cell::text(c.id),
            value(c.limit),
            value(c.total),
            Cell::text(c.at),
            Cell::Text(c.run.map(str::to_owned)),
            Cell::Text(c.step.map(str::to_owned)),
            Cell::Int(c.uncounted),
        ];
        if each {
            row.insert(2, Cell::Text(c.value.map(str::to_owned)));
        }
        row
    });
    vec![s]
}

/// Per limit, the calls the replay could not count (no cost; for tokens, no usage), in words:
/// a replay never passes over them as free.
pub(crate) fn budget_notes(scan: &Scan, tokens: bool) -> Vec<String> {
    let Some(replay) = &scan.replay else {
        return Vec::new();
    };
    let what = if tokens { "no usage" } else { "no cost" };
    replay
        .uncounted()
        .into_iter()
        .filter_map(|(scope, limit, u)| {
            let limit = limit?;
            (u.calls > 0).then(|| {
                let limit = if tokens {
                    format!("{} tokens", super::output::thousands(limit as u64))
                } else {
                    super::output::dollars(limit)
                };
                format!(
                    "the limit of {limit} a {scope} could not count {} (with {what}) in {} {scope}{}: \
                     those totals leave them out",
                    if u.calls == 1 { "1 call".to_owned() } else { format!("{} calls", super::output::thousands(u.calls)) },
                    super::output::thousands(u.scopes),
                    if u.scopes == 1 { "" } else { "s" },
                )
            })
        })
        .collect()
}

pub(crate) fn by(scan: &Scan, dim: Dim) -> Vec<Section<'_>> {
    let name = match dim {
        Dim::Step => "step",
        Dim::Model => "model",
        Dim::Provider => "provider",
        Dim::Task => "task",
        Dim::Agent => "agent",
        Dim::Run => "run_id",
        Dim::Day => "day",
    };
    let mut s = group_section(name.into());
    if dim == Dim::Run {
        return by_run(scan, s);
    }
    for (k, acc) in sorted(scan.agg.by.get(&dim)) {
        s.rows.push(group_row(k, acc));
    }
    vec![s]
}

/// `by <attribute>`: one row per value (calls without it are the `-` row).
pub(crate) fn by_attribute<'a>(scan: &'a Scan, name: &str) -> Vec<Section<'a>> {
    let mut s = group_section("".into());
    s.name_from_data(0, name.to_owned());
    s.rows = sorted(Some(&scan.agg.by_attribute))
        .into_iter()
        .map(|(k, acc)| group_row(k, acc))
        .collect();
    vec![s]
}

/// A note when no call has the attribute `name` (a typo, or the layer was not asked for it).
pub(crate) fn unseen_attribute(scan: &Scan, name: &str) -> Option<String> {
    let names = &scan.agg.attribute_names;
    if names.contains(name) {
        return None;
    }
    let found = if names.is_empty() {
        "no call has attributes (the layer records those named with `.attributes([...])`)"
            .to_owned()
    } else {
        let list: Vec<&str> = names.iter().map(String::as_str).collect();
        format!("the calls have {}", list.join(", "))
    };
    Some(format!("no call has the attribute {name:?}: {found}"))
}

/// The figures `compare` shows per value.
struct Figures {
    calls: u64,
    input_per_call: Option<f64>,
    output_per_call: Option<f64>,
    cost_per_call: Option<f64>,
    unpriced: u64,
    cache_read_share: Option<f64>,
    output_input_ratio: Option<f64>,
    p50: Option<u64>,
    p95: Option<u64>,
    error_rate: Option<f64>,
}

impl Figures {
    fn of(c: Option<&super::agg::Compared>) -> Self {
        let empty = super::agg::Compared::default();
        let c = c.unwrap_or(&empty);
        let a = &c.acc;
        let mut latencies = c.latencies.clone();
        latencies.sort_unstable();
        let pct = |p| (!latencies.is_empty()).then(|| super::html::percentile(&latencies, p));
        Self {
            calls: a.calls,
            input_per_call: ratio(a.input, a.calls),
            output_per_call: ratio(a.output, a.calls),
            // Over the priced calls: an unpriced call is not a free one.
            cost_per_call: (a.priced > 0).then(|| a.cost.usd() / a.priced as f64),
            unpriced: a.unpriced,
            cache_read_share: ratio(a.cache_read, a.input),
            output_input_ratio: ratio(a.output, a.input),
            p50: pct(0.5),
            p95: pct(0.95),
            error_rate: ratio(a.errors, a.calls),
        }
    }

    /// Each figure as a cell, in [`COMPARED`]'s order, and the number its change is of.
    fn cells(&self) -> [(Cell, Option<f64>); 10] {
        let int = |v: Option<u64>| (v.map_or(Cell::Text(None), Cell::Int), v.map(|v| v as f64));
        [
            (Cell::Int(self.calls), Some(self.calls as f64)),
            (Cell::Float(self.input_per_call), self.input_per_call),
            (Cell::Float(self.output_per_call), self.output_per_call),
            (Cell::Usd(self.cost_per_call), self.cost_per_call),
            // A count of what could not be priced: no change is shown for it.
            (Cell::Int(self.unpriced), None),
            (Cell::Share(self.cache_read_share), self.cache_read_share),
            (
                Cell::Float(self.output_input_ratio),
                self.output_input_ratio,
            ),
            int(self.p50),
            int(self.p95),
            (Cell::Share(self.error_rate), self.error_rate),
        ]
    }
}

/// The rows of `compare`, one per figure.
const COMPARED: [&str; 10] = [
    "calls",
    "input_per_call",
    "output_per_call",
    "cost_per_call",
    "unpriced_calls",
    "cache_read_share",
    "output_input_ratio",
    "latency_p50_ms",
    "latency_p95_ms",
    "error_rate",
];

/// `compare <attribute> [values]`: a row per figure, a column per value (the first is the
/// baseline), and after each other value its change against the baseline, as a share of the
/// baseline's figure (none where the baseline's is 0 or unknown).
pub(crate) fn compare<'a>(scan: &'a Scan, values: &[String]) -> Vec<Section<'a>> {
    let values: Vec<String> = if values.is_empty() {
        let mut all: Vec<String> = scan.agg.compared.keys().cloned().collect();
        all.sort();
        all
    } else {
        values.to_vec()
    };
    let cells: Vec<[(Cell, Option<f64>); 10]> = values
        .iter()
        .map(|v| Figures::of(scan.agg.compared.get(v)).cells())
        .collect();
    let mut table = Section::new("compare", vec!["metric"]);
    for (i, v) in values.iter().enumerate() {
        table.name_from_data(table.headers.len(), v.clone());
        if i > 0 {
            table.name_from_data(table.headers.len(), format!("{v} vs {}", values[0]));
        }
    }
    for (row, metric) in COMPARED.iter().enumerate() {
        let mut r = vec![Cell::text(*metric)];
        let base = cells.first().and_then(|c| c[row].1);
        for (i, c) in cells.iter().enumerate() {
            let (cell, figure) = &c[row];
            r.push(cell.clone());
            if i > 0 {
                let change = match (figure, base) {
                    (Some(n), Some(o)) if o != 0.0 => Some((n - o) / o),
                    _ => None,
                };
                r.push(Cell::Change(change));
            }
        }
        table.rows.push(r);
    }
    vec![table]
}

/// An empty `by` table whose first column is `name`.
fn group_section(name: std::borrow::Cow<'static, str>) -> Section<'static> {
    let mut s = Section::new(
        "by",
        vec![
            "",
            "calls",
            "input",
            "output",
            "total",
            "cache_read",
            "reasoning",
            "cost_usd",
            "unpriced_calls",
        ],
    );
    s.headers[0] = name;
    s
}

/// A row of a `by` table.
fn group_row(k: &str, acc: &Acc) -> Vec<Cell> {
    vec![
        Cell::key(k),
        Cell::Int(acc.calls),
        Cell::Int(acc.input),
        Cell::Int(acc.output),
        Cell::Int(acc.total),
        Cell::Int(acc.cache_read),
        Cell::Int(acc.reasoning),
        Cell::Usd(cost(acc)),
        Cell::Int(acc.unpriced),
    ]
}

/// `by run`: every run with a call, sorted as the other groups are.
fn by_run<'a>(scan: &'a Scan, s: Section<'a>) -> Vec<Section<'a>> {
    let runs = &scan.agg.runs.sums;
    // The runs by cost, then tokens, then id (entry numbers, 4 bytes a run, are sorted); the
    // calls without a run are one more group, numbered past the runs.
    let none = scan.agg.by.get(&Dim::Run).and_then(|g| g.get(NONE));
    let mut v: Vec<u32> = runs
        .numbers()
        .into_iter()
        .filter(|&n| runs.nth(n).calls > 0)
        .collect();
    let no_run = u32::MAX;
    if none.is_some() {
        v.push(no_run);
    }
    let key = |&n: &u32| match (n, none) {
        (n, _) if n != no_run => {
            let e = runs.nth(n);
            (e.cost, e.total, runs.id(e))
        }
        (_, Some(acc)) => (acc.cost, acc.total, NONE),
        (_, None) => (CostSum::default(), 0, NONE),
    };
    v.sort_unstable_by(|a, b| {
        let (a, b) = (key(a), key(b));
        b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then_with(|| a.2.cmp(b.2))
    });
    let s = s.lazy(v.len(), move |i| match (v[i], none) {
        (n, _) if n != no_run => {
            let e = runs.nth(n);
            vec![
                Cell::key(runs.id(e)),
                Cell::Int(u64::from(e.calls)),
                Cell::Int(e.input),
                Cell::Int(e.output),
                Cell::Int(e.total),
                Cell::Int(e.cache_read),
                Cell::Int(e.reasoning),
                Cell::Usd(e.priced().then_some(e.cost.usd())),
                Cell::Int(u64::from(e.unpriced)),
            ]
        }
        (_, Some(acc)) => group_row(NONE, acc),
        (_, None) => Vec::new(),
    });
    vec![s]
}

pub(crate) fn run_list(scan: &Scan) -> Vec<Section<'_>> {
    let s = Section::new(
        "runs",
        vec![
            "run_id",
            "status",
            "calls",
            "input",
            "output",
            "cost_usd",
            "unpriced_calls",
            "first",
            "last",
            "elapsed_seconds",
        ],
    );
    let all = &scan.agg.runs;
    let runs = &all.listed;
    let mut v = runs.numbers();
    // Runs known only by their summary first, then by their first call.
    v.sort_unstable_by(|&a, &b| {
        let (a, b) = (runs.nth(a), runs.nth(b));
        (a.calls > 0, a.first_ms)
            .cmp(&(b.calls > 0, b.first_ms))
            .then_with(|| runs.id(a).cmp(runs.id(b)))
    });
    let s = s.lazy(v.len(), move |i| {
        let e = runs.nth(v[i]);
        vec![
            Cell::text(runs.id(e)),
            Cell::Text(status(e)),
            Cell::Int(u64::from(e.calls)),
            Cell::Int(e.input),
            Cell::Int(e.output),
            Cell::Usd(e.priced().then_some(e.cost.usd())),
            Cell::Int(u64::from(all.unpriced(runs.id(e)))),
            Cell::Text(e.first()),
            Cell::Text(e.last()),
            Cell::Float(e.elapsed()),
        ]
    });
    vec![s]
}

/// A run's status, flagged when several runs used its id (their calls are shown together).
fn status(e: &ListedRun) -> Option<String> {
    match (e.status(), e.finals()) {
        (Some(s), n) if n > 1 => Some(format!("{s} (id used by {n} runs)")),
        (s, _) => s.map(str::to_owned),
    }
}

/// `None` when the logs know nothing of the run.
pub(crate) fn run_show<'a>(scan: &'a Scan, id: &str) -> Option<Vec<Section<'a>>> {
    let info = scan.agg.runs.listed.get(id)?;
    let a = &scan.agg.all;
    let mut summary = Section::kv("run");
    summary.rows = vec![
        vec![Cell::text("run_id"), Cell::text(id)],
        vec![Cell::text("status"), Cell::Text(status(info))],
        vec![Cell::text("elapsed_seconds"), Cell::Float(info.elapsed())],
        vec![Cell::text("calls"), Cell::Int(a.calls)],
        vec![Cell::text("input_tokens"), Cell::Int(a.input)],
        vec![Cell::text("output_tokens"), Cell::Int(a.output)],
        vec![Cell::text("total_tokens"), Cell::Int(a.total)],
        vec![Cell::text("cache_read_tokens"), Cell::Int(a.cache_read)],
        vec![Cell::text("cost_usd"), Cell::Usd(cost(a))],
        vec![Cell::text("unpriced_calls"), Cell::Int(a.unpriced)],
        vec![Cell::text("first"), Cell::Text(a.first.clone())],
        vec![Cell::text("last"), Cell::Text(a.last.clone())],
    ];
    let mut attributes = Section::kv("attributes");
    for (k, values) in &scan.agg.run_attributes {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        attributes
            .rows
            .push(vec![Cell::text(k.clone()), Cell::text(values.join(", "))]);
    }
    let mut calls = Section::new(
        "calls",
        vec![
            "timestamp",
            "step",
            "model",
            "input",
            "output",
            "cost_usd",
            "latency_ms",
            "error",
        ],
    );
    for r in &scan.agg.rows {
        calls.rows.push(vec![
            Cell::text(r.timestamp.clone()),
            Cell::Text(r.step.clone()),
            Cell::Text(r.model.clone()),
            Cell::Int(r.tokens.input),
            Cell::Int(r.tokens.output),
            Cell::Usd(r.cost_usd),
            r.latency_ms.map_or(Cell::Text(None), Cell::Int),
            Cell::Text(r.error.clone()),
        ]);
    }
    let mut sections = vec![summary];
    if !attributes.is_empty() {
        sections.push(attributes);
    }
    sections.extend([by_step_section(scan, false), calls]);
    Some(sections)
}

/// The columns of `export`.
pub(crate) const EXPORT_COLUMNS: [&str; 19] = [
    "timestamp",
    "run_id",
    "step",
    "model",
    "provider",
    "task",
    "agent",
    "input",
    "output",
    "total",
    "cache_read",
    "cache_write",
    "reasoning",
    "cost_usd",
    "cost_source",
    "latency_ms",
    "estimated",
    "error",
    "attributes",
];

pub(crate) fn export(scan: &Scan) -> Vec<Section<'_>> {
    let mut s = Section::new("calls", EXPORT_COLUMNS.to_vec());
    for r in &scan.agg.rows {
        let t = &r.tokens;
        s.rows.push(vec![
            Cell::text(r.timestamp.clone()),
            Cell::Text(r.run_id.clone()),
            Cell::Text(r.step.clone()),
            Cell::Text(r.model.clone()),
            Cell::Text(r.provider.clone()),
            Cell::Text(r.task.clone()),
            Cell::Text(r.agent.clone()),
            Cell::Int(t.input),
            Cell::Int(t.output),
            Cell::Int(t.total),
            Cell::Int(t.cache_read),
            Cell::Int(t.cache_write),
            Cell::Int(t.reasoning),
            Cell::Usd(r.cost_usd),
            Cell::Text(r.cost_source.clone()),
            r.latency_ms.map_or(Cell::Text(None), Cell::Int),
            Cell::text(if r.estimated { "true" } else { "false" }),
            Cell::Text(r.error.clone()),
            Cell::Text(r.attributes.clone()),
        ]);
    }
    vec![s]
}

pub(crate) fn reprice(scan: &Scan) -> Vec<Section<'_>> {
    let mut s = Section::new(
        "reprice",
        vec![
            "model",
            "calls",
            "old_cost_usd",
            "new_cost_usd",
            "change_usd",
            "old_unpriced",
            "new_unpriced",
        ],
    );
    let mut models: Vec<_> = scan.agg.repriced.iter().collect();
    models.sort_by(|(ka, a), (kb, b)| {
        b.new_cost
            .partial_cmp(&a.new_cost)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| ka.cmp(kb))
    });
    let (mut calls, mut old, mut new, mut ou, mut nu) = (0, 0.0, 0.0, 0, 0);
    for (m, r) in models {
        // A model no call of which is priced has no cost (never $0).
        let old_cost = (r.old_unpriced < r.calls).then_some(r.old_cost);
        let new_cost = (r.new_unpriced < r.calls).then_some(r.new_cost);
        s.rows.push(vec![
            Cell::key(m),
            Cell::Int(r.calls),
            Cell::Usd(old_cost),
            Cell::Usd(new_cost),
            Cell::Usd(old_cost.zip(new_cost).map(|(o, n)| n - o)),
            Cell::Int(r.old_unpriced),
            Cell::Int(r.new_unpriced),
        ]);
        calls += r.calls;
        old += r.old_cost;
        new += r.new_cost;
        ou += r.old_unpriced;
        nu += r.new_unpriced;
    }
    s.rows.push(vec![
        Cell::text("TOTAL"),
        Cell::Int(calls),
        Cell::Usd(Some(old)),
        Cell::Usd(Some(new)),
        Cell::Usd(Some(new - old)),
        Cell::Int(ou),
        Cell::Int(nu),
    ]);
    vec![s]
}
