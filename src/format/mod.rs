//! The LLM usage log format: one JSON object per line, of five kinds (`llm_call`,
//! `run_summary`, `budget_warning`, `budget_exceeded`, `budget_unpriced`): the layer writes them, [`decode`]
//! reads them back, and [`SCHEMA`] describes them (JSON Schema, draft 2020-12); the database
//! sink reads a record's fields through `view`, the decoder's view of a record. The tests
//! check that the four agree for every kind. `docs/format.md` documents each field.

pub mod decode;
pub(crate) mod encode;
mod fast;
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) mod view;

/// The JSON Schema of every line kind, draft 2020-12.
pub const SCHEMA: &str = include_str!("../../schema/llm_usage.schema.json");

#[cfg(test)]
mod agreement {
    //! Encoder, decoder and schema agree on every line kind: each encoded line validates
    //! against the schema, and decodes to the values it was made from.

    use serde_json::Value;

    use super::{decode, encode, view, SCHEMA};
    use crate::budget::BudgetEventKind;

    /// The record's view is what its line decodes to (but the breakdown's JSON text).
    fn same_view(line: &decode::Line<'_>, view: &decode::Line<'_>) {
        let mut line = line.clone();
        line.prompt_breakdown = None;
        assert_eq!(format!("{view:?}"), format!("{line:?}"));
    }

    fn valid(line: &[u8]) -> decode::Line<'_> {
        let text = std::str::from_utf8(line).unwrap();
        assert!(text.ends_with('\n'), "{text}");
        let text = text.trim_end_matches('\n');
        assert!(!text.contains('\n'), "one line: {text}");
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        let value: Value = serde_json::from_str(text).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        if let Err(e) = validator.validate(&value) {
            panic!("{e}: {text}");
        }
        decode::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn call_lines() {
        let mut rec = encode::tests::record();
        let mut modality = crate::ModalityTokens::default();
        modality.set(crate::Modality::Audio, crate::ModalitySlot::Input, 300);
        rec.modality = Some(Box::new(modality.clone()));
        rec.stream = Some(true);
        rec.ttft_ms = Some(250);
        rec.error = Some("timeout".into());
        rec.service_tier = Some(crate::Name::from("flex"));
        rec.cache_write_1h = 40;
        let mut out = Vec::new();
        encode::call(&rec, &mut out);
        // Byte for byte what serde writes.
        let mut serde_line = serde_json::to_vec(&rec).unwrap();
        serde_line.push(b'\n');
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&serde_line)
        );
        let line = valid(&out);
        assert_eq!(line.event, "llm_call");
        assert_eq!(line.timestamp, "2025-12-14T10:30:15.123Z");
        assert_eq!(line.run_id.as_deref(), rec.run_id.as_deref());
        assert_eq!(line.step.as_deref(), Some("persona_generation"));
        assert_eq!(line.model.as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(line.provider, None);
        assert_eq!(line.task.as_deref(), Some("ünïcode ✓"));
        assert_eq!(line.tokens, rec.tokens);
        assert_eq!(line.modality, Some(modality));
        assert_eq!(line.stream, Some(true));
        assert_eq!(line.ttft_ms, Some(250));
        assert_eq!(line.cost_usd, rec.cost_usd);
        assert_eq!(line.cost_source.as_deref(), Some("local"));
        assert_eq!(line.latency_ms, Some(rec.latency_ms));
        assert_eq!(line.error.as_deref(), Some("timeout"));
        assert_eq!(line.service_tier.as_deref(), Some("flex"));
        assert_eq!(line.cache_write_1h, 40);
        let parts = decode::components(line.prompt_breakdown.unwrap()).unwrap();
        assert_eq!(parts, vec![("system".to_owned(), 2100)]);
        same_view(&line, &view::call(&rec));
    }

    #[test]
    fn a_provider_cost_below_a_nano_dollar_is_kept() {
        let mut rec = encode::tests::record();
        rec.cost_usd = Some(4e-10);
        rec.cost_source = crate::record::CostSource::Provider;
        let mut out = Vec::new();
        encode::call(&rec, &mut out);
        let line = valid(&out);
        assert_eq!(
            (line.cost_usd, line.cost_source.as_deref()),
            (Some(4e-10), Some("provider"))
        );
        same_view(&line, &view::call(&rec));
        // A local one is written to the nano-dollar.
        rec.cost_source = crate::record::CostSource::Local;
        rec.cost_usd = Some(0.1 + 0.2);
        let mut out = Vec::new();
        encode::call(&rec, &mut out);
        assert_eq!(valid(&out).cost_usd, Some(0.3));
    }

    #[test]
    fn run_summary_lines() {
        let summary = encode::tests::summary("run-1");
        let mut out = Vec::new();
        encode::summary(&summary, &mut out);
        let line = valid(&out);
        assert_eq!(line.event, "run_summary");
        assert_eq!(line.timestamp, "2025-12-14T10:30:16.000Z");
        assert_eq!(line.run_id.as_deref(), Some("run-1"));
        assert_eq!(line.status.as_deref(), Some("error"));
        assert_eq!(line.elapsed_seconds, Some(1.5));
        let usage = line.usage.clone().unwrap();
        assert_eq!(
            (
                usage.call_count,
                usage.input_tokens,
                usage.output_tokens,
                usage.total_tokens
            ),
            (2, 1200, 300, 1500)
        );
        assert_eq!(usage.cost_usd, Some(0.0081));
        assert_eq!(usage.unpriced_calls, 1);
        same_view(&line, &view::summary(&summary));
    }

    #[test]
    fn budget_lines() {
        for (kind, name) in [
            (BudgetEventKind::Warning, "budget_warning"),
            (BudgetEventKind::Exceeded, "budget_exceeded"),
            (BudgetEventKind::Unpriced, "budget_unpriced"),
        ] {
            let event = encode::tests::budget_event("cap", kind);
            let mut out = Vec::new();
            encode::budget(&event, &mut out);
            let line = valid(&out);
            assert_eq!(line.event, name);
            assert_eq!(line.timestamp, "2025-12-14T10:30:17.000Z");
            assert_eq!(line.budget.as_deref(), Some("cap"));
            assert_eq!(line.scope.as_deref(), Some("run"));
            assert_eq!(line.scope_id.as_deref(), Some("run-1"));
            assert_eq!(line.metric.as_deref(), Some("usd"));
            assert_eq!((line.limit, line.value), (Some(0.5), Some(0.625)));
            assert_eq!(line.run_id.as_deref(), Some("run-1"));
            assert_eq!(line.step.as_deref(), Some("draft"));
            assert_eq!(line.model.as_deref(), Some("gpt-4o"));
            let reason = (kind == BudgetEventKind::Unpriced).then_some("no_price");
            assert_eq!(line.reason.as_deref(), reason);
            same_view(&line, &view::budget(&event));
        }
    }
}
