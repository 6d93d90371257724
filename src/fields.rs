//! Span fields → typed slots.
//!
//! [`CallFields`] collects what an `llm_call` span records (at creation and through
//! `span.record`), [`ScopeFields`] what any other span contributes to the calls below it
//! (`run_id`, `step`, `task`, `agent`). The field names are those of DESIGN.md, "Field names":
//! for every slot the first name in its list wins, whatever the order of recording.

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use tracing_core::field::{Field, Visit};
use tracing_core::Metadata;

use crate::attributes::{AttributeKeys, AttributeValue, Slots};
use crate::intern::intern;
use crate::name::Name;
use crate::record::{Modality, ModalitySlot, ModalityTokens, PromptBreakdown, Tokens};

/// Which token slot a field feeds, and its rank in that slot's name list (0 wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokenSlot {
    Input,
    Output,
    Total,
    CacheRead,
    CacheWrite,
    CacheWrite1h,
    Reasoning,
}

/// What a field of an `llm_call` span means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CallField {
    Token(TokenSlot, u8),
    Prompt,
    ResponseModel,
    Model,
    RequestModel,
    Provider(u8),
    Operation,
    Step,
    Task,
    Agent(u8),
    RunId,
    CostUsd,
    ServiceTier,
    Estimated,
    Error,
    /// `gen_ai.usage.{text,image,audio}.*`: a subset of a token slot by modality.
    Modality(Modality, ModalitySlot),
    /// `gen_ai.response.time_to_first_chunk`, in seconds.
    TimeToFirstChunk,
    /// `gen_ai.request.stream`.
    Stream,
}

fn call_field(name: &str) -> Option<CallField> {
    use CallField::*;
    use TokenSlot::*;
    Some(match name {
        "tokens.input" => Token(Input, 0),
        "gen_ai.usage.input_tokens" => Token(Input, 1),
        "input_tokens" => Token(Input, 2),
        "prompt_tokens" => Token(Input, 3),
        "gen_ai.usage.prompt_tokens" => Token(Input, 4),
        "tokens.output" => Token(Output, 0),
        "gen_ai.usage.output_tokens" => Token(Output, 1),
        "output_tokens" => Token(Output, 2),
        "completion_tokens" => Token(Output, 3),
        "gen_ai.usage.completion_tokens" => Token(Output, 4),
        "tokens.total" => Token(Total, 0),
        "gen_ai.usage.total_tokens" => Token(Total, 1),
        "llm.usage.total_tokens" => Token(Total, 2),
        "tokens.cache_read" => Token(CacheRead, 0),
        "gen_ai.usage.cache_read.input_tokens" => Token(CacheRead, 1),
        "gen_ai.usage.cache_read_input_tokens" => Token(CacheRead, 2),
        "tokens.cache_write" => Token(CacheWrite, 0),
        "gen_ai.usage.cache_write.input_tokens" => Token(CacheWrite, 1),
        "gen_ai.usage.cache_creation.input_tokens" => Token(CacheWrite, 2),
        "gen_ai.usage.cache_creation_input_tokens" => Token(CacheWrite, 3),
        "tokens.cache_write_1h" => Token(CacheWrite1h, 0),
        "tokens.reasoning" => Token(Reasoning, 0),
        "gen_ai.usage.reasoning.output_tokens" => Token(Reasoning, 1),
        "gen_ai.usage.reasoning_tokens" => Token(Reasoning, 2),
        "gen_ai.response.time_to_first_chunk" => TimeToFirstChunk,
        "gen_ai.request.stream" | "gen_ai.is_streaming" | "llm.is_streaming" => Stream,
        "gen_ai.response.model" => ResponseModel,
        "model" => Model,
        "gen_ai.request.model" => RequestModel,
        "provider" => Provider(0),
        "gen_ai.provider.name" => Provider(1),
        "gen_ai.system" => Provider(2),
        "gen_ai.operation.name" => Operation,
        "step" => Step,
        "task" => Task,
        "agent" => Agent(0),
        "gen_ai.agent.name" => Agent(1),
        "run_id" => RunId,
        "cost_usd" => CostUsd,
        "service_tier" => ServiceTier,
        "tokens.estimated" => Estimated,
        "error" | "error.type" => Error,
        n if n.starts_with("prompt.") => Prompt,
        n => return modality_field(n),
    })
}

/// `gen_ai.usage.<modality>.<slot>` names.
fn modality_field(name: &str) -> Option<CallField> {
    let rest = name.strip_prefix("gen_ai.usage.")?;
    let (modality, slot) = rest.split_once('.')?;
    let modality = match modality {
        "text" => Modality::Text,
        "image" => Modality::Image,
        "audio" => Modality::Audio,
        _ => return None,
    };
    let slot = match slot {
        "input_tokens" => ModalitySlot::Input,
        "output_tokens" => ModalitySlot::Output,
        "cache_read.input_tokens" => ModalitySlot::CacheRead,
        _ => return None,
    };
    Some(CallField::Modality(modality, slot))
}

/// Whether the layer reads a field of this name on a call span (its own slots).
pub(crate) fn is_call_field(name: &str) -> bool {
    call_field(name).is_some()
}

/// Whether a field name carries a token count (any slot, any modality, a prompt component).
pub(crate) fn is_usage_field(name: &str) -> bool {
    matches!(
        call_field(name),
        Some(CallField::Token(..) | CallField::Modality(..) | CallField::Prompt)
    ) || name.starts_with("gen_ai.usage.")
        || name.starts_with("tokens.")
}

const NAME_SLOTS: usize = 256;

thread_local! {
    /// Field name (address, length) → what it means. Field names are `&'static str` from
    /// callsite metadata, so the address identifies the text and a hit skips the string match.
    static NAME_KINDS: [Cell<(usize, usize, Option<CallField>)>; NAME_SLOTS] =
        const { [const { Cell::new((0, 0, None)) }; NAME_SLOTS] };
}

fn call_field_cached(name: &'static str) -> Option<CallField> {
    let addr = name.as_ptr() as usize;
    let slot = (addr >> 3).wrapping_add(name.len()) % NAME_SLOTS;
    let hit = NAME_KINDS
        .try_with(|kinds| {
            let (a, len, kind) = kinds[slot].get();
            (a == addr && len == name.len()).then_some(kind)
        })
        .ok()
        .flatten();
    if let Some(kind) = hit {
        return kind;
    }
    let kind = call_field(name);
    let _ = NAME_KINDS.try_with(|kinds| kinds[slot].set((addr, name.len(), kind)));
    kind
}

/// Maps provider names used before the GenAI conventions settled to today's values.
pub(crate) fn normalize_provider(name: &str) -> &str {
    match name {
        "gemini" => "gcp.gemini",
        "xai" => "x_ai",
        other => other,
    }
}

/// A field value as the Visit API delivers it, before interpretation.
enum Raw<'a> {
    U64(u64),
    I64(i64),
    U128(u128),
    I128(i128),
    F64(f64),
    Bool(bool),
    Str(&'a str),
}

impl fmt::Display for Raw<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Raw::U64(v) => v.fmt(f),
            Raw::I64(v) => v.fmt(f),
            Raw::U128(v) => v.fmt(f),
            Raw::I128(v) => v.fmt(f),
            Raw::F64(v) => v.fmt(f),
            Raw::Bool(v) => v.fmt(f),
            Raw::Str(v) => v.fmt(f),
        }
    }
}

impl Raw<'_> {
    /// The value as an attribute: numbers and booleans as they are, the rest as text.
    fn attribute(&self) -> AttributeValue {
        match *self {
            Raw::U64(v) => AttributeValue::UInt(v),
            Raw::I64(v) => match u64::try_from(v) {
                Ok(u) => AttributeValue::UInt(u),
                Err(_) => AttributeValue::Int(v),
            },
            Raw::U128(v) => match u64::try_from(v) {
                Ok(u) => AttributeValue::UInt(u),
                Err(_) => AttributeValue::Str(Name::from(v.to_string().as_str())),
            },
            Raw::I128(v) => match (u64::try_from(v), i64::try_from(v)) {
                (Ok(u), _) => AttributeValue::UInt(u),
                (_, Ok(i)) => AttributeValue::Int(i),
                _ => AttributeValue::Str(Name::from(v.to_string().as_str())),
            },
            Raw::F64(v) if v.is_finite() => AttributeValue::Float(v),
            Raw::F64(v) => AttributeValue::Str(Name::from(v.to_string().as_str())),
            Raw::Bool(v) => AttributeValue::Bool(v),
            // Interned (in a table of their own): a tenant or a prompt version repeats call
            // after call, and a call's line then moves no allocation between threads.
            Raw::Str(s) => AttributeValue::Str(crate::intern::intern_value(s)),
        }
    }
}

/// Why a value is not a token count.
#[derive(Debug)]
enum NotACount {
    Negative,
    Fractional,
    Overflow,
    NotANumber,
}

impl NotACount {
    fn as_str(&self) -> &'static str {
        match self {
            NotACount::Negative => "negative",
            NotACount::Fractional => "not a whole number",
            NotACount::Overflow => "exceeds u64",
            NotACount::NotANumber => "not a number",
        }
    }
}

fn as_count(raw: &Raw<'_>) -> Result<u64, NotACount> {
    match *raw {
        Raw::U64(v) => Ok(v),
        Raw::I64(v) => u64::try_from(v).map_err(|_| NotACount::Negative),
        Raw::U128(v) => u64::try_from(v).map_err(|_| NotACount::Overflow),
        Raw::I128(v) if v < 0 => Err(NotACount::Negative),
        Raw::I128(v) => u64::try_from(v).map_err(|_| NotACount::Overflow),
        Raw::F64(v) if v.is_nan() => Err(NotACount::NotANumber),
        Raw::F64(v) if v < 0.0 => Err(NotACount::Negative),
        // 2^64 is the first integral f64 that does not fit (infinity included).
        Raw::F64(v) if v >= 18_446_744_073_709_551_616.0 => Err(NotACount::Overflow),
        Raw::F64(v) if v.fract() != 0.0 => Err(NotACount::Fractional),
        Raw::F64(v) => Ok(v as u64),
        Raw::Bool(_) => Err(NotACount::NotANumber),
        Raw::Str(s) => parse_count(s),
    }
}

fn parse_count(s: &str) -> Result<u64, NotACount> {
    let s = s.trim();
    let digits = s.strip_prefix('+').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return digits.parse().map_err(|_| NotACount::Overflow);
    }
    if let Some(rest) = s.strip_prefix('-') {
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NotACount::Negative);
        }
    }
    // "12.0" or "1e3" from a float formatted as text: accept only whole, finite values.
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => as_count(&Raw::F64(v)),
        _ => Err(NotACount::NotANumber),
    }
}

fn as_non_negative(raw: &Raw<'_>) -> Option<f64> {
    let v = match *raw {
        Raw::U64(v) => v as f64,
        Raw::I64(v) => v as f64,
        Raw::U128(v) => v as f64,
        Raw::I128(v) => v as f64,
        Raw::F64(v) => v,
        Raw::Str(s) => s.trim().parse().ok()?,
        Raw::Bool(_) => return None,
    };
    (v.is_finite() && v >= 0.0).then_some(v)
}

fn as_flag(raw: &Raw<'_>) -> Option<bool> {
    match *raw {
        Raw::Bool(b) => Some(b),
        Raw::Str("true") => Some(true),
        Raw::Str("false") => Some(false),
        Raw::U64(v) => Some(v != 0),
        Raw::I64(v) => Some(v != 0),
        _ => None,
    }
}

/// Text of a high-cardinality value (a run id): allocated.
fn as_text(raw: &Raw<'_>) -> Arc<str> {
    match raw {
        Raw::Str(s) => Arc::from(*s),
        other => Arc::from(other.to_string()),
    }
}

/// Text of a repetitive value (model, provider, step…): interned.
/// Short text made only of what numbers are written with (`"12"`, `"-1.5e3"`, `"1_000"`).
fn looks_numeric(s: &str) -> bool {
    s.len() <= 32
        && s.bytes().all(|b| {
            b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'_' | b',' | b'e' | b'E')
        })
}

fn as_name(raw: &Raw<'_>) -> Name {
    match raw {
        Raw::Str(s) => intern(s),
        other => intern(&other.to_string()),
    }
}

/// Formats a `Debug` value into a fixed stack buffer, so numbers passed as `%n` or `?n` are
/// read without allocating. Longer values fall back to a `String`.
struct StackStr {
    buf: [u8; 64],
    len: usize,
    overflow: bool,
}

impl StackStr {
    fn new() -> Self {
        Self {
            buf: [0; 64],
            len: 0,
            overflow: false,
        }
    }
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            self.overflow = true;
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Calls `f` with the text of a `Debug` value; a `?"text"` value loses its quotes.
fn with_debug_text<R>(value: &dyn fmt::Debug, f: impl FnOnce(&str) -> R) -> R {
    let mut stack = StackStr::new();
    if write!(stack, "{value:?}").is_ok() && !stack.overflow {
        return f(unquote(stack.as_str()));
    }
    let owned = format!("{value:?}");
    f(unquote(&owned))
}

fn unquote(s: &str) -> &str {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// A token slot's value and the rank of the name that set it (16 bytes: seven of these are
/// zeroed and moved with every call's state).
#[derive(Clone, Copy, Debug, Default)]
struct Ranked {
    value: u64,
    rank: u8,
    set: bool,
}

impl Ranked {
    fn offer(&mut self, rank: u8, value: u64) {
        if !self.set || rank <= self.rank {
            self.rank = rank;
            self.value = value;
            self.set = true;
        }
    }

    fn value(&self) -> Option<u64> {
        self.set.then_some(self.value)
    }
}

/// A text slot filled from several names: the lowest rank wins.
#[derive(Clone, Debug, Default)]
struct RankedText {
    rank: u8,
    value: Option<Name>,
}

impl RankedText {
    fn offer(&mut self, rank: u8, value: Name) {
        if self.value.is_none() || rank <= self.rank {
            self.rank = rank;
            self.value = Some(value);
        }
    }
}

/// Everything an `llm_call` span has recorded so far.
#[derive(Debug, Default)]
pub(crate) struct CallFields {
    input: Ranked,
    output: Ranked,
    total: Ranked,
    cache_read: Ranked,
    cache_write: Ranked,
    cache_write_1h: Ranked,
    reasoning: Ranked,
    pub(crate) prompt: PromptBreakdown,
    pub(crate) response_model: Option<Name>,
    pub(crate) model: Option<Name>,
    pub(crate) request_model: Option<Name>,
    provider: RankedText,
    pub(crate) operation: Option<Name>,
    pub(crate) step: Option<Name>,
    pub(crate) task: Option<Name>,
    agent: RankedText,
    pub(crate) run_id: Option<Arc<str>>,
    pub(crate) cost_usd: Option<f64>,
    pub(crate) service_tier: Option<Name>,
    pub(crate) estimated: bool,
    pub(crate) error: Option<String>,
    pub(crate) warnings: Vec<String>,
    /// Values that could not be used (each also has a warning).
    pub(crate) invalid: u32,
    /// Tokens by modality, allocated only when a span reports them.
    pub(crate) modality: Option<Box<ModalityTokens>>,
    /// Time to the first chunk of a streamed response, in milliseconds.
    pub(crate) ttft_ms: Option<u64>,
    /// Whether the request streamed its response.
    pub(crate) stream: Option<bool>,
    /// The values of the builder's attributes this span recorded.
    pub(crate) attributes: Slots,
}

impl CallFields {
    fn warn(&mut self, field: &str, why: &str, raw: &Raw<'_>) {
        self.invalid += 1;
        let mut w = String::with_capacity(field.len() + why.len() + 32);
        match raw {
            // Text in a numeric field may be prompt or response text put there by mistake:
            // it is named by its size, never copied into the log.
            Raw::Str(s) if !looks_numeric(s) => {
                let _ = write!(w, "{field}: {why} (a string of {} bytes)", s.len());
            }
            _ => {
                let _ = write!(w, "{field}: {why} ({raw})");
            }
        }
        // Hostile input could record a field endlessly; keep the line bounded.
        if self.warnings.len() < 32 {
            self.warnings.push(w);
        }
    }

    fn set(&mut self, field: &Field, raw: Raw<'_>, keys: &AttributeKeys) {
        let name = field.name();
        match call_field_cached(name) {
            // `prompt.version` may be an attribute rather than a prompt component.
            Some(CallField::Prompt) | None if self.attribute(name, &raw, keys) => {}
            Some(kind) => self.set_kind(name, kind, raw),
            None => {}
        }
    }

    /// Records `name` if it is one of the builder's attributes.
    fn attribute(&mut self, name: &str, raw: &Raw<'_>, keys: &AttributeKeys) -> bool {
        match keys.index(name) {
            Some(i) => {
                self.attributes.set(i, keys.len(), raw.attribute());
                true
            }
            None => false,
        }
    }

    /// A whole number, the common case of a token count, without the general path.
    fn set_u64(&mut self, field: &Field, value: u64, keys: &AttributeKeys) {
        let name = field.name();
        match call_field_cached(name) {
            Some(CallField::Token(slot, rank)) => self.slot(slot).offer(rank, value),
            _ => self.set(field, Raw::U64(value), keys),
        }
    }

    /// Text, the common case of a model or a step name, without the general path.
    fn set_str(&mut self, field: &Field, value: &str, keys: &AttributeKeys) {
        let name = field.name();
        match call_field_cached(name) {
            Some(CallField::Model) => self.model = Some(intern(value)),
            Some(CallField::Step) => self.step = Some(intern(value)),
            _ => self.set(field, Raw::Str(value), keys),
        }
    }

    fn set_kind(&mut self, name: &str, kind: CallField, raw: Raw<'_>) {
        match kind {
            CallField::Token(slot, rank) => match as_count(&raw) {
                Ok(v) => self.slot(slot).offer(rank, v),
                Err(e) => self.warn(name, e.as_str(), &raw),
            },
            CallField::Prompt => match as_count(&raw) {
                Ok(v) => {
                    let component = &name["prompt.".len()..];
                    if component.is_empty() {
                        self.warn(name, "no component name", &raw);
                    } else {
                        self.prompt.add(component, v);
                    }
                }
                Err(e) => self.warn(name, e.as_str(), &raw),
            },
            CallField::ResponseModel => self.response_model = Some(as_name(&raw)),
            CallField::Model => self.model = Some(as_name(&raw)),
            CallField::RequestModel => self.request_model = Some(as_name(&raw)),
            CallField::Provider(rank) => {
                let text = as_name(&raw);
                let mapped = normalize_provider(&text);
                let value = if mapped.len() == text.len() {
                    text
                } else {
                    intern(mapped)
                };
                self.provider.offer(rank, value)
            }
            CallField::Operation => self.operation = Some(as_name(&raw)),
            CallField::Step => self.step = Some(as_name(&raw)),
            CallField::Task => self.task = Some(as_name(&raw)),
            CallField::Agent(rank) => self.agent.offer(rank, as_name(&raw)),
            CallField::RunId => self.run_id = Some(as_text(&raw)),
            CallField::CostUsd => match as_non_negative(&raw) {
                Some(v) => self.cost_usd = Some(v),
                None => self.warn(name, "not a cost in USD", &raw),
            },
            CallField::ServiceTier => self.service_tier = Some(as_name(&raw)),
            CallField::Estimated => match as_flag(&raw) {
                Some(b) => self.estimated = b,
                None => self.warn(name, "not a boolean", &raw),
            },
            CallField::Error => {
                // `error = false` is the one value that does not mark a failure.
                self.error = match raw {
                    Raw::Bool(false) => None,
                    Raw::Str(s) => Some(s.to_owned()),
                    other => Some(other.to_string()),
                }
            }
            CallField::Modality(modality, slot) => match as_count(&raw) {
                Ok(v) => self
                    .modality
                    .get_or_insert_with(Box::default)
                    .set(modality, slot, v),
                Err(e) => self.warn(name, e.as_str(), &raw),
            },
            CallField::TimeToFirstChunk => match as_non_negative(&raw) {
                // Seconds, as the conventions give them; kept to the millisecond.
                Some(s) => self.ttft_ms = Some((s * 1000.0).round() as u64),
                None => self.warn(name, "not a duration in seconds", &raw),
            },
            CallField::Stream => match as_flag(&raw) {
                Some(b) => self.stream = Some(b),
                None => self.warn(name, "not a boolean", &raw),
            },
        }
    }

    /// Whether any token count was recorded (the span reported usage).
    pub(crate) fn has_usage(&self) -> bool {
        [
            &self.input,
            &self.output,
            &self.total,
            &self.cache_read,
            &self.cache_write,
            &self.reasoning,
        ]
        .iter()
        .any(|r| r.set)
            || self.modality.is_some()
    }

    fn slot(&mut self, slot: TokenSlot) -> &mut Ranked {
        match slot {
            TokenSlot::Input => &mut self.input,
            TokenSlot::Output => &mut self.output,
            TokenSlot::Total => &mut self.total,
            TokenSlot::CacheRead => &mut self.cache_read,
            TokenSlot::CacheWrite => &mut self.cache_write,
            TokenSlot::CacheWrite1h => &mut self.cache_write_1h,
            TokenSlot::Reasoning => &mut self.reasoning,
        }
    }

    /// The token counts, with `total` derived when not given. A given total that disagrees
    /// with `input + output` is kept and flagged.
    pub(crate) fn tokens(&mut self) -> Tokens {
        let input = self.input.value().unwrap_or(0);
        let output = self.output.value().unwrap_or(0);
        let sum = input.saturating_add(output);
        let total = match self.total.value() {
            Some(t) if t != sum => {
                self.warnings.push(format!(
                    "tokens.total: {t} differs from input + output ({sum})"
                ));
                t
            }
            Some(t) => t,
            None => sum,
        };
        let cache_write = self.cache_write.value().unwrap_or(0);
        let hour = self.cache_write_1h.value().unwrap_or(0);
        if hour > cache_write {
            self.warnings.push(format!(
                "tokens.cache_write_1h: {hour} is more than tokens.cache_write ({cache_write}); \
                 {cache_write} are priced as 1-hour writes"
            ));
        }
        Tokens {
            input,
            output,
            total,
            cache_read: self.cache_read.value().unwrap_or(0),
            cache_write,
            reasoning: self.reasoning.value().unwrap_or(0),
        }
    }

    /// Cache-write tokens with a 1-hour lifetime, a subset of `cache_write` (never more),
    /// priced apart.
    pub(crate) fn cache_write_1h(&self) -> u64 {
        let hour = self.cache_write_1h.value().unwrap_or(0);
        hour.min(self.cache_write.value().unwrap_or(0))
    }

    /// The provider, after mapping old names.
    pub(crate) fn provider(&self) -> Option<Name> {
        self.provider.value.clone()
    }

    /// The agent (`agent`, then `gen_ai.agent.name`).
    pub(crate) fn agent(&self) -> Option<Name> {
        self.agent.value.clone()
    }
}

/// Context that a non-call span hands down to the calls below it.
#[derive(Debug, Default)]
pub(crate) struct ScopeFields {
    pub(crate) run_id: Option<Arc<str>>,
    pub(crate) step: Option<Name>,
    pub(crate) task: Option<Name>,
    agent: RankedText,
    /// The span recorded an `error` field (a run that failed).
    pub(crate) error: bool,
    /// The values of the builder's attributes this span recorded.
    pub(crate) attributes: Slots,
}

impl ScopeFields {
    fn set_u64(&mut self, field: &Field, value: u64, keys: &AttributeKeys) {
        self.set(field, Raw::U64(value), keys);
    }

    fn set_str(&mut self, field: &Field, value: &str, keys: &AttributeKeys) {
        self.set(field, Raw::Str(value), keys);
    }

    fn set(&mut self, field: &Field, raw: Raw<'_>, keys: &AttributeKeys) {
        match field.name() {
            "run_id" => self.run_id = Some(as_text(&raw)),
            "step" => self.step = Some(as_name(&raw)),
            "task" => self.task = Some(as_name(&raw)),
            "agent" => self.agent.offer(0, as_name(&raw)),
            "gen_ai.agent.name" => self.agent.offer(1, as_name(&raw)),
            "error" => self.error = !matches!(raw, Raw::Bool(false)),
            name => {
                if let Some(i) = keys.index(name) {
                    self.attributes.set(i, keys.len(), raw.attribute());
                }
            }
        }
    }

    /// The agent (`agent`, then `gen_ai.agent.name`).
    pub(crate) fn agent(&self) -> Option<&Name> {
        self.agent.value.as_ref()
    }
}

/// What a span is to the layer, decided from its callsite alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SpanRole {
    /// Not of interest: the layer does nothing for it.
    Ignored,
    /// A span with the configured call name (`llm_call`).
    Call,
    /// A span declaring `gen_ai.usage.*` fields: a call or an agent-level scope, as its
    /// `gen_ai.operation.name` says ([`Operation`]).
    GenAi,
    /// A span carrying `run_id`, `step`, `task` or `agent` for the calls below it.
    Scope {
        /// It has a `run_id` field: it is a run.
        run: bool,
        /// It declares `gen_ai.operation.name`: an `invoke_agent` outside any run is a run.
        op: bool,
    },
    /// A span declaring token fields that is none of the above: its usage is not counted,
    /// and recording any is reported.
    Watched,
}

impl SpanRole {
    /// Whether a filter that disables this span loses usage: calls and runs.
    pub(crate) fn is_accounting(self) -> bool {
        matches!(
            self,
            SpanRole::Call | SpanRole::GenAi | SpanRole::Scope { run: true, .. }
        )
    }
}

/// Classifies a callsite: by name for calls, by field set for the rest. Reads only static
/// metadata, so an unrelated span costs a few comparisons and no allocation. Span metadata
/// always belongs to a callsite and never moves, so its address identifies the callsite.
pub(crate) fn classify(meta: &Metadata<'_>, call_span_name: &str) -> SpanRole {
    if !meta.is_span() {
        return SpanRole::Ignored;
    }
    if meta.name() == call_span_name {
        return SpanRole::Call;
    }
    let flags = callsite_flags(meta);
    if flags & FLAG_GENAI != 0 {
        SpanRole::GenAi
    } else if flags & (FLAG_RUN | FLAG_SCOPE) != 0 {
        SpanRole::Scope {
            run: flags & FLAG_RUN != 0,
            op: flags & FLAG_OP != 0,
        }
    } else if flags & FLAG_USAGE != 0 {
        SpanRole::Watched
    } else {
        SpanRole::Ignored
    }
}

const FLAG_RUN: u8 = 1;
const FLAG_SCOPE: u8 = 2;
const FLAG_GENAI: u8 = 4;
const FLAG_USAGE: u8 = 8;
const FLAG_OP: u8 = 16;
const ROLE_SLOTS: usize = 128;

thread_local! {
    /// Callsite metadata address → its flags (+ 1, so 0 means empty). Metadata is
    /// `'static` and never moves, so its address identifies the callsite.
    static ROLES: [Cell<(usize, u8)>; ROLE_SLOTS] =
        const { [const { Cell::new((0, 0)) }; ROLE_SLOTS] };
}

/// Which of `run_id`, `step`/`task`/`agent`, `gen_ai.usage.*` and other token fields a
/// callsite declares, cached per thread so an unrelated span is classified with one
/// comparison instead of a scan of its field names.
fn callsite_flags(meta: &Metadata<'_>) -> u8 {
    let key = meta as *const Metadata<'_> as usize;
    let slot = (key >> 4) % ROLE_SLOTS;
    let cached = ROLES
        .try_with(|roles| {
            let (k, v) = roles[slot].get();
            (k == key && v != 0).then(|| v - 1)
        })
        .ok()
        .flatten();
    if let Some(flags) = cached {
        return flags;
    }
    let mut flags = 0;
    for f in meta.fields() {
        match f.name() {
            "run_id" => flags |= FLAG_RUN,
            "step" | "task" | "agent" | "gen_ai.agent.name" => flags |= FLAG_SCOPE,
            "gen_ai.operation.name" => flags |= FLAG_OP,
            n if n.starts_with("gen_ai.usage.") => flags |= FLAG_GENAI | FLAG_USAGE,
            n if is_usage_field(n) => flags |= FLAG_USAGE,
            _ => {}
        }
    }
    let _ = ROLES.try_with(|roles| roles[slot].set((key, flags + 1)));
    flags
}

/// What a [`SpanRole::GenAi`] span is, by its `gen_ai.operation.name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    /// An inference operation (`chat`, `embeddings`, …): a call.
    Inference,
    /// An agent-level operation: a scope that hands `gen_ai.agent.name` down and is never
    /// counted (it may carry the sum of its calls). `invoke` for `invoke_agent`.
    Agent { invoke: bool },
    /// Anything else: not counted.
    Other,
}

/// The agent-level operations of the GenAI conventions (and genai's `plan`).
const AGENT_OPERATIONS: [&str; 5] = [
    "invoke_agent",
    "create_agent",
    "invoke_workflow",
    "execute_tool",
    "plan",
];

/// The inference operations counted as calls unless the builder says otherwise.
pub(crate) const DEFAULT_INFERENCE_OPERATIONS: [&str; 5] = [
    "chat",
    "chat_streaming",
    "text_completion",
    "generate_content",
    "embeddings",
];

fn operation_kind(op: &str, inference: &[Box<str>]) -> Operation {
    if inference.iter().any(|i| &**i == op) {
        Operation::Inference
    } else if AGENT_OPERATIONS.contains(&op) {
        Operation::Agent {
            invoke: op == "invoke_agent",
        }
    } else {
        Operation::Other
    }
}

/// Whether `op` is an inference operation (its spans are calls).
pub(crate) fn is_inference(op: &str, inference: &[Box<str>]) -> bool {
    operation_kind(op, inference) == Operation::Inference
}

/// Whether `op` is an operation the layer knows (an inference or an agent's).
pub(crate) fn is_operation(op: &str, inference: &[Box<str>]) -> bool {
    operation_kind(op, inference) != Operation::Other
}

/// The operation of a GenAI span: its `gen_ai.operation.name` value, else its name (the
/// part after the last `.`, so genai's `genai.chat` is `chat`).
pub(crate) fn operation_of(
    attrs: &tracing_core::span::Attributes<'_>,
    inference: &[Box<str>],
) -> Operation {
    struct Find<'a> {
        inference: &'a [Box<str>],
        found: Option<Operation>,
    }
    impl Visit for Find<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "gen_ai.operation.name" {
                self.found = Some(operation_kind(value, self.inference));
            }
        }
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            if field.name() == "gen_ai.operation.name" {
                let inference = self.inference;
                self.found = Some(with_debug_text(value, |s| operation_kind(s, inference)));
            }
        }
    }
    let mut find = Find {
        inference,
        found: None,
    };
    attrs.record(&mut find);
    find.found.unwrap_or_else(|| {
        let name = attrs.metadata().name();
        let op = name.rsplit('.').next().unwrap_or(name);
        operation_kind(op, inference)
    })
}

/// The first token field a record carries a value for, if any.
pub(crate) fn usage_recorded(values: &tracing_core::span::Record<'_>) -> Option<&'static str> {
    let mut seen = UsageSeen(None);
    values.record(&mut seen);
    seen.0
}

/// Like [`usage_recorded`], for a span's initial values.
pub(crate) fn usage_in_attributes(
    attrs: &tracing_core::span::Attributes<'_>,
) -> Option<&'static str> {
    let mut seen = UsageSeen(None);
    attrs.record(&mut seen);
    seen.0
}

struct UsageSeen(Option<&'static str>);

impl Visit for UsageSeen {
    fn record_debug(&mut self, field: &Field, _: &dyn fmt::Debug) {
        if self.0.is_none() && is_usage_field(field.name()) {
            self.0 = Some(field.name());
        }
    }
}

/// A span's fields being recorded, with the attribute names the layer reads.
pub(crate) struct Recording<'a, T> {
    pub(crate) fields: &'a mut T,
    pub(crate) keys: &'a AttributeKeys,
}

macro_rules! visit_into {
    ($ty:ty) => {
        impl Visit for Recording<'_, $ty> {
            fn record_u64(&mut self, field: &Field, value: u64) {
                self.fields.set_u64(field, value, self.keys);
            }
            fn record_i64(&mut self, field: &Field, value: i64) {
                self.fields.set(field, Raw::I64(value), self.keys);
            }
            fn record_u128(&mut self, field: &Field, value: u128) {
                self.fields.set(field, Raw::U128(value), self.keys);
            }
            fn record_i128(&mut self, field: &Field, value: i128) {
                self.fields.set(field, Raw::I128(value), self.keys);
            }
            fn record_f64(&mut self, field: &Field, value: f64) {
                self.fields.set(field, Raw::F64(value), self.keys);
            }
            fn record_bool(&mut self, field: &Field, value: bool) {
                self.fields.set(field, Raw::Bool(value), self.keys);
            }
            fn record_str(&mut self, field: &Field, value: &str) {
                self.fields.set_str(field, value, self.keys);
            }
            fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
                let text = value.to_string();
                self.fields.set(field, Raw::Str(&text), self.keys);
            }
            fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
                let keys = self.keys;
                with_debug_text(value, |s| self.fields.set(field, Raw::Str(s), keys));
            }
        }
    };
}

visit_into!(CallFields);
visit_into!(ScopeFields);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_accept_whole_numbers_only() {
        assert_eq!(as_count(&Raw::Str(" 42 ")).ok(), Some(42));
        assert_eq!(as_count(&Raw::Str("42.0")).ok(), Some(42));
        assert!(matches!(
            as_count(&Raw::Str("-3")),
            Err(NotACount::Negative)
        ));
        assert!(matches!(
            as_count(&Raw::Str("4.5")),
            Err(NotACount::Fractional)
        ));
        assert!(matches!(
            as_count(&Raw::Str("18446744073709551616")),
            Err(NotACount::Overflow)
        ));
        assert!(matches!(
            as_count(&Raw::Str("abc")),
            Err(NotACount::NotANumber)
        ));
        assert!(matches!(
            as_count(&Raw::F64(f64::NAN)),
            Err(NotACount::NotANumber)
        ));
        assert!(matches!(
            as_count(&Raw::F64(f64::INFINITY)),
            Err(NotACount::Overflow)
        ));
        assert!(matches!(
            as_count(&Raw::F64(1.8446744073709552e19)),
            Err(NotACount::Overflow)
        ));
        assert_eq!(as_count(&Raw::U128(u64::MAX as u128)).ok(), Some(u64::MAX));
        assert!(matches!(as_count(&Raw::I128(-1)), Err(NotACount::Negative)));
    }

    #[test]
    fn debug_text_is_unquoted() {
        with_debug_text(&"gpt-4o", |s| assert_eq!(s, "gpt-4o"));
        let long = "x".repeat(200);
        with_debug_text(&long, |s| assert_eq!(s.len(), 200));
    }
}
