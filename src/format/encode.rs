//! The line encoder: a [`CallRecord`] written straight into a reused buffer (no
//! `serde_json::Value`, integers through itoa); run summaries and budget lines, a few per
//! run, through serde.
//!
//! The output is byte-for-byte what `serde_json::to_string(&record)` gives, which the tests
//! check; the hand-written path exists because this runs on every call.

use crate::budget::BudgetEvent;
use crate::ledger::RunSummary;
use crate::record::CallRecord;

/// Appends `rec` as one JSON line (with its `\n`) to `out`.
pub(crate) fn call(rec: &CallRecord, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    rec.timestamp.write_to(out);
    out.extend_from_slice(b"\",\"event\":\"llm_call\",\"run_id\":");
    opt_str(out, &rec.run_id);
    out.extend_from_slice(b",\"step\":");
    opt_str(out, &rec.step);
    out.extend_from_slice(b",\"model\":");
    opt_str(out, &rec.model);
    out.extend_from_slice(b",\"provider\":");
    opt_str(out, &rec.provider);
    out.extend_from_slice(b",\"task\":");
    opt_str(out, &rec.task);
    out.extend_from_slice(b",\"agent\":");
    opt_str(out, &rec.agent);
    let t = &rec.tokens;
    out.extend_from_slice(b",\"tokens\":{\"input\":");
    uint(out, t.input);
    out.extend_from_slice(b",\"output\":");
    uint(out, t.output);
    out.extend_from_slice(b",\"total\":");
    uint(out, t.total);
    out.extend_from_slice(b",\"cache_read\":");
    uint(out, t.cache_read);
    out.extend_from_slice(b",\"cache_write\":");
    uint(out, t.cache_write);
    out.extend_from_slice(b",\"reasoning\":");
    uint(out, t.reasoning);
    out.extend_from_slice(b"},\"prompt_breakdown\":{");
    for (i, (component, tokens)) in rec.prompt_breakdown.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, component);
        out.push(b':');
        uint(out, *tokens);
    }
    out.extend_from_slice(b"},\"cost_usd\":");
    match rec.written_cost() {
        Some(c) => float(out, c),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"cost_source\":\"");
    out.extend_from_slice(rec.cost_source.as_str().as_bytes());
    out.extend_from_slice(b"\",\"price_version\":");
    opt_str(out, &rec.price_version);
    out.extend_from_slice(b",\"latency_ms\":");
    uint(out, rec.latency_ms);
    out.extend_from_slice(if rec.estimated {
        b",\"estimated\":true,\"error\":".as_slice()
    } else {
        b",\"estimated\":false,\"error\":"
    });
    match &rec.error {
        Some(e) => string(out, e),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"warnings\":[");
    for (i, w) in rec.warnings.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, w);
    }
    out.push(b']');
    match rec.stream {
        Some(true) => out.extend_from_slice(b",\"stream\":true"),
        Some(false) => out.extend_from_slice(b",\"stream\":false"),
        None => {}
    }
    if let Some(ms) = rec.ttft_ms {
        out.extend_from_slice(b",\"ttft_ms\":");
        uint(out, ms);
    }
    if let Some(m) = &rec.modality {
        out.extend_from_slice(b",\"modality\":");
        // Rare (providers that report modalities): serde's output, which cannot fail into a Vec.
        let _ = serde_json::to_writer(&mut *out, m);
    }
    if let Some(tier) = &rec.service_tier {
        out.extend_from_slice(b",\"service_tier\":");
        string(out, tier);
    }
    if rec.cache_write_1h > 0 {
        out.extend_from_slice(b",\"cache_write_1h\":");
        uint(out, rec.cache_write_1h);
    }
    if !rec.attributes.is_empty() {
        out.extend_from_slice(b",\"attributes\":{");
        for (i, (k, v)) in rec.attributes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, k);
            out.push(b':');
            attribute(out, v);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"}\n");
}

/// Appends `summary` as one JSON line (with its `\n`) to `out`.
pub(crate) fn summary(summary: &RunSummary, out: &mut Vec<u8>) {
    // Writing serde-derived data into a Vec cannot fail: no I/O, string keys only.
    if serde_json::to_writer(&mut *out, summary).is_ok() {
        out.push(b'\n');
    }
}

/// Appends a budget crossing (`budget_warning` / `budget_exceeded`) as one JSON line.
pub(crate) fn budget(event: &BudgetEvent, out: &mut Vec<u8>) {
    if serde_json::to_writer(&mut *out, event).is_ok() {
        out.push(b'\n');
    }
}

fn opt_str<S: std::ops::Deref<Target = str>>(out: &mut Vec<u8>, s: &Option<S>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    // Names, ids and models almost never need escaping: copy those straight. Anything else
    // goes through serde_json's escaping, so the line reads back exactly (writing to a Vec
    // cannot fail).
    if !needs_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Whether `b` holds a control character, `"` or `\\`: eight bytes at a time (the classic
/// "has a zero byte" and "has a byte below n" word tricks), as every call writes several names.
fn needs_escape(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let special = |w: u64| {
        let below_space = w.wrapping_sub(ONES * 0x20) & !w;
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        let zero = |x: u64| x.wrapping_sub(ONES) & !x;
        (below_space | zero(quote) | zero(backslash)) & HIGH != 0
    };
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(w)
    };
    if b.len() < 8 {
        // Padded with a plain byte: one word check for a short name.
        let mut w = [b'a'; 8];
        w[..b.len()].copy_from_slice(b);
        return special(u64::from_le_bytes(w));
    }
    let mut at = 0;
    while at + 8 <= b.len() {
        if special(word(at)) {
            return true;
        }
        at += 8;
    }
    // The tail as the last eight bytes, overlapping what was checked.
    at < b.len() && special(word(b.len() - 8))
}

fn attribute(out: &mut Vec<u8>, v: &crate::attributes::AttributeValue) {
    use crate::attributes::AttributeValue as V;
    match v {
        V::Str(s) => string(out, s),
        V::UInt(u) => uint(out, *u),
        V::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        V::Float(f) => float(out, *f),
        V::Bool(true) => out.extend_from_slice(b"true"),
        V::Bool(false) => out.extend_from_slice(b"false"),
    }
}

fn uint(out: &mut Vec<u8>, v: u64) {
    // Zero is the most common count (cache and reasoning tokens): no copy call for it.
    if v < 10 {
        out.push(b'0' + v as u8);
        return;
    }
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn float(out: &mut Vec<u8>, v: f64) {
    // serde_json's own float formatting (null for NaN and infinities), so both paths agree.
    let _ = serde_json::to_writer(&mut *out, &v);
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::record::{CostSource, LineKind, PromptBreakdown, Timestamp, Tokens};
    use crate::Name;

    pub(crate) fn record() -> CallRecord {
        CallRecord {
            timestamp: Timestamp::from_unix_ms(1_765_708_215_123),
            event: LineKind::LlmCall,
            run_id: Some(Arc::from("run-\"quoted\"\n")),
            step: Some(Name::from("persona_generation")),
            model: Some(Name::from("claude-sonnet-4-5")),
            provider: None,
            task: Some(Name::from("ünïcode ✓")),
            agent: None,
            tokens: Tokens {
                input: 42000,
                output: 7500,
                total: 49500,
                cache_read: 1,
                cache_write: 2,
                reasoning: u64::MAX,
            },
            prompt_breakdown: PromptBreakdown(vec![(Arc::from("system"), 2100)]),
            cost_usd: Some(0.2385),
            cost_source: CostSource::Local,
            price_version: Some(Name::from("prices-0badc0de")),
            latency_ms: 1830,
            estimated: true,
            error: Some("boom\t".into()),
            warnings: vec!["a".into(), "b\u{1}".into()],
            stream: None,
            ttft_ms: None,
            modality: None,
            operation: Name::from("chat"),
            request_model: None,
            service_tier: None,
            cache_write_1h: 0,
            attributes: attributes(),
            trace: None,
        }
    }

    /// One attribute of each kind of value.
    pub(crate) fn attributes() -> crate::attributes::Attributes {
        use crate::attributes::AttributeValue as V;
        crate::attributes::Attributes::from_pairs(vec![
            (Name::from("tenant"), V::Str(Name::from("acme"))),
            (Name::from("prompt.version"), V::Str(Name::from("v3"))),
            (Name::from("seats"), V::UInt(3)),
            (Name::from("offset"), V::Int(-2)),
            (Name::from("ratio"), V::Float(0.5)),
            (Name::from("beta"), V::Bool(true)),
        ])
    }

    /// A run summary of `run` (two calls in one step, an error).
    pub(crate) fn summary(run: &str) -> RunSummary {
        use crate::ledger::{RunStatus, RunUsage, StepUsage};
        RunSummary {
            timestamp: Timestamp::from_unix_ms(1_765_708_216_000),
            event: LineKind::RunSummary,
            run_id: Arc::from(run),
            status: RunStatus::Error,
            elapsed_seconds: 1.5,
            usage: RunUsage {
                input_tokens: 1200,
                output_tokens: 300,
                total_tokens: 1500,
                call_count: 2,
                cost_usd: Some(0.0081),
                unpriced_calls: 1,
            },
            by_step: vec![StepUsage {
                step: Some(Name::from("summary")),
                input_tokens: 1200,
                output_tokens: 300,
                calls: 2,
                cost_usd: Some(0.0081),
            }],
            prompt_breakdown: PromptBreakdown(vec![(Arc::from("system"), 900)]),
            warnings: vec!["a warning".into()],
            attributes: crate::attributes::Attributes::from_pairs(vec![(
                Name::from("tenant"),
                crate::attributes::AttributeValue::Str(Name::from("acme")),
            )]),
        }
    }

    /// A crossing of the budget `name` (0.625 USD over 0.5 in run `run-1`).
    pub(crate) fn budget_event(name: &str, kind: crate::budget::BudgetEventKind) -> BudgetEvent {
        BudgetEvent {
            timestamp: Timestamp::from_unix_ms(1_765_708_217_000),
            event: kind,
            budget: name.into(),
            scope: crate::budget::BudgetScope::Run,
            scope_id: "run-1".into(),
            metric: crate::budget::BudgetMetric::Usd,
            limit: 0.5,
            value: 0.625,
            run_id: Some(Arc::from("run-1")),
            step: Some(Arc::from("draft")),
            model: Some(Arc::from("gpt-4o")),
            reason: (kind == crate::budget::BudgetEventKind::Unpriced)
                .then(|| Arc::from("no_price")),
            attribute: Some(Arc::from("tenant")),
            attribute_value: Some(Arc::from("acme")),
        }
    }

    proptest::proptest! {
        #[test]
        fn word_escape_check_matches_the_byte_loop(s in proptest::collection::vec(
            // Mostly plain bytes, so that both answers come up often.
            proptest::prop_oneof![60 => 0x20u8..=0xff, 1 => proptest::num::u8::ANY],
            0..40,
        )) {
            let naive = s.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
            proptest::prop_assert_eq!(needs_escape(&s), naive);
        }
    }

    #[test]
    fn every_special_byte_at_every_position_is_found() {
        for len in 1..20 {
            for at in 0..len {
                for special in (0u8..0x20).chain([b'"', b'\\']) {
                    let mut s = vec![b'a'; len];
                    s[at] = special;
                    assert!(needs_escape(&s), "{special} at {at} of {len}");
                }
                let mut s = vec![0xffu8; len];
                s[at] = 0x20;
                assert!(!needs_escape(&s));
            }
        }
    }

    #[test]
    fn hand_encoder_matches_serde() {
        let mut rec = record();
        let mut modality = crate::ModalityTokens::default();
        modality.set(crate::Modality::Audio, crate::ModalitySlot::Input, 300);
        modality.set(crate::Modality::Text, crate::ModalitySlot::Output, 12);
        let optional = [
            (None, None, None),
            (Some(true), Some(250), Some(Box::new(modality))),
            (Some(false), None, None),
        ];
        for (cost, (stream, ttft_ms, modality)) in
            [Some(0.2385), Some(1e-7), Some(12345.678), Some(0.0), None]
                .into_iter()
                .zip(optional.into_iter().cycle())
        {
            rec.cost_usd = cost;
            rec.stream = stream;
            rec.ttft_ms = ttft_ms;
            rec.modality = modality;
            let mut out = Vec::new();
            call(&rec, &mut out);
            let mut want = serde_json::to_vec(&rec).unwrap();
            want.push(b'\n');
            assert_eq!(
                String::from_utf8(out).unwrap(),
                String::from_utf8(want).unwrap()
            );
        }
        rec.cost_usd = Some(0.008535000000000001);
        let mut line = Vec::new();
        call(&rec, &mut line);
        let text = String::from_utf8(line).unwrap();
        assert!(text.contains("\"cost_usd\":0.008535,"), "{text}");
        rec.cost_usd = Some(1e300);
        let mut line = Vec::new();
        call(&rec, &mut line);
        let text = String::from_utf8(line).unwrap();
        assert!(text.contains("\"cost_usd\":1e+300,"), "{text}");
        rec.cost_usd = Some(0.2385);
        let mut out = Vec::new();
        call(&rec, &mut out);
        let back: CallRecord = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, rec);
        assert!(std::str::from_utf8(&out)
            .unwrap()
            .starts_with("{\"timestamp\":\"2025-12-14T10:30:15.123Z\","));
    }
}
