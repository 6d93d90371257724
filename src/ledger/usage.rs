//! Token and cost sums: [`Totals`] for process totals, [`RunUsage`] and [`StepUsage`] as the
//! `run_summary` line writes them.

use serde::{Deserialize, Serialize};

use crate::record::CallRecord;

/// Sums over a set of calls (process totals, or one group of them).
///
/// Costs add up only the priced calls; `unpriced_calls` says how many had no price, so a
/// total is never silently short.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Totals {
    /// Calls counted.
    pub calls: u64,
    /// Calls that recorded an error.
    pub errors: u64,
    /// Input tokens (cache included).
    pub input_tokens: u64,
    /// Output tokens (reasoning included).
    pub output_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
    /// Cache-read input tokens.
    pub cache_read_tokens: u64,
    /// Cache-write input tokens.
    pub cache_write_tokens: u64,
    /// Reasoning output tokens.
    pub reasoning_tokens: u64,
    /// Sum of the priced calls' costs, in USD.
    pub cost_usd: f64,
    /// Calls whose cost is unknown.
    pub unpriced_calls: u64,
}

impl Totals {
    /// Adds one call.
    pub fn add(&mut self, rec: &CallRecord) {
        let t = &rec.tokens;
        self.calls = self.calls.saturating_add(1);
        self.errors = self.errors.saturating_add(u64::from(rec.is_error()));
        self.input_tokens = self.input_tokens.saturating_add(t.input);
        self.output_tokens = self.output_tokens.saturating_add(t.output);
        self.total_tokens = self.total_tokens.saturating_add(t.total);
        self.cache_read_tokens = self.cache_read_tokens.saturating_add(t.cache_read);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(t.cache_write);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(t.reasoning);
        match rec.cost_usd {
            Some(c) => self.cost_usd += c,
            None => self.unpriced_calls = self.unpriced_calls.saturating_add(1),
        }
    }

    /// Adds another sum.
    pub fn merge(&mut self, o: &Totals) {
        self.calls = self.calls.saturating_add(o.calls);
        self.errors = self.errors.saturating_add(o.errors);
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.total_tokens = self.total_tokens.saturating_add(o.total_tokens);
        self.cache_read_tokens = self.cache_read_tokens.saturating_add(o.cache_read_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(o.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(o.reasoning_tokens);
        self.cost_usd += o.cost_usd;
        self.unpriced_calls = self.unpriced_calls.saturating_add(o.unpriced_calls);
    }
}

/// A run's totals, as the `usage` object of a `run_summary` line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunUsage {
    /// Input tokens (cache included).
    pub input_tokens: u64,
    /// Output tokens (reasoning included).
    pub output_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
    /// Calls in the run.
    pub call_count: u64,
    /// Sum of the priced calls' costs; `None` when no call was priced (written to the
    /// nano-dollar).
    #[serde(serialize_with = "crate::record::nano_usd")]
    pub cost_usd: Option<f64>,
    /// Calls without a cost (no price, or no usage): `cost_usd` leaves them out.
    #[serde(default)]
    pub unpriced_calls: u64,
}

impl RunUsage {
    pub(crate) fn add(&mut self, rec: &CallRecord) {
        self.input_tokens = self.input_tokens.saturating_add(rec.tokens.input);
        self.output_tokens = self.output_tokens.saturating_add(rec.tokens.output);
        self.total_tokens = self.total_tokens.saturating_add(rec.tokens.total);
        self.call_count = self.call_count.saturating_add(1);
        self.unpriced_calls = self
            .unpriced_calls
            .saturating_add(u64::from(rec.cost_usd.is_none()));
        add_cost(&mut self.cost_usd, rec.cost_usd);
    }
}

/// One step's totals within a run (an entry of `by_step`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StepUsage {
    /// The step (`None` for calls without one).
    pub step: Option<crate::Name>,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Calls.
    pub calls: u64,
    /// Sum of the priced calls' costs; `None` when no call was priced (written to the
    /// nano-dollar).
    #[serde(serialize_with = "crate::record::nano_usd")]
    pub cost_usd: Option<f64>,
}

impl StepUsage {
    pub(crate) fn add(&mut self, rec: &CallRecord) {
        self.input_tokens = self.input_tokens.saturating_add(rec.tokens.input);
        self.output_tokens = self.output_tokens.saturating_add(rec.tokens.output);
        self.calls = self.calls.saturating_add(1);
        add_cost(&mut self.cost_usd, rec.cost_usd);
    }
}

fn add_cost(sum: &mut Option<f64>, cost: Option<f64>) {
    if let Some(c) = cost {
        *sum = Some(sum.unwrap_or(0.0) + c);
    }
}
