//! Many runs and threads at once: totals exact to the token, memory bounded by open runs.

mod common;

use common::{calls, setup, summaries};
use tracing::instrument::{Instrument, WithSubscriber};
use tracing::{dispatcher, field::Empty, info_span};
use tracing_llm_usage::UsageLayer;

#[test]
fn sixty_four_concurrent_runs_across_tokio_tasks_and_threads() {
    let (d, handle, guard, buf) = setup(UsageLayer::builder());
    // The registry releases a closed child's parent through the *thread's* default
    // dispatcher, so (as with a global default in a real service) every worker has ours.
    let worker_default = d.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .on_thread_start(move || std::mem::forget(dispatcher::set_default(&worker_default)))
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut runs = Vec::new();
        for r in 0..64u64 {
            let work = async move {
                let mut turns = Vec::new();
                for c in 0..10u64 {
                    let step = if c < 5 { "draft" } else { "review" };
                    let call = info_span!(
                        "llm_call",
                        step,
                        model = "m",
                        tokens.input = Empty,
                        tokens.output = Empty
                    );
                    // The call runs in its own task, often on another worker thread.
                    let fut = async move {
                        tokio::task::yield_now().await;
                        tokio::time::sleep(std::time::Duration::from_millis(c % 3)).await;
                        let span = tracing::Span::current();
                        span.record("tokens.input", 1000 * r + c);
                        span.record("tokens.output", r + 10 * c);
                    };
                    turns.push(tokio::spawn(fut.instrument(call).with_current_subscriber()));
                }
                for t in turns {
                    t.await.unwrap();
                }
            };
            let run = async move {
                let span = info_span!("run", run_id = %format!("run-{r}"));
                work.instrument(span).await
            };
            runs.push(tokio::spawn(run.with_subscriber(d.clone())));
        }
        for r in runs {
            r.await.unwrap();
        }
    });
    drop(rt);
    drop(guard);

    let lines = buf.lines();
    assert_eq!(calls(&lines).len(), 640);
    let s = summaries(&lines);
    assert_eq!(s.len(), 64);
    for r in 0..64u64 {
        let sum = s
            .iter()
            .find(|l| l["run_id"] == format!("run-{r}"))
            .unwrap();
        // sum over c of 1000r + c, and of r + 10c
        assert_eq!(sum["usage"]["input_tokens"], 10_000 * r + 45, "run {r}");
        assert_eq!(sum["usage"]["output_tokens"], 10 * r + 450, "run {r}");
        assert_eq!(sum["usage"]["call_count"], 10);
        assert_eq!(sum["status"], "success");
        let steps = sum["by_step"].as_array().unwrap();
        assert_eq!(steps.len(), 2);
        let draft = steps.iter().find(|s| s["step"] == "draft").unwrap();
        assert_eq!(draft["input_tokens"], 5000 * r + 10);
        assert_eq!(draft["calls"], 5);
    }
    let t = handle.totals();
    // sum over r of 10000r + 45, and of 10r + 450
    assert_eq!(t.input_tokens, 10_000 * 2016 + 45 * 64);
    assert_eq!(t.output_tokens, 10 * 2016 + 450 * 64);
    assert_eq!(t.calls, 640);
    assert_eq!(handle.open_runs(), 0);
}

#[test]
fn two_threads_of_100_000_calls_are_exact() {
    const N: u64 = 100_000;
    let (d, handle, guard, buf) = setup(UsageLayer::builder());
    std::thread::scope(|scope| {
        for t in 0..2u64 {
            let d = d.clone();
            scope.spawn(move || {
                dispatcher::with_default(&d, || {
                    let run = info_span!("run", run_id = t);
                    let _r = run.enter();
                    for i in 0..N {
                        drop(info_span!(
                            "llm_call",
                            step = "s",
                            model = "m",
                            tokens.input = i,
                            tokens.output = t + 1
                        ));
                    }
                })
            });
        }
    });
    drop(guard);
    let text = buf.text();
    assert_eq!(text.lines().count() as u64, 2 * N + 2);
    // sums straight from the file, without the schema check (400k lines is slow in debug)
    let (mut input, mut output) = (0u64, 0u64);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["event"] == "llm_call" {
            input += v["tokens"]["input"].as_u64().unwrap();
            output += v["tokens"]["output"].as_u64().unwrap();
        }
    }
    assert_eq!(input, N * (N - 1));
    assert_eq!(output, 3 * N);
    let t = handle.totals();
    assert_eq!(
        (t.calls, t.input_tokens, t.output_tokens),
        (2 * N, N * (N - 1), 3 * N)
    );
    for id in ["0", "1"] {
        let run = handle.run(id).unwrap();
        assert_eq!(run.usage.call_count, N);
        assert_eq!(run.usage.input_tokens, N * (N - 1) / 2);
    }
    assert_eq!(handle.stats().lines_written, 2 * N + 2);
    assert_eq!(handle.stats().lines_dropped, 0);
}

#[test]
fn two_hundred_thousand_runs_leave_nothing_open() {
    let (layer, guard) = UsageLayer::builder()
        .jsonl_writer(std::io::sink)
        .build()
        .unwrap();
    let handle = layer.handle();
    use tracing_subscriber::prelude::*;
    let d = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    dispatcher::with_default(&d, || {
        for r in 0..200_000u64 {
            let run = info_span!("run", run_id = r);
            let _r = run.enter();
            drop(info_span!("llm_call", tokens.input = 2, tokens.output = 1));
        }
    });
    assert_eq!(handle.open_runs(), 0);
    assert_eq!(handle.recent_runs().len(), 1024);
    assert_eq!(
        handle.recent_runs().last().unwrap().run_id.as_ref(),
        "199999"
    );
    assert_eq!(handle.totals().calls, 200_000);
    drop(guard);
    assert_eq!(handle.stats().lines_written, 400_000);
}
