//! Spans a second through `llm-usage collect` on one core, replaying OTLP requests recorded
//! from the Python OpenAI instrumentations (`data/`, made by `benches/record_otlp.py`).
//!
//! The collector runs pinned to CPU 0 (`taskset`), writing JSONL to a temporary directory; this
//! process, pinned to CPU 1, sends the recorded spans over OTLP/HTTP keep-alive connections,
//! each request `BATCH` copies of a recording under fresh trace ids, for `SECONDS`. A busy
//! answer (503) is retried, so the rate is what the collector writes, not what it queues: spans
//! acknowledged over the time from the first request to the collector's exit after SIGTERM
//! (every trace replayed and written). The collector's resident memory is sampled as it runs.
//! The peer, timed in the same run on this process's core: decoding the same request bodies
//! with prost, the first thing the collector does with them.
//!
//! `cargo bench -p llm-usage --bench collect` (env: SECONDS=10, CONNECTIONS=4, BATCH=50, and
//! COLLECT_ARGS for more options of the collector, such as `--max-queued-bytes 8000000`)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The recorded requests of one file (4-byte big-endian length, then the body).
fn recorded(name: &str) -> Vec<ExportTraceServiceRequest> {
    let path = format!("{}/benches/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = Vec::new();
    let mut rest = &data[..];
    while rest.len() >= 4 {
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        out.push(ExportTraceServiceRequest::decode(&rest[4..4 + n]).expect("a recorded request"));
        rest = &rest[4 + n..];
    }
    out
}

fn span_count(req: &ExportTraceServiceRequest) -> u64 {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum()
}

/// `copies` of `req` in one request, each copy's traces under ids made from `seq`.
fn batch(req: &ExportTraceServiceRequest, copies: u64, seq: &AtomicU64) -> Vec<u8> {
    let mut out = ExportTraceServiceRequest::default();
    for _ in 0..copies {
        let n = seq.fetch_add(1, Ordering::Relaxed);
        let mut copy = req.clone();
        for span in copy
            .resource_spans
            .iter_mut()
            .flat_map(|r| &mut r.scope_spans)
            .flat_map(|s| &mut s.spans)
        {
            span.trace_id[..8].copy_from_slice(&n.to_be_bytes());
        }
        out.resource_spans.extend(copy.resource_spans);
    }
    out.encode_to_vec()
}

/// One keep-alive POST: the status.
fn post(stream: &mut BufReader<TcpStream>, body: &[u8]) -> std::io::Result<u16> {
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-protobuf\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let s = stream.get_mut();
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut line = String::new();
    stream.read_line(&mut line)?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        stream.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body)?;
    Ok(status)
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let seconds = env("SECONDS", 10);
    let connections = env("CONNECTIONS", 4);
    let copies = env("BATCH", 50);
    let me = std::process::id().to_string();
    let _ = Command::new("taskset")
        .args(["-p", "-c", "1", &me])
        .stdout(Stdio::null())
        .status();

    let recordings: Vec<(&str, ExportTraceServiceRequest)> =
        ["otlp-openai-v2.bin", "otlp-openllmetry.bin"]
            .into_iter()
            .flat_map(|n| recorded(n).into_iter().map(move |r| (n, r)))
            .collect();
    for (name, r) in &recordings {
        println!("{name}: {} spans, {} bytes", span_count(r), r.encoded_len());
    }

    // The peer: prost decoding the same bodies, spans a second.
    let seq = AtomicU64::new(1);
    let bodies: Vec<(Vec<u8>, u64)> = recordings
        .iter()
        .map(|(_, r)| (batch(r, copies, &seq), span_count(r) * copies))
        .collect();
    let start = Instant::now();
    let mut decoded = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        for (body, spans) in &bodies {
            let req = ExportTraceServiceRequest::decode(&body[..]).expect("decodes");
            std::hint::black_box(&req);
            decoded += spans;
        }
    }
    let decode_rate = decoded as f64 / start.elapsed().as_secs_f64();

    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut child = Command::new("taskset")
        .args([
            "-c",
            "0",
            env!("CARGO_BIN_EXE_llm-usage"),
            "collect",
            "--jsonl-dir",
        ])
        .arg(dir.path())
        .args([
            "--grpc",
            "off",
            "--http",
            "127.0.0.1:0",
            "--settle-ms",
            "200",
        ])
        .args(
            std::env::var("COLLECT_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .stderr(Stdio::piped())
        .spawn()
        .expect("taskset and llm-usage");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    let addr: SocketAddr = loop {
        line.clear();
        stderr.read_line(&mut line).expect("the collector starts");
        if let Some(a) = line.trim().strip_prefix("llm-usage collect: OTLP/HTTP on ") {
            break a.parse().expect("an address");
        }
        assert!(!line.is_empty(), "the collector exited");
    };

    let pid = child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let busy = Arc::new(AtomicU64::new(0));
    let recordings = Arc::new(recordings);
    let seq = Arc::new(AtomicU64::new(1 << 32));
    let started = Instant::now();
    let senders: Vec<_> = (0..connections)
        .map(|c| {
            let (stop, acked, busy, recs, seq) = (
                stop.clone(),
                acknowledged.clone(),
                busy.clone(),
                recordings.clone(),
                seq.clone(),
            );
            std::thread::spawn(move || {
                let mut stream = BufReader::new(TcpStream::connect(addr).expect("connect"));
                let mut i = c as usize;
                while !stop.load(Ordering::Relaxed) {
                    let (_, rec) = &recs[i % recs.len()];
                    i += 1;
                    let body = batch(rec, copies, &seq);
                    loop {
                        match post(&mut stream, &body).expect("the collector answers") {
                            200 => break,
                            503 => {
                                busy.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            other => panic!("status {other}"),
                        }
                    }
                    acked.fetch_add(span_count(rec) * copies, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut rss = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(500));
        rss.push(rss_kb(pid));
    }
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.join().expect("a sender");
    }
    let sent_for = started.elapsed();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    let status = child.wait().expect("the collector exits");
    assert!(status.success(), "{rest}");
    let total = started.elapsed();
    let spans = acknowledged.load(Ordering::Relaxed);
    let rate = spans as f64 / total.as_secs_f64();
    let written: usize = std::fs::read_dir(dir.path())
        .expect("the log directory")
        .map(|e| {
            std::fs::read_to_string(e.expect("an entry").path())
                .expect("a log")
                .lines()
                .count()
        })
        .sum();
    let at = |q: usize| rss[(rss.len() * q / 4).min(rss.len() - 1)] / 1024;
    println!(
        "collect, 1 core: {spans} spans in {:.1} s ({:.1} s sending, the rest replaying and \
         writing): {rate:.0} spans/s; {written} lines; {} busy answers",
        total.as_secs_f64(),
        sent_for.as_secs_f64(),
        busy.load(Ordering::Relaxed)
    );
    println!(
        "collector RSS at 1/4, 1/2, 3/4 and the end of the load: {} {} {} {} MB",
        at(1),
        at(2),
        at(3),
        at(4)
    );
    println!(
        "peer, prost decoding the same bodies: {decode_rate:.0} spans/s; collect / decode = {:.3}",
        rate / decode_rate
    );
    print!("{rest}");
}
