//! Spans of other processes, counted as the layer counts its own.
//!
//! A service in another language that is instrumented the OpenTelemetry way sends its spans
//! over OTLP; `llm-usage collect` decodes them and hands them to a [`Replayer`], which holds
//! each trace until it is whole and then replays it, span by span, through a [`UsageLayer`]:
//! the same table of field names, the same rules for calls, runs, steps and attributes, the
//! same lines. Only the attributes the layer reads are kept (token counts, model, provider,
//! operation, step, task, agent, run id, the builder's attributes); prompt and response
//! content never is.
//!
//! A call belongs to the run named by its nearest ancestor with a run id attribute
//! (`run_id`, `llm.run_id`: [`ReplayerBuilder::run_id_attributes`]); a trace with calls
//! outside any such span is a run of its own, whose id is the trace id in hex.
//!
//! ```
//! use std::time::Instant;
//! use tracing_llm_usage::replay::{ForeignSpan, ForeignValue, Replayer};
//! use tracing_llm_usage::UsageLayer;
//!
//! let (layer, guard) = UsageLayer::builder().jsonl_writer(std::io::sink).build()?;
//! let usage = layer.handle();
//! let mut replayer = Replayer::builder(layer).build();
//! let attributes = [
//!     ("gen_ai.operation.name", ForeignValue::Str("chat")),
//!     ("gen_ai.request.model", ForeignValue::Str("gpt-4o")),
//!     ("gen_ai.usage.input_tokens", ForeignValue::Int(1200)),
//!     ("gen_ai.usage.output_tokens", ForeignValue::Int(300)),
//!     ("gen_ai.input.messages", ForeignValue::Str("never kept")),
//! ];
//! replayer.add(&ForeignSpan {
//!     trace_id: [7; 16],
//!     span_id: [1; 8],
//!     parent_span_id: None,
//!     name: "chat gpt-4o",
//!     start_unix_nano: 1_765_000_000_000_000_000,
//!     end_unix_nano: 1_765_000_001_500_000_000,
//!     error: None,
//!     attributes: &attributes,
//! }, Instant::now())?;
//! replayer.finish(); // at shutdown: every trace held is replayed
//! let run = usage.run("07070707070707070707070707070707").expect("the trace is a run");
//! assert_eq!((run.usage.input_tokens, run.usage.output_tokens), (1200, 300));
//! drop(guard);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod callsites;
mod input;
mod pending;
mod walk;

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use tracing_core::Dispatch;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::Registry;

use crate::fields::{is_call_field, is_inference, is_operation, is_usage_field};
use crate::layer::Inner;
use crate::record::Timestamp;
use crate::UsageLayer;
pub(crate) use callsites::TARGET;
pub use input::{ForeignSpan, ForeignValue, Refused};
use pending::{Kept, Pending, Stored};

/// What a replayed span carries for the layer: its own times and ids, and whether its trace
/// was whole. Put in the span's extensions before it closes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Replayed {
    pub(crate) end: Timestamp,
    pub(crate) duration: Duration,
    pub(crate) ids: ([u8; 16], [u8; 8]),
    pub(crate) incomplete: bool,
}

/// Attributes that carry prompt or response content: never kept, whatever the builder's
/// attributes name.
fn is_content(key: &str) -> bool {
    const PREFIXES: [&str; 8] = [
        "gen_ai.input.",
        "gen_ai.output.",
        "gen_ai.prompt",
        "gen_ai.completion",
        "gen_ai.system_instructions",
        "gen_ai.tool.call.",
        "llm.prompts",
        "llm.completions",
    ];
    PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Turns the spans of other processes into the layer's lines. See the [module](self) docs.
#[must_use = "a replayer writes nothing until spans are added and it is polled or finished"]
pub struct Replayer {
    /// The registry and the layer, as the default dispatcher while a trace is replayed: the
    /// registry closes a parent span through the default dispatcher when its last child goes.
    dispatch: Dispatch,
    inner: Arc<Inner>,
    pending: Pending,
    run_id_keys: Box<[Box<str>]>,
    /// The layer's call span name, made `'static` once.
    call_name: &'static str,
    stats: ReplayStats,
}

impl std::fmt::Debug for Replayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replayer")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Replayer`].
///
/// | option | default |
/// |---|---|
/// | [`settle`](Self::settle) | 1 s |
/// | [`idle_timeout`](Self::idle_timeout) | 30 s |
/// | [`max_spans`](Self::max_spans) | 500,000 |
/// | [`run_id_attributes`](Self::run_id_attributes) | `run_id`, `llm.run_id` |
#[derive(Debug)]
#[must_use = "call .build()"]
pub struct ReplayerBuilder {
    layer: UsageLayer,
    settle: Duration,
    idle: Duration,
    max_spans: usize,
    run_id_keys: Vec<String>,
}

impl ReplayerBuilder {
    /// How long a trace whose root span has come waits for more spans before it is replayed
    /// (spans of one trace may come in several requests, children before their parents).
    pub fn settle(mut self, d: Duration) -> Self {
        self.settle = d;
        self
    }

    /// How long a trace whose root span never came waits after its last span; it is then
    /// replayed, and its runs' summaries say `incomplete`.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle = d;
        self
    }

    /// The most spans held at once; past it, the traces fed least recently are replayed
    /// early, incomplete (counted in [`ReplayStats::traces_overflowed`]).
    pub fn max_spans(mut self, n: usize) -> Self {
        self.max_spans = n;
        self
    }

    /// The attributes that name a run, in order of preference.
    pub fn run_id_attributes<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.run_id_keys = names.into_iter().map(Into::into).collect();
        self
    }

    /// The replayer.
    pub fn build(self) -> Replayer {
        let inner = self.layer.inner.clone();
        let call_name = callsites::callsites()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .name(&inner.span_name)
            .unwrap_or("llm_call");
        Replayer {
            dispatch: Dispatch::new(Registry::default().with(self.layer)),
            inner,
            pending: Pending::new(self.settle, self.idle, self.max_spans),
            run_id_keys: self.run_id_keys.into_iter().map(Into::into).collect(),
            call_name,
            stats: ReplayStats::default(),
        }
    }
}

/// What a [`Replayer`] has done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayStats {
    /// Spans taken.
    pub spans_received: u64,
    /// Spans refused (no trace or span id).
    pub spans_refused: u64,
    /// Traces replayed.
    pub traces_replayed: u64,
    /// Traces replayed without their root span, or with spans whose parent never came.
    pub traces_incomplete: u64,
    /// Traces replayed early because too many spans were held.
    pub traces_overflowed: u64,
    /// Traces with nothing the layer reads, dropped unreplayed.
    pub traces_without_calls: u64,
    /// Attributes not kept because the table of names or callsites was full.
    pub attributes_dropped: u64,
    /// Spans held now.
    pub spans_pending: u64,
    /// Traces held now.
    pub traces_pending: u64,
}

impl Replayer {
    /// A builder with the defaults; `layer` writes the lines (build it as for a service:
    /// JSONL directory, store, prices, attributes, budgets).
    pub fn builder(layer: UsageLayer) -> ReplayerBuilder {
        ReplayerBuilder {
            layer,
            settle: Duration::from_secs(1),
            idle: Duration::from_secs(30),
            max_spans: 500_000,
            run_id_keys: vec!["run_id".into(), "llm.run_id".into()],
        }
    }

    /// Takes a span; what the layer does not read of it is dropped at once. Traces pushed
    /// over [`ReplayerBuilder::max_spans`] are replayed now.
    pub fn add(&mut self, span: &ForeignSpan<'_>, now: Instant) -> Result<(), Refused> {
        self.stats.spans_received += 1;
        if let Err(e) = span.check() {
            self.stats.spans_refused += 1;
            return Err(e);
        }
        let stored = self.store(span);
        self.pending.add(span.trace_id, stored, now);
        for (id, trace, whole) in self.pending.overflow() {
            self.stats.traces_overflowed += 1;
            self.replay(id, trace, whole);
        }
        Ok(())
    }

    /// Replays the traces that are ready at `now`; returns how many.
    pub fn poll(&mut self, now: Instant) -> usize {
        let ready = self.pending.ready(now);
        let n = ready.len();
        for (id, trace, whole) in ready {
            self.replay(id, trace, whole);
        }
        n
    }

    /// Replays every trace held (at shutdown): those without their root are incomplete.
    pub fn finish(&mut self) {
        for (id, trace, whole) in self.pending.drain() {
            self.replay(id, trace, whole);
        }
    }

    /// What the replayer has done so far.
    pub fn stats(&self) -> ReplayStats {
        ReplayStats {
            spans_pending: self.pending.spans() as u64,
            traces_pending: self.pending.traces() as u64,
            ..self.stats.clone()
        }
    }

    /// What the layer reads of a span.
    fn store(&mut self, span: &ForeignSpan<'_>) -> Stored {
        let mut table = callsites::callsites()
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut fields: Vec<(&'static str, Kept)> = Vec::new();
        for &(key, value) in span.attributes {
            let value = match value {
                ForeignValue::Str(s) => Kept::Str(Box::from(s)),
                ForeignValue::Int(i) => Kept::Int(i),
                ForeignValue::Double(d) => Kept::Double(d),
                ForeignValue::Bool(b) => Kept::Bool(b),
                ForeignValue::Other => continue,
            };
            let name = if self.run_id_keys.iter().any(|k| &**k == key) {
                "run_id"
            } else if is_content(key)
                || !(is_call_field(key) || self.inner.attribute_keys.index(key).is_some())
            {
                continue;
            } else {
                match table.name(key) {
                    Some(n) => n,
                    None => {
                        self.stats.attributes_dropped += 1;
                        continue;
                    }
                }
            };
            // Keys are unique in OTLP; two run id attributes: the first wins.
            if fields.iter().all(|(n, _)| *n != name) {
                fields.push((name, value));
            }
        }
        let name = if span.name == self.call_name {
            Some(self.call_name)
        } else {
            let op = span.name.rsplit('.').next().unwrap_or(span.name);
            if is_operation(op, &self.inner.inference_operations) {
                table.name(op)
            } else {
                None
            }
        };
        // An inference span without usage (a failed request) is still a call: it declares
        // the usage it never recorded, as a client's span declares it before the response.
        let inference = |op: &str| is_inference(op, &self.inner.inference_operations);
        let op_value = fields.iter().find_map(|(n, v)| match v {
            Kept::Str(op) if *n == "gen_ai.operation.name" => Some(&**op),
            _ => None,
        });
        if op_value.map_or(name.is_some_and(inference), inference)
            && !fields.iter().any(|(n, _)| is_usage_field(n))
        {
            fields.push(("gen_ai.usage.input_tokens", Kept::Empty));
        }
        if let Some(message) = span.error {
            let marked = fields
                .iter()
                .any(|(n, _)| *n == "error" || *n == "error.type");
            if !marked && (name.is_some() || !fields.is_empty()) {
                let text = if message.is_empty() { "error" } else { message };
                fields.push(("error", Kept::Str(Box::from(text))));
            }
        }
        // One order for one set of names: one callsite.
        fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
        Stored {
            span_id: span.span_id,
            parent: span.parent_span_id.filter(|p| *p != [0; 8]),
            name,
            start_unix_nano: span.start_unix_nano,
            end_unix_nano: span.end_unix_nano.max(span.start_unix_nano),
            fields,
        }
    }
}

/// Whether a kept span is a call the trace must find a run for.
fn calls(s: &Stored, call_name: &str) -> bool {
    s.name == Some(call_name)
        || s.fields
            .iter()
            .any(|(k, _)| is_usage_field(k) || *k == "gen_ai.operation.name")
}

/// The replayer's subscriber.
type Replaying = Layered<UsageLayer, Registry>;
