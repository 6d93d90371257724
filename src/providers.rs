//! Token counts out of provider responses, normalised to the OpenTelemetry GenAI meaning:
//! **input includes cached tokens (read and written), output includes reasoning tokens**.
//!
//! | provider | input | output |
//! |---|---|---|
//! | OpenAI chat, Mistral, OpenRouter | `prompt_tokens` (cache included) | `completion_tokens` (reasoning included) |
//! | OpenAI Responses | `input_tokens` | `output_tokens` |
//! | Anthropic | `input_tokens` + `cache_read_input_tokens` + `cache_creation_input_tokens` | `output_tokens` |
//! | Bedrock Converse | `inputTokens` + `cacheReadInputTokens` + `cacheWriteInputTokens` | `outputTokens` |
//! | Gemini | `promptTokenCount` + `toolUsePromptTokenCount` | `candidatesTokenCount` + `thoughtsTokenCount` |
//! | xAI | `prompt_tokens` | `completion_tokens` + `reasoning_tokens` when the total counts them apart |
//! | Ollama | `prompt_eval_count` | `eval_count` |
//!
//! Provider-reported cost is kept: OpenRouter's `usage.cost` (USD), xAI's
//! `cost_in_usd_ticks` (10¹⁰ ticks to the dollar).

use serde_json::Value;

use crate::record::{Modality, ModalitySlot, ModalityTokens};

/// Why a response's usage could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// The response has no usage object (for a stream: no chunk carried one yet).
    #[error("the {provider} response has no usage ({expected})")]
    Missing {
        /// Which provider's format was expected.
        provider: &'static str,
        /// What was looked for.
        expected: &'static str,
    },
    /// The reply is another API's: its helper is named.
    #[error("{helper} was given {found}: use {instead}")]
    WrongShape {
        /// The helper that was called.
        helper: &'static str,
        /// What the reply looks like.
        found: &'static str,
        /// The helper for it.
        instead: &'static str,
    },
    /// A usage field is there but is not a token count.
    #[error("usage field {field} is not a token count: {value}")]
    Malformed {
        /// The field.
        field: String,
        /// Its value, as JSON.
        value: String,
    },
}

/// One call's usage, normalised (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    /// Input tokens, cache reads and writes included.
    pub input: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// `input + output`.
    pub total: u64,
    /// Input tokens read from the cache.
    pub cache_read: u64,
    /// Input tokens written to the cache (all lifetimes).
    pub cache_write: u64,
    /// Of `cache_write`, those written with a 1-hour lifetime (Anthropic).
    pub cache_write_1h: u64,
    /// Output tokens spent on reasoning.
    pub reasoning: u64,
    /// The cost the provider reported, in USD.
    pub cost_usd: Option<f64>,
    /// Whether the counts come from a tokenizer rather than the provider.
    pub estimated: bool,
    /// Tokens by modality, where the provider reports them (OpenAI's `audio_tokens`, Gemini's
    /// `promptTokensDetails`…): audio and image tokens are priced at their own rates.
    pub modality: ModalityTokens,
    /// The service tier the provider billed (`flex`, `priority`, `default`…), when the reply
    /// says.
    pub service_tier: Option<String>,
}

fn count(obj: &Value, path: &[&str]) -> Result<u64, UsageError> {
    let mut v = obj;
    for key in path {
        match v.get(key) {
            Some(next) => v = next,
            None => return Ok(0),
        }
    }
    match v {
        Value::Null => Ok(0),
        Value::Number(n) => n.as_u64().ok_or_else(|| malformed(path, v)),
        _ => Err(malformed(path, v)),
    }
}

/// A count the reply carries, or `None` where it has none.
fn present(obj: &Value, path: &[&str]) -> Result<Option<u64>, UsageError> {
    let mut v = obj;
    for key in path {
        match v.get(key) {
            Some(next) => v = next,
            None => return Ok(None),
        }
    }
    match v {
        Value::Null => Ok(None),
        _ => count(obj, path).map(Some),
    }
}

/// OpenAI's audio and image counts, under `input` and `output` details (Chat Completions and
/// the Responses API name those objects differently).
fn openai_modalities(u: &Value, input: &str, output: &str) -> Result<ModalityTokens, UsageError> {
    let mut modality = ModalityTokens::default();
    for (details, slot) in [(input, ModalitySlot::Input), (output, ModalitySlot::Output)] {
        for (key, m) in [
            ("audio_tokens", Modality::Audio),
            ("image_tokens", Modality::Image),
        ] {
            if let Some(n) = present(u, &[details, key])? {
                modality.set(m, slot, n);
            }
        }
    }
    Ok(modality)
}

/// Adds Gemini's `[{"modality": "AUDIO", "tokenCount": n}, …]` list under `key` to `out`
/// (text, image and audio; video and documents are priced as text).
fn gemini_modalities(
    u: &Value,
    key: &str,
    slot: ModalitySlot,
    out: &mut ModalityTokens,
) -> Result<(), UsageError> {
    let Some(list) = u.get(key).and_then(Value::as_array) else {
        return Ok(());
    };
    for entry in list {
        let modality = match entry.get("modality").and_then(Value::as_str) {
            Some("TEXT") => Modality::Text,
            Some("AUDIO") => Modality::Audio,
            Some("IMAGE") => Modality::Image,
            _ => continue,
        };
        let n = count(entry, &["tokenCount"])?;
        let before = out.get(modality).and_then(|c| match slot {
            ModalitySlot::Input => c.input,
            ModalitySlot::Output => c.output,
            ModalitySlot::CacheRead => c.cache_read,
        });
        out.set(modality, slot, before.unwrap_or(0).saturating_add(n));
    }
    Ok(())
}

fn malformed(path: &[&str], v: &Value) -> UsageError {
    UsageError::Malformed {
        field: path.join("."),
        value: v.to_string(),
    }
}

/// The usage object: `key` inside the response, or the value itself when it already is one
/// (recognised by `probe`).
/// Which API a reply (or its usage object) comes from, by the keys only it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    OpenAiChat,
    OpenAiResponses,
    Anthropic,
    Gemini,
    Bedrock,
    Ollama,
}

impl Shape {
    fn of(reply: &Value) -> Option<Shape> {
        // A Responses stream event carries the response.
        let v = reply
            .get("response")
            .filter(|r| r.get("usage").is_some())
            .unwrap_or(reply);
        let has = |o: &Value, k: &str| o.get(k).is_some_and(|x| !x.is_null());
        if has(v, "usageMetadata") || has(v, "promptTokenCount") {
            return Some(Shape::Gemini);
        }
        if has(v, "prompt_eval_count") || has(v, "eval_count") {
            return Some(Shape::Ollama);
        }
        let meta = v.get("metadata").unwrap_or(v);
        if meta.get("usage").is_some_and(|u| has(u, "inputTokens")) || has(v, "inputTokens") {
            return Some(Shape::Bedrock);
        }
        let u = v.get("usage").filter(|u| u.is_object()).unwrap_or(v);
        if has(u, "prompt_tokens") || has(u, "completion_tokens") {
            return Some(Shape::OpenAiChat);
        }
        if has(u, "input_tokens") || has(u, "output_tokens") {
            let responses = v.get("object").and_then(Value::as_str) == Some("response")
                || has(u, "input_tokens_details")
                || has(u, "output_tokens_details")
                || has(u, "total_tokens");
            return Some(if responses {
                Shape::OpenAiResponses
            } else {
                Shape::Anthropic
            });
        }
        None
    }

    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Shape::OpenAiChat => ("an OpenAI Chat Completions reply", "Usage::from_openai"),
            Shape::OpenAiResponses => (
                "an OpenAI Responses API reply",
                "Usage::from_openai_responses",
            ),
            Shape::Anthropic => ("an Anthropic Messages reply", "Usage::from_anthropic"),
            Shape::Gemini => ("a Gemini reply", "Usage::from_gemini"),
            Shape::Bedrock => ("a Bedrock Converse reply", "Usage::from_bedrock"),
            Shape::Ollama => ("an Ollama reply", "Usage::from_ollama"),
        }
    }
}

/// Refuses a reply of another API than `expected` (never `Ok` with zeros).
fn expect(reply: &Value, expected: Shape, helper: &'static str) -> Result<(), UsageError> {
    match Shape::of(reply) {
        Some(found) if found != expected => {
            let (found, instead) = found.describe();
            Err(UsageError::WrongShape {
                helper,
                found,
                instead,
            })
        }
        _ => Ok(()),
    }
}

fn usage_object<'a>(
    response: &'a Value,
    key: &str,
    probe: &str,
    provider: &'static str,
) -> Result<&'a Value, UsageError> {
    let missing = UsageError::Missing {
        provider,
        expected: "a usage object",
    };
    match response.get(key) {
        Some(u) if u.is_object() => Ok(u),
        Some(_) => Err(missing),
        None if response.get(probe).is_some() => Ok(response),
        None => Err(missing),
    }
}

impl Usage {
    fn finish(mut self) -> Self {
        self.total = self.input.saturating_add(self.output);
        self
    }

    /// OpenAI Chat Completions (also OpenRouter, Mistral and other compatible APIs): the
    /// response or its `usage`.
    ///
    /// # Errors
    ///
    /// [`UsageError::Missing`] without usage, [`UsageError::Malformed`] for a bad count.
    pub fn from_openai(response: &Value) -> Result<Self, UsageError> {
        expect(response, Shape::OpenAiChat, "Usage::from_openai")?;
        let u = usage_object(response, "usage", "prompt_tokens", "OpenAI")?;
        Ok(Self::openai_chat(u)?.with_tier(response))
    }

    fn openai_chat(u: &Value) -> Result<Self, UsageError> {
        let cost = match u.get("cost") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64().filter(|c| c.is_finite() && *c >= 0.0),
            Some(other) => return Err(malformed(&["cost"], other)),
        };
        let modality = openai_modalities(u, "prompt_tokens_details", "completion_tokens_details")?;
        Ok(Usage {
            input: count(u, &["prompt_tokens"])?,
            output: count(u, &["completion_tokens"])?,
            cache_read: count(u, &["prompt_tokens_details", "cached_tokens"])?,
            cache_write: count(u, &["prompt_tokens_details", "cache_write_tokens"])?,
            reasoning: count(u, &["completion_tokens_details", "reasoning_tokens"])?,
            cost_usd: cost,
            modality,
            ..Usage::default()
        }
        .finish())
    }

    /// The reply's `service_tier` (OpenAI puts it beside `usage`).
    fn with_tier(mut self, response: &Value) -> Self {
        self.service_tier = response
            .get("service_tier")
            .and_then(Value::as_str)
            .map(str::to_owned);
        self
    }

    /// OpenAI Responses API: the response (or a `response.completed` event) or its `usage`.
    ///
    /// # Errors
    ///
    /// As [`from_openai`](Self::from_openai).
    pub fn from_openai_responses(response: &Value) -> Result<Self, UsageError> {
        expect(
            response,
            Shape::OpenAiResponses,
            "Usage::from_openai_responses",
        )?;
        let response = response.get("response").unwrap_or(response);
        let u = usage_object(response, "usage", "input_tokens", "OpenAI Responses")?;
        let modality = openai_modalities(u, "input_tokens_details", "output_tokens_details")?;
        Ok(Usage {
            input: count(u, &["input_tokens"])?,
            output: count(u, &["output_tokens"])?,
            cache_read: count(u, &["input_tokens_details", "cached_tokens"])?,
            reasoning: count(u, &["output_tokens_details", "reasoning_tokens"])?,
            modality,
            ..Usage::default()
        }
        .finish()
        .with_tier(response))
    }

    /// Anthropic Messages: the response or its `usage`. Anthropic reports input without the
    /// cache, so cache reads and writes are added to it.
    ///
    /// # Errors
    ///
    /// As [`from_openai`](Self::from_openai).
    pub fn from_anthropic(response: &Value) -> Result<Self, UsageError> {
        expect(response, Shape::Anthropic, "Usage::from_anthropic")?;
        let u = usage_object(response, "usage", "input_tokens", "Anthropic")?;
        // Anthropic says its tier inside `usage` (`standard`, `priority`, `batch`).
        Ok(anthropic_raw(u)?.usage()?.with_tier(u))
    }

    /// Google Gemini (AI Studio or Vertex): the response or its `usageMetadata`. Gemini reports
    /// thoughts apart from candidates, so they are added to output.
    ///
    /// # Errors
    ///
    /// As [`from_openai`](Self::from_openai).
    pub fn from_gemini(response: &Value) -> Result<Self, UsageError> {
        expect(response, Shape::Gemini, "Usage::from_gemini")?;
        let u = usage_object(response, "usageMetadata", "promptTokenCount", "Gemini")?;
        let thoughts = count(u, &["thoughtsTokenCount"])?;
        let mut modality = ModalityTokens::default();
        for (key, slot) in [
            ("promptTokensDetails", ModalitySlot::Input),
            ("toolUsePromptTokensDetails", ModalitySlot::Input),
            ("cacheTokensDetails", ModalitySlot::CacheRead),
            ("candidatesTokensDetails", ModalitySlot::Output),
        ] {
            gemini_modalities(u, key, slot, &mut modality)?;
        }
        Ok(Usage {
            input: count(u, &["promptTokenCount"])?
                .saturating_add(count(u, &["toolUsePromptTokenCount"])?),
            output: count(u, &["candidatesTokenCount"])?.saturating_add(thoughts),
            cache_read: count(u, &["cachedContentTokenCount"])?,
            reasoning: thoughts,
            modality,
            ..Usage::default()
        }
        .finish())
    }

    /// AWS Bedrock Converse (or a ConverseStream `metadata` event): the response or its
    /// `usage`. Bedrock reports input without the cache, so cache reads and writes are added.
    ///
    /// # Errors
    ///
    /// As [`from_openai`](Self::from_openai).
    pub fn from_bedrock(response: &Value) -> Result<Self, UsageError> {
        expect(response, Shape::Bedrock, "Usage::from_bedrock")?;
        let response = response.get("metadata").unwrap_or(response);
        let u = usage_object(response, "usage", "inputTokens", "Bedrock")?;
        let cache_read = count(u, &["cacheReadInputTokens"])?;
        let cache_write = count(u, &["cacheWriteInputTokens"])?;
        Ok(Usage {
            input: count(u, &["inputTokens"])?
                .saturating_add(cache_read)
                .saturating_add(cache_write),
            output: count(u, &["outputTokens"])?,
            cache_read,
            cache_write,
            ..Usage::default()
        }
        .finish())
    }

    /// xAI (OpenAI-compatible): the response or its `usage`. When `total_tokens` counts
    /// reasoning apart from `completion_tokens`, it is added to output; `cost_in_usd_ticks`
    /// becomes the provider's cost.
    ///
    /// # Errors
    ///
    /// As [`from_openai`](Self::from_openai).
    pub fn from_xai(response: &Value) -> Result<Self, UsageError> {
        expect(response, Shape::OpenAiChat, "Usage::from_xai")?;
        let u = usage_object(response, "usage", "prompt_tokens", "xAI")?;
        let mut usage = Self::openai_chat(u)?;
        let given_total = count(u, &["total_tokens"])?;
        if usage.reasoning > 0 && given_total == usage.input + usage.output + usage.reasoning {
            usage.output = usage.output.saturating_add(usage.reasoning);
        }
        let ticks = count(u, &["cost_in_usd_ticks"])?;
        if u.get("cost_in_usd_ticks").is_some() {
            usage.cost_usd = Some(ticks as f64 / 1e10);
        }
        Ok(usage.finish())
    }

    /// Mistral (OpenAI-compatible): the response or its `usage`.
    ///
    /// # Errors
    ///
    /// As [`from_openai`](Self::from_openai).
    pub fn from_mistral(response: &Value) -> Result<Self, UsageError> {
        expect(response, Shape::OpenAiChat, "Usage::from_mistral")?;
        let u = usage_object(response, "usage", "prompt_tokens", "Mistral")?;
        Self::openai_chat(u)
    }

    /// Ollama `/api/chat` or `/api/generate`: the final (`done: true`) response.
    ///
    /// # Errors
    ///
    /// [`UsageError::Missing`] for a response without counts (not the final one).
    pub fn from_ollama(response: &Value) -> Result<Self, UsageError> {
        expect(response, Shape::Ollama, "Usage::from_ollama")?;
        if response.get("eval_count").is_none() && response.get("prompt_eval_count").is_none() {
            return Err(UsageError::Missing {
                provider: "Ollama",
                expected: "prompt_eval_count / eval_count (the final, done response)",
            });
        }
        Ok(Usage {
            input: count(response, &["prompt_eval_count"])?,
            output: count(response, &["eval_count"])?,
            ..Usage::default()
        }
        .finish())
    }

    /// Records every count on `span` under the names the layer reads (`tokens.input`,
    /// `tokens.output`, `tokens.total`, `tokens.cache_read`, `tokens.cache_write`,
    /// `tokens.cache_write_1h`, `tokens.reasoning`, `cost_usd`, `tokens.estimated`, the audio
    /// and image counts as `gen_ai.usage.{audio,image}.*`, `service_tier`). The span must
    /// declare them (with `tracing::field::Empty`), as [`crate::llm_call_span!`] does.
    pub fn record_on(&self, span: &tracing::Span) {
        span.record("tokens.input", self.input);
        span.record("tokens.output", self.output);
        span.record("tokens.total", self.total);
        span.record("tokens.cache_read", self.cache_read);
        span.record("tokens.cache_write", self.cache_write);
        span.record("tokens.cache_write_1h", self.cache_write_1h);
        span.record("tokens.reasoning", self.reasoning);
        if let Some(cost) = self.cost_usd {
            span.record("cost_usd", cost);
        }
        if self.estimated {
            span.record("tokens.estimated", true);
        }
        for m in [Modality::Audio, Modality::Image] {
            let Some(c) = self.modality.get(m) else {
                continue;
            };
            let names = match m {
                Modality::Audio => [
                    "gen_ai.usage.audio.input_tokens",
                    "gen_ai.usage.audio.output_tokens",
                    "gen_ai.usage.audio.cache_read.input_tokens",
                ],
                _ => [
                    "gen_ai.usage.image.input_tokens",
                    "gen_ai.usage.image.output_tokens",
                    "gen_ai.usage.image.cache_read.input_tokens",
                ],
            };
            for (name, n) in names.into_iter().zip([c.input, c.output, c.cache_read]) {
                if let Some(n) = n {
                    span.record(name, n);
                }
            }
        }
        if let Some(tier) = &self.service_tier {
            span.record("service_tier", tier.as_str());
        }
    }
}

/// Anthropic's own counts, before normalisation (a stream updates them field by field).
#[derive(Clone, Copy, Debug, Default)]
struct AnthropicRaw {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    cache_write_1h: u64,
}

fn anthropic_raw(u: &Value) -> Result<AnthropicRaw, UsageError> {
    let mut raw = AnthropicRaw::default();
    raw.update(u)?;
    Ok(raw)
}

impl AnthropicRaw {
    /// Takes every count `u` carries (Anthropic's stream counts are cumulative: the latest
    /// value replaces, never adds).
    fn update(&mut self, u: &Value) -> Result<(), UsageError> {
        for (key, slot) in [
            ("input_tokens", &mut self.input),
            ("output_tokens", &mut self.output),
            ("cache_read_input_tokens", &mut self.cache_read),
            ("cache_creation_input_tokens", &mut self.cache_write),
        ] {
            if u.get(key).is_some_and(|v| !v.is_null()) {
                *slot = count(u, &[key])?;
            }
        }
        if u.get("cache_creation").is_some() {
            self.cache_write_1h = count(u, &["cache_creation", "ephemeral_1h_input_tokens"])?;
        }
        Ok(())
    }

    fn usage(self) -> Result<Usage, UsageError> {
        Ok(Usage {
            input: self
                .input
                .saturating_add(self.cache_read)
                .saturating_add(self.cache_write),
            output: self.output,
            cache_read: self.cache_read,
            cache_write: self.cache_write,
            cache_write_1h: self.cache_write_1h.min(self.cache_write),
            ..Usage::default()
        }
        .finish())
    }
}

/// Which stream format a [`UsageStream`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StreamKind {
    OpenAi,
    OpenAiResponses,
    Anthropic,
    Gemini,
    Bedrock,
}

/// Folds a streamed response's chunks into one [`Usage`], the way each provider means it:
/// OpenAI's final usage chunk, Anthropic's `message_start` then cumulative `message_delta`
/// counts (the latest kept, never summed), Gemini's cumulative `usageMetadata` on every chunk
/// (the last kept), the Responses API's `response.completed`, Bedrock's `metadata` event.
#[derive(Clone, Debug)]
pub struct UsageStream {
    kind: StreamKind,
    latest: Option<Usage>,
    anthropic: Option<AnthropicRaw>,
    /// The service tier, from whichever chunk said it.
    tier: Option<String>,
}

impl UsageStream {
    fn new(kind: StreamKind) -> Self {
        Self {
            kind,
            latest: None,
            anthropic: None,
            tier: None,
        }
    }

    /// OpenAI Chat Completions chunks (with `stream_options.include_usage`); also xAI,
    /// Mistral, OpenRouter.
    pub fn openai() -> Self {
        Self::new(StreamKind::OpenAi)
    }

    /// OpenAI Responses API events.
    pub fn openai_responses() -> Self {
        Self::new(StreamKind::OpenAiResponses)
    }

    /// Anthropic Messages stream events.
    pub fn anthropic() -> Self {
        Self::new(StreamKind::Anthropic)
    }

    /// Gemini `streamGenerateContent` chunks.
    pub fn gemini() -> Self {
        Self::new(StreamKind::Gemini)
    }

    /// Bedrock ConverseStream events.
    pub fn bedrock() -> Self {
        Self::new(StreamKind::Bedrock)
    }

    /// Reads one chunk (parsed JSON); chunks without usage are ignored.
    ///
    /// # Errors
    ///
    /// [`UsageError::Malformed`] when a chunk's usage has a bad count.
    pub fn push(&mut self, chunk: &Value) -> Result<(), UsageError> {
        match self.kind {
            StreamKind::OpenAi => {
                if let Some(tier) = chunk.get("service_tier").and_then(Value::as_str) {
                    self.tier = Some(tier.to_owned());
                }
                if chunk.get("usage").is_some_and(Value::is_object) {
                    self.latest = Some(Usage::from_openai(chunk)?);
                }
            }
            StreamKind::OpenAiResponses => {
                if chunk.get("type").and_then(Value::as_str) == Some("response.completed") {
                    self.latest = Some(Usage::from_openai_responses(chunk)?);
                }
            }
            StreamKind::Anthropic => {
                let usage = match chunk.get("type").and_then(Value::as_str) {
                    Some("message_start") => chunk.get("message").and_then(|m| m.get("usage")),
                    Some("message_delta") => chunk.get("usage"),
                    _ => None,
                };
                if let Some(u) = usage {
                    self.anthropic
                        .get_or_insert_with(AnthropicRaw::default)
                        .update(u)?;
                    if let Some(tier) = u.get("service_tier").and_then(Value::as_str) {
                        self.tier = Some(tier.to_owned());
                    }
                }
            }
            StreamKind::Gemini => {
                if chunk.get("usageMetadata").is_some() {
                    self.latest = Some(Usage::from_gemini(chunk)?);
                }
            }
            StreamKind::Bedrock => {
                if chunk.get("metadata").is_some() {
                    self.latest = Some(Usage::from_bedrock(chunk)?);
                }
            }
        }
        Ok(())
    }

    /// The usage so far.
    ///
    /// # Errors
    ///
    /// [`UsageError::Missing`] when no chunk has carried usage yet.
    pub fn usage(&self) -> Result<Usage, UsageError> {
        let folded = match self.anthropic {
            Some(raw) => Some(raw.usage()?),
            None => self.latest.clone(),
        }
        .map(|mut u| {
            if u.service_tier.is_none() {
                u.service_tier.clone_from(&self.tier);
            }
            u
        });
        folded.ok_or(UsageError::Missing {
            provider: "stream",
            expected: "a chunk carrying usage",
        })
    }
}

/// Records a failed request on its call span (`error`, which [`crate::llm_call_span!`]
/// declares): the call's line then says it failed, with no tokens and no cost, and its run
/// ends in `error`.
///
/// ```
/// let call = tracing_llm_usage::llm_call_span!(model = "gpt-4o", provider = "openai");
/// let reply: Result<serde_json::Value, std::io::Error> = Err(std::io::Error::other("timed out"));
/// if let Err(e) = &reply {
///     tracing_llm_usage::record_error(&call, e);
/// }
/// ```
pub fn record_error(span: &tracing::Span, error: &dyn std::fmt::Display) {
    span.record("error", error.to_string().as_str());
}

/// An `llm_call` span declaring every field [`Usage::record_on`] records (as
/// `tracing::field::Empty`), plus the fields you pass.
///
/// ```
/// let span = tracing_llm_usage::llm_call_span!(step = "summary", model = "gpt-4o", provider = "openai");
/// # drop(span);
/// ```
#[macro_export]
macro_rules! llm_call_span {
    ($($fields:tt)*) => {
        ::tracing::info_span!(
            "llm_call",
            tokens.input = ::tracing::field::Empty,
            tokens.output = ::tracing::field::Empty,
            tokens.total = ::tracing::field::Empty,
            tokens.cache_read = ::tracing::field::Empty,
            tokens.cache_write = ::tracing::field::Empty,
            tokens.cache_write_1h = ::tracing::field::Empty,
            tokens.reasoning = ::tracing::field::Empty,
            cost_usd = ::tracing::field::Empty,
            tokens.estimated = ::tracing::field::Empty,
            gen_ai.usage.audio.input_tokens = ::tracing::field::Empty,
            gen_ai.usage.audio.output_tokens = ::tracing::field::Empty,
            gen_ai.usage.audio.cache_read.input_tokens = ::tracing::field::Empty,
            gen_ai.usage.image.input_tokens = ::tracing::field::Empty,
            gen_ai.usage.image.output_tokens = ::tracing::field::Empty,
            gen_ai.usage.image.cache_read.input_tokens = ::tracing::field::Empty,
            service_tier = ::tracing::field::Empty,
            error = ::tracing::field::Empty,
            $($fields)*
        )
    };
}
