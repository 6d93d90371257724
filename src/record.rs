//! The call record: one finished `llm_call` span, as written on an `llm_call` JSONL line.
//!
//! Data flows one way: span fields → [`CallRecord`] → ledger and sinks.

use std::fmt;
use std::sync::Arc;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which kind of line a JSONL object is (its `event` key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// One finished LLM call.
    LlmCall,
    /// One finished (or abandoned) run.
    RunSummary,
}

/// A wall-clock instant with millisecond precision, written as RFC 3339 UTC
/// (`2025-12-14T10:30:15.123Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    unix_ms: i64,
}

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let ms = match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        };
        Self { unix_ms: ms }
    }

    /// A timestamp from milliseconds since the Unix epoch.
    pub fn from_unix_ms(unix_ms: i64) -> Self {
        Self { unix_ms }
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_ms(self) -> i64 {
        self.unix_ms
    }

    /// Parses an RFC 3339 timestamp (any offset, any sub-second precision).
    pub fn parse(s: &str) -> Option<Self> {
        let dt =
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
        let ms = dt.unix_timestamp_nanos().div_euclid(1_000_000);
        Some(Self {
            unix_ms: i64::try_from(ms).ok()?,
        })
    }

    /// Appends the RFC 3339 form to `out` without allocating.
    pub(crate) fn write_to(self, out: &mut Vec<u8>) {
        let secs = self.unix_ms.div_euclid(1000);
        let ms = self.unix_ms.rem_euclid(1000) as u32;
        // Out-of-range instants (far beyond year 9999) clamp to the epoch rather than panic.
        let dt = time::OffsetDateTime::from_unix_timestamp(secs)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let year = dt.year().clamp(0, 9999) as u32;
        push_padded(out, year, 4);
        out.push(b'-');
        push_padded(out, u8::from(dt.month()) as u32, 2);
        out.push(b'-');
        push_padded(out, dt.day() as u32, 2);
        out.push(b'T');
        push_padded(out, dt.hour() as u32, 2);
        out.push(b':');
        push_padded(out, dt.minute() as u32, 2);
        out.push(b':');
        push_padded(out, dt.second() as u32, 2);
        out.push(b'.');
        push_padded(out, ms, 3);
        out.push(b'Z');
    }
}

fn push_padded(out: &mut Vec<u8>, value: u32, width: u32) {
    let mut div = 10u32.pow(width - 1);
    while div > 0 {
        out.push(b'0' + ((value / div) % 10) as u8);
        div /= 10;
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = Vec::with_capacity(24);
        self.write_to(&mut buf);
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 timestamp"))
    }
}

/// Token counts with OpenTelemetry GenAI semantics: `input` includes cached tokens (read and
/// written), `output` includes reasoning tokens; the cache and reasoning counts are subsets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Input (prompt) tokens, cache reads and writes included.
    pub input: u64,
    /// Output (completion) tokens, reasoning included.
    pub output: u64,
    /// The provider's total if it gave one, else `input + output`.
    pub total: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write: u64,
    /// Output tokens spent on reasoning.
    pub reasoning: u64,
}

/// Token counts per prompt component (`prompt.system`, `prompt.data`, …), in first-seen order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PromptBreakdown(pub Vec<(Arc<str>, u64)>);

impl PromptBreakdown {
    /// Adds `tokens` to `component`, saturating.
    pub fn add(&mut self, component: &str, tokens: u64) {
        match self.0.iter_mut().find(|(c, _)| &**c == component) {
            Some((_, t)) => *t = t.saturating_add(tokens),
            None => self.0.push((Arc::from(component), tokens)),
        }
    }

    /// Adds every component of `other`.
    pub fn merge(&mut self, other: &PromptBreakdown) {
        for (c, t) in &other.0 {
            match self.0.iter_mut().find(|(mine, _)| mine == c) {
                Some((_, mine)) => *mine = mine.saturating_add(*t),
                None => self.0.push((c.clone(), *t)),
            }
        }
    }

    /// The tokens counted for `component`, if any.
    pub fn get(&self, component: &str) -> Option<u64> {
        self.0
            .iter()
            .find(|(c, _)| &**c == component)
            .map(|(_, t)| *t)
    }

    /// Whether no component was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for PromptBreakdown {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (&**k, v)))
    }
}

impl<'de> Deserialize<'de> for PromptBreakdown {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PromptBreakdown;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of prompt component to token count")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = PromptBreakdown::default();
                while let Some((k, v)) = map.next_entry::<std::borrow::Cow<'de, str>, u64>()? {
                    out.add(&k, v);
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

/// Where a call's `cost_usd` came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostSource {
    /// Computed from the configured [`crate::PriceTable`].
    Local,
    /// Reported by the provider (the span's `cost_usd` field).
    Provider,
    /// No price was known: `cost_usd` is `null`.
    Unpriced,
}

/// One finished LLM call: the content of one `llm_call` JSONL line, field for field and in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// When the call finished (the span closed).
    pub timestamp: Timestamp,
    /// Always [`LineKind::LlmCall`].
    pub event: LineKind,
    /// The run the call belongs to.
    pub run_id: Option<Arc<str>>,
    /// The workflow step.
    pub step: Option<Arc<str>>,
    /// The model (response model first, then `model`, then the request model).
    pub model: Option<Arc<str>>,
    /// The provider (`gen_ai.provider.name` values).
    pub provider: Option<Arc<str>>,
    /// The task.
    pub task: Option<Arc<str>>,
    /// The agent.
    pub agent: Option<Arc<str>>,
    /// Token counts.
    pub tokens: Tokens,
    /// Input tokens per prompt component.
    pub prompt_breakdown: PromptBreakdown,
    /// The call's cost in USD, `None` when unpriced.
    pub cost_usd: Option<f64>,
    /// Where the cost came from.
    pub cost_source: CostSource,
    /// A short hash of the price table used, when one was configured.
    pub price_version: Option<Arc<str>>,
    /// How long the span was open, in milliseconds.
    pub latency_ms: u64,
    /// Whether the token counts came from a tokenizer rather than the provider.
    pub estimated: bool,
    /// The error recorded on the call, if it failed.
    pub error: Option<String>,
    /// Fields that could not be used, and why.
    pub warnings: Vec<String>,
    /// `gen_ai.operation.name` (default `chat`); not written to the line.
    #[serde(skip, default = "default_operation")]
    pub operation: Arc<str>,
    /// The requested model (`gen_ai.request.model`, else `model`); not written to the line.
    #[serde(skip)]
    pub request_model: Option<Arc<str>>,
    /// The service tier (`batch`, `flex`, `priority`); not written to the line.
    #[serde(skip)]
    pub service_tier: Option<Arc<str>>,
    /// Cache-write tokens with a 1-hour lifetime (`tokens.cache_write_1h`, a subset of
    /// `tokens.cache_write`); not written to the line.
    #[serde(skip)]
    pub cache_write_1h: u64,
}

fn default_operation() -> Arc<str> {
    Arc::from("chat")
}

impl CallRecord {
    /// Whether the call failed.
    pub fn is_error(&self) -> bool {
        self.error.is_some()
    }
}
