//! OTLP over TLS, on 127.0.0.1 with certificates made here: HTTP/protobuf and gRPC receivers
//! that check what arrives (the sums, the `Authorization` header, gzip), a CA that does not
//! match, mutual TLS, the environment's variables and their precedence, and
//! `OTEL_SDK_DISABLED`. One test function: the environment is process-wide.
#![cfg(feature = "otlp")]

mod common;
mod pki;

use std::io::Read;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use pki::Pki;
use prost::Message;
use tracing::{dispatcher, info_span};
use tracing_llm_usage::otlp::{OtlpConfig, OtlpMetrics, OtlpProtocol};
use tracing_llm_usage::{UsageHandle, UsageLayer};
use tracing_subscriber::prelude::*;

/// What a receiver got: one export's headers (lower-case names) and decoded body.
#[derive(Debug, Clone)]
struct Got {
    headers: Vec<(String, String)>,
    request: ExportMetricsServiceRequest,
}

type Log = Arc<Mutex<Vec<Got>>>;

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The input and output token sums of `gen_ai.client.token.usage`.
    fn token_sums(&self) -> (f64, f64) {
        let mut sums = (0.0, 0.0);
        for rm in &self.request.resource_metrics {
            for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                let (true, Some(Data::Histogram(h))) =
                    (m.name == "gen_ai.client.token.usage", &m.data)
                else {
                    continue;
                };
                for p in &h.data_points {
                    let input = p.attributes.iter().any(|kv| {
                        kv.key == "gen_ai.token.type"
                            && format!("{:?}", kv.value).contains("\"input\"")
                    });
                    if input {
                        sums.0 += p.sum.unwrap_or(0.0);
                    } else {
                        sums.1 += p.sum.unwrap_or(0.0);
                    }
                }
            }
        }
        sums
    }
}

fn rustls_server_config(pki: &Pki, client_auth: bool) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.server_cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if client_auth {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(builder.with_single_cert(certs, key).unwrap())
}

/// An HTTPS receiver of `POST /v1/metrics` (HTTP/1.1 over rustls), gzip bodies decoded.
fn start_https(pki: &Pki, client_auth: bool) -> (u16, Log) {
    let config = rustls_server_config(pki, client_auth);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Log::default();
    let out = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (config, log) = (config.clone(), log.clone());
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let tls = rustls::StreamOwned::new(conn, stream);
                common::serve_http(tls, |req| {
                    let gzip = req
                        .headers
                        .iter()
                        .any(|(k, v)| k == "content-encoding" && v == "gzip");
                    let mut body = req.body;
                    if gzip {
                        let mut plain = Vec::new();
                        flate2::read::GzDecoder::new(body.as_slice())
                            .read_to_end(&mut plain)
                            .unwrap();
                        body = plain;
                    }
                    let request = ExportMetricsServiceRequest::decode(body.as_slice()).unwrap();
                    log.lock().unwrap().push(Got {
                        headers: req.headers,
                        request,
                    });
                });
            });
        }
    });
    (port, out)
}

#[derive(Clone, Default)]
struct Grpc(Log);

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let headers = request
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        self.0.lock().unwrap().push(Got {
            headers,
            request: request.into_inner(),
        });
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// A gRPC receiver over TLS that requires a client certificate signed by the test CA.
fn start_grpc_mtls(rt: &tokio::runtime::Runtime, pki: &Pki) -> (u16, Log) {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let log = Log::default();
    let service = MetricsServiceServer::new(Grpc(log.clone()))
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(
            Pki::read(&pki.server_cert),
            Pki::read(&pki.server_key),
        ))
        .client_ca_root(Certificate::from_pem(Pki::read(&pki.ca)));
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        tonic::transport::Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (port, log)
}

/// Three calls (input 1000 + 2000 + 3000, output 100 + 200 + 300) recorded into `metrics`.
fn workload(metrics: &OtlpMetrics) -> UsageHandle {
    let (layer, guard) = UsageLayer::builder()
        .meter(metrics.meter())
        .build()
        .unwrap();
    let handle = layer.handle();
    let d = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    dispatcher::with_default(&d, || {
        let run = info_span!("run", run_id = "tls-run");
        let _r = run.enter();
        for i in 1..=3u64 {
            drop(info_span!(
                "llm_call",
                model = "gpt-4o",
                provider = "openai",
                tokens.input = 1000 * i,
                tokens.output = 100 * i
            ));
        }
    });
    drop(guard);
    handle
}

const SECRET: &str = "Basic dXNlcjpzM2NyM3Q=";

fn clear_env() {
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") {
            std::env::remove_var(k);
        }
    }
}

#[test]
fn otlp_over_tls() {
    clear_env();
    // The test's own gRPC server (tonic's ServerTlsConfig) uses the process default crypto
    // provider; in an application graph that also has aws-lc-rs (rig, reqwest's defaults)
    // there is no single default, so the test picks ring, as an application would. The
    // library's exporters pick their provider explicitly and need none.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = Pki::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // HTTPS, verified against the test CA, with an Authorization header and gzip.
    let (port, got) = start_https(&pki, false);
    let metrics = OtlpConfig::new()
        .protocol(OtlpProtocol::HttpProtobuf)
        .endpoint(format!("https://127.0.0.1:{port}/v1/metrics"))
        .ca_certificate(&pki.ca)
        .header("Authorization", SECRET)
        .gzip(true)
        .timeout(Duration::from_secs(5))
        .init()
        .unwrap();
    workload(&metrics);
    metrics.force_flush().unwrap();
    {
        let got = got.lock().unwrap();
        let last = got.last().expect("an export over HTTPS");
        assert_eq!(last.token_sums(), (6000.0, 600.0));
        assert_eq!(last.header("authorization"), Some(SECRET));
        assert_eq!(last.header("content-encoding"), Some("gzip"));
    }
    drop(metrics);

    // A collector whose certificate another CA signed: the export fails, nothing panics,
    // and the application's calls are counted all the same.
    let (port, got) = start_https(&pki, false);
    let metrics = OtlpConfig::new()
        .endpoint(format!("https://127.0.0.1:{port}/v1/metrics"))
        .ca_certificate(&pki.other_ca)
        .timeout(Duration::from_secs(5))
        .init()
        .unwrap();
    let handle = workload(&metrics);
    assert_eq!(handle.totals().input_tokens, 6000);
    let err = metrics.force_flush().unwrap_err();
    assert!(got.lock().unwrap().is_empty(), "nothing may arrive: {err}");
    drop(metrics);

    // Mutual TLS over HTTPS: refused without a client certificate, accepted with one.
    let (port, got) = start_https(&pki, true);
    let endpoint = format!("https://127.0.0.1:{port}/v1/metrics");
    let without = OtlpConfig::new()
        .endpoint(&endpoint)
        .ca_certificate(&pki.ca)
        .timeout(Duration::from_secs(5))
        .init()
        .unwrap();
    workload(&without);
    assert!(without.force_flush().is_err());
    assert!(got.lock().unwrap().is_empty());
    drop(without);
    let with = OtlpConfig::new()
        .endpoint(&endpoint)
        .ca_certificate(&pki.ca)
        .client_identity(&pki.client_cert, &pki.client_key)
        .timeout(Duration::from_secs(5))
        .init()
        .unwrap();
    workload(&with);
    with.force_flush().unwrap();
    assert_eq!(
        got.lock().unwrap().last().unwrap().token_sums(),
        (6000.0, 600.0)
    );
    drop(with);

    // gRPC over TLS with mutual TLS, configured from the environment: the metrics variables
    // win over the general ones (the general endpoint points nowhere).
    let (port, got) = start_grpc_mtls(&rt, &pki);
    std::thread::sleep(Duration::from_millis(200));
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
    std::env::set_var("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc");
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:9");
    std::env::set_var(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        format!("127.0.0.1:{port}"),
    );
    std::env::set_var("OTEL_EXPORTER_OTLP_CERTIFICATE", &pki.ca);
    std::env::set_var("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &pki.client_cert);
    std::env::set_var("OTEL_EXPORTER_OTLP_CLIENT_KEY", &pki.client_key);
    std::env::set_var(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "Authorization=Basic%20ignored",
    );
    std::env::set_var(
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        "Authorization=Basic%20dXNlcjpzM2NyM3Q%3D",
    );
    std::env::set_var("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip");
    std::env::set_var("OTEL_EXPORTER_OTLP_TIMEOUT", "5000");
    let metrics = tracing_llm_usage::otlp::init().unwrap();
    workload(&metrics);
    metrics.force_flush().unwrap();
    {
        let got = got.lock().unwrap();
        let last = got.last().expect("an export over gRPC with TLS");
        assert_eq!(last.token_sums(), (6000.0, 600.0));
        assert_eq!(last.header("authorization"), Some(SECRET));
        assert_eq!(last.header("grpc-encoding"), Some("gzip"));
    }
    metrics.shutdown().unwrap();

    // Without the client certificate, the gRPC receiver refuses the connection.
    std::env::remove_var("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE");
    std::env::remove_var("OTEL_EXPORTER_OTLP_CLIENT_KEY");
    let before = got.lock().unwrap().len();
    let metrics = tracing_llm_usage::otlp::init().unwrap();
    workload(&metrics);
    assert!(metrics.force_flush().is_err());
    assert_eq!(got.lock().unwrap().len(), before);
    drop(metrics);

    // OTEL_SDK_DISABLED: the same API, nothing sent.
    std::env::set_var("OTEL_SDK_DISABLED", "true");
    std::env::set_var("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &pki.client_cert);
    std::env::set_var("OTEL_EXPORTER_OTLP_CLIENT_KEY", &pki.client_key);
    let metrics = tracing_llm_usage::otlp::init().unwrap();
    let handle = workload(&metrics);
    metrics.force_flush().unwrap();
    assert_eq!(handle.totals().calls, 3);
    assert_eq!(got.lock().unwrap().len(), before);
    drop(metrics);
    std::env::remove_var("OTEL_SDK_DISABLED");

    // Bad settings are errors naming the variable, never showing a secret.
    std::env::set_var(
        "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
        "/nonexistent/ca.pem",
    );
    let err = tracing_llm_usage::otlp::init().unwrap_err().to_string();
    assert!(
        err.contains("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE: cannot read /nonexistent/ca.pem"),
        "{err}"
    );
    std::env::remove_var("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE");
    std::env::set_var("OTEL_EXPORTER_OTLP_CLIENT_KEY", &pki.ca);
    let err = tracing_llm_usage::otlp::init().unwrap_err().to_string();
    assert!(err.contains("OTEL_EXPORTER_OTLP_CLIENT_KEY"), "{err}");
    std::env::set_var("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "Authorization");
    let err = tracing_llm_usage::otlp::init().unwrap_err().to_string();
    assert!(err.contains("OTEL_EXPORTER_OTLP_METRICS_HEADERS"), "{err}");
    std::env::set_var("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli");
    std::env::set_var("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "authorization=s3cr3t");
    let err = tracing_llm_usage::otlp::init().unwrap_err().to_string();
    assert!(
        err.contains("OTEL_EXPORTER_OTLP_COMPRESSION=\"brotli\""),
        "{err}"
    );
    let config = OtlpConfig::from_env();
    assert!(config.is_err());
    std::env::remove_var("OTEL_EXPORTER_OTLP_COMPRESSION");
    let debug = format!("{:?}", OtlpConfig::from_env().unwrap());
    assert!(!debug.contains("s3cr3t"), "{debug}");
    assert!(debug.contains("authorization: <redacted>"), "{debug}");
    clear_env();
    rt.shutdown_background();
}
