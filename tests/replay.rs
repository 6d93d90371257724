//! Spans of other processes through `replay::Replayer`: the same lines as the layer writes in
//! process, traces assembled across batches and out of order, runs from traces, content never
//! kept, memory bounded.

mod common;
mod workload;

use std::time::{Duration, Instant, UNIX_EPOCH};

use common::{calls, stable, summary, Buf};
use opentelemetry::trace::Status;
use opentelemetry::Value as OtelValue;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::{json, Value};
use tracing_llm_usage::replay::{ForeignSpan, ForeignValue, Replayer};
use tracing_llm_usage::{UsageGuard, UsageHandle, UsageLayer};

/// A replayer writing into a fresh buffer, with `tenant` as an attribute.
fn replayer(
    settle: Duration,
    idle: Duration,
    max_spans: usize,
) -> (Replayer, UsageHandle, UsageGuard, Buf) {
    let buf = Buf::default();
    let (layer, guard) = UsageLayer::builder()
        .jsonl_writer(buf.clone())
        .attributes(["tenant"])
        .build()
        .unwrap();
    let usage = layer.handle();
    let r = Replayer::builder(layer)
        .settle(settle)
        .idle_timeout(idle)
        .max_spans(max_spans)
        .build();
    (r, usage, guard, buf)
}

fn value(v: &OtelValue) -> ForeignValue<'_> {
    match v {
        OtelValue::Bool(b) => ForeignValue::Bool(*b),
        OtelValue::I64(i) => ForeignValue::Int(*i),
        OtelValue::F64(f) => ForeignValue::Double(*f),
        OtelValue::String(s) => ForeignValue::Str(s.as_str()),
        _ => ForeignValue::Other,
    }
}

fn nanos(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// Feeds exported spans to the replayer, as `llm-usage collect` would from OTLP.
fn feed(r: &mut Replayer, spans: &[SpanData], now: Instant) {
    for s in spans {
        let attributes: Vec<(&str, ForeignValue<'_>)> = s
            .attributes
            .iter()
            .map(|kv| (kv.key.as_str(), value(&kv.value)))
            .collect();
        let parent = s.parent_span_id.to_bytes();
        let error = match &s.status {
            Status::Error { description } => Some(&description[..]),
            _ => None,
        };
        r.add(
            &ForeignSpan {
                trace_id: s.span_context.trace_id().to_bytes(),
                span_id: s.span_context.span_id().to_bytes(),
                parent_span_id: (parent != [0; 8]).then_some(parent),
                name: &s.name,
                start_unix_nano: nanos(s.start_time),
                end_unix_nano: nanos(s.end_time),
                error,
                attributes: &attributes,
            },
            now,
        )
        .unwrap();
    }
}

#[test]
fn replayed_spans_give_the_lines_the_layer_writes_in_process() {
    let in_process = Buf::default();
    let (layer, guard) = UsageLayer::builder()
        .jsonl_writer(in_process.clone())
        .attributes(["tenant"])
        .build()
        .unwrap();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    workload::run_counted_and_exported(layer, &provider);
    drop(guard);
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 7);

    // Two batches, the second first: spans come in any order.
    let (mut r, _, guard, replayed) =
        replayer(Duration::from_secs(1), Duration::from_secs(30), 1000);
    let t0 = Instant::now();
    feed(&mut r, &spans[4..], t0);
    feed(&mut r, &spans[..4], t0);
    assert_eq!(r.poll(t0 + Duration::from_millis(999)), 0);
    assert_eq!(r.poll(t0 + Duration::from_secs(1)), 2);
    drop(guard);

    let expected: Vec<Value> = in_process.lines().iter().map(stable).collect();
    let got: Vec<Value> = replayed.lines().iter().map(stable).collect();
    // One replayed trace is written after the other; within a trace, the in-process order.
    let sorted = |mut v: Vec<Value>| {
        v.sort_by_key(|l| l["run_id"].to_string());
        v
    };
    assert_eq!(sorted(got), sorted(expected.clone()));
    assert_eq!(expected.len(), 6);
    let a = summary(&expected, "run-a");
    assert_eq!(a["usage"]["input_tokens"], 1260);
    assert_eq!(a["status"], "error");

    // The replayed lines carry the spans' own times: the call's end, its duration.
    let lines = replayed.lines();
    let first = calls(&lines)
        .into_iter()
        .find(|l| l["step"] == "plan")
        .unwrap()
        .clone();
    let plan = spans.iter().find(|s| s.name == "llm_call").unwrap();
    let end_ms = nanos(plan.end_time) / 1_000_000;
    let ts = tracing_llm_usage::Timestamp::parse(first["timestamp"].as_str().unwrap()).unwrap();
    assert_eq!(ts.unix_ms() as u64, end_ms);
    let ms = (nanos(plan.end_time) - nanos(plan.start_time)) / 1_000_000;
    assert_eq!(first["latency_ms"], ms);
}

/// A span made by hand: ids from small numbers, times in milliseconds.
struct Span {
    trace: u8,
    id: u8,
    parent: Option<u8>,
    name: &'static str,
    start_ms: u64,
    end_ms: u64,
    error: Option<&'static str>,
    attributes: Vec<(&'static str, ForeignValue<'static>)>,
}

fn span(trace: u8, id: u8, parent: Option<u8>, name: &'static str) -> Span {
    Span {
        trace,
        id,
        parent,
        name,
        start_ms: 1_765_000_000_000 + u64::from(id) * 10,
        end_ms: 1_765_000_000_000 + 1000 - u64::from(id) * 10,
        error: None,
        attributes: Vec::new(),
    }
}

impl Span {
    fn with(mut self, key: &'static str, value: ForeignValue<'static>) -> Self {
        self.attributes.push((key, value));
        self
    }

    fn add(&self, r: &mut Replayer, now: Instant) {
        r.add(
            &ForeignSpan {
                trace_id: [self.trace; 16],
                span_id: [self.id; 8],
                parent_span_id: self.parent.map(|p| [p; 8]),
                name: self.name,
                start_unix_nano: self.start_ms * 1_000_000,
                end_unix_nano: self.end_ms * 1_000_000,
                error: self.error,
                attributes: &self.attributes,
            },
            now,
        )
        .unwrap();
    }
}

fn chat(trace: u8, id: u8, parent: Option<u8>, input: i64, output: i64) -> Span {
    use ForeignValue::*;
    span(trace, id, parent, "chat gpt-4o")
        .with("gen_ai.operation.name", Str("chat"))
        .with("gen_ai.system", Str("openai"))
        .with("gen_ai.request.model", Str("gpt-4o"))
        .with("gen_ai.usage.input_tokens", Int(input))
        .with("gen_ai.usage.output_tokens", Int(output))
}

#[test]
fn a_trace_without_a_run_id_is_a_run_named_by_its_trace_id() {
    let (mut r, usage, guard, buf) = replayer(Duration::ZERO, Duration::from_secs(30), 1000);
    let now = Instant::now();
    span(1, 1, None, "POST /answer").add(&mut r, now);
    chat(1, 2, Some(1), 100, 10).add(&mut r, now);
    chat(1, 3, Some(1), 200, 20).add(&mut r, now);
    // A trace with nothing the layer reads: no lines, no run.
    span(2, 1, None, "GET /health").add(&mut r, now);
    assert_eq!(r.poll(now), 2);
    drop(guard);
    let lines = buf.lines();
    let id = "01010101010101010101010101010101";
    assert_eq!(lines.len(), 3);
    assert!(calls(&lines)
        .iter()
        .all(|l| l["run_id"] == id && l["provider"] == "openai"));
    let s = summary(&lines, id);
    assert_eq!(
        (
            s["usage"]["input_tokens"].as_u64(),
            s["usage"]["call_count"].as_u64()
        ),
        (Some(300), Some(2))
    );
    assert_eq!(s["status"], "success");
    // The run lasted from its first span's start to its last span's end.
    assert_eq!(s["elapsed_seconds"], 0.98);
    assert_eq!(usage.totals().calls, 2);
    let stats = r.stats();
    assert_eq!((stats.traces_replayed, stats.traces_without_calls), (1, 1));
}

#[test]
fn a_call_belongs_to_its_nearest_run_and_the_rest_to_the_trace() {
    use ForeignValue::*;
    let (mut r, _, guard, buf) = replayer(Duration::ZERO, Duration::from_secs(30), 1000);
    let now = Instant::now();
    // llm.run_id (OpenLLMetry's association property style) names a run too.
    span(3, 1, None, "workflow").add(&mut r, now);
    span(3, 2, Some(1), "agent")
        .with("llm.run_id", Str("inner"))
        .with("step", Str("draft"))
        .add(&mut r, now);
    chat(3, 3, Some(2), 100, 10).add(&mut r, now);
    chat(3, 4, Some(1), 7, 1).add(&mut r, now);
    r.poll(now);
    drop(guard);
    let lines = buf.lines();
    let c = calls(&lines);
    assert_eq!(
        (c[0]["run_id"].as_str(), c[0]["step"].as_str()),
        (Some("inner"), Some("draft"))
    );
    assert_eq!(c[1]["run_id"], "03030303030303030303030303030303");
    assert_eq!(summary(&lines, "inner")["usage"]["input_tokens"], 100);
    assert_eq!(
        summary(&lines, "03030303030303030303030303030303")["usage"]["input_tokens"],
        7
    );
}

#[test]
fn children_wait_for_their_root_and_a_rootless_trace_is_incomplete_at_the_idle_timeout() {
    let (mut r, usage, guard, buf) =
        replayer(Duration::from_secs(1), Duration::from_secs(10), 1000);
    let t0 = Instant::now();
    let root = span(4, 1, None, "run").with("run_id", ForeignValue::Str("r4"));
    chat(4, 2, Some(1), 5, 1).add(&mut r, t0);
    chat(5, 2, Some(1), 9, 1).add(&mut r, t0);
    assert_eq!(r.poll(t0 + Duration::from_secs(5)), 0, "no root yet: waits");
    root.add(&mut r, t0 + Duration::from_secs(5));
    assert_eq!(r.poll(t0 + Duration::from_secs(6)), 1);
    assert_eq!(usage.run("r4").unwrap().usage.input_tokens, 5);
    // Trace 5's root never comes: replayed at the idle timeout, its run incomplete.
    assert_eq!(r.poll(t0 + Duration::from_secs(10)), 1);
    assert_eq!(r.stats().traces_incomplete, 1);
    drop(guard);
    let lines = buf.lines();
    assert_eq!(summary(&lines, "r4")["status"], "success");
    assert_eq!(calls(&lines)[0]["run_id"], "r4");
    let id = "05050505050505050505050505050505";
    assert_eq!(summary(&lines, id)["status"], "incomplete");
    assert_eq!(summary(&lines, id)["usage"]["input_tokens"], 9);
}

#[test]
fn prompt_and_response_content_is_never_written() {
    use ForeignValue::*;
    let buf = Buf::default();
    // Even named as an attribute, content is not kept.
    let (layer, guard) = UsageLayer::builder()
        .jsonl_writer(buf.clone())
        .attributes(["tenant", "gen_ai.input.messages", "gen_ai.prompt.0.content"])
        .build()
        .unwrap();
    let mut r = Replayer::builder(layer).settle(Duration::ZERO).build();
    let now = Instant::now();
    chat(6, 1, None, 3, 4)
        .with("gen_ai.input.messages", Str("SECRET-1"))
        .with("gen_ai.output.messages", Str("SECRET-2"))
        .with("gen_ai.prompt.0.content", Str("SECRET-3"))
        .with("gen_ai.completion.0.content", Str("SECRET-4"))
        .with("llm.prompts.0.content", Str("SECRET-5"))
        .with("tenant", Str("acme"))
        .add(&mut r, now);
    r.poll(now);
    drop(guard);
    let text = buf.text();
    assert!(!text.contains("SECRET"), "{text}");
    let lines = buf.lines();
    assert_eq!(calls(&lines)[0]["attributes"], json!({"tenant": "acme"}));
}

#[test]
fn older_instrumentation_names_and_errors_are_read() {
    use ForeignValue::*;
    let (mut r, _, guard, buf) = replayer(Duration::ZERO, Duration::from_secs(30), 1000);
    let now = Instant::now();
    // OpenLLMetry's names before the conventions settled.
    span(7, 1, None, "openai.chat")
        .with("gen_ai.system", Str("openai"))
        .with("gen_ai.request.model", Str("gpt-4o"))
        .with("gen_ai.usage.prompt_tokens", Int(120))
        .with("gen_ai.usage.completion_tokens", Int(30))
        .with("llm.usage.total_tokens", Int(150))
        .with("gen_ai.usage.cache_read_input_tokens", Int(20))
        .with("llm.is_streaming", Bool(true))
        .add(&mut r, now);
    let mut failed = span(8, 1, None, "chat gpt-4o")
        .with("gen_ai.operation.name", Str("chat"))
        .with("gen_ai.request.model", Str("gpt-4o"));
    failed.error = Some("Connection error.");
    failed.add(&mut r, now);
    r.poll(now);
    drop(guard);
    let lines = buf.lines();
    let c = calls(&lines);
    assert_eq!(
        c[0]["tokens"],
        json!({"input": 120, "output": 30, "total": 150, "cache_read": 20, "cache_write": 0, "reasoning": 0})
    );
    assert_eq!(c[0]["stream"], true);
    assert_eq!(c[1]["error"], "Connection error.");
    assert_eq!(c[1]["cost_source"], "no_usage");
    assert_eq!(
        summary(&lines, "08080808080808080808080808080808")["status"],
        "error"
    );
}

#[test]
fn past_the_span_cap_the_oldest_traces_are_replayed_early_and_nothing_is_lost() {
    let (mut r, usage, guard, _buf) =
        replayer(Duration::from_secs(60), Duration::from_secs(60), 10);
    let t0 = Instant::now();
    for t in 0..20u8 {
        // Children only: no trace is ever whole.
        chat(t + 10, 2, Some(1), 1, 1).add(&mut r, t0 + Duration::from_millis(t.into()));
        chat(t + 10, 3, Some(1), 1, 1).add(&mut r, t0 + Duration::from_millis(t.into()));
        assert!(r.stats().spans_pending <= 10);
    }
    let stats = r.stats();
    assert_eq!((stats.traces_overflowed, stats.traces_pending), (15, 5));
    r.finish();
    assert_eq!(usage.totals().calls, 40);
    assert_eq!(r.stats().traces_incomplete, 20);
    drop(guard);
}
