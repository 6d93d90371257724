//! Who spent it, from the command: `by <attribute>`, `--where`, `compare`, `budget --each`,
//! `run show` and the page, on a log the layer wrote for three tenants, two prompt versions
//! and two models over two days. Every figure is checked against the lines themselves.

mod common;

use std::collections::BTreeMap;

use serde_json::{json, Value};

use common::{TENANTS, TENANT_DAILY_USD, VERSIONS};

fn lines(path: &std::path::Path) -> Vec<Value> {
    common::parse_lines(&std::fs::read_to_string(path).unwrap())
}

/// (calls, input, output, cost) per value of `key` over the call lines that pass `keep`.
fn sums(
    lines: &[Value],
    key: &str,
    keep: impl Fn(&Value) -> bool,
) -> BTreeMap<String, (u64, u64, u64, f64)> {
    let mut out: BTreeMap<String, (u64, u64, u64, f64)> = BTreeMap::new();
    for l in common::calls(lines).into_iter().filter(|l| keep(l)) {
        let v = l["attributes"][key].as_str().unwrap().to_owned();
        let e = out.entry(v).or_default();
        e.0 += 1;
        e.1 += l["tokens"]["input"].as_u64().unwrap();
        e.2 += l["tokens"]["output"].as_u64().unwrap();
        e.3 += l["cost_usd"].as_f64().unwrap();
    }
    out
}

/// The rows of a `by` table in JSON, keyed by their first column.
fn by_json(args: &[&str], key: &str) -> BTreeMap<String, (u64, u64, u64, f64)> {
    let v = common::llm_usage_json(args);
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[key].as_str().unwrap().to_owned(),
                (
                    r["calls"].as_u64().unwrap(),
                    r["input"].as_u64().unwrap(),
                    r["output"].as_u64().unwrap(),
                    r["cost_usd"].as_f64().unwrap(),
                ),
            )
        })
        .collect()
}

fn close(a: &BTreeMap<String, (u64, u64, u64, f64)>, b: &BTreeMap<String, (u64, u64, u64, f64)>) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, x) in a {
        let y = &b[k];
        assert_eq!((x.0, x.1, x.2), (y.0, y.1, y.2), "{k}");
        assert!((x.3 - y.3).abs() < 1e-9, "{k}: {} vs {}", x.3, y.3);
    }
}

#[test]
fn by_attribute_and_where_give_exact_totals() {
    let dir = tempfile::tempdir().unwrap();
    let log = common::attributed_log(dir.path());
    let all = lines(&log);
    let p = log.to_str().unwrap();
    assert_eq!(common::calls(&all).len(), 2 * 3 * 8);

    let want = sums(&all, "tenant", |_| true);
    assert_eq!(want.len(), 3);
    close(&by_json(&["by", "tenant", p], "tenant"), &want);
    close(
        &by_json(&["by", "prompt.version", p], "prompt.version"),
        &sums(&all, "prompt.version", |_| true),
    );
    // One tenant's prompt versions; one tenant's model-b calls; a field and an attribute.
    let acme = |l: &Value| l["attributes"]["tenant"] == "acme";
    close(
        &by_json(
            &["by", "prompt.version", "--where", "tenant=acme", p],
            "prompt.version",
        ),
        &sums(&all, "prompt.version", acme),
    );
    close(
        &by_json(
            &[
                "by",
                "tenant",
                "--where",
                "model=model-b",
                "--where",
                "prompt.version=v2",
                p,
            ],
            "tenant",
        ),
        &sums(&all, "tenant", |l| {
            l["model"] == "model-b" && l["attributes"]["prompt.version"] == "v2"
        }),
    );
    // `export` ends each call's row with its attributes as logged: a CSV field per call
    // whose JSON is the line's object.
    let (csv, _) = common::llm_usage_ok(&["export", p]);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().next_back(),
        Some("attributes")
    );
    let exported: Vec<Value> = reader
        .records()
        .map(|r| serde_json::from_str(&r.unwrap()[18]).unwrap())
        .collect();
    let logged: Vec<Value> = common::calls(&all)
        .iter()
        .map(|l| l["attributes"].clone())
        .collect();
    assert_eq!(exported, logged);
    // A value nobody has: nothing matches (said on stderr), exit 0.
    let (out, err) = common::llm_usage_ok(&["by", "model", "--where", "tenant=umbrella", p]);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("nothing matches"), "{err}");
    // A hostile value is matched literally.
    let (_, err) = common::llm_usage_ok(&["by", "model", "--where", "tenant=' OR 1=1 --", p]);
    assert!(err.contains("nothing matches"), "{err}");
    // An attribute no call has is said, with those they have.
    let (_, err) = common::llm_usage_ok(&["by", "team", p]);
    assert!(
        err.contains("no call has the attribute \"team\": the calls have prompt.version, tenant"),
        "{err}"
    );
}

/// Nearest-rank percentile.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A row of `compare`'s JSON by its metric.
fn metric<'a>(rows: &'a Value, name: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["metric"] == name)
        .unwrap_or_else(|| panic!("no row {name}"))
}

#[test]
fn compare_gives_each_version_and_its_change() {
    let dir = tempfile::tempdir().unwrap();
    let log = common::attributed_log(dir.path());
    let all = lines(&log);
    let p = log.to_str().unwrap();
    let v = common::llm_usage_json(&["compare", "prompt.version", p]);
    assert_eq!(v.as_array().unwrap().len(), 10);
    let round = |x: f64| (x * 1e9).round() / 1e9;
    let mut figures: Vec<BTreeMap<&str, Option<f64>>> = Vec::new();
    for version in VERSIONS {
        let calls: Vec<&Value> = common::calls(&all)
            .into_iter()
            .filter(|l| l["attributes"]["prompt.version"] == version)
            .collect();
        let n = calls.len() as f64;
        let sum = |f: &dyn Fn(&Value) -> f64| calls.iter().map(|l| f(l)).sum::<f64>();
        let input = sum(&|l| l["tokens"]["input"].as_f64().unwrap());
        let output = sum(&|l| l["tokens"]["output"].as_f64().unwrap());
        let cache = sum(&|l| l["tokens"]["cache_read"].as_f64().unwrap());
        let cost = sum(&|l| l["cost_usd"].as_f64().unwrap());
        let errors = calls.iter().filter(|l| !l["error"].is_null()).count() as f64;
        let mut latency: Vec<u64> = calls
            .iter()
            .map(|l| l["latency_ms"].as_u64().unwrap())
            .collect();
        latency.sort_unstable();
        let want: BTreeMap<&str, Value> = [
            ("calls", json!(calls.len())),
            ("input_per_call", json!(round(input / n))),
            ("output_per_call", json!(round(output / n))),
            ("cost_per_call", json!(round(cost / n))),
            ("unpriced_calls", json!(0)),
            ("cache_read_share", json!(round(cache / input))),
            ("output_input_ratio", json!(round(output / input))),
            ("latency_p50_ms", json!(percentile(&latency, 0.5))),
            ("latency_p95_ms", json!(percentile(&latency, 0.95))),
            ("error_rate", json!(round(errors / n))),
        ]
        .into_iter()
        .collect();
        for (name, figure) in &want {
            assert_eq!(&metric(&v, name)[version], figure, "{version} {name}");
        }
        // Unrounded, for the changes.
        figures.push(
            [
                ("calls", Some(n)),
                ("input_per_call", Some(input / n)),
                ("output_per_call", Some(output / n)),
                ("cost_per_call", Some(cost / n)),
                ("unpriced_calls", None),
                ("cache_read_share", Some(cache / input)),
                ("output_input_ratio", Some(output / input)),
                ("latency_p50_ms", Some(percentile(&latency, 0.5) as f64)),
                ("latency_p95_ms", Some(percentile(&latency, 0.95) as f64)),
                ("error_rate", Some(errors / n)),
            ]
            .into_iter()
            .collect(),
        );
    }
    // v2 against v1; v1 has no cache reads and no error: those changes are unknown, never
    // infinite; a count of unpriced calls has no change.
    for (name, base) in &figures[0] {
        let new = &figures[1][name];
        let want = match (base, new) {
            (Some(b), Some(n)) if *b != 0.0 => json!(round((n - b) / b)),
            _ => Value::Null,
        };
        assert_eq!(metric(&v, name)["v2 vs v1"], want, "{name}");
    }
    // Values named on the command line, in that order: the first is the baseline; a value
    // no call has is a column of nothing.
    let v = common::llm_usage_json(&["compare", "prompt.version", "v2", "v1", "v9", p]);
    let calls = metric(&v, "calls");
    let keys: Vec<&String> = calls.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["metric", "v2", "v1", "v1 vs v2", "v9", "v9 vs v2"]);
    assert_eq!(calls["v9"], 0);
    assert_eq!(metric(&v, "cost_per_call")["v9"], Value::Null);
    assert_eq!(calls["v9 vs v2"], -1.0);
    // As a table, with signed changes.
    let (out, _) = common::llm_usage_ok(&["compare", "prompt.version", p]);
    assert!(out.contains("v2 vs v1"), "{out}");
    assert!(out.contains("+5.0%"), "{out}");
}

#[test]
fn the_budget_replay_agrees_with_the_live_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = common::attributed_log(dir.path());
    let all = lines(&log);
    let p = log.to_str().unwrap();
    let live: Vec<(String, String, String, String)> = all
        .iter()
        .filter(|l| l["event"] == "budget_exceeded")
        .map(|l| {
            assert_eq!(l["attribute"], "tenant");
            (
                l["scope_id"].as_str().unwrap().to_owned(),
                l["attribute_value"].as_str().unwrap().to_owned(),
                l["timestamp"].as_str().unwrap().to_owned(),
                l["run_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // Every tenant crosses its own limit, on each day.
    assert_eq!(live.len(), 6, "{live:?}");
    let limit = TENANT_DAILY_USD.to_string();
    let v = common::llm_usage_json(&["budget", "--per-day", &limit, "--each", "tenant", p]);
    let mut replayed: Vec<(String, String, String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["scope"], "day");
            (
                r["scope_id"].as_str().unwrap().to_owned(),
                r["attribute_value"].as_str().unwrap().to_owned(),
                r["crossed_at"].as_str().unwrap().to_owned(),
                r["crossing_run"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    replayed.sort();
    let mut live = live;
    live.sort();
    assert_eq!(replayed, live);
    // Without --each: one limit for everyone, crossed once a day.
    let v = common::llm_usage_json(&["budget", "--per-day", &limit, p]);
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert!(v[0].get("attribute_value").is_none());
}

#[test]
fn run_show_lists_the_run_attributes_and_the_page_has_a_section_per_attribute() {
    let dir = tempfile::tempdir().unwrap();
    let log = common::attributed_log(dir.path());
    let all = lines(&log);
    let p = log.to_str().unwrap();
    let v = common::llm_usage_json(&["run", "show", "acme-0", p]);
    assert_eq!(
        v["attributes"],
        json!({"prompt.version": "v1, v2", "tenant": "acme"})
    );

    let page = dir.path().join("page.html");
    common::llm_usage_ok(&["report", "--html", page.to_str().unwrap(), p]);
    let html = std::fs::read_to_string(&page).unwrap();
    for (name, id) in [
        ("tenant", "attribute-tenant"),
        ("prompt.version", "attribute-prompt-version"),
    ] {
        let at = html
            .find(&format!("<section id=\"{id}\">"))
            .unwrap_or_else(|| panic!("no section for {name}"));
        let end = at + html[at..].find("</section>").unwrap();
        let section = &html[at..end];
        for (value, (calls, _, _, cost)) in sums(&all, name, |_| true) {
            let row = format!("<th scope=\"row\">{value}</th><td class=\"n\">{calls}</td>");
            assert!(section.contains(&row), "{name} {value}");
            assert!(
                section.contains(&format!("data-value=\"{cost:.9}\"")),
                "{name} {value} {cost}"
            );
        }
        // Both days are in its per-day table.
        assert!(section.contains("2026-03-02") && section.contains("2026-03-03"));
    }
    let _ = TENANTS;
}

/// Attribute names and values are data: one that repeats a column's name (a value `metric`, an
/// attribute `calls`) takes a suffixed key in JSON, and every column keeps its figures.
#[test]
fn json_keys_named_from_the_data_never_hide_a_column() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("usage.jsonl");
    let line = |tenant: &str, input: u64| {
        format!(
            r#"{{"timestamp":"2025-12-14T10:30:15.123Z","event":"llm_call","run_id":"r","model":"m","tokens":{{"input":{input},"output":1,"total":{}}},"cost_usd":0.5,"latency_ms":100,"attributes":{{"tenant":"{tenant}","calls":"{tenant}"}}}}"#,
            input + 1
        )
    };
    let text = [line("metric", 10), line("metric", 30), line("b", 5)].join("\n") + "\n";
    std::fs::write(&log, text).unwrap();
    let p = log.to_str().unwrap();

    let v = common::llm_usage_json(&["compare", "tenant", p]);
    let calls = metric(&v, "calls");
    let keys: Vec<&String> = calls.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["metric", "b", "metric (2)", "metric vs b"]);
    assert_eq!(calls["b"], 1);
    assert_eq!(calls["metric (2)"], 2);
    assert_eq!(calls["metric vs b"], 1.0);
    assert_eq!(metric(&v, "input_per_call")["metric (2)"], 20.0);

    let v = common::llm_usage_json(&["by", "calls", p]);
    let rows = v.as_array().unwrap();
    let keys: Vec<&String> = rows[0].as_object().unwrap().keys().collect();
    assert_eq!(keys[..2], ["calls (2)", "calls"]);
    let by: Vec<(&str, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["calls (2)"].as_str().unwrap(),
                r["calls"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(by, [("metric", 2), ("b", 1)]);
}
