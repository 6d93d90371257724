//! `--otlp-metrics`: the receiver's own counters, beside the layer's usage metrics.
//!
//! | instrument | attribute `outcome` |
//! |---|---|
//! | `llm_usage.collect.requests` | `taken`, `busy`, `malformed`, `unauthorized` |
//! | `llm_usage.collect.spans` | `taken`, `rejected` |
//! | `llm_usage.collect.traces` | `replayed`, `incomplete`, `early`, `without_calls` |
//! | `llm_usage.collect.forwarded` | `sent`, `dropped` |

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use opentelemetry::metrics::{Meter, ObservableCounter};
use opentelemetry::KeyValue;
use tracing_llm_usage::replay::ReplayStats;

use super::forward::ForwardCounts;
use super::intake::Intake;

/// What the counters read.
#[derive(Clone)]
pub(super) struct Sources {
    pub(super) intake: Arc<Intake>,
    pub(super) replay: Arc<Mutex<ReplayStats>>,
    pub(super) forward: Option<Arc<ForwardCounts>>,
}

fn n(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Registers the counters on `meter`; they are observed at each export while the returned
/// instruments live.
pub(super) fn register(meter: &Meter, sources: &Sources) -> Vec<ObservableCounter<u64>> {
    let outcome = |v: &'static str| [KeyValue::new("outcome", v)];
    let s = sources.clone();
    let requests = meter
        .u64_observable_counter("llm_usage.collect.requests")
        .with_description("OTLP trace requests received, by outcome")
        .with_callback(move |o| {
            let c = &s.intake.counters;
            o.observe(n(&c.requests).saturating_sub(n(&c.busy)), &outcome("taken"));
            o.observe(n(&c.busy), &outcome("busy"));
            o.observe(n(&c.malformed), &outcome("malformed"));
            o.observe(n(&c.unauthorized), &outcome("unauthorized"));
        })
        .build();
    let s = sources.clone();
    let spans = meter
        .u64_observable_counter("llm_usage.collect.spans")
        .with_description("Spans received, by outcome")
        .with_callback(move |o| {
            let c = &s.intake.counters;
            o.observe(n(&c.spans), &outcome("taken"));
            o.observe(n(&c.rejected_spans), &outcome("rejected"));
        })
        .build();
    let s = sources.clone();
    let traces = meter
        .u64_observable_counter("llm_usage.collect.traces")
        .with_description("Traces replayed into the usage log, by outcome")
        .with_callback(move |o| {
            let r = s.replay.lock().unwrap_or_else(|p| p.into_inner()).clone();
            o.observe(r.traces_replayed, &outcome("replayed"));
            o.observe(r.traces_incomplete, &outcome("incomplete"));
            o.observe(r.traces_overflowed, &outcome("early"));
            o.observe(r.traces_without_calls, &outcome("without_calls"));
        })
        .build();
    let mut all = vec![requests, spans, traces];
    if let Some(f) = sources.forward.clone() {
        all.push(
            meter
                .u64_observable_counter("llm_usage.collect.forwarded")
                .with_description("Requests passed on by --forward, by outcome")
                .with_callback(move |o| {
                    o.observe(n(&f.forwarded), &outcome("sent"));
                    o.observe(n(&f.dropped), &outcome("dropped"));
                })
                .build(),
        );
    }
    all
}
