//! Any sequence of values, of every type the Visit API delivers, recorded into an `llm_call`
//! span under every field name the layer reads: no panic, and each line the JSONL writer
//! produces is one valid JSON object.
#![no_main]

use std::io;
use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use tracing::field::Empty;
use tracing::{dispatcher, info_span, Dispatch};
use tracing_llm_usage::{PriceTable, UsageLayer};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);
struct W(Arc<Mutex<Vec<u8>>>);
impl io::Write for W {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
impl<'a> MakeWriter<'a> for Buf {
    type Writer = W;
    fn make_writer(&'a self) -> W {
        W(self.0.clone())
    }
}

const FIELDS: [&str; 16] = [
    "tokens.input", "tokens.output", "tokens.total", "tokens.cache_read", "tokens.cache_write",
    "tokens.reasoning", "model", "provider", "step", "run_id", "cost_usd", "error",
    "prompt.system", "tokens.estimated", "service_tier", "gen_ai.usage.input_tokens",
];

fn record(span: &tracing::Span, field: &str, kind: u8, bytes: &[u8]) {
    let mut n = [0u8; 16];
    let k = bytes.len().min(16);
    n[..k].copy_from_slice(&bytes[..k]);
    let u = u128::from_le_bytes(n);
    match kind % 8 {
        0 => span.record(field, u as u64),
        1 => span.record(field, u as i64),
        2 => span.record(field, u),
        3 => span.record(field, u as i128),
        4 => span.record(field, f64::from_bits(u as u64)),
        5 => span.record(field, u & 1 == 1),
        6 => span.record(field, String::from_utf8_lossy(bytes).as_ref()),
        _ => span.record(field, tracing::field::debug(String::from_utf8_lossy(bytes))),
    };
}

fuzz_target!(|data: &[u8]| {
    let buf = Buf::default();
    let (layer, guard) = UsageLayer::builder()
        .jsonl_writer(buf.clone())
        .prices(PriceTable::new())
        .build()
        .expect("layer");
    let d = Dispatch::new(tracing_subscriber::registry().with(layer));
    dispatcher::with_default(&d, || {
        let run = info_span!("run", run_id = "fuzz");
        let _in_run = run.enter();
        let span = info_span!(
            "llm_call",
            tokens.input = Empty, tokens.output = Empty, tokens.total = Empty,
            tokens.cache_read = Empty, tokens.cache_write = Empty, tokens.reasoning = Empty,
            model = Empty, provider = Empty, step = Empty, run_id = Empty, cost_usd = Empty,
            error = Empty, prompt.system = Empty, tokens.estimated = Empty, service_tier = Empty,
            gen_ai.usage.input_tokens = Empty,
        );
        // Each record: field byte, kind byte, length byte, then that many value bytes.
        let mut rest = data;
        while rest.len() >= 3 {
            let (field, kind, len) = (rest[0], rest[1], rest[2] as usize);
            rest = &rest[3..];
            let len = len.min(rest.len());
            record(&span, FIELDS[field as usize % FIELDS.len()], kind, &rest[..len]);
            rest = &rest[len..];
        }
        drop(span);
    });
    drop(guard);
    let out = buf.0.lock().unwrap();
    assert!(out.ends_with(b"\n"));
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).expect("valid JSON line");
        assert!(v.is_object());
    }
});
