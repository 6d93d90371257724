//! Lines → OpenTelemetry log records, for fleets that ship records through a collector (to Loki,
//! ClickHouse, a vendor) instead of files.
//!
//! | record | event name | body |
//! |---|---|---|
//! | a call | `gen_ai.client.inference.operation.details` (the GenAI conventions' event) | its JSONL line |
//! | a run summary | `llm_usage.run_summary` | its line |
//! | a budget line | `llm_usage.budget_exceeded`, `llm_usage.budget_warning`, `llm_usage.budget_unpriced` | its line |
//!
//! A call's record carries the conventions' attributes (`gen_ai.operation.name`,
//! `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.response.model`,
//! `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`,
//! `gen_ai.usage.cache_read.input_tokens`, `gen_ai.usage.cache_write.input_tokens`,
//! `gen_ai.usage.reasoning.output_tokens`, `gen_ai.agent.name`, `error.type`) and this crate's
//! (`llm.run_id`, `llm.step`, `llm.task`, `llm.cost_usd`, `llm.cost_source`,
//! `llm.price_version`, `llm.latency_ms`, `llm.estimated`, `llm.prompt.<component>`); its
//! timestamp is the call's end, and with the `trace-context` feature it carries the trace and
//! span ids of the call's span. Never prompt or response text: the line holds none. Calls and
//! run summaries also carry each of the builder's attributes that has a value, under its own
//! name (`tenant`, `prompt.version`); budget lines of per-value budgets carry
//! `llm.budget.attribute` and `llm.budget.attribute_value`.
//!
//! Records are emitted by the sink's worker thread, never the caller's, into the provider's
//! processors (the OTLP pipeline of [`crate::otlp`] batches them).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry::Key;
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};

use crate::record::CallRecord;

/// The GenAI conventions' event for one inference operation.
pub const CALL_EVENT: &str = "gen_ai.client.inference.operation.details";
/// A run summary's event name.
pub const RUN_SUMMARY_EVENT: &str = "llm_usage.run_summary";
/// A crossed budget's event name.
pub const BUDGET_EXCEEDED_EVENT: &str = "llm_usage.budget_exceeded";
/// A budget warning's event name.
pub const BUDGET_WARNING_EVENT: &str = "llm_usage.budget_warning";
/// The event name of a call a USD budget could not price.
pub const BUDGET_UNPRICED_EVENT: &str = "llm_usage.budget_unpriced";

/// Every attribute key a record can carry, besides `llm.prompt.<component>` and the builder's
/// own attributes.
pub const ATTRIBUTES: [&str; 26] = [
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.agent.name",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "error.type",
    "llm.run_id",
    "llm.step",
    "llm.task",
    "llm.cost_usd",
    "llm.cost_source",
    "llm.price_version",
    "llm.latency_ms",
    "llm.estimated",
    "llm.status",
    "llm.call_count",
    "llm.budget.name",
    "llm.budget.scope",
    "llm.budget.scope_id",
    "llm.budget.attribute",
    "llm.budget.attribute_value",
];

/// Emits the records, on the sink's worker thread.
pub(crate) struct LogEmitter {
    logger: SdkLogger,
}

impl std::fmt::Debug for LogEmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogEmitter").finish_non_exhaustive()
    }
}

fn text(v: &str) -> AnyValue {
    AnyValue::String(v.to_owned().into())
}

fn int(v: u64) -> AnyValue {
    AnyValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

/// An attribute's value as a log record holds it.
fn attribute(v: &crate::attributes::AttributeValue) -> AnyValue {
    use crate::attributes::AttributeValue as V;
    match v {
        V::Str(s) => text(s),
        V::Int(i) => AnyValue::Int(*i),
        V::UInt(u) => int(*u),
        V::Float(f) => AnyValue::Double(*f),
        V::Bool(b) => AnyValue::Boolean(*b),
    }
}

/// The line's text without its `\n` (the layer's own lines are UTF-8).
fn body(line: &[u8]) -> AnyValue {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    AnyValue::String(String::from_utf8_lossy(line).into_owned().into())
}

impl LogEmitter {
    pub(crate) fn new(provider: &SdkLoggerProvider) -> Self {
        Self {
            logger: provider.logger("tracing-llm-usage"),
        }
    }

    /// One call, whose encoded line is `line`.
    pub(crate) fn call(&self, rec: &CallRecord, line: &[u8]) {
        let mut r = self.logger.create_log_record();
        r.set_event_name(CALL_EVENT);
        let end =
            UNIX_EPOCH + Duration::from_millis(u64::try_from(rec.timestamp.unix_ms()).unwrap_or(0));
        r.set_timestamp(end);
        r.set_observed_timestamp(SystemTime::now());
        r.set_severity_number(if rec.error.is_some() {
            Severity::Error
        } else {
            Severity::Info
        });
        r.set_body(body(line));
        let mut attrs: Vec<(Key, AnyValue)> = Vec::with_capacity(24);
        let mut name = |k: &'static str, v: Option<&crate::Name>| {
            if let Some(v) = v {
                attrs.push((Key::from_static_str(k), text(v)));
            }
        };
        name("gen_ai.operation.name", Some(&rec.operation));
        name("gen_ai.provider.name", rec.provider.as_ref());
        name("gen_ai.request.model", rec.request_model.as_ref());
        name("gen_ai.response.model", rec.model.as_ref());
        name("gen_ai.agent.name", rec.agent.as_ref());
        name("llm.step", rec.step.as_ref());
        name("llm.task", rec.task.as_ref());
        name("llm.price_version", rec.price_version.as_ref());
        let t = &rec.tokens;
        for (k, v) in [
            ("gen_ai.usage.input_tokens", t.input),
            ("gen_ai.usage.output_tokens", t.output),
            ("gen_ai.usage.cache_read.input_tokens", t.cache_read),
            ("gen_ai.usage.cache_write.input_tokens", t.cache_write),
            ("gen_ai.usage.reasoning.output_tokens", t.reasoning),
            ("llm.latency_ms", rec.latency_ms),
        ] {
            attrs.push((Key::from_static_str(k), int(v)));
        }
        if let Some(id) = &rec.run_id {
            attrs.push((Key::from_static_str("llm.run_id"), text(id)));
        }
        if let Some(e) = &rec.error {
            attrs.push((
                Key::from_static_str("error.type"),
                text(&super::error_type_text(e)),
            ));
        }
        if let Some(c) = rec.cost_usd {
            attrs.push((Key::from_static_str("llm.cost_usd"), AnyValue::Double(c)));
        }
        attrs.push((
            Key::from_static_str("llm.cost_source"),
            text(rec.cost_source.as_str()),
        ));
        attrs.push((
            Key::from_static_str("llm.estimated"),
            AnyValue::Boolean(rec.estimated),
        ));
        for (component, tokens) in &rec.prompt_breakdown.0 {
            attrs.push((Key::from(format!("llm.prompt.{component}")), int(*tokens)));
        }
        for (k, v) in rec.attributes.iter() {
            attrs.push((Key::from(k.to_owned()), attribute(v)));
        }
        r.add_attributes(attrs);
        if let Some((trace, span)) = rec.trace {
            r.set_trace_context(
                TraceId::from_bytes(trace),
                SpanId::from_bytes(span),
                Some(TraceFlags::SAMPLED),
            );
        }
        self.logger.emit(r);
    }

    /// A run summary or a budget line, as written.
    pub(crate) fn line(&self, line: &[u8]) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
            return;
        };
        let event = match v["event"].as_str() {
            Some("run_summary") => RUN_SUMMARY_EVENT,
            Some("budget_exceeded") => BUDGET_EXCEEDED_EVENT,
            Some("budget_warning") => BUDGET_WARNING_EVENT,
            Some("budget_unpriced") => BUDGET_UNPRICED_EVENT,
            _ => return,
        };
        let mut r = self.logger.create_log_record();
        r.set_event_name(event);
        let when = v["timestamp"]
            .as_str()
            .and_then(crate::Timestamp::parse)
            .map_or_else(SystemTime::now, |t| {
                UNIX_EPOCH + Duration::from_millis(u64::try_from(t.unix_ms()).unwrap_or(0))
            });
        r.set_timestamp(when);
        r.set_observed_timestamp(SystemTime::now());
        r.set_severity_number(
            if event == BUDGET_EXCEEDED_EVENT
                || event == BUDGET_UNPRICED_EVENT
                || v["status"] == "error"
            {
                Severity::Warn
            } else {
                Severity::Info
            },
        );
        r.set_body(body(line));
        let mut attrs: Vec<(Key, AnyValue)> = Vec::new();
        for (key, attr) in [
            ("run_id", "llm.run_id"),
            ("status", "llm.status"),
            ("budget", "llm.budget.name"),
            ("scope", "llm.budget.scope"),
            ("scope_id", "llm.budget.scope_id"),
        ] {
            if let Some(s) = v[key].as_str() {
                attrs.push((Key::from_static_str(attr), text(s)));
            }
        }
        let usage = &v["usage"];
        for (key, attr) in [
            ("input_tokens", "gen_ai.usage.input_tokens"),
            ("output_tokens", "gen_ai.usage.output_tokens"),
            ("call_count", "llm.call_count"),
        ] {
            if let Some(n) = usage[key].as_u64() {
                attrs.push((Key::from_static_str(attr), int(n)));
            }
        }
        if let Some(c) = usage["cost_usd"].as_f64() {
            attrs.push((Key::from_static_str("llm.cost_usd"), AnyValue::Double(c)));
        }
        if let Some(serde_json::Value::Object(map)) = v.get("attributes") {
            for (k, v) in map {
                let value = match v {
                    serde_json::Value::String(s) => text(s),
                    serde_json::Value::Bool(b) => AnyValue::Boolean(*b),
                    serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                        (Some(i), _) => AnyValue::Int(i),
                        (None, Some(f)) => AnyValue::Double(f),
                        _ => text(&n.to_string()),
                    },
                    _ => continue,
                };
                attrs.push((Key::from(k.clone()), value));
            }
        }
        for (key, attr) in [
            ("attribute", "llm.budget.attribute"),
            ("attribute_value", "llm.budget.attribute_value"),
        ] {
            if let Some(s) = v[key].as_str() {
                attrs.push((Key::from_static_str(attr), text(s)));
            }
        }
        r.add_attributes(attrs);
        self.logger.emit(r);
    }
}
