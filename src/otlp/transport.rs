//! The settings every OTLP exporter shares, applied to a gRPC (tonic) or HTTP/protobuf
//! (reqwest) exporter builder of any signal: endpoint, timeout, headers, compression, TLS.

use std::collections::HashMap;

use opentelemetry_otlp::{Compression, WithExportConfig, WithHttpConfig, WithTonicConfig};

use super::config::OtlpConfig;
use crate::Error;

/// A gRPC exporter builder with `config`'s settings.
pub(super) fn grpc<B: WithExportConfig + WithTonicConfig>(
    b: B,
    config: &OtlpConfig,
) -> Result<B, Error> {
    use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
    use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
    let endpoint = config.endpoint_value();
    let mut map = http::HeaderMap::new();
    for (k, v) in config.headers_value() {
        let key = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| Error::Otlp(format!("the header name {k:?} is not valid for gRPC")))?;
        let value = http::HeaderValue::from_str(v)
            .map_err(|_| Error::Otlp(format!("the value of header {k:?} is not valid for gRPC")))?;
        map.insert(key, value);
    }
    let mut b = b
        .with_endpoint(endpoint.clone())
        .with_timeout(config.timeout_value())
        .with_metadata(MetadataMap::from_headers(map));
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
    Ok(b)
}

/// An HTTP/protobuf exporter builder with `config`'s settings and its own blocking client.
pub(super) fn http<B: WithExportConfig + WithHttpConfig>(
    b: B,
    config: &OtlpConfig,
) -> Result<B, Error> {
    // Always our own TLS settings (ring, the web PKI roots and the CA given), so that the
    // client never looks for a process-wide default.
    let tls_config = crate::tls::client_config(
        &config.ca_certificates()?,
        true,
        config.identity()?,
        crate::tls::Verify::Full,
    )
    .map_err(Error::Otlp)?;
    let timeout = config.timeout_value();
    // Made on a thread of its own: a blocking client must not be made inside a runtime.
    let client = std::thread::spawn(move || {
        reqwest::blocking::Client::builder()
            .timeout(timeout)
            .tls_backend_preconfigured(tls_config)
            .build()
    })
    .join()
    .map_err(|_| Error::Otlp("building the HTTP client panicked".into()))?
    .map_err(|e| Error::Otlp(format!("cannot build the HTTP client: {e}")))?;
    let headers: HashMap<String, String> = config.headers_value().iter().cloned().collect();
    let mut b = b
        .with_http_client(client)
        .with_endpoint(config.endpoint_value())
        .with_timeout(timeout)
        .with_headers(headers);
    if config.gzip_value() {
        b = b.with_compression(Compression::Gzip);
    }
    Ok(b)
}

/// Runs `build` on a thread inside `runtime` (tonic's channel spawns there) and outside any
/// runtime of the caller's.
pub(super) fn build_in<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    build: impl FnOnce() -> Result<T, opentelemetry_otlp::ExporterBuildError> + Send + 'static,
) -> Result<T, Error> {
    let handle = runtime.handle().clone();
    std::thread::spawn(move || {
        let _in_runtime = handle.enter();
        build()
    })
    .join()
    .map_err(|_| Error::Otlp("building the exporter panicked".into()))?
    .map_err(|e| Error::Otlp(e.to_string()))
}
