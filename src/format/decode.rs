//! The line decoder: one line parsed borrowing from the input, only the fields reports use,
//! strings borrowed unless they contain escapes. Unknown keys are skipped; duplicate keys,
//! numbers beyond u64, invalid UTF-8 and over-deep nesting are errors.
//!
//! ```
//! use tracing_llm_usage::format::decode;
//! let line = decode::parse(br#"{"event":"llm_call","run_id":"r1","tokens":{"input":3,"output":1}}"#)?;
//! assert_eq!(line.run_id.as_deref(), Some("r1"));
//! assert_eq!(line.tokens.input, 3);
//! assert!(decode::parse(br#"{"event":"llm_call","tokens":{"input":-1}}"#).is_err());
//! # Ok::<(), String>(())
//! ```

use std::borrow::Cow;

use serde::Deserialize;

/// Totals of a `run_summary` line.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
#[non_exhaustive]
pub struct SummaryUsage {
    /// Calls in the run.
    pub call_count: u64,
    /// Input tokens (cached included).
    pub input_tokens: u64,
    /// Output tokens (reasoning included).
    pub output_tokens: u64,
    /// Input plus output.
    pub total_tokens: u64,
    /// The priced calls' cost, `None` when no call was priced.
    pub cost_usd: Option<f64>,
    /// Calls without a cost, which `cost_usd` leaves out (0 in lines of older versions).
    pub unpriced_calls: u64,
}

/// Any line kind; which fields are set depends on `event`.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
#[non_exhaustive]
pub struct Line<'a> {
    /// `llm_call`, `run_summary`, `budget_warning`, `budget_exceeded` or `budget_unpriced`.
    #[serde(borrow)]
    pub event: Cow<'a, str>,
    /// RFC 3339, UTC.
    #[serde(borrow)]
    pub timestamp: Cow<'a, str>,
    /// The run.
    #[serde(borrow, deserialize_with = "opt_str")]
    pub run_id: Option<Cow<'a, str>>,
    /// The workflow step.
    #[serde(borrow, deserialize_with = "opt_str")]
    pub step: Option<Cow<'a, str>>,
    /// The model.
    #[serde(borrow, deserialize_with = "opt_str")]
    pub model: Option<Cow<'a, str>>,
    /// The provider.
    #[serde(borrow, deserialize_with = "opt_str")]
    pub provider: Option<Cow<'a, str>>,
    /// The task.
    #[serde(borrow, deserialize_with = "opt_str")]
    pub task: Option<Cow<'a, str>>,
    /// The agent.
    #[serde(borrow, deserialize_with = "opt_str")]
    pub agent: Option<Cow<'a, str>>,
    /// Token counts (calls).
    pub tokens: crate::record::Tokens,
    /// Tokens by modality, when the line has them (priced at their own rates by `--prices`).
    pub modality: Option<crate::record::ModalityTokens>,
    /// Whether the response was streamed.
    pub stream: Option<bool>,
    /// Time to the first chunk of a streamed response.
    pub ttft_ms: Option<u64>,
    /// The service tier the call was billed in, when recorded (calls).
    #[serde(borrow, deserialize_with = "opt_str")]
    pub service_tier: Option<Cow<'a, str>>,
    /// Cache-write tokens with a 1-hour lifetime, a subset of `tokens.cache_write` (calls).
    pub cache_write_1h: u64,
    /// Kept as raw JSON text: only `report` reads it ([`components`]).
    #[serde(borrow, deserialize_with = "raw_json")]
    pub prompt_breakdown: Option<&'a str>,
    /// The cost in USD, `None` when unpriced.
    pub cost_usd: Option<f64>,
    /// `local`, `provider`, `unpriced` or `no_usage` (calls).
    #[serde(borrow, deserialize_with = "opt_str")]
    pub cost_source: Option<Cow<'a, str>>,
    /// The price table the cost came from.
    #[serde(borrow, deserialize_with = "opt_str")]
    pub price_version: Option<Cow<'a, str>>,
    /// The call's duration.
    pub latency_ms: Option<u64>,
    /// Whether the token counts were estimated from text.
    pub estimated: bool,
    /// The call's error, if it failed.
    #[serde(borrow, deserialize_with = "opt_str")]
    pub error: Option<Cow<'a, str>>,
    /// How the run ended (summaries).
    #[serde(borrow, deserialize_with = "opt_str")]
    pub status: Option<Cow<'a, str>>,
    /// The run's duration (summaries).
    pub elapsed_seconds: Option<f64>,
    /// The run's totals (summaries).
    pub usage: Option<SummaryUsage>,
    /// The budget's name (budget lines).
    #[serde(borrow, deserialize_with = "opt_str")]
    pub budget: Option<Cow<'a, str>>,
    /// `run` or `day` (budget lines).
    #[serde(borrow, deserialize_with = "opt_str")]
    pub scope: Option<Cow<'a, str>>,
    /// The run id or the day (budget lines).
    #[serde(borrow, deserialize_with = "opt_str")]
    pub scope_id: Option<Cow<'a, str>>,
    /// `usd` or `tokens` (budget lines).
    #[serde(borrow, deserialize_with = "opt_str")]
    pub metric: Option<Cow<'a, str>>,
    /// The budget's limit (budget lines).
    pub limit: Option<f64>,
    /// The spend that crossed it (budget lines).
    pub value: Option<f64>,
    /// Why the call had no cost (`budget_unpriced` lines: `no_price` or `no_usage`).
    #[serde(borrow, deserialize_with = "opt_str")]
    pub reason: Option<Cow<'a, str>>,
    /// The attributes object as its JSON text (calls and summaries that have any; read with
    /// [`attributes`]).
    #[serde(borrow, deserialize_with = "raw_json_cow")]
    pub attributes: Option<Cow<'a, str>>,
    /// The attribute and its value a per-value budget line is about (`each`/`only` budgets).
    #[serde(borrow, deserialize_with = "opt_str")]
    pub attribute: Option<Cow<'a, str>>,
    /// The attribute's value (budget lines of per-value budgets).
    #[serde(borrow, deserialize_with = "opt_str")]
    pub attribute_value: Option<Cow<'a, str>>,
}

/// `Option<Cow<str>>` that borrows when the string has no escapes: serde's `borrow`
/// does not reach through `Option`, and would allocate every optional string.
fn opt_str<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'b>(#[serde(borrow)] Cow<'b, str>);
    Ok(Option::<Borrowed<'a>>::deserialize(d)?.map(|b| b.0))
}

impl Line<'_> {
    /// The modality breakdown as JSON text, for a database column.
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn modality_json(&self) -> Option<String> {
        self.modality
            .as_ref()
            .and_then(|m| serde_json::to_string(m).ok())
    }
}

/// A value kept as its JSON text, borrowed from the line.
fn raw_json<'de: 'a, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'a str>, D::Error> {
    let raw: Option<&'a serde_json::value::RawValue> = Deserialize::deserialize(d)?;
    Ok(raw.map(serde_json::value::RawValue::get))
}

/// A value kept as its JSON text, borrowed from the line when it can be.
fn raw_json_cow<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    Ok(raw_json(d)?.map(Cow::Borrowed))
}

/// A line's `attributes` (`{"tenant":"acme","prompt.version":"v3"}`), in the line's order.
///
/// # Errors
///
/// Why it is not a map of names to strings, numbers and booleans.
pub fn attributes(raw: &str) -> Result<crate::attributes::Attributes, String> {
    serde_json::from_str(raw).map_err(|e| format!("attributes: {}", reason(&e)))
}

/// A JSON object as (key, value) pairs in its order; a key given twice is an error.
pub(crate) fn ordered_map<'de, D, V>(d: D) -> Result<Vec<(String, V)>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct M<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for M<V> {
        type Value = Vec<(String, V)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out: Vec<(String, V)> = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, V>()? {
                if out.iter().any(|(o, _)| *o == k) {
                    return Err(serde::de::Error::custom(format!("duplicate key {k:?}")));
                }
                out.push((k, v));
            }
            Ok(out)
        }
    }
    d.deserialize_map(M(std::marker::PhantomData))
}

/// A line's `prompt_breakdown` (`{"system": 2100, "data": 38000}`) as (component, tokens)
/// pairs, in the line's order.
///
/// # Errors
///
/// Why it is not a map of names to token counts.
pub fn components(raw: &str) -> Result<Vec<(String, u64)>, String> {
    let mut d = serde_json::Deserializer::from_str(raw);
    components_map(&mut d).map_err(|e| e.to_string())
}

fn components_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, u64)>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<(String, u64)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of prompt components to token counts")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, u64>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// Parses one line (without its `\n`).
///
/// # Errors
///
/// Why it is not a line of the format: invalid UTF-8 or JSON, a value of the wrong type, no
/// or an unknown `event`.
pub fn parse(bytes: &[u8]) -> Result<Line<'_>, String> {
    // serde_json does not check the bytes of strings it skips: a corrupt line must not pass
    // because the corruption sits in a key no report reads.
    let text = std::str::from_utf8(bytes).map_err(|e| format!("invalid UTF-8: {e}"))?;
    parse_str(text)
}

/// [`parse`] for a line already known to be UTF-8 (each string is then not checked again).
///
/// # Errors
///
/// As [`parse`].
pub fn parse_str(text: &str) -> Result<Line<'_>, String> {
    if let Some(line) = super::fast::line(text) {
        return Ok(line);
    }
    let line: Line<'_> = serde_json::from_str(text).map_err(|e| reason(&e))?;
    if let Some(raw) = &line.attributes {
        attributes(raw)?;
    }
    check(line)
}

/// Why a line is not a usage line, without serde's "line 1" (a line is one line).
fn reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let text = text.replace(" at line 1 column ", " at column ");
    match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("not JSON: {text}")
        }
        _ => text,
    }
}

fn check(line: Line<'_>) -> Result<Line<'_>, String> {
    match &*line.event {
        "llm_call" | "run_summary" | "budget_warning" | "budget_exceeded" | "budget_unpriced" => {
            Ok(line)
        }
        "" => Err("no \"event\" key".into()),
        other => Err(format!("unknown event {other:?}")),
    }
}
