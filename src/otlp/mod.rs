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

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_otlp::{LogExporter, MetricExporter, Protocol, WithExportConfig};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::Resource;

use crate::Error;
use delivery::Delivery;
pub(crate) use delivery::DeliveryStats;

mod config;
mod delivery;
mod transport;
pub use config::{OtlpConfig, OtlpProtocol};

/// A running OTLP pipeline for metrics and logs. Dropping it flushes and shuts both providers
/// down.
pub struct OtlpMetrics {
    provider: SdkMeterProvider,
    logs: SdkLoggerProvider,
    delivery: Arc<DeliveryStats>,
    /// Released with `shutdown_background` after the final export: dropping a runtime inside
    /// the application's async code would panic.
    runtime: Option<tokio::runtime::Runtime>,
    shut_down: bool,
}

/// The fate of the log records of an OTLP pipeline (see [`OtlpMetrics::log_delivery`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogDelivery {
    /// Records handed to the pipeline.
    pub made: u64,
    /// Records the collector accepted.
    pub delivered: u64,
    /// Records lost: the buffer was full, or they were still waiting at shutdown.
    pub dropped: u64,
    /// Failed exports (each retried until the collector took the records).
    pub export_errors: u64,
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

fn start(config: OtlpConfig) -> Result<OtlpMetrics, Error> {
    if config.is_disabled() {
        // The same API, no reader: measurements go nowhere.
        return Ok(OtlpMetrics {
            provider: SdkMeterProvider::builder().build(),
            logs: SdkLoggerProvider::builder().build(),
            delivery: Arc::default(),
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
    let exporter = match config.protocol_value() {
        OtlpProtocol::Grpc => {
            let b = MetricExporter::builder()
                .with_tonic()
                .with_protocol(Protocol::Grpc)
                .with_temporality(Temporality::Cumulative);
            let b = transport::grpc(b, &config)?;
            transport::build_in(&runtime, move || b.build())?
        }
        OtlpProtocol::HttpProtobuf => {
            let b = MetricExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_temporality(Temporality::Cumulative);
            let b = transport::http(b, &config)?;
            transport::build_in(&runtime, move || b.build())?
        }
    };
    let logs_config = config.for_logs()?;
    let log_exporter = match logs_config.protocol_value() {
        OtlpProtocol::Grpc => {
            let b = LogExporter::builder()
                .with_tonic()
                .with_protocol(Protocol::Grpc);
            let b = transport::grpc(b, &logs_config)?;
            transport::build_in(&runtime, move || b.build())?
        }
        OtlpProtocol::HttpProtobuf => {
            let b = LogExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary);
            let b = transport::http(b, &logs_config)?;
            transport::build_in(&runtime, move || b.build())?
        }
    };
    let delivery = Arc::new(DeliveryStats::default());
    let processor = Delivery::start(log_exporter, config.logs_buffer_value(), delivery.clone())
        .map_err(|e| Error::Otlp(format!("cannot start the log delivery thread: {e}")))?;
    let logs = SdkLoggerProvider::builder()
        .with_resource(Resource::builder().build())
        .with_log_processor(processor)
        .build();
    let reader = PeriodicReader::builder(exporter)
        .with_interval(config.export_interval_value())
        .build();
    let provider = SdkMeterProvider::builder()
        .with_resource(Resource::builder().build())
        .with_reader(reader)
        .build();
    Ok(OtlpMetrics {
        provider,
        logs,
        delivery,
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

    /// The logs provider, to hand to [`crate::UsageLayerBuilder::logger_provider`]: every
    /// call and run summary as a log record over OTLP, batched by the SDK.
    pub fn logger_provider(&self) -> &SdkLoggerProvider {
        &self.logs
    }

    /// Log records handed to the pipeline, delivered to the collector, and dropped because
    /// the buffer was full (or left at shutdown): delivered + dropped + waiting = made.
    pub fn log_delivery(&self) -> LogDelivery {
        let d = &self.delivery;
        LogDelivery {
            made: d.made.load(std::sync::atomic::Ordering::Relaxed),
            delivered: d.delivered.load(std::sync::atomic::Ordering::Relaxed),
            dropped: d.dropped.load(std::sync::atomic::Ordering::Relaxed),
            export_errors: d.export_errors.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    pub(crate) fn delivery_stats(&self) -> Arc<DeliveryStats> {
        self.delivery.clone()
    }

    /// Exports now.
    ///
    /// # Errors
    ///
    /// [`Error::Otlp`] when the export fails (the collector is down, say); the totals are
    /// kept and go with the next export.
    pub fn force_flush(&self) -> Result<(), Error> {
        let metrics = self.provider.force_flush();
        let logs = self.logs.force_flush();
        metrics.and(logs).map_err(|e| Error::Otlp(e.to_string()))
    }

    /// Flushes and shuts down (what dropping does).
    ///
    /// # Errors
    ///
    /// [`Error::Otlp`] when the final export fails.
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.shut_down = true;
        let logs = self.logs.shutdown_with_timeout(Duration::from_secs(5));
        let result = self
            .provider
            .shutdown_with_timeout(Duration::from_secs(5))
            .and(logs)
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
            let _ = self.logs.shutdown_with_timeout(Duration::from_secs(5));
            let _ = self.provider.shutdown_with_timeout(Duration::from_secs(5));
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
