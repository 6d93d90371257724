//! An OTLP metrics pipeline configured the standard way, from the environment (feature
//! `otlp`, on by default).
//!
//! ```no_run
//! use tracing_llm_usage::{otlp, UsageLayer};
//! let metrics = otlp::init()?;                       // reads OTEL_EXPORTER_OTLP_* etc.
//! let (layer, guard) = UsageLayer::builder().meter(metrics.meter()).build()?;
//! // ... install the layer; at exit drop `guard`, then `metrics` (flushes and shuts down)
//! # Ok::<(), tracing_llm_usage::Error>(())
//! ```
//!
//! | variable | effect |
//! |---|---|
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` (or `…_METRICS_PROTOCOL`) | `grpc` (tonic) or `http/protobuf` (the default, as the specification says) |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_METRICS_ENDPOINT`) | the collector; default `http://localhost:4317` (gRPC) or `:4318` (HTTP). A gRPC endpoint without a scheme is taken as `http://` (this build has no TLS) |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT` | read by the exporter |
//! | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | the resource |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | the periodic reader's interval in ms (default 60,000) |
//!
//! Temporality is cumulative, so a collector that was down receives exact totals with the
//! next export. Export runs on its own thread and a private one-thread Tokio runtime, so it
//! works whether or not the application has a runtime, never blocks the application, and
//! reports failures through OpenTelemetry's own error handling.

use std::time::Duration;

use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_otlp::{MetricExporter, Protocol, WithExportConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::Resource;

use crate::Error;

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

fn env(metrics_var: &str, generic_var: &str) -> Option<String> {
    std::env::var(metrics_var)
        .ok()
        .or_else(|| std::env::var(generic_var).ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Builds the pipeline from the standard `OTEL_*` variables (see the module documentation).
///
/// # Errors
///
/// [`Error::Otlp`] for an unsupported protocol, a runtime that cannot start, or an exporter
/// that cannot be built.
pub fn init() -> Result<OtlpMetrics, Error> {
    let protocol = env(
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    )
    .unwrap_or_else(|| "http/protobuf".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("llm-usage-otlp")
        .enable_all()
        .build()
        .map_err(|e| Error::Otlp(format!("cannot start the export runtime: {e}")))?;

    // Built on a thread of its own: outside any runtime of the caller's (reqwest's blocking
    // client must not be made inside one), inside ours for tonic (its channel spawns there).
    let handle = runtime.handle().clone();
    let exporter = std::thread::spawn(move || -> Result<MetricExporter, String> {
        match protocol.as_str() {
            "grpc" => {
                let _in_runtime = handle.enter();
                let mut b = MetricExporter::builder()
                    .with_tonic()
                    .with_protocol(Protocol::Grpc)
                    .with_temporality(Temporality::Cumulative);
                if let Some(endpoint) = env(
                    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                ) {
                    let endpoint = if endpoint.contains("://") {
                        endpoint
                    } else {
                        format!("http://{endpoint}")
                    };
                    b = b.with_endpoint(endpoint);
                }
                b.build().map_err(|e| e.to_string())
            }
            "http/protobuf" => MetricExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_temporality(Temporality::Cumulative)
                .build()
                .map_err(|e| e.to_string()),
            other => Err(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={other:?} is not supported (use grpc or http/protobuf)"
            )),
        }
    })
    .join()
    .map_err(|_| Error::Otlp("building the exporter panicked".into()))?
    .map_err(Error::Otlp)?;

    let reader = PeriodicReader::builder(exporter).build();
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
