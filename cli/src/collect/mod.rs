//! `llm-usage collect`: an OTLP trace receiver that writes the layer's lines.
//!
//! Requests are decoded on the listeners' threads and queued (bounded in bytes) to one replay
//! thread, which holds each trace until it is whole and replays it through a `UsageLayer`
//! built from the options: the same lines, store rows and budgets as a Rust service writes.
//! SIGTERM or Ctrl-C stops the listeners, replays every request already answered, and
//! flushes.

mod convert;
mod forward;
mod grpc;
mod http;
mod intake;
mod metrics;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
use tonic::codec::CompressionEncoding;
use tracing_llm_usage::otlp::OtlpMetrics;
use tracing_llm_usage::pricing::PriceTable;
use tracing_llm_usage::replay::{ReplayStats, Replayer};
use tracing_llm_usage::{Budget, UsageLayer};

use intake::{Intake, Queued};

/// The options of `llm-usage collect`.
#[derive(Args, Debug, Clone)]
pub(crate) struct CollectArgs {
    /// Where the JSONL files go (daily files, as the layer's `jsonl_dir` writes them).
    #[arg(long, value_name = "DIR", default_value = "llm_usage_logs")]
    jsonl_dir: PathBuf,
    /// The OTLP/gRPC listener's address ("off": none).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4317")]
    grpc: String,
    /// The OTLP/HTTP listener's address, for `POST /v1/traces` ("off": none).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4318")]
    http: String,
    /// Span attributes that attribute spend (tenant, feature, prompt.version…), comma-separated;
    /// read from a call's span, else its nearest ancestor's, else the resource's.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    attributes: Vec<String>,
    /// Attributes that name a run, in order of preference, comma-separated.
    #[arg(
        long,
        value_name = "NAMES",
        value_delimiter = ',',
        default_value = "run_id,llm.run_id"
    )]
    run_id_attributes: Vec<String>,
    /// The span name of calls instrumented by hand (as the layer's `span_name`).
    #[arg(long, value_name = "NAME", default_value = "llm_call")]
    span_name: String,
    /// A limit per UTC day in USD: `budget_warning` and `budget_exceeded` lines.
    #[arg(long, value_name = "USD")]
    budget_per_day: Option<f64>,
    /// A limit per run in USD.
    #[arg(long, value_name = "USD")]
    budget_per_run: Option<f64>,
    /// One limit per value of this attribute (needs it in --attributes).
    #[arg(long, value_name = "ATTRIBUTE")]
    budget_each: Option<String>,
    /// A trace whose root span came is replayed once no span came for it for this long (ms).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    settle_ms: u64,
    /// A trace whose root never came is replayed, its runs `incomplete`, after this long
    /// without spans (ms).
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    idle_timeout_ms: u64,
    /// The most spans held waiting for their traces; past it the oldest traces are replayed
    /// early, incomplete.
    #[arg(long, value_name = "N", default_value_t = 500_000)]
    max_spans: usize,
    /// The largest request body taken, after decompression (bytes); larger ones get 400.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    max_request_bytes: usize,
    /// Requests queued for replay at most (bytes); past it senders are told to retry (HTTP
    /// 503, gRPC UNAVAILABLE).
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    max_queued_bytes: usize,
    /// Requests must carry `Authorization: Bearer TOKEN`, TOKEN being this environment
    /// variable's value.
    #[arg(long, value_name = "VAR")]
    bearer_token_env: Option<String>,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Export the usage metrics and log records (as a service's `otlp::init()` does) and the
    /// receiver's own counters over OTLP, configured by the OTEL_EXPORTER_OTLP_* variables
    /// (point them at your collector, not at this receiver).
    #[arg(long)]
    otlp_metrics: bool,
    /// Pass every request taken on, unchanged, to this OTLP/gRPC receiver (an OpenTelemetry
    /// Collector: http://host:4317, or https:// checked against the web PKI roots).
    #[arg(long, value_name = "URL")]
    forward: Option<String>,
    /// Require client certificates signed by this CA (PEM): mutual TLS.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
}

/// How long the forwarder may take at shutdown to pass on what it holds.
const FORWARD_DRAIN: Duration = Duration::from_secs(10);

/// Where the options say the lines go, and how they are priced.
fn layer(
    args: &CollectArgs,
    db: Option<&str>,
    prices: Option<PriceTable>,
    otlp: Option<&OtlpMetrics>,
) -> Result<(UsageLayer, tracing_llm_usage::UsageGuard), String> {
    let mut b = UsageLayer::builder()
        .jsonl_dir(&args.jsonl_dir)
        .span_name(&args.span_name)
        .attributes(args.attributes.iter().map(String::as_str));
    if let Some(otlp) = otlp {
        b = b.otlp(otlp);
    }
    if let Some(table) = prices {
        b = b.prices(table);
    }
    if let Some(db) = db {
        b = with_db(b, db)?;
    }
    let each = |budget: Budget| match &args.budget_each {
        Some(attribute) => budget.each(attribute),
        None => budget,
    };
    if let Some(usd) = args.budget_per_day {
        b = b.budget(each(Budget::per_day("per_day").usd(usd)));
    }
    if let Some(usd) = args.budget_per_run {
        b = b.budget(each(Budget::per_run("per_run").usd(usd)));
    }
    b.build().map_err(|e| e.to_string())
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn with_db(
    b: tracing_llm_usage::UsageLayerBuilder,
    db: &str,
) -> Result<tracing_llm_usage::UsageLayerBuilder, String> {
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return Ok(b.postgres(db));
        #[cfg(not(feature = "postgres"))]
        return Err("this llm-usage was built without PostgreSQL".into());
    }
    #[cfg(feature = "sqlite")]
    return Ok(b.sqlite(db));
    #[cfg(not(feature = "sqlite"))]
    return Err("this llm-usage was built without SQLite".into());
}

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
fn with_db(
    _: tracing_llm_usage::UsageLayerBuilder,
    _: &str,
) -> Result<tracing_llm_usage::UsageLayerBuilder, String> {
    Err(crate::NO_ENGINE.into())
}

/// An address option: `None` for "off".
fn address(text: &str, what: &str) -> Result<Option<SocketAddr>, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e| format!("--{what} {text:?}: {e}"))
}

/// Runs the receiver until SIGTERM or Ctrl-C; everything answered is written before it
/// returns.
pub(crate) fn run(
    args: &CollectArgs,
    db: Option<&str>,
    prices: Option<PriceTable>,
) -> Result<(), String> {
    let grpc_addr = address(&args.grpc, "grpc")?;
    let http_addr = address(&args.http, "http")?;
    if grpc_addr.is_none() && http_addr.is_none() {
        return Err("both listeners are off: give --grpc or --http an address".into());
    }
    let token = match &args.bearer_token_env {
        Some(var) => match std::env::var(var) {
            Ok(t) if !t.is_empty() => Some(t),
            _ => return Err(format!("--bearer-token-env {var}: the variable is not set")),
        },
        None => None,
    };
    let tls = tls::server_config(
        args.tls_cert.as_deref(),
        args.tls_key.as_deref(),
        args.tls_client_ca.as_deref(),
    )?;
    let otlp = match args.otlp_metrics {
        true => Some(tracing_llm_usage::otlp::init().map_err(|e| e.to_string())?),
        false => None,
    };
    let (layer, guard) = layer(args, db, prices, otlp.as_ref())?;
    let usage = layer.handle();
    let replayer = Replayer::builder(layer)
        .settle(Duration::from_millis(args.settle_ms))
        .idle_timeout(Duration::from_millis(args.idle_timeout_ms))
        .max_spans(args.max_spans)
        .run_id_attributes(args.run_id_attributes.iter().cloned())
        .build();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let forwarding = match &args.forward {
        Some(url) => {
            let endpoint = forward::endpoint(url)?;
            let _entered = runtime.enter();
            Some(forward::start(endpoint))
        }
        None => None,
    };
    let (forward, forwarder) = match forwarding {
        Some((f, task)) => (Some(f), Some(task)),
        None => (None, None),
    };
    let forwarded = forward.as_ref().map(|f| f.counts.clone());
    let (tx, rx) = std::sync::mpsc::channel::<Queued>();
    let queued = Arc::new(AtomicUsize::new(0));
    let intake = Arc::new(Intake::new(
        tx,
        queued.clone(),
        args.max_queued_bytes,
        token,
        args.max_request_bytes,
        forward,
    ));
    let replay_stats = Arc::new(Mutex::new(ReplayStats::default()));
    let shared = replay_stats.clone();
    let replay = std::thread::Builder::new()
        .name("llm-usage-replay".into())
        .spawn(move || replay_loop(&rx, replayer, &queued, &shared))
        .map_err(|e| format!("cannot start the replay thread: {e}"))?;
    let _instruments = otlp.as_ref().map(|o| {
        metrics::register(
            &o.meter(),
            &metrics::Sources {
                intake: intake.clone(),
                replay: replay_stats,
                forward: forwarded.clone(),
            },
        )
    });

    let served = runtime.block_on(serve(
        grpc_addr,
        http_addr,
        intake.clone(),
        tls,
        args.max_request_bytes,
    ));
    // Whatever ended the listeners, what they answered is replayed and written, and what is
    // waiting to be forwarded is sent (for at most the forwarder's deadline).
    intake.close();
    if let Some(task) = forwarder {
        let _ = runtime.block_on(async { tokio::time::timeout(FORWARD_DRAIN, task).await });
    }
    drop(runtime);
    let stats = replay.join().unwrap_or_default();
    let totals = usage.totals();
    let flushed = guard.shutdown();
    if let Some(otlp) = otlp {
        if let Err(e) = otlp.shutdown() {
            eprintln!("llm-usage collect: the last OTLP export failed: {e}");
        }
    }
    report(&intake, &stats, totals.calls);
    if let Some(f) = forwarded {
        eprintln!(
            "llm-usage collect: forwarded {} requests, dropped {}",
            f.forwarded.load(Ordering::Relaxed),
            f.dropped.load(Ordering::Relaxed)
        );
    }
    if !flushed {
        eprintln!("llm-usage collect: not every line was written within the shutdown timeout");
    }
    served
}

fn report(intake: &Intake, stats: &ReplayStats, calls: u64) {
    let c = &intake.counters;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    eprintln!(
        "llm-usage collect: {} requests, {} spans ({} rejected), {} calls written; \
         {} traces replayed ({} incomplete, {} early for memory, {} without calls); \
         refused: {} busy, {} malformed, {} unauthorized",
        n(&c.requests),
        n(&c.spans),
        n(&c.rejected_spans),
        calls,
        stats.traces_replayed,
        stats.traces_incomplete,
        stats.traces_overflowed,
        stats.traces_without_calls,
        n(&c.busy),
        n(&c.malformed),
        n(&c.unauthorized),
    );
}

/// The replay thread: takes requests as they come, replays traces as they are ready, and at
/// the end every trace held.
fn replay_loop(
    rx: &std::sync::mpsc::Receiver<Queued>,
    mut replayer: Replayer,
    queued: &AtomicUsize,
    shared: &Mutex<ReplayStats>,
) -> ReplayStats {
    use std::sync::mpsc::RecvTimeoutError;
    const TICK: Duration = Duration::from_millis(100);
    let mut last_poll = Instant::now();
    loop {
        match rx.recv_timeout(TICK) {
            Ok((req, size)) => {
                convert::feed(&req, &mut replayer, Instant::now());
                drop(req);
                queued.fetch_sub(size, Ordering::AcqRel);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if now.duration_since(last_poll) >= TICK {
            replayer.poll(now);
            last_poll = now;
            *shared.lock().unwrap_or_else(|p| p.into_inner()) = replayer.stats();
        }
    }
    replayer.finish();
    let stats = replayer.stats();
    *shared.lock().unwrap_or_else(|p| p.into_inner()) = stats.clone();
    stats
}

/// Serves both listeners until a signal.
async fn serve(
    grpc_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    intake: Arc<Intake>,
    tls: Option<Arc<rustls::ServerConfig>>,
    max_request_bytes: usize,
) -> Result<(), String> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(addr) = grpc_addr {
        let listener = bind(addr, "gRPC").await?;
        let incoming = tls::incoming(listener, tls.clone(), &[b"h2"]);
        let service = TraceServiceServer::new(grpc::Traces(intake.clone()))
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max_request_bytes);
        let stop = stopped(stop_rx.clone());
        let i = intake.clone();
        let remap = tower::util::MapResponseLayer::new(move |r| grpc::refused_as_invalid(&i, r));
        tasks.spawn(async move {
            tonic::transport::Server::builder()
                .layer(remap)
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, stop)
                .await
                .map_err(|e| format!("the gRPC listener failed: {e}"))
        });
    }
    if let Some(addr) = http_addr {
        let listener = bind(addr, "HTTP").await?;
        let incoming = tls::incoming(listener, tls.clone(), &[b"h2", b"http/1.1"]);
        let routes = tonic::service::Routes::from(http::router(intake.clone()));
        let stop = stopped(stop_rx.clone());
        tasks.spawn(async move {
            tonic::transport::Server::builder()
                .accept_http1(true)
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, stop)
                .await
                .map_err(|e| format!("the HTTP listener failed: {e}"))
        });
    }
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let mut result = Ok(());
    tokio::select! {
        _ = &mut signal => {}
        Some(done) = tasks.join_next() => {
            result = done.map_err(|e| e.to_string()).and_then(|r| r);
        }
    }
    let _ = stop_tx.send(true);
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            result = result.and(Err(e));
        }
    }
    result
}

async fn bind(addr: SocketAddr, what: &str) -> Result<tokio::net::TcpListener, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // Tests and scripts read the port from this line (the address may be port 0).
    eprintln!("llm-usage collect: OTLP/{what} on {local}");
    Ok(listener)
}

async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
