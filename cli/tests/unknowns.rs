//! Never a silent zero, in every command and format: a log with a priced call, an unpriced
//! model and a call without usage (written by the layer) is reported with the unknowns as
//! `-`, `null` or empty and counted, never as `$0.0000` or `0`.

mod common;

use serde_json::Value;

fn run(args: &[&str]) -> (String, String) {
    common::llm_usage_ok(args)
}

/// Every number under a key that names a cost, anywhere in `v`.
fn costs(v: &Value, key: &str, out: &mut Vec<(String, f64)>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| costs(v, k, out)),
        Value::Array(a) => a.iter().for_each(|v| costs(v, key, out)),
        Value::Number(n) if key.contains("cost") => out.push((key.to_owned(), n.as_f64().unwrap())),
        _ => {}
    }
}

/// The (column, cell) pairs of cost columns in every CSV table of `text`.
fn csv_costs(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut header: Option<Vec<String>> = None;
    for line in text.lines() {
        if line.is_empty() || line.starts_with("# ") {
            header = None;
            continue;
        }
        let cells: Vec<String> = line.split(',').map(str::to_owned).collect();
        match &header {
            None => header = Some(cells),
            Some(h) => {
                for (c, cell) in h.iter().zip(cells) {
                    if c.contains("cost") {
                        out.push((c.clone(), cell));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn no_command_shows_an_unknown_as_free() {
    let dir = tempfile::tempdir().unwrap();
    let log = common::unknowns_log(dir.path());
    let log = log.to_str().unwrap();
    let prices = dir.path().join("prices.toml");
    std::fs::write(&prices, "[models.\"gpt-4o\"]\ninput = 5.0\noutput = 20.0\n").unwrap();
    let prices = prices.to_str().unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["stats"],
        vec!["report"],
        vec!["by", "step"],
        vec!["by", "model"],
        vec!["by", "provider"],
        vec!["by", "task"],
        vec!["by", "agent"],
        vec!["by", "run"],
        vec!["by", "day"],
        vec!["run", "list"],
        vec!["run", "show", "run-unknown"],
        vec!["reprice", "--prices", prices],
        vec!["budget", "--per-run", "0.001", "--per-day", "1"],
        vec!["stats", "--prices", prices],
    ];
    let mut checked = 0;
    for cmd in &commands {
        for format in ["table", "json", "csv"] {
            let mut args = cmd.clone();
            args.extend(["--format", format, log]);
            let (out, _) = run(&args);
            match format {
                "table" => assert!(!out.contains("$0.0000"), "{args:?}:\n{out}"),
                "json" => {
                    let v: Value = serde_json::from_str(&out).unwrap();
                    let mut found = Vec::new();
                    costs(&v, "", &mut found);
                    // Every priced call here cost something, and a repricing changes every
                    // priced figure: a zero could only be an unknown shown as free.
                    let zeros: Vec<_> = found.iter().filter(|(_, c)| *c == 0.0).collect();
                    assert!(zeros.is_empty(), "{args:?}: {zeros:?}\n{out}");
                }
                _ => {
                    let zeros: Vec<_> = csv_costs(&out)
                        .into_iter()
                        .filter(|(_, c)| c.parse::<f64>() == Ok(0.0))
                        .collect();
                    assert!(zeros.is_empty(), "{args:?}: {zeros:?}\n{out}");
                }
            }
            checked += 1;
        }
    }
    let (out, _) = run(&["export", "--output", "-", log]);
    let zeros: Vec<_> = csv_costs(&out)
        .into_iter()
        .filter(|(_, c)| c.parse::<f64>() == Ok(0.0))
        .collect();
    assert!(zeros.is_empty(), "export: {zeros:?}\n{out}");
    assert_eq!(checked, commands.len() * 3);
}

#[test]
fn unknowns_are_counted_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let log = common::unknowns_log(dir.path());
    let log = log.to_str().unwrap();
    let (gin, gout) = common::GPT_4O;
    let priced = 1_000.0 * gin + 100.0 * gout + 2_000.0 * gin;

    let s = common::llm_usage_json(&["stats", log]);
    assert_eq!(s["calls"], 4);
    assert_eq!(s["priced_calls"], 2);
    assert_eq!(s["unpriced_calls"], 2);
    assert_eq!(s["no_usage_calls"], 1);
    assert_eq!(s["budget_unpriced_lines"], 1);
    assert!((s["cost_usd"].as_f64().unwrap() - priced).abs() < 1e-9);

    let by = common::llm_usage_json(&["by", "model", log]);
    let row = |v: &Value, key: &str, name: &str| -> Value {
        v.as_array()
            .unwrap()
            .iter()
            .find(|r| r[key] == name)
            .unwrap_or_else(|| panic!("no {name} in {v}"))
            .clone()
    };
    let acme = row(&by, "model", "acme-private");
    assert_eq!(
        (&acme["cost_usd"], &acme["unpriced_calls"]),
        (&Value::Null, &1.into())
    );
    let gpt = row(&by, "model", "gpt-4o");
    assert_eq!(gpt["unpriced_calls"], 1);
    assert!((gpt["cost_usd"].as_f64().unwrap() - priced).abs() < 1e-9);
    let steps = common::llm_usage_json(&["by", "step", log]);
    for step in ["secret", "stream"] {
        let r = row(&steps, "step", step);
        assert_eq!(
            (&r["cost_usd"], &r["unpriced_calls"]),
            (&Value::Null, &1.into()),
            "{step}"
        );
    }
    let runs = common::llm_usage_json(&["by", "run", log]);
    let r = row(&runs, "run_id", "run-unknown");
    assert_eq!(
        (&r["cost_usd"], &r["unpriced_calls"]),
        (&Value::Null, &2.into())
    );

    let list = common::llm_usage_json(&["run", "list", log]);
    let r = row(&list, "run_id", "run-unknown");
    assert_eq!(
        (&r["cost_usd"], &r["unpriced_calls"]),
        (&Value::Null, &2.into())
    );
    assert_eq!(row(&list, "run_id", "run-known")["unpriced_calls"], 0);
    let show = common::llm_usage_json(&["run", "show", "run-unknown", log]);
    assert_eq!(show["run"]["unpriced_calls"], 2);

    let report = common::llm_usage_json(&["report", log]);
    assert_eq!(report["efficiency"]["no_usage_calls"], 1);
    assert_eq!(report["efficiency"]["unpriced_calls"], 2);
    let total = row(&report["by_step"], "step", "TOTAL");
    assert_eq!(total["unpriced_calls"], 2);

    // Re-pricing never prices a call that had no usage, nor a model the new table lacks.
    let prices = dir.path().join("prices.toml");
    std::fs::write(&prices, "[models.\"gpt-4o\"]\ninput = 5.0\noutput = 20.0\n").unwrap();
    let s = common::llm_usage_json(&["stats", "--prices", prices.to_str().unwrap(), log]);
    assert_eq!(
        (s["priced_calls"].as_u64(), s["no_usage_calls"].as_u64()),
        (Some(2), Some(1))
    );
    let repriced = 1_000.0 * 5e-6 + 100.0 * 20e-6 + 2_000.0 * 5e-6;
    assert!((s["cost_usd"].as_f64().unwrap() - repriced).abs() < 1e-9);

    // The budget replay names what each limit could not count.
    let (out, err) = run(&["budget", "--per-run", "0.001", "--format", "csv", log]);
    assert_eq!(
        out,
        "scope,scope_id,limit,total,crossed_at,crossing_run,crossing_step,uncounted_calls\n\
         run,run-known,0.001,0.0035,2025-12-14T10:00:00.000Z,run-known,draft,0\n"
    );
    assert_eq!(
        err,
        "llm-usage: the limit of $0.0010 a run could not count 2 calls (with no cost) in 1 run: \
         those totals leave them out\n"
    );

    // The page: no $0.0000 anywhere, the unknowns counted.
    let page = dir.path().join("page.html");
    run(&["report", "--html", page.to_str().unwrap(), log]);
    let page = std::fs::read_to_string(page).unwrap();
    assert!(!page.contains("$0.0000"), "{page}");
    assert!(page.contains("<dt>calls without usage</dt><dd data-value=\"1\">1</dd>"));
    assert!(page.contains("secret: 1 call, unpriced"), "{page}");
    assert!(page.contains("stream: 1 call, unpriced"), "{page}");
}

/// `--prices` and `reprice` take an override file on top of the bundled table, and an
/// override prices the model's dated names too, unless the file names the dated one.
#[test]
fn overrides_reach_dated_names_in_prices_and_reprice() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("llm_usage.2025-12-14.jsonl");
    std::fs::write(
        &log,
        "{\"timestamp\":\"2025-12-14T10:00:00.000Z\",\"event\":\"llm_call\",\"run_id\":\"r\",\
         \"step\":null,\"model\":\"claude-sonnet-4-5-20250929\",\"provider\":\"anthropic\",\
         \"tokens\":{\"input\":1000000,\"output\":0,\"total\":1000000},\"cost_usd\":3.0,\
         \"cost_source\":\"local\"}\n\
         {\"timestamp\":\"2025-12-14T10:00:01.000Z\",\"event\":\"llm_call\",\"run_id\":\"r\",\
         \"step\":null,\"model\":\"claude-sonnet-4-5-20250929\",\"provider\":\"anthropic\",\
         \"tokens\":{},\"cost_usd\":null,\"cost_source\":\"no_usage\"}\n",
    )
    .unwrap();
    let log = log.to_str().unwrap();
    let base = dir.path().join("base.toml");
    std::fs::write(
        &base,
        "[models.\"claude-sonnet-4-5\"]\ninput = 2.0\noutput = 10.0\n",
    )
    .unwrap();
    let both = dir.path().join("both.toml");
    std::fs::write(
        &both,
        "[models.\"claude-sonnet-4-5\"]\ninput = 2.0\noutput = 10.0\n\
         [models.\"claude-sonnet-4-5-20250929\"]\ninput = 2.5\noutput = 10.0\n",
    )
    .unwrap();
    for (file, want) in [(&base, 2.0), (&both, 2.5)] {
        let file = file.to_str().unwrap();
        let s = common::llm_usage_json(&["stats", "--prices", file, log]);
        assert!(
            (s["cost_usd"].as_f64().unwrap() - want).abs() < 1e-9,
            "{file}: {s}"
        );
        assert_eq!(
            (s["priced_calls"].as_u64(), s["no_usage_calls"].as_u64()),
            (Some(1), Some(1))
        );
        let r = common::llm_usage_json(&["reprice", "--prices", file, log]);
        let row = &r.as_array().unwrap()[0];
        assert_eq!(row["model"], "claude-sonnet-4-5-20250929");
        assert!(
            (row["old_cost_usd"].as_f64().unwrap() - 3.0).abs() < 1e-9,
            "{row}"
        );
        assert!(
            (row["new_cost_usd"].as_f64().unwrap() - want).abs() < 1e-9,
            "{row}"
        );
        // The call without usage is unpriced under both tables, never $0.
        assert_eq!(
            (row["old_unpriced"].as_u64(), row["new_unpriced"].as_u64()),
            (Some(1), Some(1))
        );
    }
}
