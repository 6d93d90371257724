//! Call records → OpenTelemetry metrics, with the GenAI semantic conventions' names (v1.41).
//!
//! | instrument | kind, unit | attributes |
//! |---|---|---|
//! | `gen_ai.client.token.usage` | histogram u64, `{token}`, buckets 1, 4, 16 … 67108864 | common + `gen_ai.token.type` (`input` / `output`) |
//! | `gen_ai.client.operation.duration` | histogram f64, `s`, buckets 0.01 … 81.92 | common + `error.type` on failure |
//! | `gen_ai.usage.cost` | histogram f64, `USD` | common (priced calls only) |
//! | `gen_ai.client.inference.usage.*` | counters u64, `{token}` | common + `gen_ai.token.modality`; opt-in |
//! | `gen_ai.client.inference.operation.{input_tokens,output_tokens}` | histograms u64, `{token}`, token buckets | common; opt-in |
//! | `gen_ai.client.inference.duration` | histogram f64, `s`, duration buckets | common + `error.type` on failure; opt-in |
//! | `gen_ai.client.inference.time_to_first_chunk` | histogram f64, `s`, duration buckets | common; streamed calls that report it; opt-in |
//!
//! The opt-in instruments are the GenAI conventions' latest (`OTEL_SEMCONV_STABILITY_OPT_IN`
//! with `gen_ai_latest_experimental`, or the builder's `latest_experimental_metrics`). The usage
//! counters carry `gen_ai.token.modality`: `text`, `image` or `audio` for what the provider
//! broke down by modality, `unknown` for the rest (all of it when there is no breakdown, and
//! always for cache writes and reasoning), so each counter's sum over modalities is the call's
//! count.
//!
//! Common attributes: `gen_ai.operation.name`, `gen_ai.provider.name`,
//! `gen_ai.request.model`, `gen_ai.response.model`, and this crate's `llm.step` and `llm.task`
//! (each capped in distinct values, the rest `__other__`; either can be turned off). Run ids and
//! agent or user ids are never attributes: they stay in the JSONL.
//!
//! Measurements are recorded by the sink's worker thread, not the caller's; every collection
//! first records whatever is still queued, so an export or a `force_flush` sees every call
//! that closed before it. Each attribute set's
//! attributes are built once; with the default `bound-instruments` feature its instruments are
//! bound to it, so a measurement does not hash the set again.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use opentelemetry::metrics::{Counter, Histogram, Meter, ObservableGauge};
use opentelemetry::{KeyValue, StringValue, Value};

use crate::name::Name;
use crate::record::CallRecord;

#[cfg(feature = "logs")]
pub mod logs;
mod series;
#[cfg(test)]
pub(crate) mod test_support;
use series::SeriesCache;

/// `gen_ai.client.token.usage` bucket boundaries: powers of 4 from 1 to 67,108,864.
pub(crate) const TOKEN_BUCKETS: [f64; 14] = [
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

/// `gen_ai.client.operation.duration` bucket boundaries: 0.01 s doubling to 81.92 s.
pub(crate) const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// `gen_ai.usage.cost` bucket boundaries, in USD: from a hundredth of a cent to $10 a call.
pub(crate) const COST_BUCKETS: [f64; 13] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

const OPERATION: &str = "gen_ai.operation.name";
const PROVIDER: &str = "gen_ai.provider.name";
const REQUEST_MODEL: &str = "gen_ai.request.model";
const RESPONSE_MODEL: &str = "gen_ai.response.model";
const TOKEN_TYPE: &str = "gen_ai.token.type";
const TOKEN_MODALITY: &str = "gen_ai.token.modality";
const ERROR_TYPE: &str = "error.type";
const STEP: &str = "llm.step";
const TASK: &str = "llm.task";

const TOKEN_USAGE: &str = "gen_ai.client.token.usage";
const DURATION: &str = "gen_ai.client.operation.duration";
const COST: &str = "gen_ai.usage.cost";
const UPCOMING: [&str; 5] = [
    "gen_ai.client.inference.usage.input_tokens",
    "gen_ai.client.inference.usage.output_tokens",
    "gen_ai.client.inference.usage.cache_read.input_tokens",
    "gen_ai.client.inference.usage.cache_write.input_tokens",
    "gen_ai.client.inference.usage.reasoning.output_tokens",
];

const OPERATION_INPUT: &str = "gen_ai.client.inference.operation.input_tokens";
const OPERATION_OUTPUT: &str = "gen_ai.client.inference.operation.output_tokens";
const INFERENCE_DURATION: &str = "gen_ai.client.inference.duration";
const TIME_TO_FIRST_CHUNK: &str = "gen_ai.client.inference.time_to_first_chunk";

/// The opt-in value of `OTEL_SEMCONV_STABILITY_OPT_IN` that enables the upcoming counters.
pub const LATEST_EXPERIMENTAL: &str = "gen_ai_latest_experimental";

/// Whether `OTEL_SEMCONV_STABILITY_OPT_IN` (a comma-separated list) opts in to the upcoming
/// GenAI names.
pub fn opted_in_from_env() -> bool {
    std::env::var("OTEL_SEMCONV_STABILITY_OPT_IN")
        .map(|v| v.split(',').any(|s| s.trim() == LATEST_EXPERIMENTAL))
        .unwrap_or(false)
}

/// Which metric attributes to add, and how many distinct values each may take.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MetricOptions {
    pub(crate) step: bool,
    pub(crate) task: bool,
    pub(crate) cap: usize,
    pub(crate) latest_experimental: bool,
}

/// Values seen for one attribute; past the cap, new values become `__other__`.
struct Capped {
    seen: RwLock<HashSet<Name>>,
    cap: usize,
}

/// One of the builder's `metric_attributes`: its name and the values it has taken.
pub(crate) struct MetricAttribute {
    name: Name,
    capped: Capped,
    other: Name,
}

/// The most attributes `metric_attributes` may add (each multiplies the series).
pub const MAX_METRIC_ATTRIBUTES: usize = 4;

impl MetricAttribute {
    /// The value `rec` gives this attribute, as the metrics carry it: one of the first `cap`
    /// values seen, else `__other__` (counted in `overflows`, warned about once).
    fn value(&self, rec: &CallRecord, overflows: &AtomicU64) -> Option<Name> {
        let v = rec.attributes.get(&self.name)?;
        let text = v.to_string();
        if let Ok(seen) = self.capped.seen.read() {
            if let Some(known) = seen.get(text.as_str()) {
                return Some(known.clone());
            }
        }
        let Ok(mut seen) = self.capped.seen.write() else {
            return Some(self.other.clone());
        };
        if let Some(known) = seen.get(text.as_str()) {
            return Some(known.clone());
        }
        if seen.len() < self.capped.cap {
            let name = Name::from(text.as_str());
            seen.insert(name.clone());
            return Some(name);
        }
        if overflows.fetch_add(1, Ordering::Relaxed) == 0 {
            eprintln!(
                "tracing-llm-usage: metric attribute \"{}\" has taken {} distinct values; the \
                 metrics carry later ones as __other__ (raise metric_attribute_cap, or keep this \
                 attribute to the lines)",
                crate::inert::terminal(&self.name),
                self.capped.cap
            );
        }
        Some(self.other.clone())
    }
}

impl Capped {
    fn new(cap: usize) -> Self {
        Self {
            seen: RwLock::new(HashSet::new()),
            cap,
        }
    }

    fn value(&self, v: &Name) -> Value {
        let known = self.seen.read().map(|s| s.contains(v)).unwrap_or(false);
        if known {
            return string(v);
        }
        let Ok(mut seen) = self.seen.write() else {
            return Value::from(crate::ledger::OTHER);
        };
        if seen.contains(v) || seen.len() < self.cap {
            seen.insert(v.clone());
            string(v)
        } else {
            Value::from(crate::ledger::OTHER)
        }
    }
}

/// The conventions' latest instruments (opt-in).
struct Upcoming {
    input: Counter<u64>,
    output: Counter<u64>,
    cache_read: Counter<u64>,
    cache_write: Counter<u64>,
    reasoning: Counter<u64>,
    operation_input: Histogram<u64>,
    operation_output: Histogram<u64>,
    duration: Histogram<f64>,
    time_to_first_chunk: Histogram<f64>,
}

impl Upcoming {
    /// The five usage counters, in the order of [`UPCOMING`].
    fn counters(&self) -> [&Counter<u64>; 5] {
        [
            &self.input,
            &self.output,
            &self.cache_read,
            &self.cache_write,
            &self.reasoning,
        ]
    }
}

/// The instruments, created once from the user's [`Meter`]; the sink worker
/// (`sink::queue`) records into them off the caller's thread.
pub(crate) struct Recorder {
    tokens: Histogram<u64>,
    duration: Histogram<f64>,
    cost: Histogram<f64>,
    upcoming: Option<Upcoming>,
    steps: Option<Capped>,
    tasks: Option<Capped>,
    /// The builder's `metric_attributes` (opt-in: none by default).
    attributes: Box<[MetricAttribute]>,
    /// Measurements whose attribute value became `__other__`.
    overflows: Arc<AtomicU64>,
    /// Attribute sets seen, with their instruments (the worker is the usual sole user).
    series: Mutex<SeriesCache>,
}

/// `error.type` must have few values: an identifier-like error is kept, anything else
/// (a message) is `_OTHER`, as the conventions say.
fn error_type(error: &str) -> Value {
    Value::from(error_type_text(error))
}

/// [`error_type`]'s text.
pub(crate) fn error_type_text(error: &str) -> String {
    let identifier = !error.is_empty()
        && error.len() <= 64
        && error
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if identifier {
        error.to_owned()
    } else {
        "_OTHER".to_owned()
    }
}

fn string(v: &Name) -> Value {
    Value::String(StringValue::from(v))
}

impl Recorder {
    #[cfg(test)]
    pub(crate) fn new(meter: &Meter, opts: MetricOptions) -> Self {
        Self::with_attributes(meter, opts, &[], Arc::default())
    }

    /// Instruments that also carry `attributes` (the builder's `metric_attributes`).
    pub(crate) fn with_attributes(
        meter: &Meter,
        opts: MetricOptions,
        attributes: &[Name],
        overflows: Arc<AtomicU64>,
    ) -> Self {
        let counter = |name: &'static str, what: &'static str| {
            meter
                .u64_counter(name)
                .with_unit("{token}")
                .with_description(what)
                .build()
        };
        Self {
            tokens: meter
                .u64_histogram(TOKEN_USAGE)
                .with_unit("{token}")
                .with_description("Number of input and output tokens used.")
                .with_boundaries(TOKEN_BUCKETS.to_vec())
                .build(),
            duration: meter
                .f64_histogram(DURATION)
                .with_unit("s")
                .with_description("GenAI operation duration.")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            cost: meter
                .f64_histogram(COST)
                .with_unit("USD")
                .with_description("Cost of GenAI calls whose price is known.")
                .with_boundaries(COST_BUCKETS.to_vec())
                .build(),
            upcoming: opts.latest_experimental.then(|| Upcoming {
                input: counter(UPCOMING[0], "Input tokens, cache included."),
                output: counter(UPCOMING[1], "Output tokens, reasoning included."),
                cache_read: counter(UPCOMING[2], "Input tokens read from the cache."),
                cache_write: counter(UPCOMING[3], "Input tokens written to the cache."),
                reasoning: counter(UPCOMING[4], "Output tokens spent on reasoning."),
                operation_input: meter
                    .u64_histogram(OPERATION_INPUT)
                    .with_unit("{token}")
                    .with_description("Input tokens per inference operation.")
                    .with_boundaries(TOKEN_BUCKETS.to_vec())
                    .build(),
                operation_output: meter
                    .u64_histogram(OPERATION_OUTPUT)
                    .with_unit("{token}")
                    .with_description("Output tokens per inference operation.")
                    .with_boundaries(TOKEN_BUCKETS.to_vec())
                    .build(),
                duration: meter
                    .f64_histogram(INFERENCE_DURATION)
                    .with_unit("s")
                    .with_description("Duration of a GenAI inference operation.")
                    .with_boundaries(DURATION_BUCKETS.to_vec())
                    .build(),
                time_to_first_chunk: meter
                    .f64_histogram(TIME_TO_FIRST_CHUNK)
                    .with_unit("s")
                    .with_description("Time to the first chunk of a streamed response.")
                    .with_boundaries(DURATION_BUCKETS.to_vec())
                    .build(),
            }),
            steps: opts.step.then(|| Capped::new(opts.cap)),
            tasks: opts.task.then(|| Capped::new(opts.cap)),
            attributes: attributes
                .iter()
                .take(MAX_METRIC_ATTRIBUTES)
                .map(|name| MetricAttribute {
                    name: name.clone(),
                    capped: Capped::new(opts.cap),
                    other: Name::from(crate::ledger::OTHER),
                })
                .collect(),
            overflows,
            series: Mutex::default(),
        }
    }

    /// Records finished calls (the series cache is locked once for all of them).
    pub(crate) fn record_all<'a>(&self, recs: impl IntoIterator<Item = &'a CallRecord>) {
        let mut cache = self.series.lock().unwrap_or_else(|p| p.into_inner());
        for rec in recs {
            cache.get(self, rec).record(self, rec);
        }
    }

    /// The values of the metric attributes for `rec`, in order (`None`: no value).
    fn attribute_values(&self, rec: &CallRecord) -> [Option<Name>; MAX_METRIC_ATTRIBUTES] {
        let mut out: [Option<Name>; MAX_METRIC_ATTRIBUTES] = Default::default();
        if rec.attributes.is_empty() {
            return out;
        }
        for (slot, a) in out.iter_mut().zip(self.attributes.iter()) {
            *slot = a.value(rec, &self.overflows);
        }
        out
    }

    /// The attributes every measurement of `rec` carries (token type and error aside).
    fn common_attributes(
        &self,
        rec: &CallRecord,
        values: &[Option<Name>; MAX_METRIC_ATTRIBUTES],
    ) -> Vec<KeyValue> {
        let mut attrs: Vec<KeyValue> = Vec::with_capacity(8);
        attrs.push(KeyValue::new(OPERATION, string(&rec.operation)));
        if let Some(p) = &rec.provider {
            attrs.push(KeyValue::new(PROVIDER, string(p)));
        }
        if let Some(m) = &rec.request_model {
            attrs.push(KeyValue::new(REQUEST_MODEL, string(m)));
        }
        if let Some(m) = &rec.model {
            attrs.push(KeyValue::new(RESPONSE_MODEL, string(m)));
        }
        if let (Some(capped), Some(step)) = (&self.steps, &rec.step) {
            attrs.push(KeyValue::new(STEP, capped.value(step)));
        }
        if let (Some(capped), Some(task)) = (&self.tasks, &rec.task) {
            attrs.push(KeyValue::new(TASK, capped.value(task)));
        }
        for (a, v) in self.attributes.iter().zip(values) {
            if let Some(v) = v {
                attrs.push(KeyValue::new(a.name.to_string(), string(v)));
            }
        }
        attrs
    }
}

/// Registers `f` to run before each collection reads the instruments: the reader runs the
/// callbacks of observable instruments first. The gauge observes nothing, so it is never
/// exported; it lives as long as the returned handle.
pub(crate) fn before_collection(
    meter: &Meter,
    f: impl Fn() + Send + Sync + 'static,
) -> ObservableGauge<u64> {
    meter
        .u64_observable_gauge("llm_usage.internal.flush")
        .with_callback(move |_| f())
        .build()
}
