//! `llm-usage` end to end: snapshots of every command in every format on a fixed log, and the
//! awkward inputs (torn tails, malformed and giant lines, gzip, stdin, empty directories,
//! date boundaries, unknown runs).

use std::io::Write;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/usage.jsonl")
}

fn cmd() -> Command {
    let mut c = Command::cargo_bin("llm-usage").unwrap();
    c.env_remove("NO_COLOR");
    c
}

/// Runs `args`; returns (stdout, stderr, exit code).
fn run(args: &[&str]) -> (String, String, i32) {
    let out = cmd().args(args).output().unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        out.status.code().unwrap_or(-1),
    )
}

fn stats_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["stats", "--format", "json"];
    all.extend_from_slice(args);
    let (out, err, code) = run(&all);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn every_command_in_every_format() {
    let log = fixture();
    let log = log.to_str().unwrap();
    let prices = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/prices.toml");
    let prices = prices.to_str().unwrap();
    let commands: Vec<(String, Vec<&str>)> = vec![
        ("stats".into(), vec!["stats", log]),
        ("report".into(), vec!["report", log]),
        ("by_step".into(), vec!["by", "step", log]),
        ("by_model".into(), vec!["by", "model", log]),
        ("by_provider".into(), vec!["by", "provider", log]),
        ("by_task".into(), vec!["by", "task", log]),
        ("by_agent".into(), vec!["by", "agent", log]),
        ("by_run".into(), vec!["by", "run", log]),
        ("by_day".into(), vec!["by", "day", log]),
        ("run_list".into(), vec!["run", "list", log]),
        ("run_show".into(), vec!["run", "show", "run-b", log]),
        ("reprice".into(), vec!["reprice", "--prices", prices, log]),
    ];
    for (name, args) in commands {
        for format in ["table", "json", "csv"] {
            let mut a = args.clone();
            a.extend(["--format", format]);
            let (out, err, code) = run(&a);
            assert_eq!(code, 0, "{name} {format}: {err}");
            // Several tables in one CSV come with a note on stderr, nothing else does.
            let several = format == "csv" && (name == "report" || name == "run_show");
            assert_eq!(err.is_empty(), !several, "{name} {format}: {err}");
            insta::assert_snapshot!(format!("{name}_{format}"), out);
        }
    }
    let (out, _, code) = run(&["export", "--output", "-", log]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("export_csv", out);
}

#[test]
fn exported_csv_parses_back_to_the_same_totals() {
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("calls.csv");
    let (_, err, code) = run(&[
        "export",
        "--output",
        csv_path.to_str().unwrap(),
        fixture().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let mut r = csv::Reader::from_path(&csv_path).unwrap();
    let headers = r.headers().unwrap().clone();
    assert_eq!(headers.len(), 19);
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (mut calls, mut input, mut output, mut cost) = (0u64, 0u64, 0u64, 0f64);
    for rec in r.records() {
        let rec = rec.unwrap();
        calls += 1;
        input += rec[col("input")].parse::<u64>().unwrap();
        output += rec[col("output")].parse::<u64>().unwrap();
        cost += rec[col("cost_usd")].parse::<f64>().unwrap_or(0.0);
    }
    let stats = stats_json(&[fixture().to_str().unwrap()]);
    assert_eq!(calls, stats["calls"].as_u64().unwrap());
    assert_eq!((input, output), (71_400, 11_330));
    assert!((cost - 0.30623).abs() < 1e-9, "{cost}");
}

#[test]
fn a_torn_last_line_is_named_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("llm_usage.2025-12-15.jsonl");
    let mut text = std::fs::read_to_string(fixture()).unwrap();
    text.push_str(
        r#"{"timestamp":"2025-12-15T10:00:00.000Z","event":"llm_call","run_id":"run-z","tok"#,
    );
    std::fs::write(&path, text).unwrap();
    let p = path.to_str().unwrap();
    let (out, err, code) = run(&["stats", "--format", "json", p]);
    assert_eq!(code, 0);
    assert!(err.contains(&format!("{p}:14: torn last line")), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["calls"], 8);
    assert_eq!(v["input_tokens"], 71_400);
    assert_eq!(v["skipped_lines"], 1);
    let (_, _, code) = run(&["stats", "--strict", p]);
    assert_eq!(code, 1);
}

#[test]
fn malformed_and_giant_lines_are_counted_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    let good = std::fs::read_to_string(fixture()).unwrap();
    let first_good = good.lines().next().unwrap();
    writeln!(f, "{first_good}").unwrap(); // line 1
    writeln!(f, "not json").unwrap(); // 2
    writeln!(f, r#"{{"event":"llm_call","tokens":{{"input":-1}}}}"#).unwrap(); // 3
    writeln!(f, r#"{{"event":"llm_call","event":"llm_call"}}"#).unwrap(); // 4 duplicate key
    writeln!(
        f,
        r#"{{"event":"llm_call","tokens":{{"input":18446744073709551616}}}}"#
    )
    .unwrap(); // 5
    writeln!(f, "{}1{}", "[".repeat(10_000), "]".repeat(10_000)).unwrap(); // 6 deep nesting
    f.write_all(b"{\"event\":\"llm_call\",\"model\":\"\xff\xfe\"}\n")
        .unwrap(); // 7 invalid UTF-8
    f.write_all(b"{\"event\":\"llm_call\",\0}\n").unwrap(); // 8 NUL
    writeln!(
        f,
        "{{\"event\":\"llm_call\",\"model\":\"{}\"}}",
        "x".repeat(3 << 20)
    )
    .unwrap(); // 9 > 1 MB
    writeln!(f, r#"{{"event":"something_else"}}"#).unwrap(); // 10
    for _ in 0..3 {
        writeln!(f, "{{").unwrap(); // 11-13
    }
    writeln!(f, "{first_good}").unwrap(); // 14
    drop(f);
    let p = path.to_str().unwrap();
    let (out, err, code) = run(&["stats", "--format", "json", p]);
    assert_eq!(code, 0, "{err}");
    let named: Vec<&str> = err.lines().filter(|l| l.starts_with(p)).collect();
    assert_eq!(named.len(), 10, "{err}");
    let lines: Vec<String> = named
        .iter()
        .map(|l| l[p.len() + 1..].split(':').next().unwrap().to_owned())
        .collect();
    assert_eq!(lines, ["2", "3", "4", "5", "6", "7", "8", "9", "10", "11"]);
    assert!(named[2].contains("duplicate field"), "{}", named[2]);
    assert!(named[7].contains("longer than 1 MB"), "{}", named[7]);
    assert!(err.contains("... and 2 more skipped lines"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["calls"], 2);
    assert_eq!(v["input_tokens"], 84_000);
    assert_eq!(v["skipped_lines"], 12);
    assert_eq!(run(&["stats", "--strict", p]).2, 1);
}

#[test]
fn gzip_stdin_and_directories_give_the_same_numbers() {
    let plain = stats_json(&[fixture().to_str().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("llm_usage.2025-12-14.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&std::fs::read(fixture()).unwrap()).unwrap();
    enc.finish().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a log").unwrap();
    let mut from_dir = stats_json(&[dir.path().to_str().unwrap()]);
    assert_eq!(from_dir["files"], 1, "only *.jsonl and *.jsonl.gz");
    from_dir["files"] = plain["files"].clone();
    assert_eq!(from_dir, plain);

    let out = cmd()
        .args(["stats", "--format", "json", "-"])
        .write_stdin(std::fs::read(fixture()).unwrap())
        .output()
        .unwrap();
    let from_stdin: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(from_stdin["input_tokens"], plain["input_tokens"]);
    assert_eq!(from_stdin["cost_usd"], plain["cost_usd"]);
}

#[test]
fn no_usable_input_is_an_error_and_an_empty_result_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (out, err, code) = run(&["stats", "--format", "json", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("no log files found"), "{err}");
    assert_eq!(out, "");
    let garbage = dir.path().join("garbage.jsonl");
    std::fs::write(&garbage, "not json\n{\"also\": \"not a line\"}\n").unwrap();
    let (out, err, code) = run(&["stats", garbage.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("none of the 2 lines is a usage line"), "{err}");
    assert_eq!(out, "");
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let (_, err, code) = run(&["stats", empty.to_str().unwrap()]);
    assert_eq!(
        (code, err.trim()),
        (1, "llm-usage: the input holds no usage lines")
    );

    let log = fixture();
    let (out, err, code) = run(&["by", "model", "--model", "nothing", log.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, ""));
    assert!(err.contains("nothing matches"), "{err}");
    let (out, _, code) = run(&[
        "by",
        "model",
        "--model",
        "nothing",
        "--format",
        "json",
        log.to_str().unwrap(),
    ]);
    assert_eq!((code, out.trim()), (0, "[]"));
}

#[test]
fn date_filters_at_the_boundaries() {
    let log = fixture();
    let log = log.to_str().unwrap();
    // since a date: from 00:00:00.000 that day, inclusive
    assert_eq!(stats_json(&["--since", "2025-12-15", log])["calls"], 4);
    // until a date: the whole day, so 23:59:59.999 is in and 00:00:00.000 the next day is not
    assert_eq!(stats_json(&["--until", "2025-12-14", log])["calls"], 4);
    // an instant is inclusive
    assert_eq!(
        stats_json(&["--until", "2025-12-15T00:00:00Z", log])["calls"],
        5
    );
    assert_eq!(
        stats_json(&[
            "--since",
            "2025-12-14T23:59:59.999Z",
            "--until",
            "2025-12-15T00:00:00.000Z",
            log
        ])["calls"],
        2
    );
    // other offsets are converted
    assert_eq!(
        stats_json(&["--since", "2025-12-15T01:00:00+01:00", log])["calls"],
        4
    );
    let v = stats_json(&["--model", "gpt-4.1", "--step", "tool_loop", log]);
    assert_eq!(
        (v["calls"].as_u64(), v["input_tokens"].as_u64()),
        (Some(3), Some(12_000))
    );
    let (_, err, code) = run(&["stats", "--since", "yesterday", log]);
    assert_eq!(code, 2, "a usage error");
    assert!(err.contains("neither a date"), "{err}");
}

#[test]
fn runs_use_their_newest_summary_and_never_double_count() {
    let log = fixture();
    let log = log.to_str().unwrap();
    let (out, _, code) = run(&["run", "list", "--format", "json", log]);
    assert_eq!(code, 0);
    let runs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let b = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == "run-b")
        .unwrap();
    assert_eq!(
        b["status"], "error",
        "the later summary wins over the incomplete one"
    );
    assert_eq!(b["calls"], 3);
    assert_eq!(b["input"], 12_000, "summaries add no tokens");
    let (_, err, code) = run(&["run", "show", "no-such-run", log]);
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "llm-usage: no run \"no-such-run\" in the logs");
    let (_, err, code) = run(&["reprice", log]);
    assert_eq!(code, 2);
    assert!(err.contains("--prices"), "{err}");
}

#[test]
fn budget_replay_lists_the_days_and_runs_that_cross() {
    let log = fixture();
    let log = log.to_str().unwrap();
    let (out, err, code) = run(&[
        "budget",
        "--per-day",
        "0.1",
        "--per-run",
        "0.012",
        "--format",
        "csv",
        log,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "scope,scope_id,limit,total,crossed_at,crossing_run,crossing_step,uncounted_calls\n\
         day,2025-12-14,0.1,0.2704,2025-12-14T10:30:15.123Z,run-a,persona_generation,0\n\
         run,run-a,0.012,0.262,2025-12-14T10:30:15.123Z,run-a,persona_generation,0\n\
         run,run-b,0.012,0.0204,2025-12-15T00:00:05.000Z,run-b,tool_loop,1\n\
         run,run-c,0.012,0.01833,2025-12-15T08:00:00.000Z,run-c,summary_generation,0\n"
    );
    // The unpriced call of run-b (2025-12-15) is named per limit, never counted as $0.
    assert_eq!(
        err,
        "llm-usage: the limit of $0.1000 a day could not count 1 call (with no cost) in 1 day: \
         those totals leave them out\n\
         llm-usage: the limit of $0.0120 a run could not count 1 call (with no cost) in 1 run: \
         those totals leave them out\n"
    );
    let (out, err, _) = run(&[
        "budget",
        "--tokens",
        "--per-run",
        "10000",
        "--format",
        "csv",
        log,
    ]);
    assert_eq!(
        out,
        "scope,scope_id,limit,total,crossed_at,crossing_run,crossing_step,uncounted_calls\n\
         run,run-a,10000,53950,2025-12-14T10:30:15.123Z,run-a,persona_generation,0\n\
         run,run-b,10000,13200,2025-12-15T00:00:05.000Z,run-b,tool_loop,0\n"
    );
    // Every call has usage: a token limit counts them all.
    assert_eq!(err, "");
    // the logged budget lines are counted, not mistaken for malformed ones
    let v = stats_json(&[log]);
    assert_eq!(
        (
            v["budget_warning_lines"].as_u64(),
            v["budget_exceeded_lines"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(v["skipped_lines"], 0);
    assert_eq!(run(&["budget", log]).2, 2, "a limit is required");
}

#[test]
fn a_100_mb_line_and_symlink_loops_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(fixture()).unwrap();
    let first_good = good.lines().next().unwrap();
    let path = dir.path().join("big.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(f, "{first_good}").unwrap();
    write!(f, "{{\"event\":\"llm_call\",\"model\":\"").unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..100 {
        f.write_all(&chunk).unwrap();
    }
    writeln!(f, "\"}}").unwrap();
    writeln!(f, "{first_good}").unwrap();
    drop(f);
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::os::unix::fs::symlink("..", sub.join("up")).unwrap();
    std::os::unix::fs::symlink("loop2", dir.path().join("loop1")).unwrap();
    std::os::unix::fs::symlink("loop1", dir.path().join("loop2")).unwrap();

    // 64 MB of heap for the whole process: a reader that held the line would fail.
    let out = std::process::Command::new("prlimit")
        .arg("--data=64000000")
        .arg(env!("CARGO_BIN_EXE_llm-usage"))
        .args(["stats", "--format", "json"])
        .arg(dir.path())
        .output()
        .expect("prlimit (util-linux) runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("{}:2: line longer than 1 MB", path.display())),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["calls"], 2, "the loops are not followed twice");
    assert_eq!(v["input_tokens"], 84_000);
    assert_eq!(v["skipped_lines"], 1);
}

#[test]
fn invalid_utf8_anywhere_in_a_line_rejects_it() {
    let good = br#"{"event":"llm_call","run_id":"r","tokens":{"input":3,"output":1},"by_step":[{"step":"tool_loop"}]}"#;
    // Found by fuzzing: a bad byte in a key no report reads must not let the line pass.
    let mut bad = good.to_vec();
    let at = bad.windows(4).position(|w| w == b"tool").unwrap();
    bad[at + 3] = 0xb2;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("utf8.jsonl");
    std::fs::write(&log, [&good[..], b"\n", &bad, b"\n"].concat()).unwrap();
    let (out, err, code) = run(&["stats", "--format", "json", log.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["calls"].as_u64(), v["skipped_lines"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(err.contains("utf8.jsonl:2: invalid UTF-8"), "{err}");
}

#[test]
fn a_run_id_used_by_two_runs_is_flagged_not_silently_merged() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("twice.jsonl");
    let mut text = String::new();
    for (day, input) in [("2025-12-14", 100), ("2025-12-15", 200)] {
        text.push_str(&format!(
            "{{\"timestamp\":\"{day}T10:00:00.000Z\",\"event\":\"llm_call\",\"run_id\":\"nightly\",\"model\":\"m\",\"tokens\":{{\"input\":{input},\"output\":1}}}}\n\
             {{\"timestamp\":\"{day}T10:00:01.000Z\",\"event\":\"run_summary\",\"run_id\":\"nightly\",\"status\":\"success\",\"elapsed_seconds\":1.0}}\n"
        ));
    }
    std::fs::write(&log, text).unwrap();
    let log = log.to_str().unwrap();
    let (out, _, code) = run(&["run", "list", "--format", "json", log]);
    assert_eq!(code, 0);
    let runs: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(runs[0]["status"], "success (id used by 2 runs)");
    assert_eq!(
        (runs[0]["calls"].as_u64(), runs[0]["input"].as_u64()),
        (Some(2), Some(300))
    );
    assert_eq!(runs[0]["first"], "2025-12-14T10:00:00.000Z");
    assert_eq!(runs[0]["last"], "2025-12-15T10:00:00.000Z");
    let (out, _, _) = run(&["run", "show", "nightly", "--format", "json", log]);
    let show: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(show["run"]["status"], "success (id used by 2 runs)");
}

#[test]
fn a_csv_of_several_tables_says_how_to_get_one() {
    let log = fixture();
    let (out, err, code) = run(&["report", "--format", "csv", log.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.starts_with("# by_step\n"), "{out}");
    assert!(
        err.contains("4 tables (by_step, prompt_breakdown, efficiency, budget_events)"),
        "{err}"
    );
    let (_, err, _) = run(&["by", "step", "--format", "csv", log.to_str().unwrap()]);
    assert!(!err.contains("tables"), "{err}");
}

/// The efficiency figures as docs/format.md defines them, computed by hand from the fixture.
#[test]
fn report_efficiency_figures_are_the_documented_ones() {
    let log = fixture();
    let (out, err, code) = run(&["report", "--format", "json", log.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let e = &v["efficiency"];
    let f = |k: &str| e[k].as_f64().unwrap();
    // Runs a, b and c cost 0.30623 less the one call outside any run (0.0055), over 3 runs.
    assert!((f("cost_per_run") - (0.30623 - 0.0055) / 3.0).abs() < 1e-9);
    assert_eq!(e["run_calls"], 7);
    // The priced calls' cost over the 7 priced calls (one of the 8 is unpriced).
    assert!((f("cost_per_call") - 0.30623 / 7.0).abs() < 1e-9);
    assert_eq!(
        (e["priced_calls"].as_u64(), e["calls"].as_u64()),
        (Some(7), Some(8))
    );
    // Shares of the 45,200 input tokens of the three calls that reported components.
    assert_eq!(e["prompt_component_input"], 45_200);
    let share = |c: &str| {
        v["prompt_breakdown"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["component"] == c)
            .unwrap()["share_of_input"]
            .as_f64()
            .unwrap()
    };
    assert!((share("data") - 40_900.0 / 45_200.0).abs() < 1e-9);
    assert!((share("system") - 2_400.0 / 45_200.0).abs() < 1e-9);
}

/// `by day` groups a call by the UTC day of its instant, as `--since` places it.
#[test]
fn days_are_utc_days_of_the_instant() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("offsets.jsonl");
    std::fs::write(
        &log,
        "{\"timestamp\":\"2025-12-14T23:30:00-02:00\",\"event\":\"llm_call\",\"tokens\":{\"input\":1}}\n\
         {\"timestamp\":\"2025-12-15T00:30:00+02:00\",\"event\":\"llm_call\",\"tokens\":{\"input\":2}}\n\
         {\"timestamp\":\"2025-12-15T12:00:00Z\",\"event\":\"llm_call\",\"tokens\":{\"input\":4}}\n",
    )
    .unwrap();
    let log = log.to_str().unwrap();
    let (out, err, code) = run(&["by", "day", "--format", "csv", log]);
    assert_eq!(code, 0, "{err}");
    let days: Vec<(String, String)> = out
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[0].to_owned(), c[2].to_owned())
        })
        .collect();
    // 23:30 at -02:00 is 01:30 UTC on the 15th; 00:30 at +02:00 is 22:30 UTC on the 14th.
    let mut days = days;
    days.sort();
    assert_eq!(
        days,
        [
            ("2025-12-14".to_owned(), "2".to_owned()),
            ("2025-12-15".to_owned(), "5".to_owned())
        ]
    );
    let v = stats_json(&["--since", "2025-12-15", log]);
    assert_eq!(v["input_tokens"], 5);
}

/// One rule for every command: no usable line is 1, an option that does not apply is 2 with a
/// message; export writes to stdout by default; help says what PATHS are.
#[test]
fn the_command_is_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.jsonl");
    std::fs::write(&garbage, "garbage\n{\"a\":1}\n").unwrap();
    let garbage = garbage.to_str().unwrap();
    let db = dir.path().join("usage.sqlite");
    let db = db.to_str().unwrap();
    for args in [vec!["stats", garbage], vec!["import", garbage, "--db", db]] {
        let (_, err, code) = run(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(
            err.contains("garbage.jsonl:1: not JSON: expected value at column 1\n"),
            "{err}"
        );
        assert!(
            err.ends_with("llm-usage: none of the 2 lines is a usage line\n"),
            "{err}"
        );
    }
    let log = fixture();
    let log = log.to_str().unwrap();
    for (args, option) in [
        (
            vec!["import", log, "--db", db, "--prices", log],
            "--prices does not apply to import",
        ),
        (
            vec!["import", log, "--db", db, "--format", "json"],
            "--format does not apply to import",
        ),
        (
            vec!["export", log, "--format", "json"],
            "--format does not apply to export",
        ),
        (
            vec!["watch", log, "--since", "2025-12-14"],
            "--since does not apply to watch",
        ),
    ] {
        let (_, err, code) = run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(option), "{args:?}: {err}");
    }
    let (out, err, code) = run(&["export", log]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("timestamp,run_id,step,model,"), "{out}");
    assert_eq!(out.lines().count(), 9, "a header and the 8 calls");
    let (help, _, _) = run(&["--help"]);
    assert!(help.contains("report (--html FILE"), "{help}");
    let (help, _, _) = run(&["stats", "--help"]);
    assert!(help.contains("[default: ./llm_usage_logs]"), "{help}");
}
