//! The decoder's view of a record: the [`Line`] its encoded line decodes to, made from the
//! record itself. The database sink takes its columns from here, so a row comes from the
//! record, never from its line parsed back.
//!
//! `prompt_breakdown` is left out (`None`): in a [`Line`] it is the JSON text of the line,
//! which a record does not have. Everything else is what [`decode`](super::decode) gives for
//! the encoded line, which the format's tests check for every kind.

use std::borrow::Cow;

use serde::Serialize;

use super::decode::{Line, SummaryUsage};
use crate::budget::BudgetEvent;
use crate::ledger::RunSummary;
use crate::record::{round_usd, CallRecord};

/// A finite float as a line holds it (serde writes NaN and infinities as `null`).
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// A cost as a line holds it: to the nano-dollar, `null` when not finite.
fn usd(v: Option<f64>) -> Option<f64> {
    v.map(round_usd).and_then(finite)
}

fn borrowed<S: std::ops::Deref<Target = str>>(v: &Option<S>) -> Option<Cow<'_, str>> {
    v.as_deref().map(Cow::Borrowed)
}

/// The name serde writes for a unit enum variant (`"run"`, `"budget_warning"`, …).
fn name<T: Serialize>(v: &T) -> Option<Cow<'static, str>> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Some(Cow::Owned(s)),
        _ => None,
    }
}

/// Attributes as the line writes them: JSON text, absent when empty.
fn attributes_json(a: &crate::attributes::Attributes) -> Option<Cow<'static, str>> {
    if a.is_empty() {
        return None;
    }
    serde_json::to_string(a).ok().map(Cow::Owned)
}

/// An `llm_call` line's fields.
pub(crate) fn call(rec: &CallRecord) -> Line<'_> {
    Line {
        event: Cow::Borrowed("llm_call"),
        timestamp: Cow::Owned(rec.timestamp.to_string()),
        run_id: borrowed(&rec.run_id),
        step: borrowed(&rec.step),
        model: borrowed(&rec.model),
        provider: borrowed(&rec.provider),
        task: borrowed(&rec.task),
        agent: borrowed(&rec.agent),
        tokens: rec.tokens,
        modality: rec.modality.as_deref().cloned(),
        stream: rec.stream,
        ttft_ms: rec.ttft_ms,
        service_tier: borrowed(&rec.service_tier),
        cache_write_1h: rec.cache_write_1h,
        cost_usd: rec.written_cost().and_then(finite),
        cost_source: Some(Cow::Borrowed(rec.cost_source.as_str())),
        price_version: borrowed(&rec.price_version),
        latency_ms: Some(rec.latency_ms),
        estimated: rec.estimated,
        error: borrowed(&rec.error),
        attributes: attributes_json(&rec.attributes),
        ..Line::default()
    }
}

/// A `run_summary` line's fields.
pub(crate) fn summary(s: &RunSummary) -> Line<'_> {
    let u = &s.usage;
    Line {
        event: Cow::Borrowed("run_summary"),
        timestamp: Cow::Owned(s.timestamp.to_string()),
        run_id: Some(Cow::Borrowed(&s.run_id)),
        status: name(&s.status),
        elapsed_seconds: finite(s.elapsed_seconds),
        usage: Some(SummaryUsage {
            call_count: u.call_count,
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            total_tokens: u.total_tokens,
            cost_usd: usd(u.cost_usd),
            unpriced_calls: u.unpriced_calls,
        }),
        attributes: attributes_json(&s.attributes),
        ..Line::default()
    }
}

/// A budget line's fields.
pub(crate) fn budget(e: &BudgetEvent) -> Line<'_> {
    Line {
        event: name(&e.event).unwrap_or(Cow::Borrowed("")),
        timestamp: Cow::Owned(e.timestamp.to_string()),
        budget: Some(Cow::Borrowed(&e.budget)),
        scope: name(&e.scope),
        scope_id: Some(Cow::Borrowed(&e.scope_id)),
        metric: name(&e.metric),
        limit: finite(e.limit),
        value: finite(e.value),
        run_id: borrowed(&e.run_id),
        step: borrowed(&e.step),
        model: borrowed(&e.model),
        reason: borrowed(&e.reason),
        attribute: borrowed(&e.attribute),
        attribute_value: borrowed(&e.attribute_value),
        ..Line::default()
    }
}
