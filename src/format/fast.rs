//! The decoder's fast path: an `llm_call` line exactly as the layer writes it (its keys in
//! the encoder's order, no whitespace, strings without escapes), read in one pass with no
//! allocation. Anything else (another key order, an escape, a number that is not a plain
//! integer where one is due, a `modality`, another line kind) returns `None`, and the full
//! parser decides, so that what the fast path accepts is exactly what serde_json would accept,
//! with the same values.

use std::borrow::Cow;

use super::decode::Line;
use crate::record::Tokens;

/// A cursor over one line.
struct Cur<'a> {
    s: &'a str,
    b: &'a [u8],
    at: usize,
}

impl<'a> Cur<'a> {
    /// Consumes `lit` if the line continues with it.
    fn lit(&mut self, lit: &[u8]) -> Option<()> {
        let end = self.at.checked_add(lit.len())?;
        (self.b.get(self.at..end)? == lit).then(|| self.at = end)
    }

    /// A string without escapes or control characters, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        self.lit(b"\"")?;
        let start = self.at;
        loop {
            match *self.b.get(self.at)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.at += 1,
            }
        }
        let s = self.s.get(start..self.at)?;
        self.at += 1;
        Some(s)
    }

    /// A string or `null`.
    fn opt_string(&mut self) -> Option<Option<&'a str>> {
        if self.lit(b"null").is_some() {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// A JSON integer that fits a u64: `0` or digits not starting with `0`, and no fraction or
    /// exponent after it.
    fn uint(&mut self) -> Option<u64> {
        let start = self.at;
        let mut v: u64 = 0;
        while let Some(&c) = self.b.get(self.at) {
            if !c.is_ascii_digit() {
                break;
            }
            v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            self.at += 1;
        }
        let len = self.at - start;
        if len == 0 || (len > 1 && self.b[start] == b'0') {
            return None;
        }
        match self.b.get(self.at) {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(v),
        }
    }

    /// A JSON number (the grammar checked here), parsed as f64 (correctly rounded).
    fn number(&mut self) -> Option<f64> {
        let start = self.at;
        let b = self.b;
        let digits = |at: &mut usize| {
            let from = *at;
            while b.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            *at - from
        };
        let mut at = self.at;
        if b.get(at) == Some(&b'-') {
            at += 1;
        }
        let int_start = at;
        let n = digits(&mut at);
        if n == 0 || (n > 1 && b[int_start] == b'0') {
            return None;
        }
        if b.get(at) == Some(&b'.') {
            at += 1;
            if digits(&mut at) == 0 {
                return None;
            }
        }
        if matches!(b.get(at), Some(b'e' | b'E')) {
            at += 1;
            if matches!(b.get(at), Some(b'+' | b'-')) {
                at += 1;
            }
            if digits(&mut at) == 0 {
                return None;
            }
        }
        let v: f64 = self.s.get(start..at)?.parse().ok()?;
        // serde_json refuses numbers beyond f64.
        if !v.is_finite() {
            return None;
        }
        self.at = at;
        Some(v)
    }

    fn opt_number(&mut self) -> Option<Option<f64>> {
        if self.lit(b"null").is_some() {
            return Some(None);
        }
        self.number().map(Some)
    }

    /// `{"name":count,…}`, as its text.
    fn count_map(&mut self) -> Option<&'a str> {
        let start = self.at;
        self.lit(b"{")?;
        if self.lit(b"}").is_none() {
            loop {
                self.string()?;
                self.lit(b":")?;
                self.uint()?;
                if self.lit(b"}").is_some() {
                    break;
                }
                self.lit(b",")?;
            }
        }
        self.s.get(start..self.at)
    }

    /// `{"name":value,…}` whose values are strings, numbers or booleans, as its text.
    fn scalar_map(&mut self) -> Option<&'a str> {
        let start = self.at;
        self.lit(b"{")?;
        if self.lit(b"}").is_none() {
            loop {
                self.string()?;
                self.lit(b":")?;
                match self.b.get(self.at)? {
                    b'"' => {
                        self.string()?;
                    }
                    b't' | b'f' => {
                        self.boolean()?;
                    }
                    _ => {
                        self.number()?;
                    }
                }
                if self.lit(b"}").is_some() {
                    break;
                }
                self.lit(b",")?;
            }
        }
        self.s.get(start..self.at)
    }

    /// The strings of an array whose `[` was read, and its `]`.
    fn strings_to_bracket(&mut self) -> Option<()> {
        if self.lit(b"]").is_some() {
            return Some(());
        }
        loop {
            self.string()?;
            if self.lit(b"]").is_some() {
                return Some(());
            }
            self.lit(b",")?;
        }
    }

    fn boolean(&mut self) -> Option<bool> {
        if self.lit(b"true").is_some() {
            Some(true)
        } else {
            self.lit(b"false").map(|()| false)
        }
    }
}

fn cow(s: Option<&str>) -> Option<Cow<'_, str>> {
    s.map(Cow::Borrowed)
}

/// The line, if it is an `llm_call` or `run_summary` line in the encoder's exact form.
pub(crate) fn line(s: &str) -> Option<Line<'_>> {
    match s.as_bytes().get(49..57)? {
        b"llm_call" => call_line(s),
        b"run_summ" => summary_line(s),
        _ => None,
    }
}

/// A `run_summary` line: the fields the reports read, the rest (its steps, prompt breakdown
/// and warnings) checked for its form.
fn summary_line(s: &str) -> Option<Line<'_>> {
    let mut c = Cur {
        s,
        b: s.as_bytes(),
        at: 0,
    };
    c.lit(b"{\"timestamp\":")?;
    let timestamp = c.string()?;
    c.lit(b",\"event\":\"run_summary\",\"run_id\":")?;
    let run_id = c.string()?;
    c.lit(b",\"status\":")?;
    let status = c.string()?;
    c.lit(b",\"elapsed_seconds\":")?;
    let elapsed = c.number()?;
    c.lit(b",\"usage\":{\"input_tokens\":")?;
    let input_tokens = c.uint()?;
    c.lit(b",\"output_tokens\":")?;
    let output_tokens = c.uint()?;
    c.lit(b",\"total_tokens\":")?;
    let total_tokens = c.uint()?;
    c.lit(b",\"call_count\":")?;
    let call_count = c.uint()?;
    c.lit(b",\"cost_usd\":")?;
    let cost_usd = c.opt_number()?;
    let unpriced_calls = match c.lit(b",\"unpriced_calls\":") {
        Some(()) => c.uint()?,
        None => 0,
    };
    c.lit(b"},\"by_step\":[")?;
    if c.lit(b"]").is_none() {
        loop {
            c.lit(b"{\"step\":")?;
            c.opt_string()?;
            c.lit(b",\"input_tokens\":")?;
            c.uint()?;
            c.lit(b",\"output_tokens\":")?;
            c.uint()?;
            c.lit(b",\"calls\":")?;
            c.uint()?;
            c.lit(b",\"cost_usd\":")?;
            c.opt_number()?;
            c.lit(b"}")?;
            if c.lit(b"]").is_some() {
                break;
            }
            c.lit(b",")?;
        }
    }
    c.lit(b",\"prompt_breakdown\":")?;
    let prompt_breakdown = c.count_map()?;
    if c.lit(b",\"warnings\":[").is_some() {
        c.strings_to_bracket()?;
    }
    let attributes = match c.lit(b",\"attributes\":") {
        Some(()) => Some(c.scalar_map()?),
        None => None,
    };
    c.lit(b"}")?;
    if c.at != s.len() {
        return None;
    }
    Some(Line {
        event: Cow::Borrowed("run_summary"),
        timestamp: Cow::Borrowed(timestamp),
        run_id: Some(Cow::Borrowed(run_id)),
        status: Some(Cow::Borrowed(status)),
        elapsed_seconds: Some(elapsed),
        usage: Some(super::decode::SummaryUsage {
            call_count,
            input_tokens,
            output_tokens,
            total_tokens,
            cost_usd,
            unpriced_calls,
        }),
        prompt_breakdown: Some(prompt_breakdown),
        attributes: cow(attributes),
        ..Line::default()
    })
}

/// An `llm_call` line.
fn call_line(s: &str) -> Option<Line<'_>> {
    let mut c = Cur {
        s,
        b: s.as_bytes(),
        at: 0,
    };
    c.lit(b"{\"timestamp\":")?;
    let timestamp = c.string()?;
    c.lit(b",\"event\":\"llm_call\",\"run_id\":")?;
    let run_id = c.opt_string()?;
    c.lit(b",\"step\":")?;
    let step = c.opt_string()?;
    c.lit(b",\"model\":")?;
    let model = c.opt_string()?;
    c.lit(b",\"provider\":")?;
    let provider = c.opt_string()?;
    c.lit(b",\"task\":")?;
    let task = c.opt_string()?;
    c.lit(b",\"agent\":")?;
    let agent = c.opt_string()?;
    c.lit(b",\"tokens\":{\"input\":")?;
    let input = c.uint()?;
    c.lit(b",\"output\":")?;
    let output = c.uint()?;
    c.lit(b",\"total\":")?;
    let total = c.uint()?;
    c.lit(b",\"cache_read\":")?;
    let cache_read = c.uint()?;
    c.lit(b",\"cache_write\":")?;
    let cache_write = c.uint()?;
    c.lit(b",\"reasoning\":")?;
    let reasoning = c.uint()?;
    c.lit(b"},\"prompt_breakdown\":")?;
    let prompt_breakdown = c.count_map()?;
    c.lit(b",\"cost_usd\":")?;
    let cost_usd = c.opt_number()?;
    c.lit(b",\"cost_source\":")?;
    let cost_source = c.opt_string()?;
    c.lit(b",\"price_version\":")?;
    let price_version = c.opt_string()?;
    c.lit(b",\"latency_ms\":")?;
    let latency_ms = c.uint()?;
    c.lit(b",\"estimated\":")?;
    let estimated = c.boolean()?;
    c.lit(b",\"error\":")?;
    let error = c.opt_string()?;
    c.lit(b",\"warnings\":[")?;
    c.strings_to_bracket()?;
    let stream = match c.lit(b",\"stream\":") {
        Some(()) => Some(c.boolean()?),
        None => None,
    };
    let ttft_ms = match c.lit(b",\"ttft_ms\":") {
        Some(()) => Some(c.uint()?),
        None => None,
    };
    let service_tier = match c.lit(b",\"service_tier\":") {
        Some(()) => Some(c.string()?),
        None => None,
    };
    let cache_write_1h = match c.lit(b",\"cache_write_1h\":") {
        Some(()) => c.uint()?,
        None => 0,
    };
    let attributes = match c.lit(b",\"attributes\":") {
        Some(()) => Some(c.scalar_map()?),
        None => None,
    };
    c.lit(b"}")?;
    if c.at != s.len() {
        return None;
    }
    Some(Line {
        event: Cow::Borrowed("llm_call"),
        timestamp: Cow::Borrowed(timestamp),
        run_id: cow(run_id),
        step: cow(step),
        model: cow(model),
        provider: cow(provider),
        task: cow(task),
        agent: cow(agent),
        tokens: Tokens {
            input,
            output,
            total,
            cache_read,
            cache_write,
            reasoning,
        },
        stream,
        ttft_ms,
        service_tier: cow(service_tier),
        cache_write_1h,
        attributes: cow(attributes),
        prompt_breakdown: Some(prompt_breakdown),
        cost_usd,
        cost_source: cow(cost_source),
        price_version: cow(price_version),
        latency_ms: Some(latency_ms),
        estimated,
        error: cow(error),
        ..Line::default()
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::format::encode;
    use crate::record::{CallRecord, CostSource};
    use crate::Name;

    /// The full parser's reading of `s`.
    fn slow(s: &str) -> Result<Line<'_>, String> {
        serde_json::from_str::<Line<'_>>(s).map_err(|e| e.to_string())
    }

    fn record(
        names: [Option<String>; 4],
        counts: [u64; 7],
        cost: Option<f64>,
        warnings: Vec<String>,
        stream: Option<bool>,
    ) -> CallRecord {
        let mut rec = encode::tests::record();
        let [run, step, model, error] = names;
        rec.run_id = run.map(Arc::from);
        rec.step = step.map(|s| Name::from(s.as_str()));
        rec.model = model.map(|s| Name::from(s.as_str()));
        rec.error = error;
        rec.tokens = Tokens {
            input: counts[0],
            output: counts[1],
            total: counts[2],
            cache_read: counts[3],
            cache_write: counts[4],
            reasoning: counts[5],
        };
        rec.latency_ms = counts[6];
        rec.cost_usd = cost;
        rec.cost_source = if cost.is_some() {
            CostSource::Local
        } else {
            CostSource::Unpriced
        };
        rec.warnings = warnings;
        rec.stream = stream;
        rec.ttft_ms = stream.map(|_| counts[6] / 2);
        rec.service_tier = stream.map(|s| Name::from(if s { "flex" } else { "priority" }));
        rec.cache_write_1h = counts[4] / 2;
        rec
    }

    /// An unedited line decodes to its record's view (but the breakdown's JSON text).
    fn agrees_with_view(line: &[u8], view: &Line<'_>) -> Result<(), TestCaseError> {
        let text = std::str::from_utf8(line).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut full = slow(text.trim_end()).map_err(TestCaseError::fail)?;
        full.prompt_breakdown = None;
        prop_assert_eq!(format!("{view:?}"), format!("{full:?}"), "{}", text);
        Ok(())
    }

    /// An encoded line (its `\n` included), with one byte changed, removed or added: the
    /// fast path accepts only what the full parser accepts, with the same values, and every
    /// unedited line without escapes.
    fn agree(
        mut line: Vec<u8>,
        edit: Option<(prop::sample::Index, u8, u8)>,
    ) -> Result<(), TestCaseError> {
        line.pop();
        if let Some((at, how, byte)) = edit {
            let i = at.index(line.len());
            match how {
                0 => line[i] = byte,
                1 => {
                    line.remove(i);
                }
                _ => line.insert(i, byte),
            }
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            return Ok(());
        };
        let full = slow(text);
        match super::line(text) {
            Some(fast) => {
                let full = full.map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
                prop_assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{}", text);
            }
            None => {
                let plain = edit.is_none() && !text.contains('\\');
                prop_assert!(!plain, "declined a plain line: {}", text);
            }
        }
        Ok(())
    }

    fn name() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop_oneof![
            "[a-z_-]{0,12}",
            // Escapes, quotes, control characters and non-ASCII: the full parser's.
            "[\"\\\\\u{1}\u{1f}é✓a]{0,6}",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Encoded lines, and the same lines with one byte changed, removed or added: the
        /// fast path accepts only what the full parser accepts, with the same values; the
        /// unedited line decodes to its record's view.
        #[test]
        fn the_fast_path_agrees_with_the_full_parser(
            names in [name(), name(), name(), name()],
            counts in (any::<u64>(), 0..100_000u64, any::<u64>(), 0..9u64, 0..9u64, 0..9u64, 0..60_000u64),
            cost in prop::option::of(prop_oneof![0.0..10.0f64, Just(0.1 + 0.2), Just(1e-9)]),
            warnings in prop::collection::vec("[a-z \"]{0,8}", 0..3),
            stream in prop::option::of(any::<bool>()),
            edit in prop::option::of((any::<prop::sample::Index>(), 0u8..3, any::<u8>())),
        ) {
            let (a, b, c, d, e, f, g) = counts;
            let rec = record(names, [a, b, c, d, e, f, g], cost, warnings, stream);
            let mut line = Vec::new();
            encode::call(&rec, &mut line);
            agrees_with_view(&line, &crate::format::view::call(&rec))?;
            agree(line, edit)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Run summaries, edited the same way.
        #[test]
        fn the_fast_path_agrees_on_summaries(
            steps in prop::collection::vec((name(), 0..1_000_000u64, prop::option::of(0.0..5.0f64)), 0..4),
            cost in prop::option::of(0.0..10.0f64),
            warnings in prop::collection::vec("[a-z\"]{0,5}", 0..2),
            edit in prop::option::of((any::<prop::sample::Index>(), 0u8..3, any::<u8>())),
        ) {
            use crate::ledger::{RunStatus, RunSummary, RunUsage, StepUsage};
            use crate::record::{LineKind, PromptBreakdown, Timestamp};
            let summary = RunSummary {
                timestamp: Timestamp::from_unix_ms(1_765_708_216_000),
                event: LineKind::RunSummary,
                run_id: Arc::from("run-1"),
                status: RunStatus::Success,
                elapsed_seconds: 1.25,
                usage: RunUsage {
                    input_tokens: 10,
                    output_tokens: 2,
                    total_tokens: 12,
                    call_count: steps.len() as u64,
                    cost_usd: cost,
                    unpriced_calls: u64::from(cost.is_none()),
                },
                by_step: steps
                    .into_iter()
                    .map(|(step, n, cost)| StepUsage {
                        step: step.map(|s| Name::from(s.as_str())),
                        input_tokens: n,
                        output_tokens: n / 3,
                        calls: 1,
                        cost_usd: cost,
                    })
                    .collect(),
                prompt_breakdown: PromptBreakdown(vec![(Arc::from("system"), 9)]),
                attributes: if warnings.is_empty() {
                    crate::attributes::Attributes::default()
                } else {
                    encode::tests::attributes()
                },
                warnings,
            };
            let mut line = Vec::new();
            encode::summary(&summary, &mut line);
            agrees_with_view(&line, &crate::format::view::summary(&summary))?;
            agree(line, edit)?;
        }
    }

    #[test]
    fn lines_of_other_forms_are_left_to_the_full_parser() {
        let mut rec = encode::tests::record();
        rec.run_id = Some(Arc::from("run-1"));
        rec.error = Some("boom".into());
        rec.warnings = vec!["a".into()];
        let mut line = Vec::new();
        encode::call(&rec, &mut line);
        let text = std::str::from_utf8(&line).unwrap().trim_end();
        assert!(super::line(text).is_some(), "{text}");
        for other in [
            text.replacen("{\"timestamp\"", "{ \"timestamp\"", 1),
            text.replacen("\"latency_ms\":", "\"latency_ms\":0", 1),
            text.replacen("\"input\":42000", "\"input\":42000.0", 1),
            text.replacen("\"input\":42000", "\"input\":-1", 1),
            text.replacen("\"cost_usd\":0.2385", "\"cost_usd\":1e999", 1),
            format!("{}}}", text),
            text.replacen("}", ",\"modality\":{}}", 1),
        ] {
            assert!(super::line(&other).is_none(), "{other}");
        }
    }
}
