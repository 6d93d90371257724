//! `llm-usage collect` as a service sees it: OTLP over HTTP (protobuf, JSON, gzip) and gRPC,
//! partial success, malformed and oversized requests, a bearer token, TLS with client
//! certificates, SIGTERM mid-stream, a Rust service's spans through tracing-opentelemetry,
//! and (`python`) the Python OpenAI instrumentations.

#[path = "collect/support.rs"]
mod collect_support;
#[path = "collect/python.rs"]
mod python;
#[path = "../../tests/workload/mod.rs"]
mod workload;

use std::time::Duration;

use collect_support::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use serde_json::{json, Value};

fn usage(lines: &[Value], run_id: &str) -> (u64, u64, u64) {
    let s = summary(lines, run_id);
    let u = &s["usage"];
    (
        u["input_tokens"].as_u64().unwrap(),
        u["output_tokens"].as_u64().unwrap(),
        u["call_count"].as_u64().unwrap(),
    )
}

#[test]
fn http_protobuf_json_and_gzip_requests_are_counted_exactly() {
    let c = Collector::start(&[]);
    let req = request(vec![
        span(1, 1, None, "run", &[("run_id", s("proto"))]),
        chat(1, 2, Some(1), 1000, 100),
        chat(1, 3, Some(1), 2000, 200),
    ]);
    let (status, body) = post(c.http, "application/x-protobuf", &[], &req.encode_to_vec());
    assert_eq!(status, 200);
    let answer =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(
            &body[..],
        )
        .unwrap();
    assert_eq!(answer.partial_success, None);

    // OTLP/JSON as a JavaScript exporter writes it: hex ids, integers as strings.
    let json_body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]},
        "scopeSpans": [{"scope": {"name": "ai"}, "spans": [
            {"traceId": "0202020202020202020202020202020f", "spanId": "0202020202020201",
             "name": "run", "kind": 1, "startTimeUnixNano": "1765000000000000000",
             "endTimeUnixNano": "1765000001000000000",
             "attributes": [{"key": "run_id", "value": {"stringValue": "json"}}]},
            {"traceId": "0202020202020202020202020202020f", "spanId": "0202020202020202",
             "parentSpanId": "0202020202020201", "name": "chat gpt-4o", "kind": 3,
             "startTimeUnixNano": "1765000000100000000", "endTimeUnixNano": "1765000000900000000",
             "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "300"}},
                {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 30}}]}]}]}]});
    let (status, body) = post(
        c.http,
        "application/json",
        &[],
        json_body.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), json!({}));

    let req = request(vec![
        span(3, 1, None, "run", &[("run_id", s("gzip"))]),
        chat(3, 2, Some(1), 5, 6),
    ]);
    let (status, _) = post(
        c.http,
        "application/x-protobuf",
        &[("Content-Encoding", "gzip")],
        &gzip(&req.encode_to_vec()),
    );
    assert_eq!(status, 200);

    let (stderr, lines) = c.stop();
    assert_eq!(usage(&lines, "proto"), (3000, 300, 2));
    assert_eq!(usage(&lines, "json"), (300, 30, 1));
    assert_eq!(usage(&lines, "gzip"), (5, 6, 1));
    let json_call = calls(&lines)
        .into_iter()
        .find(|l| l["run_id"] == "json")
        .unwrap();
    assert_eq!(json_call["timestamp"], "2025-12-06T05:46:40.900Z");
    assert_eq!(json_call["latency_ms"], 800);
    assert_eq!(lines.len(), 7);
    assert!(
        stderr.contains("3 requests, 7 spans (0 rejected), 4 calls written"),
        "{stderr}"
    );
}

#[test]
fn grpc_requests_are_counted_and_partial_success_names_the_rejected_spans() {
    let c = Collector::start(&[]);
    let mut bad = chat(4, 3, Some(1), 1, 1);
    bad.trace_id = vec![1, 2, 3];
    let req = request(vec![
        span(4, 1, None, "run", &[("run_id", s("grpc"))]),
        chat(4, 2, Some(1), 70, 7),
        bad,
    ]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let answer = rt.block_on(async {
        let mut client = TraceServiceClient::connect(format!("http://{}", c.grpc))
            .await
            .unwrap()
            .send_compressed(tonic::codec::CompressionEncoding::Gzip);
        client.export(req).await.unwrap().into_inner()
    });
    let partial = answer.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("trace_id"),
        "{}",
        partial.error_message
    );
    let (_, lines) = c.stop();
    assert_eq!(usage(&lines, "grpc"), (70, 7, 1));
    assert_eq!(lines.len(), 2);
}

#[test]
fn malformed_and_oversized_requests_get_400_and_lose_nothing() {
    let c = Collector::start(&["--max-request-bytes", "4000"]);
    let first = request(vec![chat(5, 1, None, 11, 1)]);
    assert_eq!(
        post(
            c.http,
            "application/x-protobuf",
            &[],
            &first.encode_to_vec()
        )
        .0,
        200
    );

    let (status, body) = post(
        c.http,
        "application/x-protobuf",
        &[],
        b"\xff\xff\xff not protobuf",
    );
    assert_eq!(status, 400);
    let why = Status::decode(&body[..]).unwrap();
    assert_eq!(why.code, 3, "INVALID_ARGUMENT");
    assert!(
        why.message.contains("not an OTLP trace request"),
        "{}",
        why.message
    );

    let (status, body) = post(c.http, "application/json", &[], b"{\"resourceSpans\": 7}");
    assert_eq!(status, 400);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["code"], 3);

    let big = request(
        (0..60u8)
            .map(|i| span(6, i + 1, None, "x", &[("pad", s(&"p".repeat(100)))]))
            .collect(),
    );
    assert!(big.encoded_len() > 4000);
    assert_eq!(
        post(c.http, "application/x-protobuf", &[], &big.encode_to_vec()).0,
        400
    );
    // Small on the wire, too big once inflated.
    assert_eq!(
        post(
            c.http,
            "application/x-protobuf",
            &[("Content-Encoding", "gzip")],
            &gzip(&big.encode_to_vec())
        )
        .0,
        400
    );
    assert_eq!(post(c.http, "text/plain", &[], b"hello").0, 415);
    assert_eq!(
        post(
            c.http,
            "application/x-protobuf",
            &[("Content-Encoding", "br")],
            b"x"
        )
        .0,
        400
    );

    let last = request(vec![chat(7, 1, None, 22, 2)]);
    assert_eq!(
        post(c.http, "application/x-protobuf", &[], &last.encode_to_vec()).0,
        200
    );
    let (stderr, lines) = c.stop();
    let inputs: Vec<u64> = calls(&lines)
        .iter()
        .map(|l| l["tokens"]["input"].as_u64().unwrap())
        .collect();
    assert_eq!(inputs, [11, 22]);
    assert!(stderr.contains("6 malformed"), "{stderr}");
}

#[test]
fn a_bearer_token_is_required_when_one_is_set() {
    let c = Collector::start_with_env(
        &["--bearer-token-env", "COLLECT_TOKEN"],
        &[("COLLECT_TOKEN", "s3cret")],
    );
    let req = request(vec![chat(8, 1, None, 1, 1)]).encode_to_vec();
    assert_eq!(post(c.http, "application/x-protobuf", &[], &req).0, 401);
    assert_eq!(
        post(
            c.http,
            "application/x-protobuf",
            &[("Authorization", "Bearer s3cre")],
            &req
        )
        .0,
        401
    );
    assert_eq!(
        post(
            c.http,
            "application/x-protobuf",
            &[("Authorization", "Bearer s3cret")],
            &req
        )
        .0,
        200
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let code = rt.block_on(async {
        let mut client = TraceServiceClient::connect(format!("http://{}", c.grpc))
            .await
            .unwrap();
        client
            .export(request(vec![chat(9, 1, None, 1, 1)]))
            .await
            .unwrap_err()
            .code()
    });
    assert_eq!(code, tonic::Code::Unauthenticated);
    let (stderr, lines) = c.stop();
    assert_eq!(calls(&lines).len(), 1);
    assert!(stderr.contains("3 unauthorized"), "{stderr}");
}

#[test]
fn sigterm_mid_stream_writes_every_acknowledged_request() {
    // Traces that never get their root: only the shutdown replays them.
    let c = Collector::start(&["--settle-ms", "60000", "--idle-timeout-ms", "60000"]);
    let http = c.http;
    let sender = std::thread::spawn(move || {
        let mut acknowledged = Vec::new();
        for i in 0..100_000u32 {
            let req = request(vec![chat_in(i, 1000 + u64::from(i))]).encode_to_vec();
            match try_post(http, "application/x-protobuf", &[], &req) {
                Some((200, _)) => acknowledged.push(1000 + u64::from(i)),
                Some(_) => {}
                None => break,
            }
        }
        acknowledged
    });
    std::thread::sleep(Duration::from_millis(700));
    let (stderr, lines) = c.stop();
    let acknowledged = sender.join().unwrap();
    assert!(acknowledged.len() > 10, "{stderr}");
    let mut written: Vec<u64> = calls(&lines)
        .iter()
        .map(|l| l["tokens"]["input"].as_u64().unwrap())
        .collect();
    written.sort_unstable();
    assert_eq!(written, acknowledged);
    assert!(summaries(&lines)
        .iter()
        .all(|s| s["status"] == "incomplete"));
}

#[test]
fn tls_with_client_certificates_admits_only_certified_clients() {
    let pki = Pki::new();
    let c = Collector::start(&[
        "--tls-cert",
        pki.path("server.crt"),
        "--tls-key",
        pki.path("server.key"),
        "--tls-client-ca",
        pki.path("ca.crt"),
    ]);
    let req = request(vec![chat(10, 1, None, 31, 3)]).encode_to_vec();
    assert_eq!(pki.post_tls(c.http, &req, true).unwrap().0, 200);
    assert!(
        pki.post_tls(c.http, &req, false).is_none(),
        "no client certificate: refused"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ok = rt.block_on(async {
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(Pki::read(&pki.ca)))
            .identity(tonic::transport::Identity::from_pem(
                Pki::read(&pki.client_cert),
                Pki::read(&pki.client_key),
            ))
            .domain_name("localhost");
        let channel = tonic::transport::Channel::from_shared(format!("https://{}", c.grpc))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        TraceServiceClient::new(channel)
            .export(request(vec![chat(11, 1, None, 41, 4)]))
            .await
            .is_ok()
    });
    assert!(ok);
    let (_, lines) = c.stop();
    let mut inputs: Vec<u64> = calls(&lines)
        .iter()
        .map(|l| l["tokens"]["input"].as_u64().unwrap())
        .collect();
    inputs.sort_unstable();
    assert_eq!(inputs, [31, 41]);
}

#[test]
fn a_rust_service_through_tracing_opentelemetry_gives_the_lines_the_layer_writes() {
    use opentelemetry_otlp::WithExportConfig;

    let c = Collector::start(&["--attributes", "tenant", "--settle-ms", "200"]);
    let in_process = Buf::default();
    let (layer, guard) = tracing_llm_usage::UsageLayer::builder()
        .jsonl_writer(in_process.clone())
        .attributes(["tenant"])
        .build()
        .unwrap();
    // reqwest is built with rustls and no crypto provider of its own in this feature graph.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("http://{}/v1/traces", c.http))
        .build()
        .unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .build();
    workload::run_counted_and_exported(layer, &provider);
    drop(guard);
    provider.shutdown().unwrap();
    let (_, lines) = c.stop();
    let sorted = |lines: &[Value]| {
        let mut v: Vec<Value> = lines.iter().map(stable).collect();
        v.sort_by_key(|l| l.to_string());
        v
    };
    let expected = sorted(&parse_lines(&in_process.text()));
    assert_eq!(expected.len(), 6);
    assert_eq!(sorted(&lines), expected);
}

#[test]
fn forward_passes_every_request_on_to_another_receiver() {
    // Downstream: another collector standing in for an OpenTelemetry Collector.
    let downstream = Collector::start(&[]);
    let front = Collector::start(&["--forward", &format!("http://{}", downstream.grpc)]);
    let req = request(vec![
        span(12, 1, None, "run", &[("run_id", s("forwarded"))]),
        chat(12, 2, Some(1), 123, 45),
    ]);
    assert_eq!(
        post(
            front.http,
            "application/x-protobuf",
            &[],
            &req.encode_to_vec()
        )
        .0,
        200
    );
    let (stderr, front_lines) = front.stop();
    assert!(
        stderr.contains("forwarded 1 requests, dropped 0"),
        "{stderr}"
    );
    let (_, down_lines) = downstream.stop();
    assert_eq!(usage(&front_lines, "forwarded"), (123, 45, 1));
    let stable_all = |l: &[Value]| l.iter().map(stable).collect::<Vec<_>>();
    assert_eq!(stable_all(&down_lines), stable_all(&front_lines));
}

#[test]
fn otlp_metrics_carry_the_usage_and_the_receivers_own_counts() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
    let (metrics_addr, got) = capture_server();
    let endpoint = format!("http://{metrics_addr}");
    let c = Collector::start_with_env(
        &["--otlp-metrics"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ],
    );
    let mut bad = chat(13, 3, None, 1, 1);
    bad.span_id = vec![0; 8];
    let req = request(vec![chat(13, 2, None, 500, 50), bad]);
    assert_eq!(
        post(c.http, "application/x-protobuf", &[], &req.encode_to_vec()).0,
        200
    );
    let (_, lines) = c.stop();
    assert_eq!(calls(&lines).len(), 1);
    // The last export, at shutdown, holds the totals.
    let last = got
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, _)| path == "/v1/metrics")
        .map(|(_, b)| ExportMetricsServiceRequest::decode(&b[..]).unwrap())
        .next_back()
        .expect("a metrics export");
    let mut sums = std::collections::BTreeMap::new();
    for m in last
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        if let Some(metric::Data::Sum(sum)) = &m.data {
            for p in &sum.data_points {
                let outcome = p
                    .attributes
                    .iter()
                    .find(|kv| kv.key == "outcome")
                    .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                        any_value::Value::StringValue(s) => Some(s.clone()),
                        _ => None,
                    });
                let value = match p.value {
                    Some(number_data_point::Value::AsInt(i)) => i as f64,
                    Some(number_data_point::Value::AsDouble(d)) => d,
                    None => 0.0,
                };
                if let Some(o) = outcome {
                    sums.insert(format!("{} {o}", m.name), value);
                }
            }
        }
    }
    let get = |k: &str| sums.get(k).copied();
    assert_eq!(get("llm_usage.collect.spans taken"), Some(1.0), "{sums:#?}");
    assert_eq!(
        get("llm_usage.collect.spans rejected"),
        Some(1.0),
        "{sums:#?}"
    );
    assert_eq!(
        get("llm_usage.collect.requests taken"),
        Some(1.0),
        "{sums:#?}"
    );
    assert_eq!(
        get("llm_usage.collect.traces replayed"),
        Some(1.0),
        "{sums:#?}"
    );
    let names: Vec<&str> = last
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| m.name.as_str())
        .collect();
    assert!(names.contains(&"gen_ai.client.token.usage"), "{names:?}");
}

#[test]
fn malformed_and_oversized_grpc_requests_are_invalid_arguments_and_lose_nothing() {
    let c = Collector::start(&["--max-request-bytes", "4000"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let first = request(vec![chat(14, 1, None, 33, 3)]).encode_to_vec();
    let big = request(
        (0..60u8)
            .map(|i| span(15, i + 1, None, "x", &[("pad", s(&"p".repeat(100)))]))
            .collect(),
    )
    .encode_to_vec();
    let last = request(vec![chat(16, 1, None, 44, 4)]).encode_to_vec();
    let codes = rt.block_on(async {
        vec![
            export_raw(c.grpc, first).await,
            export_raw(c.grpc, b"\xff\xff\xff not protobuf".to_vec()).await,
            export_raw(c.grpc, big).await,
            export_raw(c.grpc, last).await,
        ]
    });
    use tonic::Code::{InvalidArgument, Ok};
    assert_eq!(codes, [Ok, InvalidArgument, InvalidArgument, Ok]);
    let (stderr, lines) = c.stop();
    let inputs: Vec<u64> = calls(&lines)
        .iter()
        .map(|l| l["tokens"]["input"].as_u64().unwrap())
        .collect();
    assert_eq!(inputs, [33, 44]);
    assert!(stderr.contains("2 malformed"), "{stderr}");
}

#[test]
fn the_reports_and_the_store_read_what_collect_writes() {
    let store = tempfile::tempdir().unwrap();
    let db = store.path().join("usage.sqlite");
    let c = Collector::start(&["--db", db.to_str().unwrap(), "--attributes", "tenant"]);
    let req = request(vec![
        span(
            17,
            1,
            None,
            "run",
            &[("run_id", s("stored")), ("tenant", s("acme"))],
        ),
        chat(17, 2, Some(1), 1000, 100),
        chat(17, 3, Some(1), 2000, 200),
    ]);
    assert_eq!(
        post(c.http, "application/x-protobuf", &[], &req.encode_to_vec()).0,
        200
    );
    let (_, lines, logs) = c.stop_keeping_logs();
    let dir = logs.path();
    assert_eq!(lines.len(), 3);
    let from_files = llm_usage_json(&["by", "tenant", dir.to_str().unwrap()]);
    let from_store = llm_usage_json(&["by", "tenant", "--db", db.to_str().unwrap()]);
    assert_eq!(from_files, from_store);
    assert_eq!(from_files[0]["tenant"], "acme", "{from_files:#}");
    assert_eq!(from_files[0]["input"], 3000, "{from_files:#}");
    // gpt-4o: 2.5e-6 a token in, 1e-5 out.
    let cost = from_files[0]["cost_usd"].as_f64().unwrap();
    assert!((cost - 0.0105).abs() < 1e-9, "{from_files:#}");
}
