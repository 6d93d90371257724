//! Helpers for the tests that make logs with the layer: an in-memory writer and a subscriber
//! made of the registry and the layer.
#![allow(dead_code)]

use std::io;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tracing::Dispatch;
use tracing_llm_usage::{UsageGuard, UsageHandle, UsageLayerBuilder};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// A `MakeWriter` into a shared `Vec<u8>`.
#[derive(Clone, Default)]
pub struct Buf(Arc<Mutex<Vec<u8>>>);

pub struct BufWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for BufWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buf {
    type Writer = BufWriter;
    fn make_writer(&'a self) -> BufWriter {
        BufWriter(self.0.clone())
    }
}

impl Buf {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// `llm-usage ARGS`, which must succeed: its stdout and stderr.
pub fn llm_usage_ok(args: &[&str]) -> (String, String) {
    let out = assert_cmd::Command::cargo_bin("llm-usage")
        .unwrap()
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "llm-usage {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `llm-usage ARGS --format json`, which must succeed, its output parsed.
pub fn llm_usage_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    serde_json::from_str(&llm_usage_ok(&all).0).unwrap()
}

/// Parses JSONL text; every line must end in `\n`.
pub fn parse_lines(text: &str) -> Vec<Value> {
    assert!(text.is_empty() || text.ends_with('\n'), "torn last line");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn of_kind<'a>(lines: &'a [Value], event: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == event).collect()
}

pub fn calls(lines: &[Value]) -> Vec<&Value> {
    of_kind(lines, "llm_call")
}

pub fn summaries(lines: &[Value]) -> Vec<&Value> {
    of_kind(lines, "run_summary")
}

/// A dispatcher with the layer writing into a fresh buffer.
pub fn setup(builder: UsageLayerBuilder) -> (Dispatch, UsageHandle, UsageGuard, Buf) {
    let buf = Buf::default();
    let (layer, guard) = builder.jsonl_writer(buf.clone()).build().unwrap();
    let handle = layer.handle();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    (dispatch, handle, guard, buf)
}

/// A CA certificate (PEM) in `dir` that signed nothing the tests serve.
pub fn unrelated_ca(dir: &std::path::Path) -> std::path::PathBuf {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let path = dir.join("other-ca.crt");
    std::fs::write(&path, cert.pem()).unwrap();
    path
}

/// gpt-4o in the bundled table: 2.5e-6 a token in, 1e-5 out.
pub const GPT_4O: (f64, f64) = (2.5e-6, 1e-5);

/// A log the layer writes with a priced call, an unpriced model and a call without usage
/// (and a per-run USD budget that meets them), at fixed times on 2025-12-14:
///
/// | run | step | model | tokens | cost |
/// |---|---|---|---|---|
/// | run-known | draft | gpt-4o | 1,000 in, 100 out | 0.0035 |
/// | run-unknown | secret | acme-private | 500 in, 50 out | unpriced |
/// | run-unknown | stream | gpt-4o | none recorded | no usage |
/// | - | - | gpt-4o | 2,000 in | 0.005 |
pub fn unknowns_log(dir: &std::path::Path) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicI64, Ordering};
    use tracing::field::Empty;
    use tracing::{dispatcher, info_span};
    let t = Arc::new(AtomicI64::new(1_765_706_400_000));
    let (d, _handle, guard, buf) = setup(
        tracing_llm_usage::UsageLayer::builder()
            .prices(tracing_llm_usage::PriceTable::bundled())
            .clock(move || {
                tracing_llm_usage::Timestamp::from_unix_ms(t.fetch_add(1_000, Ordering::Relaxed))
            })
            .budget(tracing_llm_usage::Budget::per_run("run-usd").usd(1.0)),
    );
    dispatcher::with_default(&d, || {
        {
            let run = info_span!("run", run_id = "run-known");
            let _r = run.enter();
            drop(info_span!(
                "llm_call",
                step = "draft",
                model = "gpt-4o",
                provider = "openai",
                tokens.input = 1_000u64,
                tokens.output = 100u64
            ));
        }
        {
            let run = info_span!("run", run_id = "run-unknown");
            let _r = run.enter();
            drop(info_span!(
                "llm_call",
                step = "secret",
                model = "acme-private",
                provider = "acme",
                tokens.input = 500u64,
                tokens.output = 50u64
            ));
            drop(info_span!(
                "llm_call",
                step = "stream",
                model = "gpt-4o",
                provider = "openai",
                tokens.input = Empty,
                tokens.output = Empty
            ));
        }
        drop(info_span!(
            "llm_call",
            model = "gpt-4o",
            provider = "openai",
            tokens.input = 2_000u64,
            tokens.output = 0u64
        ));
    });
    drop(guard);
    let path = dir.join("llm_usage.2025-12-14.jsonl");
    std::fs::write(&path, buf.text()).unwrap();
    path
}

/// The tenants, prompt versions and models of [`attributed_log`].
pub const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
pub const VERSIONS: [&str; 2] = ["v1", "v2"];
pub const MODELS: [&str; 2] = ["model-a", "model-b"];
/// The per-tenant daily limit of [`attributed_log`]'s budget, in USD.
pub const TENANT_DAILY_USD: f64 = 0.04;

/// A service written by the layer over two days: each day one run per tenant (the tenant
/// recorded on the run span after it opened), each run 2 rounds × 2 prompt versions × 2
/// models (the version on the call span), globex's last call a failure; a per-tenant daily
/// budget. Prices are powers of two per token, so every sum is exact.
pub fn attributed_log(dir: &std::path::Path) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicI64, Ordering};
    use tracing::field::Empty;
    use tracing::{dispatcher, info_span};
    use tracing_llm_usage::{Budget, ModelPrice, PriceTable, Rates, Timestamp};
    let rates = |input: f64, output: f64| {
        ModelPrice::new(Rates {
            input: Some(input),
            output: Some(output),
            ..Rates::default()
        })
    };
    let prices = PriceTable::new()
        .with("model-a", rates(1.0 / 1_048_576.0, 1.0 / 262_144.0))
        .with("model-b", rates(1.0 / 131_072.0, 1.0 / 32_768.0));
    let t = Arc::new(AtomicI64::new(
        Timestamp::parse("2026-03-02T09:00:00.000Z")
            .unwrap()
            .unix_ms(),
    ));
    let clock = t.clone();
    let (d, _handle, guard, buf) = setup(
        tracing_llm_usage::UsageLayer::builder()
            .prices(prices)
            .attributes(["tenant", "prompt.version"])
            .budget(
                Budget::per_day("tenant-daily")
                    .usd(TENANT_DAILY_USD)
                    .each("tenant")
                    .warn_at(None),
            )
            .clock(move || Timestamp::from_unix_ms(clock.fetch_add(1_000, Ordering::SeqCst))),
    );
    dispatcher::with_default(&d, || {
        for day in 0..2i64 {
            t.store(
                Timestamp::parse("2026-03-02T09:00:00.000Z")
                    .unwrap()
                    .unix_ms()
                    + day * 86_400_000,
                Ordering::SeqCst,
            );
            for (ti, tenant) in TENANTS.iter().enumerate() {
                let run = info_span!("run", run_id = format!("{tenant}-{day}"), tenant = Empty);
                let _r = run.enter();
                run.record("tenant", *tenant);
                for round in 0..2u64 {
                    for (vi, version) in VERSIONS.iter().enumerate() {
                        for (mi, model) in MODELS.iter().enumerate() {
                            let input = 1_000 * (ti as u64 + 1)
                                + 100 * vi as u64
                                + 10 * mi as u64
                                + round
                                + 3 * day as u64;
                            let failed = ti == 1 && round == 1 && vi == 1 && mi == 1;
                            let span = info_span!(
                                "llm_call",
                                model = *model,
                                step = "answer",
                                prompt.version = *version,
                                tokens.input = input,
                                tokens.output = input / 10 + 7,
                                tokens.cache_read = input / 4 * vi as u64,
                                error = Empty
                            );
                            if failed {
                                span.record("error", "timeout");
                            }
                            drop(span);
                        }
                    }
                }
            }
        }
    });
    drop(guard);
    let path = dir.join("llm_usage.2026-03-02.jsonl");
    std::fs::write(&path, buf.text()).unwrap();
    path
}
