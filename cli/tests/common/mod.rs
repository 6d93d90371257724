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

/// Parses JSONL text; every line must end in `\n`.
/// `llm-usage ARGS --format json`, which must succeed, its output parsed.
pub fn llm_usage_json(args: &[&str]) -> Value {
    let out = assert_cmd::Command::cargo_bin("llm-usage")
        .unwrap()
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "llm-usage {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

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
