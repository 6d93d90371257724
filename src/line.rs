#![cfg_attr(not(feature = "cli"), allow(dead_code))]
//! One JSONL line, parsed borrowing from the input: only the fields the reports use, strings
//! borrowed unless they contain escapes. Unknown keys are skipped; duplicate keys, numbers
//! beyond u64, invalid UTF-8 and over-deep nesting are errors from serde_json.

use std::borrow::Cow;

use serde::Deserialize;

/// Totals of a `run_summary` line.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub(crate) struct SummaryUsage {
    pub(crate) call_count: u64,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) total_tokens: u64,
    pub(crate) cost_usd: Option<f64>,
}

/// Either line kind; which fields are set depends on `event`.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub(crate) struct Line<'a> {
    #[serde(borrow)]
    pub(crate) event: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) timestamp: Cow<'a, str>,
    #[serde(borrow, deserialize_with = "opt_str")]
    pub(crate) run_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "opt_str")]
    pub(crate) step: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "opt_str")]
    pub(crate) model: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "opt_str")]
    pub(crate) provider: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "opt_str")]
    pub(crate) task: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "opt_str")]
    pub(crate) agent: Option<Cow<'a, str>>,
    pub(crate) tokens: crate::record::Tokens,
    /// Tokens by modality, when the line has them (priced at their own rates by `--prices`).
    pub(crate) modality: Option<crate::record::ModalityTokens>,
    pub(crate) stream: Option<bool>,
    pub(crate) ttft_ms: Option<u64>,
    /// Kept as raw JSON: only `report` reads it ([`components`]).
    #[serde(borrow)]
    pub(crate) prompt_breakdown: Option<&'a serde_json::value::RawValue>,
    pub(crate) cost_usd: Option<f64>,
    #[serde(borrow, deserialize_with = "opt_str")]
    pub(crate) cost_source: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "opt_str")]
    pub(crate) price_version: Option<Cow<'a, str>>,
    pub(crate) latency_ms: Option<u64>,
    pub(crate) estimated: bool,
    #[serde(borrow, deserialize_with = "opt_str")]
    pub(crate) error: Option<Cow<'a, str>>,
    // run_summary
    #[serde(borrow, deserialize_with = "opt_str")]
    pub(crate) status: Option<Cow<'a, str>>,
    pub(crate) elapsed_seconds: Option<f64>,
    pub(crate) usage: Option<SummaryUsage>,
    // budget_warning / budget_exceeded
    #[serde(borrow, deserialize_with = "opt_str")]
    pub(crate) budget: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "opt_str")]
    pub(crate) scope: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "opt_str")]
    pub(crate) scope_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "opt_str")]
    pub(crate) metric: Option<Cow<'a, str>>,
    pub(crate) limit: Option<f64>,
    pub(crate) value: Option<f64>,
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

/// `{"system": 2100, "data": 38000}` → components in order.
pub(crate) fn components(raw: &serde_json::value::RawValue) -> Result<Vec<(String, u64)>, String> {
    let mut d = serde_json::Deserializer::from_str(raw.get());
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
pub(crate) fn parse(bytes: &[u8]) -> Result<Line<'_>, String> {
    // serde_json does not check the bytes of strings it skips: a corrupt line must not pass
    // because the corruption sits in a key no report reads.
    let text = std::str::from_utf8(bytes).map_err(|e| format!("invalid UTF-8: {e}"))?;
    parse_str(text)
}

/// Parses one line already known to be UTF-8 (serde_json then skips validating each string).
pub(crate) fn parse_str(text: &str) -> Result<Line<'_>, String> {
    let line: Line<'_> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    check(line)
}

fn check(line: Line<'_>) -> Result<Line<'_>, String> {
    match &*line.event {
        "llm_call" | "run_summary" | "budget_warning" | "budget_exceeded" => Ok(line),
        "" => Err("no \"event\" key".into()),
        other => Err(format!("unknown event {other:?}")),
    }
}
