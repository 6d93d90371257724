//! Who spent it: attributes named on the builder reach every call below the span that records
//! them, the lines, the run summaries, the handle's totals, per-value budgets and (only when
//! asked) the metrics, exactly.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use serde_json::{json, Value};
use tracing::field::Empty;
use tracing::{dispatcher, info_span};
use tracing_llm_usage::{
    Budget, BudgetEvent, BudgetEventKind, ModelPrice, PriceTable, Rates, Timestamp, UsageLayer,
};

/// Powers of two per token: every sum below is exact in binary floating point.
const A_IN: f64 = 1.0 / 1_048_576.0;
const A_OUT: f64 = 1.0 / 262_144.0;
const B_IN: f64 = 1.0 / 131_072.0;
const B_OUT: f64 = 1.0 / 32_768.0;

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
const VERSIONS: [&str; 2] = ["v1", "v2"];
const MODELS: [&str; 2] = ["model-a", "model-b"];

fn prices() -> PriceTable {
    let rates = |input, output| {
        ModelPrice::new(Rates {
            input: Some(input),
            output: Some(output),
            ..Rates::default()
        })
    };
    PriceTable::new()
        .with("model-a", rates(A_IN, A_OUT))
        .with("model-b", rates(B_IN, B_OUT))
}

/// The tokens of a tenant's call: different for every tenant, version, model and round.
fn tokens(t: usize, v: usize, m: usize, round: usize) -> (u64, u64) {
    let input = 1_000 * (t as u64 + 1) + 100 * v as u64 + 10 * m as u64 + round as u64;
    (input, input / 10 + 7)
}

fn cost(m: usize, (input, output): (u64, u64)) -> f64 {
    match m {
        0 => input as f64 * A_IN + output as f64 * A_OUT,
        _ => input as f64 * B_IN + output as f64 * B_OUT,
    }
}

/// Every call of the service, in order: (tenant, version, model, round).
fn plan() -> Vec<(usize, usize, usize, usize)> {
    let mut out = Vec::new();
    for t in 0..TENANTS.len() {
        for round in 0..2 {
            for v in 0..VERSIONS.len() {
                for m in 0..MODELS.len() {
                    out.push((t, v, m, round));
                }
            }
        }
    }
    out
}

const LIMIT: f64 = 0.04;

/// The service: one run per tenant. acme's and globex's tenant is recorded on the run span
/// after it opened (`Empty` at first, as an id known only once the request is parsed);
/// initech's on a request span above its run. The prompt version is on each call span.
fn service() {
    for (t, tenant) in TENANTS.iter().enumerate() {
        let request = if t == 2 {
            info_span!("request", tenant = *tenant)
        } else {
            info_span!("request")
        };
        let _q = request.enter();
        let run = info_span!("run", run_id = format!("run-{tenant}"), tenant = Empty);
        let _r = run.enter();
        for (pt, v, m, round) in plan() {
            if pt != t {
                continue;
            }
            if t < 2 && round == 0 && v == 0 && m == 1 {
                // The run's first call closed before the tenant was known: it has none.
                run.record("tenant", *tenant);
            }
            let (input, output) = tokens(t, v, m, round);
            drop(info_span!(
                "llm_call",
                model = MODELS[m],
                step = "answer",
                prompt.version = VERSIONS[v],
                tokens.input = input,
                tokens.output = output
            ));
        }
    }
}

#[test]
fn tenants_and_prompt_versions_are_attributed_exactly() {
    let now = Arc::new(AtomicI64::new(
        Timestamp::parse("2026-03-02T10:00:00.000Z")
            .unwrap()
            .unix_ms(),
    ));
    let clock = now.clone();
    let events: Arc<Mutex<Vec<BudgetEvent>>> = Arc::default();
    let seen = events.clone();
    let (d, handle, guard, buf) = common::setup(
        UsageLayer::builder()
            .prices(prices())
            .attributes(["tenant", "prompt.version"])
            .budget(
                Budget::per_day("tenant-daily")
                    .usd(LIMIT)
                    .each("tenant")
                    .warn_at(None),
            )
            .budget(
                Budget::per_day("v2-tokens")
                    .tokens(5_000)
                    .only("prompt.version", "v2"),
            )
            .on_budget(move |e| seen.lock().unwrap().push(e.clone()))
            .clock(move || Timestamp::from_unix_ms(clock.fetch_add(1, Ordering::SeqCst))),
    );
    dispatcher::with_default(&d, service);

    // Expected totals, from the plan. acme's and globex's first call has no tenant.
    let mut by_tenant: BTreeMap<&str, (u64, u64, u64, f64)> = BTreeMap::new();
    let mut by_version: BTreeMap<&str, (u64, u64, u64, f64)> = BTreeMap::new();
    let mut expected_attrs = Vec::new();
    let mut crossing: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    let mut spent: BTreeMap<&str, f64> = BTreeMap::new();
    for (i, (t, v, m, round)) in plan().into_iter().enumerate() {
        let tok = tokens(t, v, m, round);
        let c = cost(m, tok);
        let first = round == 0 && v == 0 && m == 0;
        let tenant = (!(first && t < 2)).then_some(TENANTS[t]);
        let add = |e: &mut (u64, u64, u64, f64)| {
            e.0 += 1;
            e.1 += tok.0;
            e.2 += tok.1;
            e.3 += c;
        };
        if let Some(tenant) = tenant {
            add(by_tenant.entry(tenant).or_default());
            let s = spent.entry(tenant).or_default();
            *s += c;
            if *s > LIMIT && !crossing.contains_key(tenant) {
                crossing.insert(tenant, (i, *s));
            }
        }
        add(by_version.entry(VERSIONS[v]).or_default());
        let mut a = serde_json::Map::new();
        if let Some(tenant) = tenant {
            a.insert("tenant".into(), json!(tenant));
        }
        a.insert("prompt.version".into(), json!(VERSIONS[v]));
        expected_attrs.push(Value::Object(a));
    }
    assert_eq!(
        crossing.len(),
        3,
        "every tenant crosses its limit: {spent:?}"
    );

    // The handle, before shutdown.
    let tenants: BTreeMap<String, (u64, u64, u64, f64)> = handle
        .by_attribute("tenant")
        .into_iter()
        .map(|g| {
            let u = g.usage;
            (
                g.key.unwrap().to_string(),
                (u.calls, u.input_tokens, u.output_tokens, u.cost_usd),
            )
        })
        .collect();
    let want: BTreeMap<String, _> = by_tenant.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(tenants, want);
    let versions: Vec<(String, u64, f64)> = handle
        .by_attribute("prompt.version")
        .into_iter()
        .map(|g| (g.key.unwrap().to_string(), g.usage.calls, g.usage.cost_usd))
        .collect();
    let mut want: Vec<(String, u64, f64)> = by_version
        .iter()
        .map(|(k, v)| (k.to_string(), v.0, v.3))
        .collect();
    want.sort_by(|a, b| b.2.total_cmp(&a.2));
    assert_eq!(versions, want, "most expensive first");
    assert!(handle.by_attribute("user.id").is_empty());
    // Each tenant spent past its limit today: nothing remains; a tenant not seen has it all.
    assert_eq!(handle.remaining_for("tenant", "acme").usd, Some(0.0));
    assert_eq!(handle.remaining_for("tenant", "umbrella").usd, Some(LIMIT));
    assert_eq!(handle.remaining_for("feature", "x").usd, None);
    drop(guard);

    let lines = buf.lines();
    let calls = common::calls(&lines);
    assert_eq!(calls.len(), plan().len());
    for (i, (line, want)) in calls.iter().zip(&expected_attrs).enumerate() {
        assert_eq!(&line["attributes"], want, "call {i}");
    }
    for tenant in TENANTS {
        let s = common::summary(&lines, &format!("run-{tenant}"));
        assert_eq!(s["attributes"], json!({ "tenant": tenant }), "{tenant}");
    }

    // One exceeded line per tenant, at the call that crossed, naming the tenant.
    let exceeded: Vec<(String, String, f64)> = lines
        .iter()
        .filter(|l| l["event"] == "budget_exceeded" && l["budget"] == "tenant-daily")
        .map(|l| {
            assert_eq!(l["attribute"], "tenant");
            assert_eq!(l["scope_id"], "2026-03-02");
            (
                l["attribute_value"].as_str().unwrap().to_owned(),
                l["run_id"].as_str().unwrap().to_owned(),
                l["value"].as_f64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, String, f64)> = TENANTS
        .iter()
        .map(|t| {
            let (_, v) = crossing[t];
            (t.to_string(), format!("run-{t}"), (v * 1e9).round() / 1e9)
        })
        .collect();
    assert_eq!(exceeded, want);
    // The line follows the crossing call's line.
    for (t, (i, _)) in &crossing {
        let call_pos = lines
            .iter()
            .position(|l| std::ptr::eq(l, calls[*i]))
            .unwrap();
        let next = &lines[call_pos + 1];
        assert_eq!(
            (next["event"].as_str(), next["attribute_value"].as_str()),
            (Some("budget_exceeded"), Some(*t))
        );
    }
    // `only`: one value's own total (v2 calls' tokens), crossed once.
    let only: Vec<&Value> = lines
        .iter()
        .filter(|l| l["budget"] == "v2-tokens")
        .collect();
    assert!(only.iter().any(|l| l["event"] == "budget_exceeded"));
    assert!(only
        .iter()
        .all(|l| l["attribute"] == "prompt.version" && l["attribute_value"] == "v2"));
    let callbacks = events.lock().unwrap();
    assert_eq!(
        callbacks
            .iter()
            .filter(|e| e.event == BudgetEventKind::Exceeded && e.budget == "tenant-daily")
            .count(),
        3
    );
}

#[test]
fn a_long_value_is_cut_and_said() {
    let (d, _handle, guard, buf) = common::setup(
        UsageLayer::builder()
            .prices(prices())
            .attributes(["feature"]),
    );
    let long = "x".repeat(300);
    dispatcher::with_default(&d, || {
        let run = info_span!("run", run_id = "r1", feature = long.as_str());
        let _r = run.enter();
        drop(info_span!(
            "llm_call",
            model = "model-a",
            tokens.input = 1u64,
            tokens.output = 1u64
        ));
    });
    drop(guard);
    let lines = buf.lines();
    let call = common::calls(&lines)[0];
    assert_eq!(call["attributes"]["feature"], json!("x".repeat(256)));
    assert_eq!(
        call["warnings"],
        json!(["attribute feature: a value of 300 characters was cut to 256"])
    );
}

#[test]
fn values_keep_their_type_and_unnamed_fields_are_never_read() {
    let (d, _handle, guard, buf) = common::setup(
        UsageLayer::builder()
            .prices(prices())
            .attributes(["seats", "beta", "ratio"]),
    );
    dispatcher::with_default(&d, || {
        drop(info_span!(
            "llm_call",
            model = "model-a",
            seats = 12u64,
            beta = true,
            ratio = 0.5,
            user.email = "someone@example.com",
            tokens.input = 1u64,
            tokens.output = 1u64
        ));
        // No attribute, no object.
        drop(info_span!(
            "llm_call",
            model = "model-a",
            tokens.input = 1u64,
            tokens.output = 1u64
        ));
    });
    drop(guard);
    let text = buf.text();
    assert!(!text.contains("someone@example.com"));
    let lines = buf.lines();
    let calls = common::calls(&lines);
    assert_eq!(
        calls[0]["attributes"],
        json!({"seats": 12, "beta": true, "ratio": 0.5})
    );
    assert!(calls[1].get("attributes").is_none());
}

#[test]
fn misconfigured_attributes_are_refused() {
    let err = |b: tracing_llm_usage::UsageLayerBuilder| b.build().err().unwrap().to_string();
    assert!(err(UsageLayer::builder().attributes(["step"])).contains("\"step\""));
    assert!(err(UsageLayer::builder()
        .attributes(["tenant"])
        .budget(Budget::per_day("b").usd(1.0).each("team")))
    .contains("\"team\""));
    assert!(err(UsageLayer::builder()
        .attributes(["tenant"])
        .metric_attributes(["user.id"]))
    .contains("\"user.id\""));
}

/// Every (tenant attribute value → summed input tokens) of the token histogram.
fn tenant_points(exporter: &InMemoryMetricExporter) -> (BTreeMap<String, u64>, bool) {
    let all = exporter.get_finished_metrics().unwrap();
    let mut out = BTreeMap::new();
    let mut any_tenant = false;
    for sm in all.last().unwrap().scope_metrics() {
        for m in sm.metrics() {
            let points: Vec<Vec<(String, String)>> = match m.data() {
                AggregatedMetrics::U64(MetricData::Histogram(h)) => h
                    .data_points()
                    .map(|p| {
                        let mut a: Vec<(String, String)> = p
                            .attributes()
                            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                            .collect();
                        a.push(("sum".into(), p.sum().to_string()));
                        a
                    })
                    .collect(),
                AggregatedMetrics::F64(MetricData::Histogram(h)) => h
                    .data_points()
                    .map(|p| {
                        p.attributes()
                            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                            .collect()
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for p in points {
                let get = |k: &str| p.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
                if let Some(t) = get("tenant") {
                    any_tenant = true;
                    if m.name() == "gen_ai.client.token.usage"
                        && get("gen_ai.token.type").as_deref() == Some("input")
                    {
                        let sum: u64 = get("sum").unwrap().parse().unwrap();
                        *out.entry(t).or_default() += sum;
                    }
                }
                assert!(get("prompt.version").is_none(), "never unless asked");
            }
        }
    }
    (out, any_tenant)
}

#[test]
fn metrics_carry_a_tenant_only_when_asked_and_never_past_the_cap() {
    for opted_in in [false, true] {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let mut builder = UsageLayer::builder()
            .prices(prices())
            .meter(provider.meter("test"))
            .attributes(["tenant", "prompt.version"]);
        if opted_in {
            builder = builder
                .metric_attributes(["tenant"])
                .metric_attribute_cap(2);
        }
        let (d, handle, guard, _buf) = common::setup(builder);
        dispatcher::with_default(&d, service);
        drop(guard);
        provider.force_flush().unwrap();
        let (inputs, any_tenant) = tenant_points(&exporter);
        if !opted_in {
            assert!(!any_tenant);
            assert_eq!(handle.stats().metric_attribute_overflows, 0);
            continue;
        }
        // acme and globex take the two values; initech's calls are `__other__`.
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        let mut overflow = 0;
        for (t, v, m, round) in plan() {
            let first = round == 0 && v == 0 && m == 0;
            if first && t < 2 {
                continue;
            }
            let key = if t < 2 { TENANTS[t] } else { "__other__" };
            *want.entry(key.to_owned()).or_default() += tokens(t, v, m, round).0;
            overflow += u64::from(t == 2);
        }
        assert_eq!(inputs, want);
        // Each overflowing call is counted once per series lookup: its cost, tokens and
        // duration share one.
        assert_eq!(handle.stats().metric_attribute_overflows, overflow);
    }
}
