//! What one pass over the logs accumulates: totals, groups, runs, prompt components, and (when
//! a command needs them) the call rows. Each worker thread fills its own; they merge at the end.
//!
//! Only `llm_call` lines are counted; a `run_summary` line contributes its run's status and
//! elapsed time, never its tokens, so a run is never counted twice.

use hashbrown::HashMap;

use tracing_llm_usage::pricing::{CostSum, PriceTable};
use tracing_llm_usage::record::Tokens;

use tracing_llm_usage::format::decode::Line;

use super::replay::Spends;
use super::runs::{Listing, RunCount, Runs};

/// The key shown for calls without a value (JSON `null`).
pub(crate) const NONE: &str = "\u{0}";

/// Sums over a set of calls.
#[derive(Clone, Debug, Default)]
pub(crate) struct Acc {
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    pub(crate) input: u64,
    pub(crate) output: u64,
    pub(crate) total: u64,
    pub(crate) cache_read: u64,
    pub(crate) cache_write: u64,
    pub(crate) reasoning: u64,
    /// The priced calls' cost.
    pub(crate) cost: CostSum,
    pub(crate) priced: u64,
    pub(crate) unpriced: u64,
    /// Calls with no usage recorded (`cost_source: "no_usage"`), among the unpriced.
    pub(crate) no_usage: u64,
    pub(crate) provider_priced: u64,
    pub(crate) estimated_tokens: u64,
    pub(crate) first: Option<String>,
    pub(crate) last: Option<String>,
}

impl Acc {
    fn add(&mut self, l: &Line<'_>) {
        let t = &l.tokens;
        self.calls += 1;
        self.errors += u64::from(l.error.is_some());
        self.input = self.input.saturating_add(t.input);
        self.output = self.output.saturating_add(t.output);
        self.total = self.total.saturating_add(t.total);
        self.cache_read = self.cache_read.saturating_add(t.cache_read);
        self.cache_write = self.cache_write.saturating_add(t.cache_write);
        self.reasoning = self.reasoning.saturating_add(t.reasoning);
        match l.cost_usd {
            Some(c) if c.is_finite() => {
                self.cost.add(c);
                self.priced += 1;
                if l.cost_source.as_deref() == Some("provider") {
                    self.provider_priced += 1;
                }
            }
            _ => {
                self.unpriced += 1;
                self.no_usage += u64::from(l.cost_source.as_deref() == Some("no_usage"));
            }
        }
        if l.estimated {
            self.estimated_tokens = self.estimated_tokens.saturating_add(t.total);
        }
        let ts = &*l.timestamp;
        set_if(&mut self.first, ts, |new, old| new < old);
        set_if(&mut self.last, ts, |new, old| new > old);
    }

    /// The sums a database computed for a group of calls.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn from_sums(s: &tracing_llm_usage::store::CallSums) -> Self {
        Acc {
            calls: s.calls,
            errors: s.errors,
            input: s.input,
            output: s.output,
            total: s.total,
            cache_read: s.cache_read,
            cache_write: s.cache_write,
            reasoning: s.reasoning,
            cost: s.cost,
            priced: s.priced,
            unpriced: s.calls.saturating_sub(s.priced),
            no_usage: s.no_usage,
            provider_priced: s.provider_priced,
            estimated_tokens: s.estimated_tokens,
            first: None,
            last: None,
        }
    }

    pub(crate) fn merge(&mut self, o: &Acc) {
        self.calls += o.calls;
        self.errors += o.errors;
        self.input = self.input.saturating_add(o.input);
        self.output = self.output.saturating_add(o.output);
        self.total = self.total.saturating_add(o.total);
        self.cache_read = self.cache_read.saturating_add(o.cache_read);
        self.cache_write = self.cache_write.saturating_add(o.cache_write);
        self.reasoning = self.reasoning.saturating_add(o.reasoning);
        self.cost.merge(o.cost);
        self.priced += o.priced;
        self.unpriced += o.unpriced;
        self.no_usage += o.no_usage;
        self.provider_priced += o.provider_priced;
        self.estimated_tokens = self.estimated_tokens.saturating_add(o.estimated_tokens);
        if let Some(f) = &o.first {
            if self.first.as_ref().is_none_or(|s| f < s) {
                self.first = Some(f.clone());
            }
        }
        if let Some(l) = &o.last {
            if self.last.as_ref().is_none_or(|s| l > s) {
                self.last = Some(l.clone());
            }
        }
    }
}

/// Replaces `slot` with `ts` when empty or when `better(ts, current)`, reusing its buffer.
fn set_if(slot: &mut Option<String>, ts: &str, better: impl Fn(&str, &str) -> bool) {
    match slot {
        Some(cur) if better(ts, cur) => {
            cur.clear();
            cur.push_str(ts);
        }
        Some(_) => {}
        None => *slot = Some(ts.to_owned()),
    }
}

/// The dimensions `by` groups on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub(crate) enum Dim {
    Step,
    Model,
    Provider,
    Task,
    Agent,
    Run,
    Day,
}

pub(crate) const DIMS: [Dim; 7] = [
    Dim::Step,
    Dim::Model,
    Dim::Provider,
    Dim::Task,
    Dim::Agent,
    Dim::Run,
    Dim::Day,
];

/// One call, for `export` and `run show`. `order` sorts rows back into file order.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) order: (usize, usize, usize),
    pub(crate) timestamp: String,
    pub(crate) run_id: Option<String>,
    pub(crate) step: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) provider: Option<String>,
    pub(crate) task: Option<String>,
    pub(crate) agent: Option<String>,
    pub(crate) tokens: Tokens,
    pub(crate) cost_usd: Option<f64>,
    pub(crate) cost_source: Option<String>,
    pub(crate) latency_ms: Option<u64>,
    pub(crate) estimated: bool,
    pub(crate) error: Option<String>,
    /// The line's `attributes` object as written (JSON), when it has one.
    pub(crate) attributes: Option<String>,
}

/// Old and new cost per model, for `reprice`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Repriced {
    pub(crate) calls: u64,
    pub(crate) old_cost: f64,
    pub(crate) old_unpriced: u64,
    pub(crate) new_cost: f64,
    pub(crate) new_unpriced: u64,
}

/// What a command needs kept beyond the sums.
#[derive(Clone, Default)]
pub(crate) struct Needs {
    /// Which dimensions to group by (indexed like [`DIMS`]).
    pub(crate) dims: [bool; 7],
    /// Whether to read prompt breakdowns.
    pub(crate) prompt: bool,
    /// Whether to sum the calls that belong to a run (`report`'s cost per run).
    pub(crate) efficiency: bool,
    pub(crate) rows: bool,
    pub(crate) reprice: Option<PriceTable>,
    /// `--prices`: every call's cost comes from this table instead of its line.
    pub(crate) override_prices: Option<PriceTable>,
    /// Whether runs are listed (an entry a run, of the kind the command shows) or only counted
    /// (a hash a run).
    pub(crate) runs: Listing,
    /// Whether runs not listed are counted (`stats`, `report`): a hash a run.
    pub(crate) count_runs: bool,
    /// `budget`: each call's spend is handed to the replay.
    pub(crate) budget: bool,
    /// `report --html`: spend by day and model, each run's steps, latencies by model.
    pub(crate) html: bool,
    /// `by <attribute>`: the attribute to group by.
    pub(crate) attribute: Option<String>,
    /// `compare <attribute>`: the attribute whose values are compared.
    pub(crate) compare: Option<String>,
    /// `run show`: the run's attributes and their values.
    pub(crate) run_attributes: bool,
    /// `budget --each`: the attribute whose every value has its own limit.
    pub(crate) budget_each: Option<String>,
}

impl Needs {
    /// Whether a call's attributes are read at all.
    fn attributes(&self) -> bool {
        self.attribute.is_some()
            || self.compare.is_some()
            || self.run_attributes
            || self.html
            || self.budget_each.is_some()
    }
}

/// A line's attributes as (name, text) pairs, in its order; none when it has none (or they
/// do not parse, which the decoder has already said).
pub(crate) fn attributes_of(l: &Line<'_>) -> Vec<(String, String)> {
    let Some(raw) = &l.attributes else {
        return Vec::new();
    };
    tracing_llm_usage::format::decode::attributes(raw)
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.to_owned(), v.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// What `compare` keeps per value: the sums, and every call's latency.
#[derive(Clone, Debug, Default)]
pub(crate) struct Compared {
    pub(crate) acc: Acc,
    pub(crate) latencies: Vec<u64>,
}

/// Sums of a few calls, for the HTML report's breakdowns.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Small {
    pub(crate) calls: u64,
    pub(crate) tokens: u64,
    pub(crate) input: u64,
    pub(crate) output: u64,
    pub(crate) cost: CostSum,
    /// Calls without a cost, which `cost` leaves out.
    pub(crate) unpriced: u64,
}

impl Small {
    fn add(&mut self, l: &Line<'_>) {
        self.calls += 1;
        self.tokens = self.tokens.saturating_add(l.tokens.total);
        self.input = self.input.saturating_add(l.tokens.input);
        self.output = self.output.saturating_add(l.tokens.output);
        match l.cost_usd.filter(|c| c.is_finite()) {
            Some(c) => self.cost.add(c),
            None => self.unpriced += 1,
        }
    }

    pub(crate) fn merge(&mut self, o: &Small) {
        self.calls += o.calls;
        self.tokens = self.tokens.saturating_add(o.tokens);
        self.input = self.input.saturating_add(o.input);
        self.output = self.output.saturating_add(o.output);
        self.cost.merge(o.cost);
        self.unpriced += o.unpriced;
    }

    /// Its cost as a person reads it (`unpriced`, `≥$x` or `$x`).
    pub(crate) fn shown(&self) -> String {
        super::output::spend(self.cost.usd(), self.calls - self.unpriced, self.unpriced)
    }
}

/// What only the HTML report keeps.
#[derive(Default)]
pub(crate) struct Detail {
    /// (day, model) → sums.
    pub(crate) day_model: HashMap<(String, String), Small>,
    /// (attribute, value, day) → sums.
    pub(crate) attribute_day: HashMap<(String, String, String), Small>,
    /// (xxh3 of the run id, step) → sums.
    pub(crate) run_steps: HashMap<(u64, String), Small>,
    /// Model → every call's latency in ms.
    pub(crate) latency: HashMap<String, Vec<u64>>,
}

impl Detail {
    fn add(&mut self, l: &Line<'_>, attributes: &[(String, String)]) {
        let model = key(&l.model);
        let day = utc_day(&l.timestamp);
        for (k, v) in attributes {
            self.attribute_day
                .entry((k.clone(), v.clone(), day.to_string()))
                .or_default()
                .add(l);
        }
        self.day_model
            .entry((day.into_owned(), model.to_owned()))
            .or_default()
            .add(l);
        if let Some(run) = &l.run_id {
            let h = xxhash_rust::xxh3::xxh3_64(run.as_bytes());
            self.run_steps
                .entry((h, key(&l.step).to_owned()))
                .or_default()
                .add(l);
        }
        if let Some(ms) = l.latency_ms {
            self.latency.entry(model.to_owned()).or_default().push(ms);
        }
    }

    fn merge(&mut self, o: Detail) {
        for (k, v) in o.day_model {
            self.day_model.entry(k).or_default().merge(&v);
        }
        for (k, v) in o.attribute_day {
            self.attribute_day.entry(k).or_default().merge(&v);
        }
        for (k, v) in o.run_steps {
            self.run_steps.entry(k).or_default().merge(&v);
        }
        for (k, v) in o.latency {
            self.latency.entry(k).or_default().extend(v);
        }
    }
}

#[derive(Default)]
pub(crate) struct Aggregate {
    pub(crate) all: Acc,
    pub(crate) by: HashMap<Dim, HashMap<String, Acc>>,
    pub(crate) prompt: Vec<(String, u64)>,
    /// The input of the calls that reported prompt components (what their shares are of).
    pub(crate) prompt_input: u64,
    /// The calls that belong to a run (what the cost per run is of).
    pub(crate) in_runs: Acc,
    /// Distinct runs with a call, when runs are only counted.
    pub(crate) run_count: RunCount,
    /// Every run, when runs are listed.
    pub(crate) runs: Runs,
    pub(crate) rows: Vec<Row>,
    pub(crate) repriced: HashMap<String, Repriced>,
    pub(crate) summaries: u64,
    /// Budget lines found in the logs.
    pub(crate) budget_lines: Vec<BudgetLine>,
    /// Budget lines a database counted, per event (`stats --db`: not read one by one).
    pub(crate) budget_counted: Vec<(String, u64)>,
    /// The calls of the batch being read, for the budget replay.
    pub(crate) spend: Spends,
    /// `report --html`'s breakdowns.
    pub(crate) detail: Detail,
    /// `by <attribute>`: value → sums (calls without it under [`NONE`]).
    pub(crate) by_attribute: HashMap<String, Acc>,
    /// `compare`: value → sums and latencies.
    pub(crate) compared: HashMap<String, Compared>,
    /// Attribute names seen on calls (when attributes are read).
    pub(crate) attribute_names: std::collections::BTreeSet<String>,
    /// `run show`: the run's attributes, each with the values it took.
    pub(crate) run_attributes:
        std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
}

/// A `budget_warning` or `budget_exceeded` line.
#[derive(Clone, Debug)]
pub(crate) struct BudgetLine {
    pub(crate) order: (usize, usize, usize),
    pub(crate) timestamp: String,
    pub(crate) event: String,
    pub(crate) budget: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) scope_id: Option<String>,
    pub(crate) metric: Option<String>,
    pub(crate) limit: Option<f64>,
    pub(crate) value: Option<f64>,
    pub(crate) run_id: Option<String>,
}

/// The UTC day (`YYYY-MM-DD`) of a line's instant: a timestamp with another offset
/// (`…T00:30:00-02:00`) belongs to the day its instant falls on in UTC, as `--since` places it.
pub(crate) fn utc_day(ts: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    if ts.ends_with('Z') || ts.ends_with("+00:00") {
        return Cow::Borrowed(ts.get(..10).unwrap_or(NONE));
    }
    match tracing_llm_usage::record::Timestamp::parse(ts) {
        Some(t) => Cow::Owned(t.to_string()[..10].to_owned()),
        None => Cow::Borrowed(ts.get(..10).unwrap_or(NONE)),
    }
}

fn key<'a>(v: &'a Option<std::borrow::Cow<'_, str>>) -> &'a str {
    v.as_deref().unwrap_or(NONE)
}

impl Aggregate {
    /// Adds one parsed line; `order` is (input, batch, line in batch).
    pub(crate) fn add(&mut self, l: &Line<'_>, order: (usize, usize, usize), needs: &Needs) {
        debug_assert!(DIMS.len() == needs.dims.len());
        if l.event.starts_with("budget_") {
            let own = |v: &Option<std::borrow::Cow<'_, str>>| v.as_deref().map(str::to_owned);
            self.budget_lines.push(BudgetLine {
                order,
                timestamp: l.timestamp.to_string(),
                event: l.event.to_string(),
                budget: own(&l.budget),
                scope: own(&l.scope),
                scope_id: own(&l.scope_id),
                metric: own(&l.metric),
                limit: l.limit,
                value: l.value,
                run_id: own(&l.run_id),
            });
            return;
        }
        if l.event == "run_summary" {
            if needs.run_attributes {
                self.add_run_attributes(&attributes_of(l));
            }
            self.summaries += 1;
            if let Some(id) = &l.run_id {
                self.runs.add_summary(needs.runs, id, l);
            }
            return;
        }
        let repriced;
        let l = match &needs.override_prices {
            // A call without usage keeps its `no_usage` (no cost under any table), a
            // provider-reported cost its `provider` (it is the bill).
            Some(_) if matches!(l.cost_source.as_deref(), Some("no_usage" | "provider")) => l,
            Some(table) => {
                let mut copy = l.clone();
                copy.cost_usd = table.line_cost(l);
                copy.cost_source = Some(std::borrow::Cow::Borrowed(if copy.cost_usd.is_some() {
                    "local"
                } else {
                    "unpriced"
                }));
                repriced = copy;
                &repriced
            }
            None => l,
        };
        self.all.add(l);
        for (i, dim) in DIMS.into_iter().enumerate() {
            // Runs are counted and listed below, compactly; only calls without a run are a
            // group here.
            if !needs.dims[i] || (dim == Dim::Run && l.run_id.is_some()) {
                continue;
            }
            let day;
            let k = match dim {
                Dim::Step => key(&l.step),
                Dim::Model => key(&l.model),
                Dim::Provider => key(&l.provider),
                Dim::Task => key(&l.task),
                Dim::Agent => key(&l.agent),
                Dim::Run => key(&l.run_id),
                Dim::Day => {
                    day = utc_day(&l.timestamp);
                    &*day
                }
            };
            let groups = self.by.entry(dim).or_default();
            match groups.get_mut(k) {
                Some(acc) => acc.add(l),
                None => {
                    let mut acc = Acc::default();
                    acc.add(l);
                    groups.insert(k.to_owned(), acc);
                }
            }
        }
        if needs.prompt {
            // A breakdown that does not parse was already validated as JSON; its components
            // are simply not counted.
            let parsed = l
                .prompt_breakdown
                .map(tracing_llm_usage::format::decode::components);
            let components = parsed.and_then(Result::ok).unwrap_or_default();
            if !components.is_empty() {
                self.prompt_input = self.prompt_input.saturating_add(l.tokens.input);
            }
            for (component, tokens) in components {
                match self.prompt.iter_mut().find(|(c, _)| *c == component) {
                    Some((_, t)) => *t = t.saturating_add(tokens),
                    None => self.prompt.push((component, tokens)),
                }
            }
        }
        if needs.efficiency && l.run_id.is_some() {
            self.in_runs.add(l);
        }
        if let Some(run) = &l.run_id {
            if needs.runs != Listing::None {
                self.runs.add_call(needs.runs, run, l);
            } else if needs.count_runs {
                self.run_count.add(run);
            }
        }
        if let Some(table) = &needs.reprice {
            self.reprice(l, table);
        }
        let attributes = if needs.attributes() {
            attributes_of(l)
        } else {
            Vec::new()
        };
        for (k, _) in &attributes {
            if !self.attribute_names.contains(k) {
                self.attribute_names.insert(k.clone());
            }
        }
        if let Some(name) = &needs.attribute {
            let v = attributes.iter().find(|(k, _)| k == name);
            let k = v.map_or(NONE, |(_, v)| v.as_str());
            match self.by_attribute.get_mut(k) {
                Some(acc) => acc.add(l),
                None => {
                    let mut acc = Acc::default();
                    acc.add(l);
                    self.by_attribute.insert(k.to_owned(), acc);
                }
            }
        }
        if let Some(name) = &needs.compare {
            if let Some((_, v)) = attributes.iter().find(|(k, _)| k == name) {
                let c = self.compared.entry(v.clone()).or_default();
                c.acc.add(l);
                if let Some(ms) = l.latency_ms {
                    c.latencies.push(ms);
                }
            }
        }
        if needs.run_attributes {
            self.add_run_attributes(&attributes);
        }
        if needs.html {
            self.detail.add(l, &attributes);
        }
        if needs.budget {
            let value = needs.budget_each.as_ref().map(|name| {
                attributes
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            });
            self.spend.push(
                &l.timestamp,
                l.run_id.as_deref(),
                l.step.as_deref(),
                l.cost_usd,
                (l.cost_source.as_deref() != Some("no_usage")).then_some(l.tokens.total),
                value,
            );
        }
        if needs.rows {
            self.rows.push(Row {
                order,
                timestamp: l.timestamp.to_string(),
                run_id: l.run_id.as_deref().map(str::to_owned),
                step: l.step.as_deref().map(str::to_owned),
                model: l.model.as_deref().map(str::to_owned),
                provider: l.provider.as_deref().map(str::to_owned),
                task: l.task.as_deref().map(str::to_owned),
                agent: l.agent.as_deref().map(str::to_owned),
                tokens: l.tokens,
                cost_usd: l.cost_usd,
                cost_source: l.cost_source.as_deref().map(str::to_owned),
                latency_ms: l.latency_ms,
                estimated: l.estimated,
                error: l.error.as_deref().map(str::to_owned),
                attributes: l.attributes.as_deref().map(str::to_owned),
            });
        }
    }

    fn add_run_attributes(&mut self, attributes: &[(String, String)]) {
        for (k, v) in attributes {
            self.run_attributes
                .entry(k.clone())
                .or_default()
                .insert(v.clone());
        }
    }

    fn reprice(&mut self, l: &Line<'_>, table: &PriceTable) {
        let new = table.line_cost(l);
        let r = self.repriced.entry(key(&l.model).to_owned()).or_default();
        r.calls += 1;
        match l.cost_usd {
            Some(c) => r.old_cost += c,
            None => r.old_unpriced += 1,
        }
        match new {
            Some(c) => r.new_cost += c,
            None => r.new_unpriced += 1,
        }
    }

    pub(crate) fn merge(&mut self, o: Aggregate) {
        self.all.merge(&o.all);
        self.in_runs.merge(&o.in_runs);
        self.prompt_input = self.prompt_input.saturating_add(o.prompt_input);
        for (dim, groups) in o.by {
            let mine = self.by.entry(dim).or_default();
            for (k, acc) in groups {
                mine.entry(k).or_default().merge(&acc);
            }
        }
        for (c, t) in o.prompt {
            match self.prompt.iter_mut().find(|(mine, _)| *mine == c) {
                Some((_, mine)) => *mine = mine.saturating_add(t),
                None => self.prompt.push((c, t)),
            }
        }
        self.run_count.merge(o.run_count);
        self.runs.merge_from(&o.runs);
        self.rows.extend(o.rows);
        for (m, r) in o.repriced {
            let mine = self.repriced.entry(m).or_default();
            mine.calls += r.calls;
            mine.old_cost += r.old_cost;
            mine.old_unpriced += r.old_unpriced;
            mine.new_cost += r.new_cost;
            mine.new_unpriced += r.new_unpriced;
        }
        self.summaries += o.summaries;
        self.budget_lines.extend(o.budget_lines);
        self.budget_counted.extend(o.budget_counted);
        self.detail.merge(o.detail);
        for (k, acc) in o.by_attribute {
            self.by_attribute.entry(k).or_default().merge(&acc);
        }
        for (k, c) in o.compared {
            let mine = self.compared.entry(k).or_default();
            mine.acc.merge(&c.acc);
            mine.latencies.extend(c.latencies);
        }
        self.attribute_names.extend(o.attribute_names);
        for (k, values) in o.run_attributes {
            self.run_attributes.entry(k).or_default().extend(values);
        }
    }
}
