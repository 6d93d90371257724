//! The call record: one finished `llm_call` span, as written on an `llm_call` JSONL line.
//!
//! Data flows one way: span fields → [`CallRecord`] → ledger and sinks.

use std::fmt;
use std::sync::Arc;

use crate::attributes::Attributes;
use crate::name::Name;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which kind of line a JSONL object is (its `event` key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
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

    /// Appends the RFC 3339 form to `out` without allocating. The calendar date is computed
    /// once per day per thread; the time of day is arithmetic.
    pub(crate) fn write_to(self, out: &mut Vec<u8>) {
        let day = self.unix_ms.div_euclid(86_400_000);
        let ms_of_day = self.unix_ms.rem_euclid(86_400_000) as u32;
        let date = DATE_CACHE
            .try_with(|c| {
                let (cached_day, text) = c.get();
                if cached_day == day {
                    return text;
                }
                let text = date_text(day);
                c.set((day, text));
                text
            })
            .unwrap_or_else(|_| date_text(day));
        // Filled in a fixed array and appended once: one capacity check, not twenty.
        let mut text = *b"0000-00-00T00:00:00.000Z";
        text[..10].copy_from_slice(&date);
        let two = |at: &mut [u8], v: u32| {
            at[0] = b'0' + (v / 10) as u8;
            at[1] = b'0' + (v % 10) as u8;
        };
        two(&mut text[11..13], ms_of_day / 3_600_000);
        two(&mut text[14..16], ms_of_day / 60_000 % 60);
        two(&mut text[17..19], ms_of_day / 1000 % 60);
        let ms = ms_of_day % 1000;
        text[20] = b'0' + (ms / 100) as u8;
        two(&mut text[21..23], ms % 100);
        out.extend_from_slice(&text);
    }
}

thread_local! {
    static DATE_CACHE: std::cell::Cell<(i64, [u8; 10])> = const { std::cell::Cell::new((i64::MIN, [0; 10])) };
}

/// `YYYY-MM-DD` of a day counted from the Unix epoch (years clamped to 0000–9999).
fn date_text(day: i64) -> [u8; 10] {
    let date = time::Date::from_julian_day(
        i32::try_from(day.saturating_add(2_440_588)).unwrap_or(2_440_588),
    )
    .unwrap_or(time::Date::MIN);
    let mut v = Vec::with_capacity(10);
    push_padded(&mut v, date.year().clamp(0, 9999) as u32, 4);
    v.push(b'-');
    push_padded(&mut v, u8::from(date.month()) as u32, 2);
    v.push(b'-');
    push_padded(&mut v, date.day() as u32, 2);
    let mut out = [b'0'; 10];
    out.copy_from_slice(&v[..10]);
    out
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
/// Missing keys read as 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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

/// What a token count measures, by the GenAI conventions' `gen_ai.token.modality`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Modality {
    /// Text.
    Text,
    /// Images.
    Image,
    /// Audio.
    Audio,
}

impl Modality {
    /// Every modality, in the order lines write them.
    pub const ALL: [Modality; 3] = [Modality::Text, Modality::Image, Modality::Audio];

    /// The conventions' value (`text`, `image`, `audio`).
    pub fn as_str(self) -> &'static str {
        match self {
            Modality::Text => "text",
            Modality::Image => "image",
            Modality::Audio => "audio",
        }
    }
}

/// Which count of a modality a field reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ModalitySlot {
    /// Input tokens (cache reads included).
    Input,
    /// Output tokens.
    Output,
    /// Input tokens read from the cache.
    CacheRead,
}

/// One modality's counts; a count the provider did not report is `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModalityCounts {
    /// Input tokens of this modality (cache reads included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<u64>,
    /// Output tokens of this modality.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<u64>,
    /// Input tokens of this modality read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<u64>,
}

/// Tokens by modality (`gen_ai.usage.{text,image,audio}.*`): subsets of the call's input,
/// output and cache-read counts, present in a line only when the provider reported them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModalityTokens {
    /// Text tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<ModalityCounts>,
    /// Image tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ModalityCounts>,
    /// Audio tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<ModalityCounts>,
}

impl ModalityTokens {
    /// The counts of `modality`, if any was reported.
    pub fn get(&self, modality: Modality) -> Option<&ModalityCounts> {
        match modality {
            Modality::Text => self.text.as_ref(),
            Modality::Image => self.image.as_ref(),
            Modality::Audio => self.audio.as_ref(),
        }
    }

    /// Sets one count (the last value recorded wins).
    pub fn set(&mut self, modality: Modality, slot: ModalitySlot, tokens: u64) {
        let counts = match modality {
            Modality::Text => &mut self.text,
            Modality::Image => &mut self.image,
            Modality::Audio => &mut self.audio,
        }
        .get_or_insert_with(ModalityCounts::default);
        match slot {
            ModalitySlot::Input => counts.input = Some(tokens),
            ModalitySlot::Output => counts.output = Some(tokens),
            ModalitySlot::CacheRead => counts.cache_read = Some(tokens),
        }
    }
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
#[non_exhaustive]
pub enum CostSource {
    /// Computed from the configured [`crate::PriceTable`].
    Local,
    /// Reported by the provider (the span's `cost_usd` field).
    Provider,
    /// No price was known: `cost_usd` is `null`.
    Unpriced,
    /// No token count was recorded on the call (a stream read without its usage, a dropped
    /// stream, a failed request): `cost_usd` is `null`, never a zero.
    NoUsage,
}

impl CostSource {
    /// The value lines write (`local`, `provider`, `unpriced`, `no_usage`).
    pub fn as_str(self) -> &'static str {
        match self {
            CostSource::Local => "local",
            CostSource::Provider => "provider",
            CostSource::Unpriced => "unpriced",
            CostSource::NoUsage => "no_usage",
        }
    }
}

/// One finished LLM call: the content of one `llm_call` JSONL line, field for field and in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CallRecord {
    /// When the call finished (the span closed).
    pub timestamp: Timestamp,
    /// Always [`LineKind::LlmCall`].
    pub event: LineKind,
    /// The run the call belongs to.
    pub run_id: Option<Arc<str>>,
    /// The workflow step.
    pub step: Option<Name>,
    /// The model (response model first, then `model`, then the request model).
    pub model: Option<Name>,
    /// The provider (`gen_ai.provider.name` values).
    pub provider: Option<Name>,
    /// The task.
    pub task: Option<Name>,
    /// The agent.
    pub agent: Option<Name>,
    /// Token counts.
    pub tokens: Tokens,
    /// Input tokens per prompt component.
    pub prompt_breakdown: PromptBreakdown,
    /// The call's cost in USD, `None` when unknown (the line writes a local cost to the
    /// nano-dollar, a provider-reported one as reported).
    #[serde(serialize_with = "nano_usd")]
    pub cost_usd: Option<f64>,
    /// Where the cost came from.
    pub cost_source: CostSource,
    /// A short hash of the price table used, when one was configured.
    pub price_version: Option<Name>,
    /// How long the span was open, in milliseconds.
    pub latency_ms: u64,
    /// Whether the token counts came from a tokenizer rather than the provider.
    pub estimated: bool,
    /// The error recorded on the call, if it failed.
    pub error: Option<String>,
    /// Fields that could not be used, and why.
    pub warnings: Vec<String>,
    /// Whether the request streamed its response (`gen_ai.request.stream`); in the line only
    /// when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Time to the first chunk of a streamed response, in milliseconds
    /// (`gen_ai.response.time_to_first_chunk`); in the line only when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    /// Tokens by modality; in the line only when the provider reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<Box<ModalityTokens>>,
    /// `gen_ai.operation.name` (default `chat`); not written to the line.
    #[serde(skip, default = "default_operation")]
    pub operation: Name,
    /// The requested model (`gen_ai.request.model`, else `model`); not written to the line.
    #[serde(skip)]
    pub request_model: Option<Name>,
    /// The service tier as recorded (`batch`, `flex`, `priority`, `default`…); in the line
    /// only when recorded, so that re-pricing uses the tier the call was billed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<Name>,
    /// Cache-write tokens with a 1-hour lifetime (`tokens.cache_write_1h`, a subset of
    /// `tokens.cache_write`, priced apart); in the line only when not 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_1h: u64,
    /// The builder's attributes that have a value for this call (the call span's, else its
    /// nearest ancestor's); in the line only when not empty.
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub attributes: Attributes,
    /// The OpenTelemetry trace and span ids of the call's span, when tracing-opentelemetry
    /// tracks it (feature `trace-context`); carried by the call's log record, not the line.
    #[serde(skip)]
    pub trace: Option<([u8; 16], [u8; 8])>,
}

impl CallRecord {
    /// `cost_usd` as the line writes it: a local cost to the nano-dollar, a provider's as it
    /// reported it (a cost below a nano-dollar is still a cost).
    pub(crate) fn written_cost(&self) -> Option<f64> {
        self.cost_usd.map(|c| match self.cost_source {
            CostSource::Provider => c,
            _ => round_usd(c),
        })
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A cost as written in a line: rounded to the nano-dollar, so a line shows `0.008535`, not
/// `0.008535000000000001`; sums in memory keep every bit.
pub(crate) fn round_usd(v: f64) -> f64 {
    let nano = v * 1e9;
    // Past 2^53 nano-dollars every f64 is whole already (and an overflow must not become inf).
    if nano.is_finite() && nano.abs() < 9.0e15 {
        nano.round() / 1e9
    } else {
        v
    }
}

pub(crate) fn nano_usd<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_some(&round_usd(*v)),
        None => s.serialize_none(),
    }
}

fn default_operation() -> Name {
    crate::intern::intern("chat")
}

impl CallRecord {
    /// Whether the call failed.
    pub fn is_error(&self) -> bool {
        self.error.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_the_time_crate() {
        for ms in [
            0,
            1_765_708_215_123,
            1_765_756_799_999,
            1_765_756_800_000,
            951_782_400_000, // 2000-02-29
            -1,
            -86_400_001,
            253_402_300_799_999, // 9999-12-31T23:59:59.999Z
        ] {
            let dt = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .unwrap();
            let want = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                dt.year(),
                u8::from(dt.month()),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.millisecond()
            );
            let ts = Timestamp::from_unix_ms(ms);
            assert_eq!(ts.to_string(), want, "{ms}");
            assert_eq!(Timestamp::parse(&want), Some(ts));
        }
        // far outside the calendar: clamped, never a panic
        let _ = Timestamp::from_unix_ms(i64::MAX).to_string();
        let _ = Timestamp::from_unix_ms(i64::MIN).to_string();
    }
}
