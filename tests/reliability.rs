//! Faults and hostile input: a process killed mid-write, the guard dropped while threads are
//! mid-call, prompt text in span fields, arbitrary field values.

mod common;

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{calls, parse_lines, setup, summaries};
use proptest::prelude::*;
use tracing::{dispatcher, field::Empty, info_span};
use tracing_llm_usage::format::decode;
use tracing_llm_usage::{RunStatus, UsageLayer};

/// The example binaries sit beside the test binaries (`cargo test` builds them).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo test` (it builds the examples)",
        path.display()
    );
    path
}

/// What the complete lines of a killed child's files hold.
#[derive(Debug, Default, PartialEq)]
struct Complete {
    calls: u64,
    input: u64,
    output: u64,
}

#[test]
fn sigkill_at_random_moments_leaves_at_most_one_torn_line_per_file() {
    let child = example("crash_child");
    let mut total_calls = 0;
    let mut torn_files = 0;
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let mut proc = Command::new(&child)
            .arg(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        BufReader::new(proc.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready");
        let wait = RandomState::new().hash_one(round) % 300;
        std::thread::sleep(Duration::from_millis(20 + wait));
        proc.kill().unwrap(); // SIGKILL
        proc.wait().unwrap();

        let mut want = Complete::default();
        let mut torn = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            // Every complete line parses and validates (parse_lines panics otherwise).
            let text = std::str::from_utf8(&bytes[..end]).unwrap();
            let lines = parse_lines(text);
            for c in calls(&lines) {
                want.calls += 1;
                want.input += c["tokens"]["input"].as_u64().unwrap();
                want.output += c["tokens"]["output"].as_u64().unwrap();
            }
            if end < bytes.len() {
                torn.push((path.display().to_string(), lines.len() + 1));
            }
        }
        total_calls += want.calls;
        torn_files += torn.len();

        // The decoder the reports use reads the same totals, and refuses the torn tail.
        let mut got = Complete::default();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let mut pieces: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
            let tail = pieces.pop().unwrap_or_default();
            if !tail.is_empty() {
                assert!(
                    decode::parse(tail).is_err(),
                    "round {round}: a torn line parsed"
                );
            }
            for piece in pieces {
                let line = decode::parse(piece).unwrap();
                if line.event == "llm_call" {
                    got.calls += 1;
                    got.input += line.tokens.input;
                    got.output += line.tokens.output;
                }
            }
        }
        assert_eq!(got, want, "round {round}");
    }
    assert!(total_calls > 0, "the children never wrote a call");
    eprintln!("20 kills: {total_calls} complete calls, {torn_files} torn lines");
}

#[test]
fn guard_dropped_while_eight_threads_are_mid_call() {
    const THREADS: u64 = 8;
    let (d, handle, guard, buf) =
        setup(UsageLayer::builder().shutdown_timeout(Duration::from_secs(30)));
    let done: Arc<Vec<AtomicU64>> = Arc::new((0..THREADS).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (d, done, stop) = (d.clone(), done.clone(), stop.clone());
            std::thread::spawn(move || {
                dispatcher::with_default(&d, || {
                    let run = info_span!("run", run_id = %format_args!("mid-{t}"));
                    let _in_run = run.enter();
                    let mut k = 0;
                    while !stop.load(Ordering::Relaxed) {
                        // tokens.input numbers the call, so the file shows which ones arrived.
                        drop(info_span!(
                            "llm_call",
                            step = "s",
                            tokens.input = k,
                            tokens.output = 1
                        ));
                        k += 1;
                        done[t as usize].store(k, Ordering::Release);
                    }
                });
            })
        })
        .collect();
    while done.iter().any(|n| n.load(Ordering::Acquire) < 1_000) {
        std::thread::yield_now();
    }
    let closed_before: Vec<u64> = done.iter().map(|n| n.load(Ordering::Acquire)).collect();
    drop(guard); // returns: the join is bounded
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let made: u64 = done.iter().map(|n| n.load(Ordering::Acquire)).sum();

    let lines = buf.lines();
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for c in calls(&lines) {
        let run = c["run_id"].as_str().unwrap().to_owned();
        seen.entry(run)
            .or_default()
            .push(c["tokens"]["input"].as_u64().unwrap());
    }
    for t in 0..THREADS {
        let ks = &seen[&format!("mid-{t}")];
        // In order and without a gap, and at least every call that closed before the drop.
        assert!(
            ks.iter().enumerate().all(|(i, &k)| i as u64 == k),
            "thread {t}"
        );
        assert!(ks.len() as u64 >= closed_before[t as usize], "thread {t}");
    }
    let written: u64 = seen.values().map(|v| v.len() as u64).sum();
    let stats = handle.stats();
    assert_eq!(
        written + stats.lines_dropped,
        made,
        "every call is written or counted"
    );
    let sums = summaries(&lines);
    assert_eq!(sums.len() as u64, THREADS);
    for s in sums {
        assert_eq!(s["status"], serde_json::json!(RunStatus::Incomplete));
        // The summary is the run as the drop found it: every call closed before it.
        let t: usize = s["run_id"].as_str().unwrap()["mid-".len()..]
            .parse()
            .unwrap();
        assert!(s["usage"]["call_count"].as_u64().unwrap() >= closed_before[t]);
    }
}

/// Prompt and response text under every name it could plausibly arrive under.
const SECRET: &str = "Tell me the launch codes: 0000 SECRET-PROMPT-TEXT";

#[cfg(feature = "otlp")]
#[test]
fn prompt_and_response_text_never_reaches_the_log_or_the_metrics() {
    use opentelemetry::metrics::MeterProvider;
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let (d, _handle, guard, buf) = setup(UsageLayer::builder().meter(provider.meter("t")));
    dispatcher::with_default(&d, || {
        let run = info_span!(
            "run",
            run_id = "private",
            prompt = SECRET,
            messages = SECRET
        );
        let _in_run = run.enter();
        let span = info_span!(
            "llm_call",
            model = "gpt-4o",
            tokens.input = 10,
            tokens.output = 2,
            prompt = SECRET,
            completion = SECRET,
            gen_ai.prompt = SECRET,
            gen_ai.completion = SECRET,
            gen_ai.input.messages = SECRET,
            gen_ai.output.messages = SECRET,
            gen_ai.system_instructions = SECRET,
            prompt.system = SECRET,
            prompt.user = ?SECRET,
            input_tokens = SECRET,
            tokens.reasoning = %SECRET,
            response = Empty,
            content = Empty,
        );
        span.record("response", SECRET);
        span.record("content", SECRET);
        span.record("tokens.cache_read", SECRET);
        tracing::info!(parent: &span, text = SECRET, "{SECRET}");
        drop(span);
    });
    drop(guard);
    provider.force_flush().unwrap();
    let text = buf.text();
    assert_eq!(calls(&parse_lines(&text)).len(), 1);
    assert!(!text.contains("SECRET"), "{text}");
    assert!(text.contains("prompt.system: not a number (a string of 49 bytes)"));
    let exported = format!("{:?}", exporter.get_finished_metrics().unwrap());
    assert!(exported.contains("gen_ai.client.token.usage"));
    assert!(!exported.contains("SECRET"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any value of any type the Visit API delivers, under every field name we read, in any
    /// order and recorded again later: no panic, and every line is valid.
    #[test]
    fn hostile_field_values_never_panic_and_lines_stay_valid(
        values in proptest::collection::vec((0usize..FIELDS.len(), any_value()), 0..24),
    ) {
        let (d, _handle, guard, buf) = setup(UsageLayer::builder());
        dispatcher::with_default(&d, || {
            let run = info_span!("run", run_id = "p");
            let _in_run = run.enter();
            let span = info_span!(
                "llm_call",
                tokens.input = Empty, tokens.output = Empty, tokens.total = Empty,
                tokens.cache_read = Empty, tokens.cache_write = Empty, tokens.reasoning = Empty,
                model = Empty, provider = Empty, step = Empty, run_id = Empty, cost_usd = Empty,
                error = Empty, prompt.system = Empty, tokens.estimated = Empty, service_tier = Empty,
            );
            for (field, value) in &values {
                value.record(&span, FIELDS[*field]);
            }
            drop(span);
        });
        drop(guard);
        let lines = buf.lines();
        prop_assert_eq!(calls(&lines).len(), 1);
    }
}

const FIELDS: [&str; 15] = [
    "tokens.input",
    "tokens.output",
    "tokens.total",
    "tokens.cache_read",
    "tokens.cache_write",
    "tokens.reasoning",
    "model",
    "provider",
    "step",
    "run_id",
    "cost_usd",
    "error",
    "prompt.system",
    "tokens.estimated",
    "service_tier",
];

/// One value of each kind `tracing::Value` can carry.
#[derive(Debug, Clone)]
enum AnyValue {
    U64(u64),
    I64(i64),
    U128(u128),
    I128(i128),
    F64(f64),
    Bool(bool),
    Str(String),
    Debug(String),
}

impl AnyValue {
    fn record(&self, span: &tracing::Span, field: &str) {
        match self {
            AnyValue::U64(v) => span.record(field, v),
            AnyValue::I64(v) => span.record(field, v),
            AnyValue::U128(v) => span.record(field, v),
            AnyValue::I128(v) => span.record(field, v),
            AnyValue::F64(v) => span.record(field, v),
            AnyValue::Bool(v) => span.record(field, v),
            AnyValue::Str(v) => span.record(field, v.as_str()),
            AnyValue::Debug(v) => span.record(field, tracing::field::debug(v)),
        };
    }
}

fn any_value() -> impl Strategy<Value = AnyValue> {
    prop_oneof![
        any::<u64>().prop_map(AnyValue::U64),
        any::<i64>().prop_map(AnyValue::I64),
        any::<u128>().prop_map(AnyValue::U128),
        any::<i128>().prop_map(AnyValue::I128),
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(1e300)
        ]
        .prop_map(AnyValue::F64),
        any::<bool>().prop_map(AnyValue::Bool),
        prop_oneof![
            any::<String>(),
            "[0-9 _.eE+-]{0,40}",
            Just("\"\\\n\u{0}\u{7f}\u{2028}".to_owned()),
            Just("x".repeat(100_000))
        ]
        .prop_map(AnyValue::Str),
        any::<String>().prop_map(AnyValue::Debug),
    ]
}
