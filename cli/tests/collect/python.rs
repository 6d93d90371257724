//! The Python OpenAI instrumentations (`opentelemetry-instrumentation-openai-v2`, OpenLLMetry)
//! exporting OTLP to `collect`, against the mock OpenAI server: every request is one line with
//! the usage the mock served, every run's summary sums them, and no prompt or reply text is
//! written. The Python interpreters come from `LLM_USAGE_TEST_PYTHON_OPENAI_V2` and
//! `LLM_USAGE_TEST_PYTHON_OPENLLMETRY` (virtual environments made by `.ci/run` from
//! `python/requirements-*.txt`); without them the test is skipped, unless
//! `LLM_USAGE_TEST_REQUIRE_PYTHON` is set.

use std::collections::BTreeMap;
use std::process::Command;

use mock_openai::{MockOpenAi, Served};
use serde_json::Value;

use super::collect_support::{calls, summary, Collector};

/// The interpreter named by `var`, or `None` (skip) when it is not set.
fn python(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var_os("LLM_USAGE_TEST_REQUIRE_PYTHON").is_some() => {
            panic!("{var} is not set: .ci/run makes the virtual environment it names")
        }
        _ => {
            eprintln!("skipped: {var} is not set (see .ci/run)");
            None
        }
    }
}

/// The scenarios' runs, in the order scenarios.py makes their requests.
const RUNS: [(&str, usize); 5] = [
    ("plain", 1),
    ("stream", 1),
    ("tools", 3),
    ("fail", 1),
    ("", 1),
];

fn check(instrumentation: &str, var: &str, cache_reported: bool) {
    let Some(python) = python(var) else {
        return;
    };
    let mock = MockOpenAi::start();
    let collector = Collector::start(&["--settle-ms", "300"]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/collect/python/scenarios.py"
    );
    let out = Command::new(&python)
        .arg(script)
        .env("INSTRUMENTATION", instrumentation)
        .env("OPENAI_BASE_URL", &mock.base_url)
        .env("OTLP_ENDPOINT", format!("http://{}", collector.http))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scenarios.py ({instrumentation}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let served = mock.served();
    assert_eq!(served.len(), 7, "{served:?}");
    let (stderr, lines) = collector.stop();
    let text = lines.iter().map(Value::to_string).collect::<String>();
    for secret in ["SECRET", "Sunny", "Paris"] {
        assert!(!text.contains(secret), "{secret} was written: {text}");
    }

    // The failed request is named on stderr, with what to do about it.
    assert!(
        stderr.contains(
            "a span received over OTLP closed without any token usage recorded; its calls are \
             logged with cost_usd null and cost_source \"no_usage\" (never as free). the \
             instrumentation that sent it reported no usage"
        ),
        "{stderr}"
    );

    // The calls of each run, in the order served.
    let mut by_run: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for c in calls(&lines) {
        by_run
            .entry(c["run_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(c);
    }
    assert_eq!(calls(&lines).len(), 7, "{stderr}\n{text}");
    let mut next = served.iter();
    for (run, n) in RUNS {
        let replies: Vec<&Served> = next.by_ref().take(n).collect();
        let run = if run.is_empty() {
            // The call outside any run: its trace is its run, named by the trace id.
            let loose: Vec<_> = by_run.keys().filter(|k| k.len() == 32).cloned().collect();
            assert_eq!(loose.len(), 1, "{loose:?}");
            loose[0].clone()
        } else {
            run.to_owned()
        };
        let got = &by_run[&run];
        assert_eq!(got.len(), n, "{run}: {got:#?}");
        let (mut input, mut output) = (0, 0);
        for (line, s) in got.iter().zip(&replies) {
            let t = &line["tokens"];
            let used = |v: u64| if s.usage_sent { v } else { 0 };
            assert_eq!(t["input"], used(s.input), "{run}: {line}");
            assert_eq!(t["output"], used(s.output), "{run}: {line}");
            assert_eq!(t["total"], used(s.input + s.output), "{run}: {line}");
            if cache_reported {
                assert_eq!(t["cache_read"], used(s.cached), "{run}: {line}");
            }
            assert_eq!(line["provider"], "openai");
            assert_eq!(line["error"].is_null(), !s.failed, "{run}: {line}");
            input += used(s.input);
            output += used(s.output);
        }
        let usage = &summary(&lines, &run)["usage"];
        assert_eq!(
            (
                usage["input_tokens"].as_u64(),
                usage["output_tokens"].as_u64()
            ),
            (Some(input), Some(output)),
            "{run}"
        );
        assert_eq!(usage["call_count"], n as u64, "{run}");
        let status = summary(&lines, &run)["status"].as_str().unwrap().to_owned();
        assert_eq!(
            status,
            if run == "fail" { "error" } else { "success" },
            "{run}"
        );
    }
}

#[test]
fn opentelemetry_instrumentation_openai_v2_calls_are_counted_exactly() {
    check("openai-v2", "LLM_USAGE_TEST_PYTHON_OPENAI_V2", false);
}

#[test]
fn openllmetry_calls_are_counted_exactly() {
    check("openllmetry", "LLM_USAGE_TEST_PYTHON_OPENLLMETRY", true);
}
