//! [`OtlpConfig`]: where and how the metrics go, from the standard `OTEL_*` variables or set
//! in code. Header values are secrets: `Debug` and every error leave them out.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::redact::redact_url;
use crate::Error;

/// The OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtlpProtocol {
    /// gRPC (tonic), default port 4317.
    Grpc,
    /// HTTP with protobuf bodies, default port 4318 (the specification's default).
    HttpProtobuf,
}

/// A setting and where it came from (a variable's name, or the builder method), so that an
/// error can name it.
#[derive(Clone, Debug)]
struct Sourced<T> {
    value: T,
    source: &'static str,
}

/// The OTLP export settings.
///
/// | setting | variable (the `…_METRICS_…` one first) | builder | default |
/// |---|---|---|---|
/// | protocol | `OTEL_EXPORTER_OTLP_PROTOCOL` | [`protocol`](Self::protocol) | `http/protobuf` |
/// | endpoint | `OTEL_EXPORTER_OTLP_ENDPOINT` | [`endpoint`](Self::endpoint) | `http://localhost:4318/v1/metrics`, gRPC `http://localhost:4317` |
/// | headers | `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`, URL-encoded values) | [`header`](Self::header) | none |
/// | CA bundle to trust | `OTEL_EXPORTER_OTLP_CERTIFICATE` | [`ca_certificate`](Self::ca_certificate) | the web PKI roots |
/// | client certificate and key (mutual TLS) | `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`, `…_CLIENT_KEY` | [`client_identity`](Self::client_identity) | none |
/// | plain text for a gRPC endpoint without a scheme | `OTEL_EXPORTER_OTLP_INSECURE` | [`insecure`](Self::insecure) | `false` (TLS) |
/// | compression | `OTEL_EXPORTER_OTLP_COMPRESSION` (`gzip`, `none`) | [`gzip`](Self::gzip) | none |
/// | timeout of an export | `OTEL_EXPORTER_OTLP_TIMEOUT` (ms) | [`timeout`](Self::timeout) | 10 s |
/// | export interval | `OTEL_METRIC_EXPORT_INTERVAL` (ms) | [`export_interval`](Self::export_interval) | 60 s |
/// | log records waiting for the collector, at most | `OTEL_BLRP_MAX_QUEUE_SIZE` | [`logs_buffer`](Self::logs_buffer) | 8,192 |
/// | no export at all | `OTEL_SDK_DISABLED=true` | [`disabled`](Self::disabled) | `false` |
///
/// The general `OTEL_EXPORTER_OTLP_ENDPOINT` of the HTTP transport is a base URL
/// (`/v1/metrics` and `/v1/logs` are appended); `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`, [`endpoint`](Self::endpoint) and
/// [`logs_endpoint`](Self::logs_endpoint) are used as they are. The logs exporter reads the
/// `OTEL_EXPORTER_OTLP_LOGS_*` variables first, as the metrics exporter its own. `https://` endpoints use TLS (rustls,
/// the web PKI roots plus the CA bundle given). `OTEL_SERVICE_NAME` and
/// `OTEL_RESOURCE_ATTRIBUTES` go into the resource.
#[derive(Clone)]
#[must_use = "a configuration does nothing until `init` is called"]
pub struct OtlpConfig {
    protocol: Sourced<OtlpProtocol>,
    endpoint: Option<Sourced<String>>,
    headers: Option<Sourced<Vec<(String, String)>>>,
    ca_certificate: Option<Sourced<PathBuf>>,
    client_certificate: Option<Sourced<PathBuf>>,
    client_key: Option<Sourced<PathBuf>>,
    insecure: bool,
    gzip: bool,
    timeout: Duration,
    export_interval: Duration,
    disabled: bool,
    /// Read from the environment: the logs exporter reads it again for its own variables.
    from_env: bool,
    logs_endpoint: Option<String>,
    /// This configuration is the logs exporter's (its default endpoint differs).
    signal_is_logs: bool,
    logs_buffer: usize,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            protocol: Sourced {
                value: OtlpProtocol::HttpProtobuf,
                source: "the default protocol",
            },
            endpoint: None,
            headers: None,
            ca_certificate: None,
            client_certificate: None,
            client_key: None,
            insecure: false,
            gzip: false,
            timeout: Duration::from_secs(10),
            export_interval: Duration::from_secs(60),
            disabled: false,
            from_env: false,
            logs_endpoint: None,
            signal_is_logs: false,
            logs_buffer: 8192,
        }
    }
}

impl fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header names only: their values are credentials.
        let headers: Vec<String> = self
            .headers
            .iter()
            .flat_map(|h| h.value.iter())
            .map(|(k, _)| format!("{k}: <redacted>"))
            .collect();
        f.debug_struct("OtlpConfig")
            .field("protocol", &self.protocol.value)
            .field(
                "endpoint",
                &self.endpoint.as_ref().map(|e| redact_url(&e.value)),
            )
            .field("headers", &headers)
            .field(
                "ca_certificate",
                &self.ca_certificate.as_ref().map(|p| &p.value),
            )
            .field(
                "client_certificate",
                &self.client_certificate.as_ref().map(|p| &p.value),
            )
            .field("client_key", &self.client_key.as_ref().map(|p| &p.value))
            .field("insecure", &self.insecure)
            .field("gzip", &self.gzip)
            .field("timeout", &self.timeout)
            .field("export_interval", &self.export_interval)
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// A client certificate and its key, as PEM text.
pub(super) type PemPair = (Vec<u8>, Vec<u8>);

/// Which signal a configuration exports: its variables come first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Signal {
    Metrics,
    Logs,
}

/// The `…_LOGS_…` variable of a `…_METRICS_…` one.
fn logs_name(metrics_name: &'static str) -> &'static str {
    match metrics_name {
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL" => "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT" => "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS" => "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
        "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE" => "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE" => {
            "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE"
        }
        "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY" => "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY",
        "OTEL_EXPORTER_OTLP_METRICS_INSECURE" => "OTEL_EXPORTER_OTLP_LOGS_INSECURE",
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION" => "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT" => "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
        other => other,
    }
}

/// The metrics variable if set, else the general one: (value, the variable's name).
fn var(
    signal: Signal,
    name: &'static str,
    metrics_name: &'static str,
) -> Option<(String, &'static str)> {
    let metrics_name = match signal {
        Signal::Metrics => metrics_name,
        Signal::Logs => logs_name(metrics_name),
    };
    let read = |n: &'static str| {
        std::env::var(n)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .map(|v| (v, n))
    };
    read(metrics_name).or_else(|| read(name))
}

fn bool_var(value: &str, source: &str) -> Result<bool, Error> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::Otlp(format!(
            "{source}={value:?} is not a boolean (true or false)"
        ))),
    }
}

fn millis_var(value: &str, source: &str) -> Result<Duration, Error> {
    value
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| {
            Error::Otlp(format!(
                "{source}={value:?} is not a number of milliseconds"
            ))
        })
}

/// `key1=value1,key2=value2` with URL-encoded values. Errors name the variable and the key,
/// never a value.
fn parse_headers(text: &str, source: &str) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for (i, pair) in text.split(',').enumerate() {
        if pair.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = pair.split_once('=') else {
            return Err(Error::Otlp(format!(
                "{source}: entry {} has no `=` (the form is key=value,key2=value2)",
                i + 1
            )));
        };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(is_token_byte) {
            return Err(Error::Otlp(format!(
                "{source}: entry {} has no valid header name",
                i + 1
            )));
        }
        let value = crate::percent::decode(value.trim()).ok_or_else(|| {
            Error::Otlp(format!(
                "{source}: the value of {key:?} is not valid URL-encoded UTF-8"
            ))
        })?;
        if value.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
            return Err(Error::Otlp(format!(
                "{source}: the value of {key:?} holds a control character"
            )));
        }
        out.push((key.to_ascii_lowercase(), value));
    }
    Ok(out)
}

/// HTTP header name characters (RFC 9110 `token`).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl OtlpConfig {
    /// The defaults (see the table above), without reading the environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// The settings of the standard variables, each `OTEL_EXPORTER_OTLP_METRICS_*` variable
    /// taking precedence over its general `OTEL_EXPORTER_OTLP_*` one.
    ///
    /// # Errors
    ///
    /// [`Error::Otlp`] naming the variable when one is malformed (an unknown protocol or
    /// compression, a header without `=`, a timeout that is not a number…).
    pub fn from_env() -> Result<Self, Error> {
        Self::from_env_for(Signal::Metrics)
    }

    /// The settings of the variables for `signal` (its own variables first).
    pub(super) fn from_env_for(signal: Signal) -> Result<Self, Error> {
        let mut c = Self {
            from_env: true,
            signal_is_logs: signal == Signal::Logs,
            ..Self::default()
        };
        if let Some((v, source)) = var(signal, "OTEL_SDK_DISABLED", "OTEL_SDK_DISABLED") {
            c.disabled = bool_var(&v, source)?;
        }
        if let Some((v, source)) = var(
            signal,
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        ) {
            let value = match v.as_str() {
                "grpc" => OtlpProtocol::Grpc,
                "http/protobuf" => OtlpProtocol::HttpProtobuf,
                other => {
                    return Err(Error::Otlp(format!(
                        "{source}={other:?} is not supported (use grpc or http/protobuf)"
                    )))
                }
            };
            c.protocol = Sourced { value, source };
        }
        if let Some((v, source)) = var(
            signal,
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        ) {
            // The general variable is a base URL for the HTTP transport.
            let value = if source == "OTEL_EXPORTER_OTLP_ENDPOINT"
                && c.protocol.value == OtlpProtocol::HttpProtobuf
            {
                let path = match signal {
                    Signal::Metrics => "v1/metrics",
                    Signal::Logs => "v1/logs",
                };
                format!("{}/{path}", v.trim_end_matches('/'))
            } else {
                v
            };
            c.endpoint = Some(Sourced { value, source });
        }
        if let Some((v, source)) = var(
            signal,
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        ) {
            c.headers = Some(Sourced {
                value: parse_headers(&v, source)?,
                source,
            });
        }
        let path = |name, metrics_name| {
            var(signal, name, metrics_name).map(|(v, source)| Sourced {
                value: PathBuf::from(v),
                source,
            })
        };
        c.ca_certificate = path(
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
        );
        c.client_certificate = path(
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",
        );
        c.client_key = path(
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY",
        );
        if let Some((v, source)) = var(
            signal,
            "OTEL_EXPORTER_OTLP_INSECURE",
            "OTEL_EXPORTER_OTLP_METRICS_INSECURE",
        ) {
            c.insecure = bool_var(&v, source)?;
        }
        if let Some((v, source)) = var(
            signal,
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
        ) {
            c.gzip = match v.as_str() {
                "gzip" => true,
                "none" => false,
                other => {
                    return Err(Error::Otlp(format!(
                        "{source}={other:?} is not supported (use gzip or none)"
                    )))
                }
            };
        }
        if let Some((v, source)) = var(
            signal,
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
        ) {
            c.timeout = millis_var(&v, source)?;
        }
        if let Some((v, source)) = var(
            signal,
            "OTEL_METRIC_EXPORT_INTERVAL",
            "OTEL_METRIC_EXPORT_INTERVAL",
        ) {
            c.export_interval = millis_var(&v, source)?;
        }
        if let Some((v, source)) = var(
            signal,
            "OTEL_BLRP_MAX_QUEUE_SIZE",
            "OTEL_BLRP_MAX_QUEUE_SIZE",
        ) {
            c.logs_buffer = v
                .parse()
                .map_err(|_| Error::Otlp(format!("{source}={v:?} is not a number of records")))?;
        }
        Ok(c)
    }

    /// The transport.
    pub fn protocol(mut self, protocol: OtlpProtocol) -> Self {
        self.protocol = Sourced {
            value: protocol,
            source: "OtlpConfig::protocol",
        };
        self
    }

    /// The collector's URL for metrics, used as is (`https://otlp.example.com/v1/metrics`;
    /// for gRPC `https://collector:4317`).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(Sourced {
            value: url.into(),
            source: "OtlpConfig::endpoint",
        });
        self
    }

    /// Adds a header (`Authorization`, an API key…) to every export; its value is never
    /// printed.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let headers = self.headers.get_or_insert(Sourced {
            value: Vec::new(),
            source: "OtlpConfig::header",
        });
        headers
            .value
            .push((name.into().to_ascii_lowercase(), value.into()));
        self
    }

    /// The collector's URL for logs, used as is (default: the metrics endpoint with
    /// `/v1/metrics` replaced by `/v1/logs`; for gRPC the same endpoint).
    pub fn logs_endpoint(mut self, url: impl Into<String>) -> Self {
        self.logs_endpoint = Some(url.into());
        self
    }

    /// How many log records wait for the collector at most (default 8,192, or
    /// `OTEL_BLRP_MAX_QUEUE_SIZE`); past that new records are dropped and counted.
    pub fn logs_buffer(mut self, records: usize) -> Self {
        self.logs_buffer = records;
        self
    }

    pub(super) fn logs_buffer_value(&self) -> usize {
        self.logs_buffer
    }

    /// A PEM bundle of CA certificates to trust besides the web PKI roots.
    pub fn ca_certificate(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_certificate = Some(Sourced {
            value: path.into(),
            source: "OtlpConfig::ca_certificate",
        });
        self
    }

    /// A client certificate (PEM, with its chain) and its private key, for mutual TLS.
    pub fn client_identity(
        mut self,
        certificate: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.client_certificate = Some(Sourced {
            value: certificate.into(),
            source: "OtlpConfig::client_identity",
        });
        self.client_key = Some(Sourced {
            value: key.into(),
            source: "OtlpConfig::client_identity",
        });
        self
    }

    /// Plain text for a gRPC endpoint written without a scheme (`collector:4317`).
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Gzip-compressed exports.
    pub fn gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }

    /// How long one export may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How often metrics are exported.
    pub fn export_interval(mut self, interval: Duration) -> Self {
        self.export_interval = interval;
        self
    }

    /// No export at all: the meter records into nothing (`OTEL_SDK_DISABLED=true`).
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.disabled = disabled;
        self
    }

    /// Starts the pipeline.
    ///
    /// # Errors
    ///
    /// [`Error::Otlp`] naming the setting when a certificate or key cannot be read or used,
    /// or the exporter cannot be built.
    pub fn init(self) -> Result<super::OtlpMetrics, Error> {
        super::start(self)
    }

    pub(super) fn is_disabled(&self) -> bool {
        self.disabled
    }

    pub(super) fn protocol_value(&self) -> OtlpProtocol {
        self.protocol.value
    }

    pub(super) fn export_interval_value(&self) -> Duration {
        self.export_interval
    }

    pub(super) fn timeout_value(&self) -> Duration {
        self.timeout
    }

    pub(super) fn gzip_value(&self) -> bool {
        self.gzip
    }

    pub(super) fn headers_value(&self) -> &[(String, String)] {
        self.headers.as_ref().map_or(&[], |h| &h.value)
    }

    /// The endpoint to export to, with its scheme settled: a gRPC endpoint without one is
    /// `https://` unless insecure.
    pub(super) fn endpoint_value(&self) -> String {
        let default = match (self.protocol.value, self.signal_is_logs) {
            (OtlpProtocol::Grpc, _) => "http://localhost:4317",
            (OtlpProtocol::HttpProtobuf, false) => "http://localhost:4318/v1/metrics",
            (OtlpProtocol::HttpProtobuf, true) => "http://localhost:4318/v1/logs",
        };
        let url = self.endpoint.as_ref().map_or(default, |e| e.value.as_str());
        if url.contains("://") {
            url.to_owned()
        } else if self.insecure {
            format!("http://{url}")
        } else {
            format!("https://{url}")
        }
    }

    /// The configuration of the logs exporter: the logs variables when this one came from the
    /// environment, else the same settings with the logs endpoint.
    pub(super) fn for_logs(&self) -> Result<Self, Error> {
        if self.from_env {
            let mut logs = Self::from_env_for(Signal::Logs)?;
            if let Some(url) = &self.logs_endpoint {
                logs.endpoint = Some(Sourced {
                    value: url.clone(),
                    source: "OtlpConfig::logs_endpoint",
                });
            }
            return Ok(logs);
        }
        let mut logs = self.clone();
        logs.endpoint = match (&self.logs_endpoint, &self.endpoint) {
            (Some(url), _) => Some(Sourced {
                value: url.clone(),
                source: "OtlpConfig::logs_endpoint",
            }),
            (None, Some(e)) if self.protocol.value == OtlpProtocol::HttpProtobuf => Some(Sourced {
                value: match e.value.strip_suffix("/v1/metrics") {
                    Some(base) => format!("{base}/v1/logs"),
                    None => e.value.clone(),
                },
                source: e.source,
            }),
            (None, other) => other.clone(),
        };
        logs.from_env = false;
        logs.signal_is_logs = true;
        Ok(logs)
    }

    /// The CA bundle's certificates (empty when none is set).
    pub(super) fn ca_certificates(
        &self,
    ) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, Error> {
        match &self.ca_certificate {
            Some(p) => crate::tls::certificates(&p.value, p.source).map_err(Error::Otlp),
            None => Ok(Vec::new()),
        }
    }

    /// The PEM text of the CA bundle, for tonic.
    pub(super) fn ca_pem(&self) -> Result<Option<Vec<u8>>, Error> {
        self.ca_certificates()?;
        self.ca_certificate
            .as_ref()
            .map(|p| {
                std::fs::read(&p.value).map_err(|e| {
                    Error::Otlp(format!(
                        "{}: cannot read {}: {e}",
                        p.source,
                        p.value.display()
                    ))
                })
            })
            .transpose()
    }

    /// The client certificate and key, both or neither.
    pub(super) fn identity(&self) -> Result<Option<crate::tls::Identity>, Error> {
        match (&self.client_certificate, &self.client_key) {
            (None, None) => Ok(None),
            (Some(c), Some(k)) => Ok(Some((
                crate::tls::certificates(&c.value, c.source).map_err(Error::Otlp)?,
                crate::tls::private_key(&k.value, k.source).map_err(Error::Otlp)?,
            ))),
            (Some(c), None) => Err(Error::Otlp(format!(
                "{} is set but no client key (OTEL_EXPORTER_OTLP_CLIENT_KEY)",
                c.source
            ))),
            (None, Some(k)) => Err(Error::Otlp(format!(
                "{} is set but no client certificate (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE)",
                k.source
            ))),
        }
    }

    /// The PEM texts of the client certificate and key, for tonic.
    pub(super) fn identity_pem(&self) -> Result<Option<PemPair>, Error> {
        if self.identity()?.is_none() {
            return Ok(None);
        }
        let read = |p: &Sourced<PathBuf>| {
            std::fs::read(&p.value).map_err(|e| {
                Error::Otlp(format!(
                    "{}: cannot read {}: {e}",
                    p.source,
                    p.value.display()
                ))
            })
        };
        match (&self.client_certificate, &self.client_key) {
            (Some(c), Some(k)) => Ok(Some((read(c)?, read(k)?))),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_parsed_decoded_and_never_printed() {
        let h = parse_headers(
            "Authorization=Basic%20dXNlcjpzZWNyZXQ=, x-api-key = k%2Cey ",
            "OTEL_EXPORTER_OTLP_HEADERS",
        )
        .unwrap();
        assert_eq!(
            h,
            [
                (
                    "authorization".to_owned(),
                    "Basic dXNlcjpzZWNyZXQ=".to_owned()
                ),
                ("x-api-key".to_owned(), "k,ey".to_owned())
            ]
        );
        let bad = parse_headers("Authorization", "OTEL_EXPORTER_OTLP_METRICS_HEADERS").unwrap_err();
        assert_eq!(
            bad.to_string(),
            "OTLP metrics: OTEL_EXPORTER_OTLP_METRICS_HEADERS: entry 1 has no `=` (the form is \
             key=value,key2=value2)"
        );
        let bad = parse_headers("a=%zz-secret", "OTEL_EXPORTER_OTLP_HEADERS").unwrap_err();
        assert!(!bad.to_string().contains("secret"), "{bad}");
        let config = OtlpConfig::new()
            .header("Authorization", "Bearer top-secret")
            .endpoint("https://user:hunter2@otlp.example.com/v1/metrics");
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("top-secret") && !debug.contains("hunter2"),
            "{debug}"
        );
        assert!(debug.contains("authorization: <redacted>"), "{debug}");
        assert!(
            debug.contains("https://user:***@otlp.example.com/v1/metrics"),
            "{debug}"
        );
    }

    #[test]
    fn schemeless_grpc_endpoints_use_tls_unless_insecure() {
        let c = OtlpConfig::new()
            .protocol(OtlpProtocol::Grpc)
            .endpoint("collector:4317");
        assert_eq!(c.endpoint_value(), "https://collector:4317");
        assert_eq!(c.insecure(true).endpoint_value(), "http://collector:4317");
        assert_eq!(
            OtlpConfig::new().endpoint_value(),
            "http://localhost:4318/v1/metrics"
        );
    }
}
