//! Real OTLP round trips (feature `otlp`): `otlp::init()` pointed through the environment at a
//! gRPC receiver (tonic, `opentelemetry-proto`'s generated `MetricsService`) and at an
//! HTTP/protobuf receiver (`POST /v1/metrics`), both on 127.0.0.1; and a collector outage.
//! One test function: the environment is process-wide.
#![cfg(feature = "otlp")]

mod common;

use std::net::TcpListener as StdListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;
use tracing::{dispatcher, info_span};
use tracing_llm_usage::{otlp, UsageLayer};

type Received = Arc<Mutex<Vec<ExportMetricsServiceRequest>>>;

#[derive(Clone, Default)]
struct Grpc(Received);

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

fn start_grpc(rt: &tokio::runtime::Runtime, port: u16) -> Received {
    let received = Received::default();
    let service = Grpc(received.clone());
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(service))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    received
}

/// A minimal HTTP/1.1 receiver: reads each request's body (Content-Length) and decodes it.
fn start_http() -> (u16, Received, Arc<Mutex<Vec<String>>>) {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Received::default();
    let paths = Arc::new(Mutex::new(Vec::new()));
    let (r, p) = (received.clone(), paths.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (r, p) = (r.clone(), p.clone());
            std::thread::spawn(move || {
                common::serve_http(stream, |req| {
                    p.lock().unwrap().push(req.path);
                    r.lock()
                        .unwrap()
                        .push(ExportMetricsServiceRequest::decode(req.body.as_slice()).unwrap());
                })
            });
        }
    });
    (port, received, paths)
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn set_env(protocol: &str, endpoint: &str) {
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", protocol);
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
    std::env::set_var("OTEL_EXPORTER_OTLP_TIMEOUT", "2000");
    std::env::set_var("OTEL_SERVICE_NAME", "llm-usage-test");
    std::env::set_var(
        "OTEL_RESOURCE_ATTRIBUTES",
        "deployment.environment=ci,team=ml",
    );
    // Long: exports happen when the test flushes.
    std::env::set_var("OTEL_METRIC_EXPORT_INTERVAL", "600000");
}

/// The workload: 3 calls, input 1000 + 2000 + 3000, output 100 + 200 + 300, all priced.
fn workload(metrics: &otlp::OtlpMetrics) {
    let (layer, guard) = UsageLayer::builder()
        .meter(metrics.meter())
        .jsonl_writer(std::io::sink)
        .build()
        .unwrap();
    use tracing_subscriber::prelude::*;
    let d = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    dispatcher::with_default(&d, || {
        let run = info_span!("run", run_id = "otlp-run");
        let _r = run.enter();
        for (i, model) in [(1u64, "gpt-4o"), (2, "gpt-4o"), (3, "claude-sonnet-4-5")] {
            drop(info_span!(
                "llm_call",
                step = "s",
                model,
                provider = "openai",
                tokens.input = 1000 * i,
                tokens.output = 100 * i
            ));
        }
    });
    drop(guard);
}

fn string_attr(
    kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<String> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

/// Checks the last export: resource, names, units, temporality, attributes and sums.
fn check(received: &Received) {
    let requests = received.lock().unwrap();
    let req = requests.last().expect("an export arrived");
    let rm = &req.resource_metrics[0];
    let resource = rm.resource.as_ref().unwrap();
    assert_eq!(
        string_attr(&resource.attributes, "service.name").as_deref(),
        Some("llm-usage-test")
    );
    assert_eq!(
        string_attr(&resource.attributes, "deployment.environment").as_deref(),
        Some("ci")
    );
    let metrics: Vec<_> = rm
        .scope_metrics
        .iter()
        .flat_map(|s| s.metrics.iter())
        .collect();
    let find = |name: &str| {
        *metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };

    let tokens = find("gen_ai.client.token.usage");
    assert_eq!(tokens.unit, "{token}");
    let Some(Data::Histogram(h)) = &tokens.data else {
        panic!("histogram")
    };
    assert_eq!(h.aggregation_temporality, 2, "cumulative");
    let mut sums = std::collections::BTreeMap::new();
    for p in &h.data_points {
        assert_eq!(
            string_attr(&p.attributes, "gen_ai.provider.name").as_deref(),
            Some("openai")
        );
        assert_eq!(string_attr(&p.attributes, "llm.step").as_deref(), Some("s"));
        assert!(string_attr(&p.attributes, "run_id").is_none());
        assert_eq!(p.explicit_bounds.len(), 14);
        let kind = string_attr(&p.attributes, "gen_ai.token.type").unwrap();
        let e = sums.entry(kind).or_insert((0u64, 0.0f64));
        e.0 += p.count;
        e.1 += p.sum.unwrap();
    }
    assert_eq!(sums["input"], (3, 6000.0));
    assert_eq!(sums["output"], (3, 600.0));

    let duration = find("gen_ai.client.operation.duration");
    assert_eq!(duration.unit, "s");
    let cost = find("gen_ai.usage.cost");
    assert_eq!(cost.unit, "USD");
    let Some(Data::Histogram(c)) = &cost.data else {
        panic!("histogram")
    };
    let total: f64 = c.data_points.iter().map(|p| p.sum.unwrap()).sum();
    // gpt-4o: 3000 × 2.5e-6 + 300 × 1e-5; claude-sonnet-4-5: 3000 × 3e-6 + 300 × 1.5e-5
    let want = 3000.0 * 2.5e-6 + 300.0 * 1e-5 + 3000.0 * 3e-6 + 300.0 * 1.5e-5;
    assert!((total - want).abs() < 1e-9, "{total} vs {want}");
}

#[test]
fn otlp_round_trips_and_an_outage() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // An unsupported protocol is a clear error, not a silent default.
    std::env::set_var("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "carrier-pigeon");
    let err = otlp::init().unwrap_err();
    std::env::remove_var("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL");
    assert!(err.to_string().contains("carrier-pigeon"), "{err}");

    // gRPC, with a schemeless endpoint: plain text only when OTEL_EXPORTER_OTLP_INSECURE says
    // so (TLS otherwise, as the specification says).
    let port = free_port();
    let grpc = start_grpc(&rt, port);
    std::thread::sleep(Duration::from_millis(200));
    set_env("grpc", &format!("127.0.0.1:{port}"));
    std::env::set_var("OTEL_EXPORTER_OTLP_INSECURE", "true");
    let metrics = otlp::init().unwrap();
    std::env::remove_var("OTEL_EXPORTER_OTLP_INSECURE");
    workload(&metrics);
    metrics.force_flush().unwrap();
    check(&grpc);
    metrics.shutdown().unwrap();

    // HTTP/protobuf: the exporter posts to /v1/metrics under the endpoint.
    let (port, http, paths) = start_http();
    set_env("http/protobuf", &format!("http://127.0.0.1:{port}"));
    let metrics = otlp::init().unwrap();
    workload(&metrics);
    metrics.force_flush().unwrap();
    check(&http);
    assert!(paths.lock().unwrap().iter().all(|p| p == "/v1/metrics"));
    drop(metrics);

    // Outage: nothing listens while the workload runs; the application is not held up and
    // nothing panics. When the receiver comes up, the cumulative totals arrive exact.
    let port = free_port();
    set_env("grpc", &format!("http://127.0.0.1:{port}"));
    let metrics = otlp::init().unwrap();
    let started = Instant::now();
    workload(&metrics);
    let workload_time = started.elapsed();
    let _ = metrics.force_flush(); // fails: no collector
    let late = start_grpc(&rt, port);
    std::thread::sleep(Duration::from_millis(200));
    let mut tries = 0;
    while late.lock().unwrap().is_empty() && tries < 20 {
        let _ = metrics.force_flush();
        std::thread::sleep(Duration::from_millis(100));
        tries += 1;
    }
    check(&late);
    drop(metrics);
    eprintln!("workload during the outage took {workload_time:?}");
    rt.shutdown_background();
}
