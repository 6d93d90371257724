//! 1,000,000 runs with distinct ids, one call each, through the full pipeline (pricing, JSONL
//! to a file, OTel instruments on a periodic reader): memory stays bounded by the runs open at
//! once, not by the runs seen. Measure the peak with
//!
//! ```text
//! cargo build --release --example memory
//! /usr/bin/time -v target/release/examples/memory 1000000 2>&1 | grep -E 'runs|Maximum resident'
//! ```

mod pipelines;

use tracing::info_span;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 1_000_000,
    };
    let dir = tempfile::tempdir()?;
    let (dispatch, guards) = pipelines::ours(dir.path(), pipelines::Stages::FULL);
    tracing::dispatcher::set_global_default(dispatch)?;
    for r in 0..runs {
        let run = info_span!("run", run_id = %format_args!("run-{r:08}"));
        let _in_run = run.enter();
        pipelines::llm_call();
    }
    let usage = guards.handle.clone().ok_or("no handle")?;
    drop(guards); // flushes every line
    let t = usage.totals();
    let calls = pipelines::count_lines(dir.path(), "\"event\":\"llm_call\"");
    let summaries = pipelines::count_lines(dir.path(), "\"event\":\"run_summary\"");
    println!(
        "{runs} runs: {} calls aggregated, {calls} call lines, {summaries} run summaries, {} runs open at the end",
        t.calls,
        usage.open_runs()
    );
    if t.calls != runs || calls != runs || summaries != runs {
        return Err("a call or a summary is missing".into());
    }
    Ok(())
}
