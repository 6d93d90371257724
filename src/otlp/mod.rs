//! An OTLP metrics pipeline configured the standard way, from the environment (feature
//! `otlp`, on by default), or in code with [`OtlpConfig`].
//!
//! ```no_run
//! use tracing_llm_usage::{otlp, UsageLayer};
//! let metrics = otlp::init()?;                       // reads OTEL_EXPORTER_OTLP_* etc.
//! let (layer, guard) = UsageLayer::builder().meter(metrics.meter()).build()?;
//! // ... install the layer; at exit drop `guard`, then `metrics` (flushes and shuts down)
//! # Ok::<(), tracing_llm_usage::Error>(())
//! ```
//!
//! In code, for a hosted collector over TLS with an API key:
//!
//! ```no_run
//! use tracing_llm_usage::otlp::{OtlpConfig, OtlpProtocol};
//! let metrics = OtlpConfig::from_env()?               // what the environment says, then…
//!     .protocol(OtlpProtocol::HttpProtobuf)
//!     .endpoint("https://otlp-gateway.example.net/otlp/v1/metrics")
//!     .header("Authorization", "Basic aW5zdGFuY2U6dG9rZW4=")
//!     .init()?;
//! # Ok::<(), tracing_llm_usage::Error>(())
//! ```
//!
//! [`OtlpConfig`] lists every variable and its default. `https://` endpoints use TLS
//! (rustls with the web PKI roots, plus `OTEL_EXPORTER_OTLP_CERTIFICATE`; a client
//! certificate for mutual TLS). Temporality is cumulative, so a collector that was down
//! receives exact totals with the next export. Export runs on its own thread and a private
//! one-thread Tokio runtime, so it works whether or not the application has a runtime, never
//! blocks the application, and reports failures (a collector down, a certificate that fails
//! verification) through OpenTelemetry's own error handling, never to the caller.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_otlp::{
    Compression, MetricExporter, Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::Resource;

use crate::Error;

mod config;
pub use config::{OtlpConfig, OtlpProtocol};

/// A running OTLP metrics pipeline. Dropping it flushes and shuts the provider down.
pub struct OtlpMetrics {
    provider: SdkMeterProvider,
    /// Released with `shutdown_background` after the final export: dropping a runtime inside
    /// the application's async code would panic.
    runtime: Option<tokio::runtime::Runtime>,
    shut_down: bool,
}

impl std::fmt::Debug for OtlpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpMetrics").finish_non_exhaustive()
    }
}

/// Builds the pipeline from the standard `OTEL_*` variables (see [`OtlpConfig`]).
///
/// # Errors
///
/// [`Error::Otlp`] naming the variable when a setting is malformed or a certificate cannot be
/// read, or when the exporter cannot be built.
pub fn init() -> Result<OtlpMetrics, Error> {
    OtlpConfig::from_env()?.init()
}

/// The exporter of `config`, built on its own thread: outside any runtime of the caller's
/// (reqwest's blocking client must not be made inside one), inside ours for tonic (its
/// channel spawns there).
fn exporter(
    config: &OtlpConfig,
    runtime: &tokio::runtime::Runtime,
) -> Result<MetricExporter, Error> {
    let endpoint = config.endpoint_value();
    let timeout = config.timeout_value();
    let headers: HashMap<String, String> = config.headers_value().iter().cloned().collect();
    match config.protocol_value() {
        OtlpProtocol::Grpc => {
            use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
            use opentelemetry_otlp::tonic_types::transport::{
                Certificate, ClientTlsConfig, Identity,
            };
            let mut map = http::HeaderMap::new();
            for (k, v) in &headers {
                let key = http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                    Error::Otlp(format!("the header name {k:?} is not valid for gRPC"))
                })?;
                let value = http::HeaderValue::from_str(v).map_err(|_| {
                    Error::Otlp(format!("the value of header {k:?} is not valid for gRPC"))
                })?;
                map.insert(key, value);
            }
            let metadata = MetadataMap::from_headers(map);
            let mut b = MetricExporter::builder()
                .with_tonic()
                .with_protocol(Protocol::Grpc)
                .with_temporality(Temporality::Cumulative)
                .with_endpoint(endpoint.clone())
                .with_timeout(timeout)
                .with_metadata(metadata);
            if config.gzip_value() {
                b = b.with_compression(Compression::Gzip);
            }
            if endpoint.starts_with("https://") {
                let mut tls = ClientTlsConfig::new().with_webpki_roots();
                if let Some(ca) = config.ca_pem()? {
                    tls = tls.ca_certificate(Certificate::from_pem(ca));
                }
                if let Some((cert, key)) = config.identity_pem()? {
                    tls = tls.identity(Identity::from_pem(cert, key));
                }
                b = b.with_tls_config(tls);
            }
            let handle = runtime.handle().clone();
            std::thread::spawn(move || {
                let _in_runtime = handle.enter();
                b.build()
            })
            .join()
            .map_err(|_| Error::Otlp("building the exporter panicked".into()))?
            .map_err(|e| Error::Otlp(e.to_string()))
        }
        OtlpProtocol::HttpProtobuf => {
            // Always our own TLS settings (ring, the web PKI roots and the CA given), so that
            // the client never looks for a process-wide default.
            let tls_config = crate::tls::client_config(
                &config.ca_certificates()?,
                true,
                config.identity()?,
                crate::tls::Verify::Full,
            )
            .map_err(Error::Otlp)?;
            let client = std::thread::spawn(move || {
                reqwest::blocking::Client::builder()
                    .timeout(timeout)
                    .tls_backend_preconfigured(tls_config)
                    .build()
            })
            .join()
            .map_err(|_| Error::Otlp("building the HTTP client panicked".into()))?
            .map_err(|e| Error::Otlp(format!("cannot build the HTTP client: {e}")))?;
            let mut b = MetricExporter::builder()
                .with_http()
                .with_http_client(client)
                .with_protocol(Protocol::HttpBinary)
                .with_temporality(Temporality::Cumulative)
                .with_endpoint(endpoint)
                .with_timeout(timeout)
                .with_headers(headers);
            if config.gzip_value() {
                b = b.with_compression(Compression::Gzip);
            }
            b.build().map_err(|e| Error::Otlp(e.to_string()))
        }
    }
}

fn start(config: OtlpConfig) -> Result<OtlpMetrics, Error> {
    if config.is_disabled() {
        // The same API, no reader: measurements go nowhere.
        return Ok(OtlpMetrics {
            provider: SdkMeterProvider::builder().build(),
            runtime: None,
            shut_down: false,
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("llm-usage-otlp")
        .enable_all()
        .build()
        .map_err(|e| Error::Otlp(format!("cannot start the export runtime: {e}")))?;
    let exporter = exporter(&config, &runtime)?;
    let reader = PeriodicReader::builder(exporter)
        .with_interval(config.export_interval_value())
        .build();
    let provider = SdkMeterProvider::builder()
        .with_resource(Resource::builder().build())
        .with_reader(reader)
        .build();
    Ok(OtlpMetrics {
        provider,
        runtime: Some(runtime),
        shut_down: false,
    })
}

impl OtlpMetrics {
    /// The meter to hand to [`crate::UsageLayerBuilder::meter`].
    pub fn meter(&self) -> Meter {
        self.provider.meter("tracing-llm-usage")
    }

    /// The provider, to create other meters from.
    pub fn provider(&self) -> &SdkMeterProvider {
        &self.provider
    }

    /// Exports now.
    ///
    /// # Errors
    ///
    /// [`Error::Otlp`] when the export fails (the collector is down, say); the totals are
    /// kept and go with the next export.
    pub fn force_flush(&self) -> Result<(), Error> {
        self.provider
            .force_flush()
            .map_err(|e| Error::Otlp(e.to_string()))
    }

    /// Flushes and shuts down (what dropping does).
    ///
    /// # Errors
    ///
    /// [`Error::Otlp`] when the final export fails.
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.shut_down = true;
        let result = self
            .provider
            .shutdown_with_timeout(Duration::from_secs(5))
            .map_err(|e| Error::Otlp(e.to_string()));
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        result
    }
}

impl Drop for OtlpMetrics {
    fn drop(&mut self) {
        if !self.shut_down {
            let _ = self.provider.shutdown_with_timeout(Duration::from_secs(5));
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
