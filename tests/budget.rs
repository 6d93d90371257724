//! Budgets: the call that crosses a limit is the one reported, once; days roll over at UTC
//! midnight; concurrent runs keep their own books; a panicking callback never unwinds into the
//! application; the pre-flight check tells a loop when to stop.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;
use tracing::{dispatcher, info_span};
use tracing_llm_usage::{
    Budget, BudgetEvent, BudgetEventKind, ModelPrice, PriceTable, Rates, Timestamp, UsageLayer,
};

/// 2⁻²⁰ USD per token, in and out: every sum below is exact in binary floating point.
const RATE: f64 = 1.0 / 1_048_576.0;

fn prices() -> PriceTable {
    PriceTable::new().with(
        "m",
        ModelPrice::new(Rates {
            input: Some(RATE),
            output: Some(RATE),
            ..Rates::default()
        }),
    )
}

fn call(step: &str, input: u64) {
    drop(info_span!(
        "llm_call",
        model = "m",
        step,
        tokens.input = input,
        tokens.output = 0u64
    ));
}

#[test]
fn the_crossing_call_is_reported_once_with_a_warning_before() {
    let events: Arc<Mutex<Vec<BudgetEvent>>> = Arc::default();
    let seen = events.clone();
    let (d, handle, guard, buf) = common::setup(
        UsageLayer::builder()
            .prices(prices())
            .budget(Budget::per_run("run-usd").usd(10_240.0 * RATE))
            .budget(Budget::per_run("run-tokens").tokens(5_000).warn_at(None))
            .on_budget(move |e| seen.lock().unwrap().push(e.clone())),
    );
    dispatcher::with_default(&d, || {
        let run = info_span!("run", run_id = "r1");
        let _r = run.enter();
        // cumulative tokens: 3000, 6000 (token limit crossed), 8500 (past 80 % of the USD
        // limit, 8192 tokens' worth: warning), 10240 (at the USD limit, not over), 10241
        // (over), 20240 (no repeat)
        for (i, input) in [3000u64, 3000, 2500, 1740, 1, 9999].into_iter().enumerate() {
            call(&format!("turn-{i}"), input);
            if i == 3 {
                let left = handle.remaining("r1");
                assert_eq!(left.usd, Some(0.0));
                assert_eq!(left.tokens, Some(0));
                assert!(left.is_exhausted());
            }
        }
        let spend = handle.run_spend("r1").unwrap();
        assert_eq!(spend.tokens, 20_240);
        assert_eq!(spend.usd, 20_240.0 * RATE);
    });
    drop(guard);
    let got: Vec<_> = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e.budget.clone(),
                e.event,
                e.step.as_deref().unwrap().to_owned(),
                e.value,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "run-tokens".to_owned(),
                BudgetEventKind::Exceeded,
                "turn-1".to_owned(),
                6000.0
            ),
            (
                "run-usd".to_owned(),
                BudgetEventKind::Warning,
                "turn-2".to_owned(),
                nano(8500.0 * RATE)
            ),
            (
                "run-usd".to_owned(),
                BudgetEventKind::Exceeded,
                "turn-4".to_owned(),
                nano(10_241.0 * RATE)
            ),
        ]
    );

    // The same, as lines right after the crossing call's line (schema-checked by `lines`).
    let lines = buf.lines();
    let kinds: Vec<_> = lines
        .iter()
        .map(|l| l["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "llm_call",
            "llm_call",
            "budget_exceeded",
            "llm_call",
            "budget_warning",
            "llm_call",
            "llm_call",
            "budget_exceeded",
            "llm_call",
            "run_summary"
        ]
    );
    let exceeded = &lines[7];
    assert_eq!(exceeded["budget"], "run-usd");
    assert_eq!(exceeded["scope"], "run");
    assert_eq!(exceeded["scope_id"], "r1");
    assert_eq!(exceeded["metric"], "usd");
    assert_eq!(exceeded["limit"], json!(nano(10_240.0 * RATE)));
    assert_eq!(exceeded["value"], json!(nano(10_241.0 * RATE)));
    assert_eq!(exceeded["step"], "turn-4");
}

/// A dollar figure as lines write it: to the nano-dollar.
fn nano(v: f64) -> f64 {
    (v * 1e9).round() / 1e9
}

#[test]
fn days_roll_over_at_utc_midnight() {
    let now = Arc::new(AtomicI64::new(
        Timestamp::parse("2025-12-14T23:59:59.000Z")
            .unwrap()
            .unix_ms(),
    ));
    let clock = now.clone();
    let (d, _handle, guard, buf) = common::setup(
        UsageLayer::builder()
            .prices(prices())
            .budget(Budget::per_day("daily").tokens(10_000).warn_at(None))
            .clock(move || Timestamp::from_unix_ms(clock.load(Ordering::SeqCst))),
    );
    dispatcher::with_default(&d, || {
        call("a", 6_000);
        now.fetch_add(999, Ordering::SeqCst); // 23:59:59.999, same day
        call("b", 6_000); // 12,000 > 10,000: crossed on the 14th
        now.fetch_add(1, Ordering::SeqCst); // 00:00:00.000 on the 15th: a new day
        call("c", 6_000);
        call("d", 3_000); // 9,000: not crossed
        call("e", 1_001); // 10,001: crossed on the 15th
        call("f", 5_000); // already reported today
    });
    drop(guard);
    let lines = buf.lines();
    let crossings: Vec<_> = lines
        .iter()
        .filter(|l| l["event"] == "budget_exceeded")
        .map(|l| {
            (
                l["scope_id"].as_str().unwrap().to_owned(),
                l["step"].as_str().unwrap().to_owned(),
                l["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        crossings,
        [
            ("2025-12-14".to_owned(), "b".to_owned(), 12_000.0),
            ("2025-12-15".to_owned(), "e".to_owned(), 10_001.0)
        ]
    );
}

#[test]
fn concurrent_runs_cross_their_own_limits() {
    let exceeded: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen = exceeded.clone();
    let (d, handle, guard, _buf) = common::setup(
        UsageLayer::builder()
            .prices(prices())
            .budget(Budget::per_run("per-run").tokens(1_000 * 50).warn_at(None))
            .on_budget(move |e| {
                seen.lock()
                    .unwrap()
                    .push((e.scope_id.clone(), e.step.as_deref().unwrap().to_owned()))
            }),
    );
    std::thread::scope(|s| {
        for t in 0..8 {
            let d = d.clone();
            let handle = handle.clone();
            s.spawn(move || {
                dispatcher::with_default(&d, || {
                    let id = format!("run-{t}");
                    let run = info_span!("run", run_id = %id);
                    let _r = run.enter();
                    // runs of different sizes: run-t crosses on call 51 only if it makes 51
                    for i in 0..(40 + 3 * t) {
                        if handle.remaining(&id).is_exhausted() {
                            break;
                        }
                        call(&format!("call-{i}"), 1_000);
                    }
                })
            });
        }
    });
    drop(guard);
    let mut got = exceeded.lock().unwrap().clone();
    got.sort();
    // 50,000 tokens are reached exactly at call 50 (not over); the pre-flight check then
    // stops the loop, so no run ever exceeds.
    assert_eq!(got, Vec::<(String, String)>::new());
    for t in 0..8 {
        let calls = (40 + 3 * t).min(50);
        assert_eq!(
            handle.run(&format!("run-{t}")).unwrap().usage.call_count,
            calls as u64
        );
    }
}

#[test]
fn concurrent_runs_without_preflight_each_report_their_crossing() {
    let exceeded: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen = exceeded.clone();
    let (d, _handle, guard, _buf) = common::setup(
        UsageLayer::builder()
            .prices(prices())
            .budget(Budget::per_run("per-run").tokens(10_000).warn_at(None))
            .on_budget(move |e| {
                seen.lock()
                    .unwrap()
                    .push((e.scope_id.clone(), e.step.as_deref().unwrap().to_owned()))
            }),
    );
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let d = d.clone();
            s.spawn(move || {
                dispatcher::with_default(&d, || {
                    let run = info_span!("run", run_id = t);
                    let _r = run.enter();
                    // run t spends 1000 × (t + 1) per call: it crosses 10,000 on call
                    // ⌊10,000 / (1000 (t + 1))⌋ + 1
                    for i in 0..20 {
                        call(&format!("call-{i}"), 1_000 * (t + 1));
                    }
                })
            });
        }
    });
    drop(guard);
    let mut got = exceeded.lock().unwrap().clone();
    got.sort();
    assert_eq!(
        got,
        [
            ("0", "call-10"),
            ("1", "call-5"),
            ("2", "call-3"),
            ("3", "call-2")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
}

#[test]
fn a_panicking_callback_is_caught() {
    let (d, handle, guard, buf) = common::setup(
        UsageLayer::builder()
            .prices(prices())
            .budget(Budget::per_run("tiny").tokens(1).warn_at(None))
            .on_budget(|_| panic!("callback bug")),
    );
    dispatcher::with_default(&d, || {
        for r in 0..3 {
            let run = info_span!("run", run_id = r);
            let _r = run.enter();
            call("s", 10);
        }
    });
    drop(guard);
    let lines = buf.lines();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["event"] == "budget_exceeded")
            .count(),
        3
    );
    assert_eq!(handle.totals().calls, 3, "the application went on");
}

/// The README's budgets, with the models it names: priced by the bundled table, so the per-run
/// USD budget fires at exactly the call that crosses it.
#[test]
fn the_readme_budget_fires_on_the_models_it_names() {
    let events: Arc<Mutex<Vec<BudgetEvent>>> = Arc::default();
    let seen = events.clone();
    let (d, handle, guard, _buf) = common::setup(
        UsageLayer::builder()
            .budget(Budget::per_run("run-usd").usd(0.30))
            .budget(
                Budget::per_day("opus-usd")
                    .usd(50.0)
                    .model("claude-opus-4-5"),
            )
            .on_budget(move |e| seen.lock().unwrap().push(e.clone())),
    );
    let mut stopped_at = None;
    dispatcher::with_default(&d, || {
        let run = info_span!("run", run_id = "readme-run");
        let _r = run.enter();
        // claude-opus-4-5: 10,000 in × 5e-6 + 2,000 out × 2.5e-5 = $0.10 a call.
        for i in 1..=20 {
            let left = handle.remaining("readme-run");
            if left.is_exhausted() || !left.is_certain() {
                stopped_at = Some(i);
                break;
            }
            drop(info_span!(
                "llm_call",
                model = "claude-opus-4-5",
                provider = "anthropic",
                tokens.input = 10_000u64,
                tokens.output = 2_000u64
            ));
        }
    });
    drop(guard);
    let got: Vec<(String, BudgetEventKind)> = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| (e.budget.clone(), e.event))
        .collect();
    // Three calls make $0.30: past 80 % (a warning), not over the limit, and nothing left: the
    // loop stops before a fourth.
    assert_eq!(got, [("run-usd".to_owned(), BudgetEventKind::Warning)]);
    assert_eq!(stopped_at, Some(4));
    assert_eq!(
        handle.run_spend("readme-run").map(|s| s.unpriced_calls),
        Some(0)
    );
}
