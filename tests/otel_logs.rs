//! Every call, run summary and budget line as an OpenTelemetry log record: read back through
//! the SDK's in-memory exporter (event names, timestamps, bodies equal to the JSONL lines,
//! attributes, trace context), and over OTLP to gRPC and HTTP receivers on 127.0.0.1.
#![cfg(all(feature = "otlp", feature = "trace-context"))]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::logs::AnyValue;
use opentelemetry::trace::TracerProvider;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLoggerProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use prost::Message;
use serde_json::Value;
use tracing::{dispatcher, field::Empty, info_span};
use tracing_llm_usage::otlp::{OtlpConfig, OtlpProtocol};
use tracing_llm_usage::{Budget, UsageLayer};
use tracing_subscriber::prelude::*;

const SECRET: &str = "SECRET-PROMPT-TEXT";

/// Two calls (one failed, one with a prompt breakdown) in a run with a budget crossed.
fn workload() {
    let run = info_span!("run", run_id = "logs-run");
    let _r = run.enter();
    let call = info_span!(
        "llm_call",
        step = "draft",
        agent = "writer",
        model = "gpt-4o",
        provider = "openai",
        tokens.input = 1200u64,
        tokens.output = 300u64,
        prompt.system = 200u64,
        gen_ai.input.messages = Empty
    );
    call.record("gen_ai.input.messages", SECRET);
    drop(call);
    drop(info_span!(
        "chat",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = "anthropic",
        gen_ai.request.model = "claude-sonnet-4-5",
        gen_ai.usage.input_tokens = 5000u64,
        gen_ai.usage.output_tokens = 10u64,
        gen_ai.usage.cache_read.input_tokens = 4000u64,
        error = "timeout"
    ));
}

fn attrs(r: &opentelemetry_sdk::logs::SdkLogRecord) -> BTreeMap<String, String> {
    r.attributes_iter()
        .map(|(k, v)| {
            let v = match v {
                AnyValue::String(s) => s.to_string(),
                AnyValue::Int(i) => i.to_string(),
                AnyValue::Double(d) => d.to_string(),
                AnyValue::Boolean(b) => b.to_string(),
                other => format!("{other:?}"),
            };
            (k.to_string(), v)
        })
        .collect()
}

#[test]
fn every_line_is_a_log_record_with_its_attributes_and_trace() {
    let logs = InMemoryLogExporter::default();
    let provider = SdkLoggerProvider::builder()
        .with_simple_exporter(logs.clone())
        .build();
    let spans = InMemorySpanExporter::default();
    let tracer_provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let buf = common::Buf::default();
    let (layer, guard) = UsageLayer::builder()
        .logger_provider(&provider)
        .jsonl_writer(buf.clone())
        .budget(Budget::per_run("run-tokens").tokens(6000))
        .build()
        .unwrap();
    // tracing-opentelemetry below the usage layer, as a service would stack them.
    let d = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("t")))
            .with(layer),
    );
    dispatcher::with_default(&d, workload);
    drop(guard);
    provider.force_flush().unwrap();
    tracer_provider.force_flush().unwrap();

    let lines: Vec<String> = buf.text().lines().map(str::to_owned).collect();
    let records = logs.get_emitted_logs().unwrap();
    assert_eq!(records.len(), lines.len(), "one record per line");
    let bodies: Vec<String> = records
        .iter()
        .map(|r| match r.record.body() {
            Some(AnyValue::String(s)) => s.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(bodies, lines, "bodies are the JSONL lines, in order");
    assert!(!bodies.iter().any(|b| b.contains(SECRET)));

    let events: Vec<&str> = records
        .iter()
        .map(|r| r.record.event_name().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "gen_ai.client.inference.operation.details",
            "gen_ai.client.inference.operation.details",
            "llm_usage.budget_exceeded",
            "llm_usage.run_summary"
        ]
    );
    let first = &records[0].record;
    let line: Value = serde_json::from_str(&lines[0]).unwrap();
    let ts = tracing_llm_usage::Timestamp::parse(line["timestamp"].as_str().unwrap()).unwrap();
    assert_eq!(
        first.timestamp().unwrap(),
        std::time::UNIX_EPOCH + Duration::from_millis(ts.unix_ms() as u64)
    );
    let a = attrs(first);
    let want: BTreeMap<String, String> = [
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", "openai"),
        ("gen_ai.request.model", "gpt-4o"),
        ("gen_ai.response.model", "gpt-4o"),
        ("gen_ai.agent.name", "writer"),
        ("gen_ai.usage.input_tokens", "1200"),
        ("gen_ai.usage.output_tokens", "300"),
        ("gen_ai.usage.cache_read.input_tokens", "0"),
        ("gen_ai.usage.cache_write.input_tokens", "0"),
        ("gen_ai.usage.reasoning.output_tokens", "0"),
        ("llm.run_id", "logs-run"),
        ("llm.step", "draft"),
        (
            "llm.cost_usd",
            &line["cost_usd"].as_f64().unwrap().to_string(),
        ),
        ("llm.cost_source", "local"),
        ("llm.price_version", line["price_version"].as_str().unwrap()),
        (
            "llm.latency_ms",
            &line["latency_ms"].as_u64().unwrap().to_string(),
        ),
        ("llm.estimated", "false"),
        ("llm.prompt.system", "200"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(a, want);
    let second = attrs(&records[1].record);
    assert_eq!(second["error.type"], "timeout");
    assert_eq!(second["gen_ai.usage.cache_read.input_tokens"], "4000");
    let summary = attrs(&records[3].record);
    assert_eq!(summary["llm.run_id"], "logs-run");
    assert_eq!(summary["llm.call_count"], "2");
    assert_eq!(summary["gen_ai.usage.input_tokens"], "6200");
    let budget = attrs(&records[2].record);
    assert_eq!(budget["llm.budget.name"], "run-tokens");

    // The calls' records carry their spans' trace and span ids.
    let finished = spans.get_finished_spans().unwrap();
    for (i, name) in [(0, "llm_call"), (1, "chat")] {
        let span = finished.iter().find(|s| s.name == name).unwrap();
        let tc = records[i].record.trace_context().expect("trace context");
        assert_eq!(tc.trace_id, span.span_context.trace_id());
        assert_eq!(tc.span_id, span.span_context.span_id());
    }
    let run = finished.iter().find(|s| s.name == "run").unwrap();
    assert_eq!(
        records[0].record.trace_context().unwrap().trace_id,
        run.span_context.trace_id(),
        "one trace for the run"
    );
}

type Got = Arc<Mutex<Vec<ExportLogsServiceRequest>>>;

#[derive(Clone, Default)]
struct Grpc(Got);

#[tonic::async_trait]
impl LogsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

/// A gRPC `LogsService` receiver on `listener`.
fn start_grpc(rt: &tokio::runtime::Runtime, listener: std::net::TcpListener) -> Got {
    listener.set_nonblocking(true).unwrap();
    let got = Got::default();
    let service = LogsServiceServer::new(Grpc(got.clone()));
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    got
}

/// An HTTP/1.1 receiver of `POST /v1/logs` with protobuf bodies.
fn start_http() -> (u16, Got) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Got::default();
    let out = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let got = got.clone();
            std::thread::spawn(move || {
                common::serve_http(stream, |req| {
                    if req.path == "/v1/logs" {
                        got.lock()
                            .unwrap()
                            .push(ExportLogsServiceRequest::decode(req.body.as_slice()).unwrap());
                    }
                })
            });
        }
    });
    (port, out)
}

/// (event name, body) of every record received.
fn received(got: &Got) -> Vec<(String, String)> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    got.lock()
        .unwrap()
        .iter()
        .flat_map(|req| req.resource_logs.iter())
        .flat_map(|rl| rl.scope_logs.iter())
        .flat_map(|sl| sl.log_records.iter())
        .map(|r| {
            let body = match r.body.as_ref().and_then(|b| b.value.as_ref()) {
                Some(V::StringValue(s)) => s.clone(),
                other => panic!("{other:?}"),
            };
            (r.event_name.clone(), body)
        })
        .collect()
}

fn run_over(config: OtlpConfig, got: &Got) {
    let otlp = config.timeout(Duration::from_secs(5)).init().unwrap();
    let buf = common::Buf::default();
    let (layer, guard) = UsageLayer::builder()
        .logger_provider(otlp.logger_provider())
        .jsonl_writer(buf.clone())
        .build()
        .unwrap();
    let d = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    dispatcher::with_default(&d, workload);
    drop(guard);
    otlp.force_flush().unwrap();
    let lines: Vec<String> = buf.text().lines().map(str::to_owned).collect();
    let got = received(got);
    assert_eq!(got.len(), 3, "two calls and a summary, each once");
    assert_eq!(
        got.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>(),
        lines
    );
    assert_eq!(got[0].0, "gen_ai.client.inference.operation.details");
    assert_eq!(got[2].0, "llm_usage.run_summary");
    drop(otlp);
}

#[test]
fn records_arrive_over_otlp_grpc_and_http() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = start_grpc(&rt, listener);
    run_over(
        OtlpConfig::new()
            .protocol(OtlpProtocol::Grpc)
            .endpoint(format!("http://127.0.0.1:{port}")),
        &got,
    );

    let (port, got) = start_http();
    run_over(
        OtlpConfig::new().endpoint(format!("http://127.0.0.1:{port}/v1/metrics")),
        &got,
    );
    rt.shutdown_background();
}

#[test]
fn an_outage_keeps_what_the_buffer_holds_and_counts_the_rest() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener); // nothing listens: the collector is down
    let otlp = OtlpConfig::new()
        .protocol(OtlpProtocol::Grpc)
        .endpoint(format!("http://127.0.0.1:{port}"))
        .timeout(Duration::from_secs(2))
        .logs_buffer(50)
        .init()
        .unwrap();
    let (layer, guard) = UsageLayer::builder().otlp(&otlp).build().unwrap();
    let handle = layer.handle();
    let d = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    dispatcher::with_default(&d, || {
        for r in 0..3 {
            let run = info_span!("run", run_id = r);
            let _r = run.enter();
            for _ in 0..30 {
                drop(info_span!(
                    "llm_call",
                    model = "gpt-4o",
                    tokens.input = 10u64,
                    tokens.output = 1u64
                ));
            }
        }
    });
    drop(guard); // every line handed to the pipeline: 90 calls and 3 summaries
    assert_eq!(otlp.log_delivery().made, 93);
    let logs = otlp.logger_provider().clone();
    assert!(logs.force_flush().is_err(), "the collector is down");

    // The collector comes up: what the buffer held arrives, once.
    let got = start_grpc(
        &rt,
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap(),
    );
    let mut tries = 0;
    while logs.force_flush().is_err() && tries < 40 {
        std::thread::sleep(Duration::from_millis(250));
        tries += 1;
    }
    let delivery = otlp.log_delivery();
    let received = received(&got);
    assert_eq!(delivery.delivered, received.len() as u64);
    assert!(
        delivery.dropped > 0 && delivery.delivered >= 50,
        "{delivery:?}"
    );
    assert_eq!(
        delivery.delivered + delivery.dropped,
        delivery.made,
        "{delivery:?}"
    );
    let stats = handle.stats();
    assert_eq!(
        (stats.log_records_delivered, stats.log_records_dropped),
        (delivery.delivered, delivery.dropped)
    );
    drop(otlp);
    rt.shutdown_background();
}

#[test]
fn records_carry_every_attribute_with_its_type() {
    let logs = InMemoryLogExporter::default();
    let provider = SdkLoggerProvider::builder()
        .with_simple_exporter(logs.clone())
        .build();
    let (layer, guard) = UsageLayer::builder()
        .logger_provider(&provider)
        .jsonl_writer(std::io::sink)
        .attributes(["tenant", "user.id", "seats", "beta"])
        .budget(Budget::per_run("per-tenant").tokens(100).each("tenant"))
        .build()
        .unwrap();
    let d = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    dispatcher::with_default(&d, || {
        let run = info_span!("run", run_id = "r-attr", tenant = "acme", seats = 12u64);
        let _r = run.enter();
        drop(info_span!(
            "llm_call",
            model = "gpt-4o",
            user.id = "u-7",
            beta = true,
            tokens.input = 150u64,
            tokens.output = 1u64
        ));
    });
    drop(guard);
    provider.force_flush().unwrap();
    let records = logs.get_emitted_logs().unwrap();
    let find = |event: &str| {
        records
            .iter()
            .find(|r| r.record.event_name() == Some(event))
            .map(|r| attrs(&r.record))
            .unwrap_or_else(|| panic!("no {event}"))
    };
    let call = find(tracing_llm_usage::otel::logs::CALL_EVENT);
    for (k, v) in [
        ("tenant", "acme"),
        ("user.id", "u-7"),
        ("seats", "12"),
        ("beta", "true"),
    ] {
        assert_eq!(call.get(k).map(String::as_str), Some(v), "{k}: {call:?}");
    }
    let typed = records
        .iter()
        .find(|r| r.record.event_name() == Some(tracing_llm_usage::otel::logs::CALL_EVENT))
        .unwrap();
    let seats = typed
        .record
        .attributes_iter()
        .find(|(k, _)| k.as_str() == "seats")
        .map(|(_, v)| v.clone());
    assert_eq!(seats, Some(AnyValue::Int(12)));
    let summary = find(tracing_llm_usage::otel::logs::RUN_SUMMARY_EVENT);
    assert_eq!(summary.get("tenant").map(String::as_str), Some("acme"));
    assert_eq!(summary.get("seats").map(String::as_str), Some("12"));
    assert!(!summary.contains_key("user.id"), "the run span has no user");
    let exceeded = find(tracing_llm_usage::otel::logs::BUDGET_EXCEEDED_EVENT);
    assert_eq!(
        (
            exceeded.get("llm.budget.attribute").map(String::as_str),
            exceeded
                .get("llm.budget.attribute_value")
                .map(String::as_str)
        ),
        (Some("tenant"), Some("acme"))
    );
}
