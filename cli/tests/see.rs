//! `report --html` and `watch`. The page holds the totals of `stats` and `by`, a chart in every
//! section, nothing fetched and every logged string escaped; headless Chromium renders it.
//! `watch` prints plain lines when stdout is not a terminal, and in a terminal (tmux) shows new
//! totals as lines are appended and leaves the terminal as it found it.
//!
//! A custom harness (libtest-mimic): the Chromium and tmux tests are reported as ignored when
//! the tool is missing (`bash .ci/run` installs both), never passed silently.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/usage.jsonl")
}

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("llm-usage")
}

fn json(args: &[&str]) -> Value {
    common::llm_usage_json(args)
}

fn html(args: &[&str], dir: &Path) -> String {
    let path = dir.join("report.html");
    let out = Command::cargo_bin("llm-usage")
        .unwrap()
        .args(["report", "--html", path.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(path).unwrap()
}

/// The `data-value` of a totals card.
fn total(page: &str, name: &str) -> String {
    let needle = format!("<dt>{name}</dt><dd data-value=\"");
    let at = page
        .find(&needle)
        .unwrap_or_else(|| panic!("no {name} card"));
    let rest = &page[at + needle.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

fn the_page_holds_the_reports_totals() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let log = fixture();
    let log = log.to_str().unwrap();
    let page = html(&[log], dir.path());
    let stats = json(&["stats", log]);
    assert_eq!(total(&page, "calls"), stats["calls"].to_string());
    assert_eq!(total(&page, "runs"), stats["runs"].to_string());
    assert_eq!(
        total(&page, "input tokens"),
        stats["input_tokens"].to_string()
    );
    assert_eq!(
        total(&page, "output tokens"),
        stats["output_tokens"].to_string()
    );
    let cost: f64 = total(&page, "cost").parse()?;
    assert!((cost - stats["cost_usd"].as_f64().unwrap()).abs() < 1e-9);
    // Each model's and step's cost, to the cent as the tables show it.
    for dim in ["model", "step", "provider"] {
        for row in json(&["by", dim, log]).as_array().unwrap() {
            let Some(c) = row["cost_usd"].as_f64() else {
                continue;
            };
            let cell = format!("<td class=\"n\">${c:.4}</td>");
            assert!(page.contains(&cell), "{dim} {}: {cell}", row[dim]);
        }
    }
    // A chart in every section, nothing fetched.
    let sections: Vec<&str> = page.split("<section").skip(1).collect();
    assert_eq!(sections.len(), 8);
    for s in &sections {
        assert!(
            s.contains("<svg"),
            "a section without a chart: {}",
            &s[..60]
        );
        assert!(
            s.contains("<table"),
            "a chart without its table: {}",
            &s[..60]
        );
    }
    for banned in [
        "src=", "href=", "url(", "<script", "@import", "http://", "https://",
    ] {
        assert!(!page.contains(banned), "{banned}");
    }
    Ok(())
}

fn the_page_from_a_database_is_the_page_from_the_files() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let log = fixture();
    let db = dir.path().join("usage.sqlite");
    let out = Command::cargo_bin("llm-usage")?
        .args([
            "import",
            log.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
        ])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_files = html(
        &[log.to_str().unwrap(), "--since", "2025-12-15"],
        dir.path(),
    );
    let from_db = html(
        &["--db", db.to_str().unwrap(), "--since", "2025-12-15"],
        dir.path(),
    );
    // The same page but for the header naming the input.
    let body = |p: &str| p[p.find("<main>").unwrap()..].to_owned();
    assert_eq!(body(&from_files), body(&from_db));
    let stats = json(&["stats", "--since", "2025-12-15", log.to_str().unwrap()]);
    assert_eq!(total(&from_db, "calls"), stats["calls"].to_string());
    Ok(())
}

fn logged_strings_are_escaped() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("hostile.jsonl");
    std::fs::write(
        &log,
        concat!(
            r#"{"timestamp":"2025-12-14T10:30:15.123Z","event":"llm_call","run_id":"<img src=x onerror=alert(1)>","step":"<script>alert(1)</script>","model":"m\" onload=\"x","provider":"p&q","tokens":{"input":5,"output":1},"cost_usd":0.5,"latency_ms":7}"#,
            "\n"
        ),
    )?;
    let page = html(&[log.to_str().unwrap()], dir.path());
    for raw in ["<script>", "<img", "\" onload=\""] {
        assert!(!page.contains(raw), "{raw} reached the page");
    }
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("p&amp;q"));
    Ok(())
}

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Headless Chromium with a profile of its own in `dir`, fetching nothing in the background.
fn headless(chromium: &Path, dir: &Path) -> Process {
    let mut c = Process::new(chromium);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", dir.join("profile").display()));
    c
}

fn chromium_renders_the_page(chromium: &Path) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let log = fixture();
    html(&[log.to_str().unwrap()], dir.path());
    let png = dir.path().join("report.png");
    let out = headless(chromium, dir.path())
        .args([
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--window-size=1000,2000",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!(
            "file://{}",
            dir.path().join("report.html").display()
        ))
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("CONSOLE"), "console messages: {stderr}");
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png)?));
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().ok_or("no buffer size")?];
    let info = reader.next_frame(&mut buf)?;
    let px = &buf[..info.buffer_size()];
    let step = info.color_type.samples();
    let white = px
        .chunks(step)
        .filter(|p| p.iter().take(3).all(|&c| c > 245))
        .count();
    let all = px.len() / step;
    assert_eq!((info.width, info.height), (1000, 2000));
    assert!(
        white < all * 97 / 100,
        "the page is blank: {white} of {all} pixels white"
    );
    let colours: std::collections::HashSet<&[u8]> = px.chunks(step).collect();
    assert!(colours.len() > 20, "{} colours", colours.len());
    Ok(())
}

/// The page laid out by Chromium at 1200 px: no text of any chart reaches outside its chart.
/// A copy of the page with a measuring script (the page itself has none) is loaded, and the
/// DOM after it ran is read back.
fn no_chart_text_overflows(chromium: &Path) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    // Long names and big figures: what pushes labels out.
    let log = dir.path().join("wide.jsonl");
    let mut text = std::fs::read_to_string(fixture())?;
    text.push_str(
        "{\"timestamp\":\"2025-12-15T10:00:00.000Z\",\"event\":\"llm_call\",\
         \"run_id\":\"run-with-a-rather-long-identifier-0001\",\
         \"step\":\"a_step_with_a_long_descriptive_name\",\"model\":\"claude-opus-4-5-20251101\",\
         \"tokens\":{\"input\":106700,\"output\":5000,\"total\":111700},\"cost_usd\":1234.5678,\
         \"cost_source\":\"local\",\"prompt_breakdown\":{\"retrieved_documents\":90000}}\n",
    );
    std::fs::write(&log, text)?;
    html(&[log.to_str().unwrap()], dir.path());
    let page = std::fs::read_to_string(dir.path().join("report.html"))?;
    let probe = r#"<script>
addEventListener('load', () => {
  const out = [];
  for (const svg of document.querySelectorAll('svg.chart')) {
    const box = svg.viewBox.baseVal;
    for (const t of svg.querySelectorAll('text')) {
      const b = t.getBBox();
      if (b.x < -0.5 || b.y < -0.5 || b.x + b.width > box.width + 0.5 || b.y + b.height > box.height + 0.5) {
        out.push(svg.getAttribute('aria-label') + ': ' + t.textContent);
      }
    }
  }
  const charts = document.querySelectorAll('svg.chart').length;
  document.body.setAttribute('data-overflow', JSON.stringify({charts, out}));
});
</script></body>"#;
    std::fs::write(
        dir.path().join("probe.html"),
        page.replace("</body>", probe),
    )?;
    let out = headless(chromium, dir.path())
        .args([
            "--window-size=1200,2000",
            "--virtual-time-budget=2000",
            "--dump-dom",
        ])
        .arg(format!(
            "file://{}",
            dir.path().join("probe.html").display()
        ))
        .output()?;
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let at = dom
        .find("data-overflow=\"")
        .ok_or_else(|| format!("the probe did not run:\n{dom}"))?;
    let rest = &dom[at + "data-overflow=\"".len()..];
    let json = rest[..rest.find('"').unwrap_or(0)].replace("&quot;", "\"");
    let v: Value = serde_json::from_str(&json)?;
    assert!(v["charts"].as_u64().unwrap_or(0) >= 8, "{v}");
    assert_eq!(v["out"], serde_json::json!([]), "text outside its chart");
    // Each chart's heading comes before it, and counts are plural only when they should be.
    assert!(
        page.contains("<figure><figcaption>"),
        "headings above their charts"
    );
    assert!(
        !page.contains(" 1 calls") && !page.contains(">1 calls"),
        "1 calls"
    );
    Ok(())
}

/// Lines `reader` gives until one contains `want` (within `patience`).
fn wait_for_line(
    lines: &std::sync::mpsc::Receiver<String>,
    want: &str,
    patience: Duration,
) -> Result<String, Failed> {
    let end = Instant::now() + patience;
    let mut seen = Vec::new();
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(l) if l.contains(want) => return Ok(l),
            Ok(l) => seen.push(l),
            Err(_) => break,
        }
    }
    Err(format!("no line with {want:?}; saw {seen:?}").into())
}

fn call_line(day: &str, run: &str, input: u64) -> String {
    format!(
        "{{\"timestamp\":\"{day}T10:00:00.000Z\",\"event\":\"llm_call\",\"run_id\":\"{run}\",\
         \"step\":\"s\",\"model\":\"gpt-4o\",\"tokens\":{{\"input\":{input},\"output\":10,\"total\":{}}},\
         \"cost_usd\":0.25}}\n",
        input + 10
    )
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn watch_prints_plain_lines_when_not_a_terminal() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let today = dir.path().join("llm_usage.2025-12-01.jsonl");
    append(&today, &call_line("2025-12-01", "r1", 90));
    let mut child = Process::new(bin())
        .args(["watch", dir.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let result = (|| {
        wait_for_line(
            &rx,
            "calls 1 tokens 100 cost $0.2500 open runs 1",
            Duration::from_secs(20),
        )?;
        // A line appended, and a new daily file.
        append(&today, &call_line("2025-12-01", "r1", 190));
        append(
            &dir.path().join("llm_usage.2025-12-02.jsonl"),
            &call_line("2025-12-02", "r2", 290),
        );
        wait_for_line(
            &rx,
            "calls 3 tokens 600 cost $0.7500 open runs 2",
            Duration::from_secs(20),
        )?;
        Ok::<_, Failed>(())
    })();
    child.kill()?;
    child.wait()?;
    result
}

fn tmux(socket: &str, args: &[&str]) -> String {
    let out = Process::new("tmux")
        .arg("-L")
        .arg(socket)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A detached tmux session `w` of `size` (columns, rows) running `script` under `sh`.
fn new_session(socket: &str, size: (u16, u16), script: &str) {
    let (x, y) = (size.0.to_string(), size.1.to_string());
    tmux(
        socket,
        &[
            "new-session",
            "-d",
            "-s",
            "w",
            "-x",
            &x,
            "-y",
            &y,
            "sh",
            "-c",
            script,
        ],
    );
}

/// The pane's text once it contains every one of `want` (within `patience`).
fn wait_for_screen(socket: &str, want: &[&str], patience: Duration) -> Result<String, Failed> {
    let end = Instant::now() + patience;
    loop {
        let screen = tmux(socket, &["capture-pane", "-p", "-t", "w"]);
        if want.iter().all(|w| screen.contains(w)) {
            return Ok(screen);
        }
        if Instant::now() > end {
            return Err(format!("the screen never showed {want:?}:\n{screen}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn watch_in_a_terminal_updates_and_restores_it(quit: &str) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("llm_usage.2025-12-01.jsonl");
    append(&log, &call_line("2025-12-01", "r1", 90));
    let socket = format!("llm-usage-test-{}-{}", std::process::id(), quit.len());
    let script = format!(
        "stty -a > {before}; '{bin}' watch '{dir}'; stty -a > {after}; echo WATCH-EXITED; sleep 60",
        before = dir.path().join("before").display(),
        after = dir.path().join("after").display(),
        bin = bin().display(),
        dir = dir.path().display(),
    );
    new_session(&socket, (120, 40), &script);
    let result = (|| {
        wait_for_screen(
            &socket,
            &["llm-usage watch", "calls 1 tokens 100"],
            Duration::from_secs(20),
        )?;
        append(&log, &call_line("2025-12-01", "r2", 190));
        let screen = wait_for_screen(
            &socket,
            &["calls 2 tokens 300", "open runs 2"],
            Duration::from_secs(20),
        )?;
        assert!(
            screen.contains("top models") && screen.contains("gpt-4o"),
            "{screen}"
        );
        tmux(&socket, &["send-keys", "-t", "w", quit]);
        let screen = wait_for_screen(&socket, &["WATCH-EXITED"], Duration::from_secs(20))?;
        // The alternate screen is gone and the terminal modes are those of before.
        assert!(!screen.contains("top models"), "{screen}");
        let before = std::fs::read_to_string(dir.path().join("before"))?;
        let after = std::fs::read_to_string(dir.path().join("after"))?;
        assert_eq!(before, after, "terminal modes changed");
        Ok::<_, Failed>(())
    })();
    tmux(&socket, &["kill-server"]);
    result
}

/// The live view of a log with an unpriced model and a call without usage: the unknowns read
/// "unpriced" (or `≥$x` where they are part of a sum), never `$0.0000`.
fn watch_shows_unknowns_as_unpriced() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    common::unknowns_log(dir.path());
    let socket = format!("llm-usage-test-{}-unknowns", std::process::id());
    let script = format!(
        "'{bin}' watch '{dir}'; sleep 60",
        bin = bin().display(),
        dir = dir.path().display(),
    );
    new_session(&socket, (200, 50), &script);
    let result = (|| {
        let screen = wait_for_screen(
            &socket,
            &[
                "calls 4 tokens 3,650 cost ≥$0.0085 (2 unpriced)",
                "acme-private",
            ],
            Duration::from_secs(20),
        )?;
        assert!(!screen.contains("$0.0000"), "{screen}");
        let line = |needle: &str| {
            screen
                .lines()
                .find(|l| l.contains(needle))
                .unwrap_or_default()
                .to_owned()
        };
        assert!(line("acme-private").contains("unpriced"), "{screen}");
        assert!(line("run-unknown").contains("unpriced"), "{screen}");
        assert!(line("run-known").contains("$0.0035"), "{screen}");
        Ok::<_, Failed>(())
    })();
    tmux(&socket, &["kill-server"]);
    result
}

/// At 80×24 and at 200×50 every column of `watch` is readable: costs (over $1,000 too) whole,
/// long ids and model names shortened in the middle so both ends show.
fn watch_fits_the_terminal(size: (u16, u16)) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("llm_usage.2025-12-15.jsonl");
    append(
        &log,
        "{\"timestamp\":\"2025-12-15T10:00:00.000Z\",\"event\":\"llm_call\",\
         \"run_id\":\"run-budget-exceeded-opus-7f3a9c2e\",\"step\":\"persona_generation\",\
         \"model\":\"claude-opus-4-5-20251101\",\"tokens\":{\"input\":1000000,\"output\":500000,\
         \"total\":1500000},\"cost_usd\":15859.10374,\"cost_source\":\"local\"}\n\
         {\"timestamp\":\"2025-12-15T10:00:01.000Z\",\"event\":\"llm_call\",\
         \"run_id\":\"run-budget-exceeded-opus-7f3a9c2f\",\"step\":\"summary\",\
         \"model\":\"claude-opus-4-1-20250805\",\"tokens\":{\"input\":1000,\"output\":500,\
         \"total\":1500},\"cost_usd\":null,\"cost_source\":\"unpriced\"}\n",
    );
    let socket = format!(
        "llm-usage-test-{}-{}x{}",
        std::process::id(),
        size.0,
        size.1
    );
    let script = format!(
        "'{bin}' watch '{dir}'; sleep 60",
        bin = bin().display(),
        dir = dir.path().display(),
    );
    new_session(&socket, size, &script);
    let result = (|| {
        let screen = wait_for_screen(
            &socket,
            &["cost ≥$15,859.1037 (1 unpriced)", "top models"],
            Duration::from_secs(20),
        )?;
        // Costs are never cut; each name keeps its start and its end.
        assert_eq!(screen.matches("$15,859.1037").count(), 4, "{screen}");
        for (start, end) in [
            ("run-bud", "7f3a9c2e"),
            ("claude-op", "20251101"),
            ("claude-op", "20250805"),
        ] {
            assert!(
                screen.lines().any(|l| l.contains(start) && l.contains(end)),
                "{start}…{end}:\n{screen}"
            );
        }
        let max = screen.lines().map(|l| l.chars().count()).max().unwrap_or(0);
        assert!(max <= usize::from(size.0), "{screen}");
        Ok::<_, Failed>(())
    })();
    tmux(&socket, &["kill-server"]);
    result
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = vec![
        Trial::test(
            "the_page_holds_the_reports_totals",
            the_page_holds_the_reports_totals,
        ),
        Trial::test("logged_strings_are_escaped", logged_strings_are_escaped),
        Trial::test(
            "the_page_from_a_database_is_the_page_from_the_files",
            the_page_from_a_database_is_the_page_from_the_files,
        ),
        Trial::test(
            "watch_prints_plain_lines_when_not_a_terminal",
            watch_prints_plain_lines_when_not_a_terminal,
        ),
    ];
    for (name, test) in [
        (
            "chromium_renders_the_page",
            chromium_renders_the_page as fn(&Path) -> Result<(), Failed>,
        ),
        ("no_chart_text_overflows", no_chart_text_overflows),
    ] {
        trials.push(match chromium() {
            Some(c) => Trial::test(name, move || test(&c)),
            None => Trial::test(name, || Err("chromium is not installed".into()))
                .with_ignored_flag(true),
        });
    }
    let has_tmux = Process::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    trials.push(if has_tmux {
        Trial::test(
            "watch_shows_unknowns_as_unpriced",
            watch_shows_unknowns_as_unpriced,
        )
    } else {
        Trial::test("watch_shows_unknowns_as_unpriced", || {
            Err("tmux is not installed".into())
        })
        .with_ignored_flag(true)
    });
    for (name, size) in [
        ("watch_fits_80_by_24", (80, 24)),
        ("watch_fits_200_by_50", (200, 50)),
    ] {
        trials.push(if has_tmux {
            Trial::test(name, move || watch_fits_the_terminal(size))
        } else {
            Trial::test(name, || Err("tmux is not installed".into())).with_ignored_flag(true)
        });
    }
    for (name, key) in [
        ("watch_in_a_terminal_quits_on_q_and_restores_it", "q"),
        ("watch_in_a_terminal_quits_on_ctrl_c_and_restores_it", "C-c"),
    ] {
        trials.push(if has_tmux {
            Trial::test(name, move || {
                watch_in_a_terminal_updates_and_restores_it(key)
            })
        } else {
            Trial::test(name, || Err("tmux is not installed".into())).with_ignored_flag(true)
        });
    }
    libtest_mimic::run(&args, trials).exit();
}
