//! What the layer sees but cannot count: spans with usage that are not calls, call and run
//! callsites a filter of the whole subscriber disables, nested call spans that repeat
//! their inner span's usage, and calls that closed without any usage. Each is reported once
//! per callsite on stderr and counted for [`crate::LayerStats`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tracing_core::{Metadata, Subscriber};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use super::attribution::{ScopeState, Uncounted};
use super::Inner;

/// Spans whose usage the layer cannot count: reported once per callsite on stderr and
/// counted for [`crate::LayerStats`].
#[derive(Default)]
pub(crate) struct BlindSpots {
    /// Spans that recorded token usage but are not calls.
    pub(crate) uncounted_spans: AtomicU64,
    /// Call and run callsites that a filter of the whole subscriber disables.
    pub(crate) disabled_callsites: AtomicU64,
    /// Call spans whose usage an enclosed call span had already counted.
    pub(crate) nested_duplicates: AtomicU64,
    /// Calls that closed with no token count recorded.
    pub(crate) no_usage_calls: AtomicU64,
    /// (what, callsite) pairs already reported.
    warned: Mutex<hashbrown::HashSet<(u8, usize)>>,
}

pub(super) const WARN_UNCOUNTED: u8 = 0;
pub(super) const WARN_DISABLED: u8 = 1;
pub(super) const WARN_DUPLICATE: u8 = 2;
pub(super) const WARN_NO_USAGE: u8 = 3;

/// The line warning of a call that closed with no usage.
pub(crate) const NO_USAGE_WARNING: &str =
    "no token usage was recorded on this call: its tokens and cost are unknown, not zero";

/// What to change so that a client's calls carry their usage, by the span's target.
fn usage_fix(meta: &Metadata<'_>) -> &'static str {
    let target = meta.target();
    if target == crate::replay::TARGET {
        "the instrumentation that sent it reported no usage (a failed request, or a stream \
         without `stream_options.include_usage`)"
    } else if target.starts_with("genai") {
        "genai records a stream's usage only when asked: `ChatOptions::default()\
         .with_capture_usage(true)`; a stream dropped before its end has none"
    } else if target.starts_with("rig") {
        "rig records a stream's usage when the provider sends it in the last chunk (OpenAI: \
         `stream_options.include_usage`); a stream dropped before its end has none"
    } else {
        "record the reply's counts before the span closes (`Usage::from_openai(&json)?\
         .record_on(&span)`, or `tokens.input`/`tokens.output` declared `Empty` and recorded); \
         a failed request should record `error`"
    }
}

impl BlindSpots {
    /// Whether this is the first report of `what` for the callsite of `meta`.
    pub(super) fn first(&self, what: u8, meta: &Metadata<'_>) -> bool {
        let key = (what, meta as *const Metadata<'_> as usize);
        self.warned
            .lock()
            .map(|mut w| w.insert(key))
            .unwrap_or(false)
    }
}

/// Where a span was declared, for warnings: `name` (target `t`, level `L`).
pub(super) fn describe(meta: &Metadata<'_>) -> String {
    if meta.target() == crate::replay::TARGET {
        return "a span received over OTLP".to_owned();
    }
    format!(
        "span {:?} (target {:?}, level {})",
        meta.name(),
        meta.target(),
        meta.level()
    )
}

impl Inner {
    /// A span that is not a call recorded token usage (`field`): reported once per
    /// callsite, counted once per span, and noted in its run's summary.
    pub(super) fn uncounted<S>(&self, span: &SpanRef<'_, S>, field: &str)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        {
            let mut ext = span.extensions_mut();
            if ext.get_mut::<Uncounted>().is_some() {
                return;
            }
            ext.insert(Uncounted);
        }
        self.blind_spots
            .uncounted_spans
            .fetch_add(1, Ordering::Relaxed);
        let meta = span.metadata();
        let what = describe(meta);
        if self.blind_spots.first(WARN_UNCOUNTED, meta) {
            eprintln!(
                "tracing-llm-usage: {what} recorded token usage ({field}) but is not an LLM \
                 call, so it is not counted; name it {:?} (the builder's `span_name`), or give \
                 it a `gen_ai.operation.name` of an inference operation ({}; the builder's \
                 `genai_operations` adds more)",
                self.span_name,
                self.inference_operations.join(", "),
            );
        }
        let mut next = span.parent();
        while let Some(ancestor) = next {
            next = ancestor.parent();
            let cell = ancestor
                .extensions()
                .get::<ScopeState>()
                .and_then(|s| s.run.clone());
            if let Some(cell) = cell {
                cell.lock()
                    .warn(&format!("{what} recorded token usage and was not counted"));
                break;
            }
        }
    }

    /// A call or run callsite that the rest of the subscriber disables: its spans never
    /// reach the layer. Reported once per callsite.
    pub(super) fn disabled(&self, meta: &Metadata<'_>) {
        if !self.blind_spots.first(WARN_DISABLED, meta) {
            return;
        }
        self.blind_spots
            .disabled_callsites
            .fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "tracing-llm-usage: {} is disabled by a filter on the whole subscriber, so its LLM \
             usage is not counted. Put level filters on the output layers instead \
             (`fmt::layer().with_filter(EnvFilter::from_default_env())`) and leave UsageLayer \
             unfiltered.",
            describe(meta)
        );
    }

    /// A call closed with no token count: counted, and reported once per callsite with the
    /// client's fix.
    pub(super) fn no_usage(&self, meta: &Metadata<'_>) {
        self.blind_spots
            .no_usage_calls
            .fetch_add(1, Ordering::Relaxed);
        if self.blind_spots.first(WARN_NO_USAGE, meta) {
            eprintln!(
                "tracing-llm-usage: {} closed without any token usage recorded; its calls are \
                 logged with cost_usd null and cost_source \"no_usage\" (never as free). {}",
                describe(meta),
                usage_fix(meta)
            );
        }
    }

    /// A call span recorded the same usage as the call spans inside it: counted once, by
    /// them.
    pub(super) fn nested_duplicate(&self, meta: &Metadata<'_>) {
        self.blind_spots
            .nested_duplicates
            .fetch_add(1, Ordering::Relaxed);
        if self.blind_spots.first(WARN_DUPLICATE, meta) {
            eprintln!(
                "tracing-llm-usage: {} recorded the same usage as the call span inside it; \
                 counted once, by the inner span",
                describe(meta)
            );
        }
    }
}
