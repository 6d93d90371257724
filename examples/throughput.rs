//! Calls per second with a **global** default subscriber (a scoped dispatcher's shared refcount
//! stops threads from scaling), 1 and 2 threads, our full pipeline (pricing, JSONL to a file,
//! OTel instruments on a periodic reader) against the peers' pair (JSON `fmt` layer to a
//! non-blocking file + tracing-opentelemetry `MetricsLayer`) and the floor.
//!
//! ```text
//! cargo run --release --example throughput                 # every case, 1,000,000 calls per thread
//! cargo run --release --example throughput -- ours 2 1000000   # one case in this process
//! ```
//!
//! Each case runs in its own process (a global default can be set once). After the guards
//! flush, the lines in the files are counted: the program fails if one is missing. The
//! `-discarding` cases hand their lines to `std::io::sink` on the writer thread (the kernel's
//! copy into the page cache left out); ours then counts them from the layer's statistics.
//! With the `sqlite` feature, `ours-sqlite` also stores every line as a row of a SQLite file:
//! its time runs until the guard has committed the last row.

mod pipelines;

use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use tracing::info_span;

const CASES: &[&str] = &[
    "floor",
    "peers",
    "ours",
    "peers-discarding",
    "ours-discarding",
    #[cfg(feature = "sqlite")]
    "ours-sqlite",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [case, threads, calls] => {
            let result = run_case(case, threads.parse()?, calls.parse()?)?;
            println!("{result}");
            Ok(())
        }
        [] | [_] => {
            let calls: u64 = args.first().map_or(Ok(1_000_000), |c| c.parse())?;
            run_all(calls)
        }
        _ => Err("usage: throughput [CALLS] | throughput CASE THREADS CALLS".into()),
    }
}

/// Every case and thread count, each in a child process; prints a Markdown table.
fn run_all(calls: u64) -> Result<(), Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    println!(
        "| case | threads | calls | seconds | calls/s | 2 threads / 1 thread | lines written |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &case in CASES {
        let mut one_thread = 0.0;
        for threads in [1u32, 2] {
            let out = Command::new(&exe)
                .args([case, &threads.to_string(), &calls.to_string()])
                .output()?;
            if !out.status.success() {
                return Err(format!(
                    "{case} × {threads}: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
                .into());
            }
            let line = String::from_utf8_lossy(&out.stdout);
            let f: Vec<&str> = line.trim().split('\t').collect();
            let rate: f64 = f[1].parse()?;
            let scaling = if threads == 1 {
                one_thread = rate;
                "—".to_owned()
            } else {
                format!("{:.2}×", rate / one_thread)
            };
            println!(
                "| {case} | {threads} | {} | {} | {:.0} | {scaling} | {} |",
                u64::from(threads) * calls,
                f[0],
                rate,
                f[2]
            );
        }
    }
    Ok(())
}

/// One case in this process: "seconds \t calls/s \t lines written".
fn run_case(case: &str, threads: u32, calls: u64) -> Result<String, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (dispatch, guards) = match case {
        "floor" => pipelines::floor(),
        "peers" => pipelines::peers(dir.path()),
        "ours" => pipelines::ours(dir.path(), pipelines::Stages::FULL),
        "peers-discarding" => pipelines::peers_discarding(),
        "ours-discarding" => pipelines::ours_discarding(pipelines::Stages::FULL),
        // Not in the table: the caller's aggregate-only cost, for profiling.
        "aggregate" => pipelines::ours(dir.path(), pipelines::Stages::AGGREGATE),
        "bound" => pipelines::bound(),
        #[cfg(feature = "sqlite")]
        "ours-sqlite" => pipelines::ours_sqlite(dir.path()),
        other => {
            return Err(
                format!("unknown case {other:?}; one of {CASES:?} or aggregate, bound").into(),
            )
        }
    };
    let call: fn() = if case.starts_with("peers") {
        pipelines::llm_call_with_metric_event
    } else {
        pipelines::llm_call
    };
    tracing::dispatcher::set_global_default(dispatch)?;

    let start = Arc::new(Barrier::new(threads as usize + 1));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let start = start.clone();
            std::thread::spawn(move || {
                let run = info_span!("run", run_id = %format_args!("throughput-{t}"));
                let _in_run = run.enter();
                start.wait();
                for _ in 0..calls {
                    call();
                }
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for w in workers {
        w.join().map_err(|_| "a worker panicked")?;
    }
    let mut seconds = began.elapsed().as_secs_f64();

    let total = u64::from(threads) * calls;
    let handle = guards.handle.clone();
    drop(guards); // flushes every line
    if case == "ours-sqlite" {
        // The rows are committed once the guard is gone.
        seconds = began.elapsed().as_secs_f64();
        let stats = handle.as_ref().ok_or("no handle")?.stats();
        let expected = total + u64::from(threads);
        if stats.db_lines_written != expected || stats.db_lines_dropped != 0 {
            return Err(format!(
                "{} rows written, {} dropped; expected {expected}",
                stats.db_lines_written, stats.db_lines_dropped
            )
            .into());
        }
    }
    let lines = match case {
        "floor" | "aggregate" | "bound" | "peers-discarding" => "—".to_owned(),
        "peers" => check(pipelines::count_lines(dir.path(), "\"llm_call\""), total)?,
        "ours-discarding" => {
            let stats = handle.ok_or("no handle")?.stats();
            // Every call's line and each thread's run summary, none dropped.
            let expected = total + u64::from(threads);
            if stats.lines_written != expected || stats.lines_dropped != 0 {
                return Err(format!(
                    "{} lines written, {} dropped; expected {expected}",
                    stats.lines_written, stats.lines_dropped
                )
                .into());
            }
            total.to_string()
        }
        _ => {
            if let Some(h) = handle {
                let t = h.totals();
                if t.calls != total || t.input_tokens != 42_000 * total {
                    return Err(format!("totals: {} calls, expected {total}", t.calls).into());
                }
            }
            check(
                pipelines::count_lines(dir.path(), "\"event\":\"llm_call\""),
                total,
            )?
        }
    };
    Ok(format!(
        "{seconds:.3}\t{:.0}\t{lines}",
        total as f64 / seconds
    ))
}

fn check(lines: u64, calls: u64) -> Result<String, String> {
    if lines == calls {
        Ok(lines.to_string())
    } else {
        Err(format!("{lines} lines for {calls} calls"))
    }
}
