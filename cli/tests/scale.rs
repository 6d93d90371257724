//! Many short runs whose lines interleave, over two daily files (one gzipped), with summaries,
//! budget lines and lines only the full parser reads (escapes, another key order): every
//! command that counts or lists runs, and the budget replay, give exactly what the log holds.

mod common;

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{json, Value};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Default, Debug, Clone, PartialEq)]
struct Want {
    calls: u64,
    input: u64,
    output: u64,
    cost: f64,
}

fn ts(ms: u64) -> String {
    let t = tracing_llm_usage::record::Timestamp::from_unix_ms(ms as i64);
    t.to_string()
}

/// A call line in the layer's exact form, or (every 50th) with its keys in another order and
/// an escaped quote in its step: the decoder's full path.
fn call(ms: u64, run: &str, step: &str, input: u64, output: u64, cost: f64, odd: bool) -> String {
    if odd {
        return json!({
            "event": "llm_call", "timestamp": ts(ms), "run_id": run, "step": format!("{step}\"x"),
            "model": "gpt-4o", "provider": "openai", "task": null, "agent": null,
            "tokens": {"output": output, "input": input, "total": input + output,
                       "cache_read": 0, "cache_write": 0, "reasoning": 0},
            "prompt_breakdown": {}, "cost_usd": cost, "cost_source": "local",
            "price_version": null, "latency_ms": 5, "estimated": false, "error": null,
            "warnings": []
        })
        .to_string();
    }
    format!(
        "{{\"timestamp\":\"{}\",\"event\":\"llm_call\",\"run_id\":\"{run}\",\"step\":\"{step}\",\
         \"model\":\"gpt-4o\",\"provider\":\"openai\",\"task\":null,\"agent\":null,\
         \"tokens\":{{\"input\":{input},\"output\":{output},\"total\":{},\"cache_read\":0,\
         \"cache_write\":0,\"reasoning\":0}},\"prompt_breakdown\":{{\"system\":{}}},\
         \"cost_usd\":{cost},\"cost_source\":\"local\",\"price_version\":\"p\",\
         \"latency_ms\":5,\"estimated\":false,\"error\":null,\"warnings\":[]}}",
        ts(ms),
        input + output,
        input / 10
    )
}

#[test]
fn interleaved_runs_are_counted_listed_and_replayed_exactly() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let steps = ["plan", "draft", "review"];
    let day0 = 1_764_547_200_000u64; // 2025-12-01
                                     // (time, line) of every line, and what each run and step adds up to.
    let mut lines: Vec<(u64, String)> = Vec::new();
    let mut runs: BTreeMap<String, Want> = BTreeMap::new();
    let mut by_step: BTreeMap<String, Want> = BTreeMap::new();
    let mut status: BTreeMap<String, &str> = BTreeMap::new();
    let mut all = Want::default();
    let mut n = 0u64;
    // Eight threads, each running runs of 1 to 20 calls one after another, over two days.
    for thread in 0..8u64 {
        let mut t = day0 + thread * 1000;
        for r in 0..250u64 {
            let run = format!("run-{thread}-{r}");
            let calls = 1 + rng.below(20);
            for _ in 0..calls {
                t += 1 + rng.below(60_000);
                let step = steps[rng.below(3) as usize];
                let (input, output) = (100 + rng.below(50_000), 1 + rng.below(4000));
                // Costs in millionths of a dollar: sums are exact to 1e-9.
                let cost = rng.below(500_000) as f64 / 1e6;
                n += 1;
                let odd = n % 50 == 0;
                lines.push((t, call(t, &run, step, input, output, cost, odd)));
                let step_key = if odd {
                    format!("{step}\"x")
                } else {
                    step.to_owned()
                };
                for w in [
                    runs.entry(run.clone()).or_default(),
                    by_step.entry(step_key).or_default(),
                    &mut all,
                ] {
                    w.calls += 1;
                    w.input += input;
                    w.output += output;
                    w.cost += cost;
                }
            }
            t += 10;
            let st = if r % 17 == 0 { "error" } else { "success" };
            status.insert(run.clone(), st);
            lines.push((
                t,
                json!({"timestamp": ts(t), "event": "run_summary", "run_id": run, "status": st,
                       "elapsed_seconds": 1.5,
                       "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
                                 "call_count": calls, "cost_usd": null},
                       "by_step": [], "prompt_breakdown": {}})
                .to_string(),
            ));
            if r % 41 == 0 {
                lines.push((
                    t,
                    json!({"timestamp": ts(t), "event": "budget_warning", "budget": "b",
                           "scope": "run", "scope_id": run, "metric": "usd", "limit": 1.0,
                           "value": 0.9, "run_id": run, "step": null, "model": null})
                    .to_string(),
                ));
            }
            t += rng.below(300_000);
        }
    }
    lines.sort_by_key(|(t, _)| *t);
    let dir = tempfile::tempdir().unwrap();
    let mut days: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (t, l) in &lines {
        days.entry(ts(*t)[..10].to_owned()).or_default().push(l);
    }
    assert!(days.len() >= 2, "the log spans several days");
    for (i, (day, ls)) in days.iter().enumerate() {
        let text = ls.join("\n") + "\n";
        if i == 0 {
            let f = std::fs::File::create(dir.path().join(format!("llm_usage.{day}.jsonl.gz")));
            let mut gz = flate2::write::GzEncoder::new(f.unwrap(), flate2::Compression::fast());
            gz.write_all(text.as_bytes()).unwrap();
            gz.finish().unwrap();
        } else {
            std::fs::write(dir.path().join(format!("llm_usage.{day}.jsonl")), text).unwrap();
        }
    }
    let logs = dir.path().to_str().unwrap();
    let json = |args: &[&str]| -> Value { common::llm_usage_json(&[args, &[logs]].concat()) };

    let stats = json(&["stats"]);
    assert_eq!(stats["calls"], all.calls);
    assert_eq!(stats["runs"], runs.len() as u64);
    assert_eq!(stats["run_summaries"], 2000);
    assert_eq!(
        (
            stats["input_tokens"].as_u64(),
            stats["output_tokens"].as_u64()
        ),
        (Some(all.input), Some(all.output))
    );
    assert!((stats["cost_usd"].as_f64().unwrap() - all.cost).abs() < 1e-9);
    assert_eq!(stats["skipped_lines"], 0);

    let steps_got = json(&["by", "step"]);
    let steps_got: BTreeMap<String, (u64, u64, f64)> = steps_got
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let k = r["step"].as_str().unwrap().to_owned();
            (
                k,
                (
                    r["calls"].as_u64().unwrap(),
                    r["input"].as_u64().unwrap(),
                    r["cost_usd"].as_f64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(steps_got.len(), by_step.len());
    for (k, w) in &by_step {
        let (calls, input, cost) = steps_got[k];
        assert_eq!((calls, input), (w.calls, w.input), "{k}");
        assert!((cost - w.cost).abs() < 1e-9, "{k}");
    }

    for rows in [json(&["by", "run"]), json(&["run", "list"])] {
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), runs.len());
        for r in rows {
            let id = r["run_id"].as_str().unwrap();
            let w = &runs[id];
            assert_eq!(
                (
                    r["calls"].as_u64(),
                    r["input"].as_u64(),
                    r["output"].as_u64()
                ),
                (Some(w.calls), Some(w.input), Some(w.output)),
                "{id}"
            );
            assert!(
                (r["cost_usd"].as_f64().unwrap() - w.cost).abs() < 1e-9,
                "{id}"
            );
            if let Some(s) = r.get("status") {
                assert_eq!(s, status[id], "{id}");
            }
        }
    }

    // The budget replay against a naive one over the lines in written order.
    let limit = 3.0;
    let mut totals: BTreeMap<String, f64> = BTreeMap::new();
    let mut crossed: Vec<(String, String)> = Vec::new();
    for (_, l) in &lines {
        let v: Value = serde_json::from_str(l).unwrap();
        if v["event"] != "llm_call" {
            continue;
        }
        let run = v["run_id"].as_str().unwrap().to_owned();
        let total = totals.entry(run.clone()).or_default();
        let before = *total;
        *total += v["cost_usd"].as_f64().unwrap();
        if before <= limit && *total > limit {
            crossed.push((run, v["timestamp"].as_str().unwrap().to_owned()));
        }
    }
    let got = json(&["budget", "--per-run", "3"]);
    let got: Vec<(String, String)> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["scope_id"].as_str().unwrap().to_owned(),
                r["crossed_at"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut want = crossed.clone();
    want.sort();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    assert!(want.len() > 100, "enough runs cross: {}", want.len());
    assert_eq!(got_sorted, want);
}
