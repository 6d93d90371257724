//! What the logs hold never runs: strings with escape sequences, bidirectional overrides and
//! formula prefixes reach terminals escaped and spreadsheets as text, while JSON keeps them
//! exact; the layer's own warnings are escaped too.

use std::path::Path;

use assert_cmd::Command;
use serde_json::{json, Value};

const ESCAPES: &str = "evil\u{1b}[2J\u{1b}]0;pwned\u{7}step";
const BIDI: &str = "invoice\u{202e}fdp.exe";
const C1: &str = "c1\u{9b}31mred";
const CLIPBOARD: &str = "\u{1b}]52;c;cm0gLXJmIH4=\u{7}";

fn long() -> String {
    format!("run-{}", "x".repeat(400))
}

/// A log whose every string field is hostile.
fn hostile_log(dir: &Path) -> std::path::PathBuf {
    let long = long();
    let mut lines = Vec::new();
    let fields = [
        (
            ESCAPES,
            "=HYPERLINK(\"http://x\")",
            BIDI,
            "+cmd|calc",
            "@SUM(1)",
        ),
        (C1, "-2+3", "\tTab", "\rCR", CLIPBOARD),
        (long.as_str(), "plain", "plain", "plain", "plain"),
    ];
    for (i, (a, b, c, d, e)) in fields.iter().enumerate() {
        lines.push(json!({
            "timestamp": format!("2025-12-14T10:3{i}:15.123Z"), "event": "llm_call",
            "run_id": b, "step": a, "model": c, "provider": d, "task": e, "agent": a,
            "tokens": {"input": 1000 * (i + 1), "output": 10, "total": 1000 * (i + 1) + 10,
                       "cache_read": 0, "cache_write": 0, "reasoning": 0},
            "prompt_breakdown": {a.to_string(): 5},
            "cost_usd": 0.001, "cost_source": "local", "price_version": e, "latency_ms": 5,
            "estimated": false, "error": a, "warnings": [a]
        }));
        lines.push(json!({
            "timestamp": format!("2025-12-14T10:3{i}:16.000Z"), "event": "run_summary",
            "run_id": b, "status": "error", "elapsed_seconds": 1.0,
            "usage": {"input_tokens": 1000 * (i + 1), "output_tokens": 10,
                      "total_tokens": 1000 * (i + 1) + 10, "call_count": 1, "cost_usd": 0.001},
            "by_step": [{"step": a, "input_tokens": 1000 * (i + 1), "output_tokens": 10,
                         "calls": 1, "cost_usd": 0.001}],
            "prompt_breakdown": {}
        }));
    }
    let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    // A malformed line, so that `file:line: reason` names the file, whose name is hostile too.
    text.push_str("{\"event\":\"llm_call\",\"timestamp\":\n");
    let path = dir.join("log\u{1b}[2J.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(args: &[&str]) -> (String, String) {
    let out = Command::cargo_bin("llm-usage")
        .unwrap()
        .args(args)
        .output()
        .unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Characters that must never reach a terminal raw.
fn raw_control(text: &str) -> Option<char> {
    text.chars().find(|&c| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    })
}

#[test]
fn tables_and_messages_show_hostile_strings_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let log = hostile_log(dir.path());
    let log = log.to_str().unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["stats", log],
        vec!["report", log],
        vec!["by", "step", log],
        vec!["by", "model", log],
        vec!["by", "provider", log],
        vec!["by", "task", log],
        vec!["by", "agent", log],
        vec!["by", "run", log],
        vec!["by", "day", log],
        vec!["run", "list", log],
        vec!["run", "show", "=HYPERLINK(\"http://x\")", log],
        vec!["budget", "--per-run", "0.0001", log],
        vec!["budget", "--per-day", "0.0001", log],
    ];
    for args in &commands {
        let (stdout, stderr) = run(args);
        for (what, text) in [("stdout", &stdout), ("stderr", &stderr)] {
            assert_eq!(raw_control(text), None, "{args:?} {what}:\n{text}");
        }
        assert!(
            stderr.contains("\\u{1b}[2J"),
            "{args:?}: the skipped line's file is named, escaped:\n{stderr}"
        );
    }
    let (table, _) = run(&["by", "step", log]);
    assert!(
        table.contains("evil\\u{1b}[2J\\u{1b}]0;pwned\\u{7}step"),
        "{table}"
    );
    let (table, _) = run(&["by", "model", log]);
    assert!(table.contains("invoice\\u{202e}fdp.exe"), "{table}");
    let (table, _) = run(&["by", "step", log]);
    assert!(
        table.contains(&format!("run-{}… (404 characters)", "x".repeat(252))),
        "{table}"
    );

    // JSON keeps every string exact.
    let (json_out, _) = run(&["by", "step", "--format", "json", log]);
    let v: Value = serde_json::from_str(&json_out).unwrap();
    let steps: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["step"].as_str())
        .collect();
    let long = long();
    for s in [ESCAPES, C1, long.as_str()] {
        assert!(steps.contains(&s), "{s:?} in {steps:?}");
    }
    let (json_out, _) = run(&["by", "task", "--format", "json", log]);
    assert!(json_out.contains("\\u001b]52;c;"), "{json_out}");
}

#[test]
fn csv_cells_that_look_like_formulas_are_text_unless_raw() {
    let dir = tempfile::tempdir().unwrap();
    let log = hostile_log(dir.path());
    let log = log.to_str().unwrap();
    let cells = |args: &[&str]| -> Vec<Vec<String>> {
        let (out, _) = run(args);
        csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(out.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect()
    };
    let exported = cells(&["export", "-o", "-", log]);
    let flat: Vec<&str> = exported.iter().flatten().map(String::as_str).collect();
    for inert in [
        "'=HYPERLINK(\"http://x\")",
        "'+cmd|calc",
        "'@SUM(1)",
        "'-2+3",
        "'\tTab",
        "'\rCR",
    ] {
        assert!(flat.contains(&inert), "{inert:?} in {flat:?}");
    }
    for raw in ["=HYPERLINK(\"http://x\")", "+cmd|calc", "@SUM(1)", "-2+3"] {
        assert!(!flat.contains(&raw), "{raw:?} left as a formula");
    }
    // Numbers stay numbers, exact.
    assert!(
        flat.contains(&"1000") && flat.contains(&"0.001"),
        "{flat:?}"
    );
    let raw = cells(&["export", "-o", "-", "--csv-raw", log]);
    let flat: Vec<&str> = raw.iter().flatten().map(String::as_str).collect();
    for s in [
        "=HYPERLINK(\"http://x\")",
        "+cmd|calc",
        "@SUM(1)",
        "-2+3",
        "\tTab",
    ] {
        assert!(flat.contains(&s), "{s:?} raw in {flat:?}");
    }
    // `--format csv` of any report too.
    let by_run = cells(&["by", "run", "--format", "csv", log]);
    assert!(by_run
        .iter()
        .any(|r| r.first().map(String::as_str) == Some("'=HYPERLINK(\"http://x\")")));
}
