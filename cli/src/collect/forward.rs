//! `--forward`: every request taken is passed on, as received, to another OTLP/gRPC receiver
//! (an OpenTelemetry Collector), so that `collect` can sit in front of an existing pipeline.
//! The usage log never waits for it: a request the forwarder has no room for, or that the
//! receiver keeps refusing, is counted as dropped and reported.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::sync::mpsc;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// Requests waiting to be forwarded, at most.
const QUEUE: usize = 256;
/// Attempts per request (the first and the retries of a transient failure).
const ATTEMPTS: u32 = 4;

/// Forwarded and dropped requests.
#[derive(Debug, Default)]
pub(super) struct ForwardCounts {
    pub(super) forwarded: AtomicU64,
    pub(super) dropped: AtomicU64,
}

/// The sending side, held by the intake.
pub(super) struct Forward {
    tx: mpsc::Sender<ExportTraceServiceRequest>,
    pub(super) counts: Arc<ForwardCounts>,
}

impl Forward {
    /// Queues a copy of `req`; a full queue drops it (counted).
    pub(super) fn send(&self, req: &ExportTraceServiceRequest) {
        if self.tx.try_send(req.clone()).is_err() {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The channel to `url` (`http://` or `https://`, checked against the web PKI roots).
pub(super) fn endpoint(url: &str) -> Result<Endpoint, String> {
    let endpoint = Channel::from_shared(url.to_owned())
        .map_err(|e| format!("--forward {url:?}: {e}"))?
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5));
    if url.starts_with("https://") {
        return endpoint
            .tls_config(ClientTlsConfig::new().with_webpki_roots())
            .map_err(|e| format!("--forward {url:?}: {e}"));
    }
    if !url.starts_with("http://") {
        return Err(format!("--forward {url:?}: an http:// or https:// URL"));
    }
    Ok(endpoint)
}

/// Starts the forwarder on the current runtime; it ends when the sending side is dropped and
/// its queue is empty.
pub(super) fn start(endpoint: Endpoint) -> (Forward, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<ExportTraceServiceRequest>(QUEUE);
    let counts = Arc::new(ForwardCounts::default());
    let c = counts.clone();
    let task = tokio::spawn(async move {
        let mut client = TraceServiceClient::new(endpoint.connect_lazy());
        while let Some(req) = rx.recv().await {
            let mut delay = Duration::from_millis(100);
            let mut sent = false;
            for attempt in 1..=ATTEMPTS {
                match client.export(req.clone()).await {
                    Ok(_) => {
                        sent = true;
                        break;
                    }
                    Err(status) if retryable(status.code()) && attempt < ATTEMPTS => {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                    Err(_) => break,
                }
            }
            let counter = if sent { &c.forwarded } else { &c.dropped };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    (Forward { tx, counts }, task)
}

/// The gRPC codes OTLP calls retryable.
fn retryable(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        Cancelled
            | DeadlineExceeded
            | Aborted
            | OutOfRange
            | Unavailable
            | DataLoss
            | ResourceExhausted
    )
}
