//! OTLP trace requests → the replayer's spans: ids checked, attributes borrowed, the
//! resource's attributes after the span's own.

use std::time::Instant;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span};
use tracing_llm_usage::replay::{ForeignSpan, ForeignValue, Replayer};

/// Why spans of a request were rejected: counted for the partial-success answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Checked {
    /// Spans taken.
    pub(super) spans: u64,
    /// Spans rejected, and the first reason.
    pub(super) rejected: u64,
    pub(super) reason: Option<&'static str>,
}

/// Why a span cannot be placed in a trace.
fn invalid(span: &Span) -> Option<&'static str> {
    if span.trace_id.len() != 16 || span.trace_id.iter().all(|b| *b == 0) {
        return Some("a span's trace_id is not 16 bytes, or is all zero");
    }
    if span.span_id.len() != 8 || span.span_id.iter().all(|b| *b == 0) {
        return Some("a span's span_id is not 8 bytes, or is all zero");
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Some("a span's parent_span_id is not 8 bytes");
    }
    None
}

/// Counts the spans of a request and those that will be rejected.
pub(super) fn check(req: &ExportTraceServiceRequest) -> Checked {
    let mut c = Checked::default();
    for span in req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
    {
        match invalid(span) {
            Some(why) => {
                c.rejected += 1;
                c.reason.get_or_insert(why);
            }
            None => c.spans += 1,
        }
    }
    c
}

fn value(kv: &KeyValue) -> ForeignValue<'_> {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => ForeignValue::Str(s),
        Some(any_value::Value::IntValue(i)) => ForeignValue::Int(*i),
        Some(any_value::Value::DoubleValue(d)) => ForeignValue::Double(*d),
        Some(any_value::Value::BoolValue(b)) => ForeignValue::Bool(*b),
        _ => ForeignValue::Other,
    }
}

/// Hands every valid span of a request to the replayer.
pub(super) fn feed(req: &ExportTraceServiceRequest, replayer: &mut Replayer, now: Instant) {
    let mut attributes: Vec<(&str, ForeignValue<'_>)> = Vec::new();
    for rs in &req.resource_spans {
        let resource = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
            if invalid(span).is_some() {
                continue;
            }
            let (Ok(trace_id), Ok(span_id)) = (
                <[u8; 16]>::try_from(&span.trace_id[..]),
                <[u8; 8]>::try_from(&span.span_id[..]),
            ) else {
                continue;
            };
            attributes.clear();
            attributes.extend(span.attributes.iter().map(|kv| (&kv.key[..], value(kv))));
            attributes.extend(resource.iter().map(|kv| (&kv.key[..], value(kv))));
            let error = span
                .status
                .as_ref()
                .filter(|s| s.code == StatusCode::Error as i32)
                .map(|s| &s.message[..]);
            let foreign = ForeignSpan {
                trace_id,
                span_id,
                parent_span_id: <[u8; 8]>::try_from(&span.parent_span_id[..]).ok(),
                name: &span.name,
                start_unix_nano: span.start_time_unix_nano,
                end_unix_nano: span.end_time_unix_nano,
                error,
                attributes: &attributes,
            };
            // Ids were checked above: nothing is refused here.
            let _ = replayer.add(&foreign, now);
        }
    }
}
