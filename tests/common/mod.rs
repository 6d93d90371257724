//! Helpers shared by the integration tests: an in-memory writer, schema validation, and
//! a subscriber made of the registry and our layer.
#![allow(dead_code)]

use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;
use tracing::Dispatch;
use tracing_llm_usage::{UsageGuard, UsageHandle, UsageLayerBuilder, JSONL_SCHEMA};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// A `MakeWriter` into a shared `Vec<u8>`.
#[derive(Clone, Default)]
pub struct Buf(pub Arc<Mutex<Vec<u8>>>);

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
    /// Every line, parsed and checked against the shipped JSON Schema.
    pub fn lines(&self) -> Vec<Value> {
        parse_lines(&self.text())
    }
}

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let schema: Value = serde_json::from_str(JSONL_SCHEMA).unwrap();
        jsonschema::validator_for(&schema).unwrap()
    })
}

/// Parses JSONL text; every line must end in `\n` and validate against the schema.
pub fn parse_lines(text: &str) -> Vec<Value> {
    assert!(text.is_empty() || text.ends_with('\n'), "torn last line");
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            if let Err(e) = validator().validate(&v) {
                panic!("line fails the schema: {e}\n{l}");
            }
            v
        })
        .collect()
}

pub fn calls(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["event"] == "llm_call").collect()
}

pub fn summaries(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| l["event"] == "run_summary")
        .collect()
}

pub fn summary<'a>(lines: &'a [Value], run_id: &str) -> &'a Value {
    let found: Vec<_> = summaries(lines)
        .into_iter()
        .filter(|l| l["run_id"] == run_id)
        .collect();
    assert_eq!(found.len(), 1, "one summary for {run_id}");
    found[0]
}

/// A dispatcher with our layer writing into a fresh buffer.
pub fn setup(builder: UsageLayerBuilder) -> (Dispatch, UsageHandle, UsageGuard, Buf) {
    let buf = Buf::default();
    let (layer, guard) = builder.jsonl_writer(buf.clone()).build().unwrap();
    let handle = layer.handle();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    (dispatch, handle, guard, buf)
}

/// The line without the fields that vary from run to run.
pub fn stable(line: &Value) -> Value {
    let mut v = line.clone();
    let o = v.as_object_mut().unwrap();
    o.remove("timestamp");
    o.remove("latency_ms");
    o.remove("elapsed_seconds");
    v
}

/// One HTTP/1.1 request read from a receiver's connection: its path, its headers (names in
/// lower case) and its body (Content-Length).
pub struct HttpRequest {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Serves one connection of a test receiver (plain or TLS): calls `handle` with each request
/// and answers `200 OK` with an empty protobuf body, until the client closes.
pub fn serve_http<S: io::Read + io::Write>(mut stream: S, mut handle: impl FnMut(HttpRequest)) {
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let head = String::from_utf8_lossy(&head).to_string();
        let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
        let headers: Vec<(String, String)> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        handle(HttpRequest {
            path,
            headers,
            body,
        });
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n",
        );
        let _ = stream.flush();
    }
}
