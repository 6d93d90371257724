//! `report --html FILE`: one self-contained page (styles and SVG charts inline, no script,
//! nothing fetched) with a table behind every chart. Every string from the logs is escaped.

use std::fmt::Write as _;

use hashbrown::HashMap;

use super::agg::{Acc, Dim, Small, NONE};
use super::output::{dollars as usd, thousands};
use super::read::Scan;
use super::runs::{Latest, RunSums};
use tracing_llm_usage::pricing::CostSum;

/// Colour-blind-safe series colours (Okabe and Ito), the last for "other".
const COLOURS: [&str; 8] = [
    "#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#8c6d1f", "#7a7a7a",
];
/// Models drawn as their own series in the daily charts; the rest are "other".
const SERIES: usize = 7;
const TOP_RUNS: usize = 20;

/// `s` safe as HTML text or attribute value.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A group key as shown (`-` for calls without one), escaped.
fn label(k: &str) -> String {
    esc(&plain(k))
}

/// A group key as shown, not yet escaped.
fn plain(k: &str) -> String {
    if k == NONE {
        "-".into()
    } else {
        k.to_owned()
    }
}

/// `1 call`, `2 calls`.
fn plural(n: u64, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{} {one}s", thousands(n))
    }
}

fn cost(acc: &Acc) -> Option<f64> {
    (acc.priced > 0).then_some(acc.cost.usd())
}

fn opt_usd(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), usd)
}

fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

/// A number cell.
fn num(text: &str) -> String {
    format!("<td class=\"n\">{text}</td>")
}

/// A table: caption, headers (the first and those starting `~` are text, the rest numbers)
/// and rows of cells.
fn table(caption: &str, headers: &[&str], rows: &[String]) -> String {
    let mut t = format!("<div class=\"scroll\"><table><caption>{caption}</caption><thead><tr>");
    for (i, h) in headers.iter().enumerate() {
        let (text, h) = match h.strip_prefix('~') {
            Some(h) => (true, h),
            None => (i == 0, *h),
        };
        let class = if text { "" } else { " class=\"n\"" };
        let _ = write!(t, "<th scope=\"col\"{class}>{}</th>", esc(h));
    }
    t.push_str("</tr></thead><tbody>");
    for r in rows {
        let _ = write!(t, "<tr>{r}</tr>");
    }
    t.push_str("</tbody></table></div>");
    t
}

/// Horizontal bars: one row per item (label, value, value as shown); `second` draws a thinner
/// second bar per row (p95 beside p50).
fn hbars(title: &str, items: &[(String, f64, String)], second: Option<&[f64]>) -> String {
    if items.is_empty() {
        return empty_chart(title, "nothing to show");
    }
    let max = items
        .iter()
        .map(|i| i.1)
        .chain(second.into_iter().flatten().copied())
        .fold(0.0f64, f64::max);
    let row = 24.0;
    let h = items.len() as f64 * row + 8.0;
    // The bars leave room for the widest value label after them, inside the chart (11px
    // text: under 6.6px a character).
    let label = items.iter().map(|i| i.2.chars().count()).max().unwrap_or(0) as f64 * 6.6;
    let lw = 190.0;
    let bw = (640.0 - lw - 12.0 - label).clamp(120.0, 330.0);
    let mut svg = format!(
        "<svg viewBox=\"0 0 640 {h}\" role=\"img\" aria-label=\"{}\" class=\"chart\">",
        esc(title)
    );
    for (i, (name, v, shown)) in items.iter().enumerate() {
        let y = 4.0 + i as f64 * row;
        let w = if max > 0.0 { v / max * bw } else { 0.0 };
        let short: String = name.chars().take(26).collect();
        let short = if short.len() < name.len() {
            format!("{short}…")
        } else {
            short
        };
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{lw}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\"/>",
            lw - 6.0,
            y + 15.0,
            esc(&short),
            y + 3.0,
            if second.is_some() { 8.0 } else { 16.0 },
            COLOURS[0]
        );
        if let Some(v2) = second.and_then(|s| s.get(i)) {
            let w2 = if max > 0.0 { v2 / max * bw } else { 0.0 };
            let _ = write!(
                svg,
                "<rect x=\"{lw}\" y=\"{}\" width=\"{w2:.1}\" height=\"8\" fill=\"{}\"/>",
                y + 11.0,
                COLOURS[1]
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\">{}</text>",
            lw + w.max(second.and_then(|s| s.get(i)).map_or(0.0, |v2| {
                if max > 0.0 {
                    v2 / max * bw
                } else {
                    0.0
                }
            })) + 6.0,
            y + 15.0,
            esc(shown)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn empty_chart(title: &str, text: &str) -> String {
    format!(
        "<svg viewBox=\"0 0 640 40\" role=\"img\" aria-label=\"{}\" class=\"chart\">\
         <text x=\"320\" y=\"25\" text-anchor=\"middle\">{}</text></svg>",
        esc(title),
        esc(text)
    )
}

/// Vertical bars per day, stacked by series; `values[s][d]` is series `s` on day `d`.
fn stacked(
    title: &str,
    days: &[String],
    names: &[String],
    values: &[Vec<f64>],
    money: bool,
) -> String {
    if days.is_empty() {
        return empty_chart(title, "no calls");
    }
    let totals: Vec<f64> = (0..days.len())
        .map(|d| values.iter().map(|s| s[d]).sum())
        .collect();
    let max = totals.iter().copied().fold(0.0f64, f64::max);
    let top = if money { usd(max) } else { compact(max) };
    // The axis leaves room for its largest label (11px text: under 6.6px a character).
    let x0 = (top.chars().count() as f64 * 6.6 + 8.0).max(70.0);
    let (y0, w, h) = (10.0, 630.0 - x0, 200.0);
    let step = w / days.len() as f64;
    let bar = (step * 0.8).clamp(1.0, 48.0);
    let legend_rows = names.len().div_ceil(3);
    let total_h = y0 + h + 30.0 + legend_rows as f64 * 18.0;
    let mut svg = format!(
        "<svg viewBox=\"0 0 640 {total_h}\" role=\"img\" aria-label=\"{}\" class=\"chart\">",
        esc(title)
    );
    // Axis: zero and the largest day.
    let _ = write!(
        svg,
        "<line x1=\"{x0}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#555\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>",
        y0 + h,
        x0 + w,
        y0 + h,
        x0 - 4.0,
        y0 + 10.0,
        esc(&top),
        x0 - 4.0,
        y0 + h
    );
    for d in 0..days.len() {
        let mut y = y0 + h;
        for (s, series) in values.iter().enumerate() {
            let v = series[d];
            if v <= 0.0 || max <= 0.0 {
                continue;
            }
            let bh = v / max * h;
            y -= bh;
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" fill=\"{}\"/>",
                x0 + d as f64 * step + (step - bar) / 2.0,
                COLOURS[s.min(COLOURS.len() - 1)]
            );
        }
    }
    // Day labels: the first, the last, and a few between.
    let every = days.len().div_ceil(6).max(1);
    for (d, day) in days.iter().enumerate() {
        if d % every == 0 || d + 1 == days.len() {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x0 + d as f64 * step + step / 2.0,
                y0 + h + 16.0,
                esc(day.get(5..).unwrap_or(day))
            );
        }
    }
    for (s, name) in names.iter().enumerate() {
        let (col, row) = (s % 3, s / 3);
        let (x, y) = (10.0 + col as f64 * 205.0, y0 + h + 32.0 + row as f64 * 18.0);
        let short: String = name.chars().take(28).collect();
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{y}\">{}</text>",
            y - 9.0,
            COLOURS[s.min(COLOURS.len() - 1)],
            x + 14.0,
            esc(&short)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// `50212245` → `50.2M`, for an axis.
fn compact(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.1}G", v / 1e9),
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn section(id: &str, title: &str, body: &str) -> String {
    format!("<section id=\"{id}\"><h2>{title}</h2>{body}</section>")
}

/// A chart under its heading, then its table.
fn figure(chart: &str, caption: &str, table: &str) -> String {
    format!("<figure><figcaption>{caption}</figcaption>{chart}</figure>{table}")
}

/// An attribute name as an HTML id: letters, digits and `-` only.
fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// Sums per day and series (a model, an attribute's value): the most expensive [`SERIES`]
/// series by name, the rest as `other`.
struct PerDay {
    days: Vec<String>,
    names: Vec<String>,
    /// `spend[series][day]`, and tokens the same way.
    spend: Vec<Vec<f64>>,
    tokens: Vec<Vec<f64>>,
    cells: Vec<Vec<Small>>,
    per_day: Vec<Small>,
}

impl PerDay {
    /// From (day, series, sums) entries.
    fn of(entries: &[(&str, &str, &Small)]) -> Self {
        let mut series_cost: HashMap<&str, CostSum> = HashMap::new();
        let mut days: Vec<String> = Vec::new();
        for (day, series, s) in entries {
            series_cost.entry(series).or_default().merge(s.cost);
            days.push((*day).to_owned());
        }
        days.sort();
        days.dedup();
        let mut ranked: Vec<(&str, CostSum)> = series_cost.into_iter().collect();
        ranked.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
        let shown: Vec<&str> = ranked.iter().take(SERIES).map(|m| m.0).collect();
        let mut names: Vec<String> = shown.iter().map(|m| plain(m)).collect();
        if ranked.len() > SERIES {
            names.push("other".into());
        }
        let series_of = |name: &str| shown.iter().position(|m| *m == name).unwrap_or(SERIES);
        let day_of: HashMap<&str, usize> = days
            .iter()
            .enumerate()
            .map(|(i, d)| (d.as_str(), i))
            .collect();
        let n = names.len();
        let mut p = PerDay {
            spend: vec![vec![0.0; days.len()]; n],
            tokens: vec![vec![0.0; days.len()]; n],
            cells: vec![vec![Small::default(); days.len()]; n],
            per_day: vec![Small::default(); days.len()],
            days: Vec::new(),
            names,
        };
        for (day, series, s) in entries {
            let (d, m) = (day_of[day], series_of(series).min(n.saturating_sub(1)));
            p.spend[m][d] += s.cost.usd();
            p.tokens[m][d] += s.tokens as f64;
            p.cells[m][d].merge(s);
            p.per_day[d].merge(s);
        }
        drop(day_of);
        p.days = days;
        p
    }

    /// The table: a row per day, its calls, tokens and cost, then each series' cost.
    fn table(&self, caption: &str, head: &str) -> String {
        let rows: Vec<String> = self
            .days
            .iter()
            .enumerate()
            .map(|(d, day)| {
                let mut r = format!(
                    "<th scope=\"row\">{}</th>{}{}{}",
                    esc(day),
                    num(&thousands(self.per_day[d].calls)),
                    num(&thousands(self.per_day[d].tokens)),
                    num(&self.per_day[d].shown())
                );
                for s in &self.cells {
                    // A series without calls that day cost nothing; one whose calls had no
                    // cost is unpriced, never $0.
                    r.push_str(&num(&if s[d].calls == 0 {
                        "-".to_owned()
                    } else {
                        s[d].shown()
                    }));
                }
                r
            })
            .collect();
        let mut heads = vec![head, "calls", "tokens", "cost"];
        let cost_heads: Vec<String> = self.names.iter().map(|n| format!("cost: {n}")).collect();
        heads.extend(cost_heads.iter().map(String::as_str));
        table(caption, &heads, &rows)
    }
}

/// Groups of a dimension, most expensive first.
fn groups(scan: &Scan, dim: Dim) -> Vec<(&String, &Acc)> {
    super::commands::sorted(scan.agg.by.get(&dim))
}

fn group_table(caption: &str, head: &str, rows: &[(&String, &Acc)]) -> String {
    let rows: Vec<String> = rows
        .iter()
        .map(|(k, a)| {
            format!(
                "<th scope=\"row\">{}</th>{}{}{}{}{}",
                label(k),
                num(&thousands(a.calls)),
                num(&thousands(a.input)),
                num(&thousands(a.output)),
                num(&opt_usd(cost(a))),
                num(&thousands(a.unpriced))
            )
        })
        .collect();
    table(
        caption,
        &[head, "calls", "input", "output", "cost", "unpriced calls"],
        &rows,
    )
}

/// The whole page; `scope` says which logs and filters it covers.
pub(crate) fn page(scan: &Scan, scope: &str, run_count: u64) -> String {
    let a = &scan.agg.all;
    let mut body = String::new();

    // Totals, with exact values for programs.
    let cards = [
        ("calls", thousands(a.calls), a.calls.to_string()),
        ("runs", thousands(run_count), run_count.to_string()),
        ("input tokens", thousands(a.input), a.input.to_string()),
        ("output tokens", thousands(a.output), a.output.to_string()),
        (
            "cost",
            super::output::spend(a.cost.usd(), a.priced, a.unpriced),
            cost(a).map_or_else(String::new, |c| format!("{:.9}", c)),
        ),
        (
            "unpriced calls",
            thousands(a.unpriced),
            a.unpriced.to_string(),
        ),
        (
            "calls without usage",
            thousands(a.no_usage),
            a.no_usage.to_string(),
        ),
    ];
    body.push_str("<dl id=\"totals\">");
    for (name, shown, exact) in cards {
        let _ = write!(
            body,
            "<div><dt>{name}</dt><dd data-value=\"{exact}\">{shown}</dd></div>"
        );
    }
    body.push_str("</dl>");

    // Per day, stacked by model.
    let entries: Vec<(&str, &str, &Small)> = scan
        .agg
        .detail
        .day_model
        .iter()
        .map(|((day, model), s)| (day.as_str(), model.as_str(), s))
        .collect();
    let p = PerDay::of(&entries);
    let day_table = p.table("Per day", "day");
    body.push_str(&section(
        "days",
        "Spend and tokens per day",
        &format!(
            "{}{}",
            figure(
                &stacked("Spend per day by model", &p.days, &p.names, &p.spend, true),
                "Spend per day (USD), stacked by model",
                ""
            ),
            figure(
                &stacked(
                    "Tokens per day by model",
                    &p.days,
                    &p.names,
                    &p.tokens,
                    false
                ),
                "Tokens per day, stacked by model",
                &day_table
            )
        ),
    ));

    // Models and providers.
    for (id, title, dim, head) in [
        ("models", "Cost by model", Dim::Model, "model"),
        ("providers", "Cost by provider", Dim::Provider, "provider"),
    ] {
        let g = groups(scan, dim);
        let items: Vec<(String, f64, String)> = g
            .iter()
            .map(|(k, a)| (plain(k), a.cost.usd(), opt_usd(cost(a))))
            .collect();
        body.push_str(&section(
            id,
            title,
            &figure(
                &hbars(title, &items, None),
                title,
                &group_table(title, head, &g),
            ),
        ));
    }

    // Steps and prompt components.
    let steps = groups(scan, Dim::Step);
    let items: Vec<(String, f64, String)> = steps
        .iter()
        .map(|(k, a)| {
            let shown = format!("{}, {}", opt_usd(cost(a)), plural(a.total, "token"));
            (plain(k), a.cost.usd(), shown)
        })
        .collect();
    let mut components = scan.agg.prompt.clone();
    components.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    let comp_items: Vec<(String, f64, String)> = components
        .iter()
        .map(|(c, t)| (c.clone(), *t as f64, share(*t, scan.agg.prompt_input)))
        .collect();
    let comp_rows: Vec<String> = components
        .iter()
        .map(|(c, t)| {
            format!(
                "<th scope=\"row\">{}</th>{}{}",
                esc(c),
                num(&thousands(*t)),
                num(&share(*t, scan.agg.prompt_input))
            )
        })
        .collect();
    body.push_str(&section(
        "steps",
        "By workflow step",
        &format!(
            "{}{}",
            figure(
                &hbars("Cost by step", &items, None),
                "Cost and tokens by step",
                &group_table("By step", "step", &steps)
            ),
            figure(
                &hbars("Prompt components", &comp_items, None),
                "Prompt components: tokens, and share of the input of the calls that reported components",
                &table(
                    "Prompt components",
                    &["component", "tokens", "share of input"],
                    &comp_rows
                )
            )
        ),
    ));

    // Spend per value of each attribute the calls carry, over the days.
    for name in &scan.agg.attribute_names {
        let entries: Vec<(&str, &str, &Small)> = scan
            .agg
            .detail
            .attribute_day
            .iter()
            .filter(|((k, _, _), _)| k == name)
            .map(|((_, value, day), s)| (day.as_str(), value.as_str(), s))
            .collect();
        let p = PerDay::of(&entries);
        let title = format!("Cost by {}", plain(name));
        let mut totals: Vec<(&str, Small)> = Vec::new();
        for (_, value, s) in &entries {
            match totals.iter_mut().find(|(v, _)| v == value) {
                Some((_, t)) => t.merge(s),
                None => totals.push((value, **s)),
            }
        }
        totals.sort_by(|x, y| {
            y.1.cost
                .partial_cmp(&x.1.cost)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(x.0.cmp(y.0))
        });
        let rows: Vec<String> = totals
            .iter()
            .map(|(v, t)| {
                format!(
                    "<th scope=\"row\">{}</th>{}{}{}{}<td class=\"n\" data-value=\"{}\">{}</td>",
                    esc(v),
                    num(&thousands(t.calls)),
                    num(&thousands(t.input)),
                    num(&thousands(t.output)),
                    num(&thousands(t.unpriced)),
                    if t.calls > t.unpriced {
                        format!("{:.9}", t.cost.usd())
                    } else {
                        String::new()
                    },
                    esc(&t.shown())
                )
            })
            .collect();
        let head = plain(name);
        let totals_table = table(
            &title,
            &[&head, "calls", "input", "output", "unpriced calls", "cost"],
            &rows,
        );
        body.push_str(&section(
            &format!("attribute-{}", slug(name)),
            &esc(&title),
            &format!(
                "{}{}{}",
                figure(
                    &stacked(&title, &p.days, &p.names, &p.spend, true),
                    &format!("Spend per day (USD), stacked by {}", esc(name)),
                    ""
                ),
                totals_table,
                p.table(&format!("Per day, by {}", esc(name)), "day")
            ),
        ));
    }

    // The costliest runs, each with its steps.
    let runs = &scan.agg.runs.with_status;
    let mut top: Vec<&RunSums<Latest>> = runs.iter().filter(|e| e.calls > 0).collect();
    top.sort_by(|x, y| {
        y.cost
            .partial_cmp(&x.cost)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| runs.id(x).cmp(runs.id(y)))
    });
    top.truncate(TOP_RUNS);
    let mut steps_of: HashMap<u64, Vec<(&str, &Small)>> = HashMap::new();
    for ((h, step), s) in &scan.agg.detail.run_steps {
        steps_of.entry(*h).or_default().push((step.as_str(), s));
    }
    let items: Vec<(String, f64, String)> = top
        .iter()
        .map(|e| {
            (
                runs.id(e).to_owned(),
                e.cost.usd(),
                opt_usd(e.priced().then_some(e.cost.usd())),
            )
        })
        .collect();
    let run_rows: Vec<String> = top
        .iter()
        .map(|e| {
            let id = runs.id(e);
            let mut steps = steps_of
                .get(&xxhash_rust::xxh3::xxh3_64(id.as_bytes()))
                .cloned()
                .unwrap_or_default();
            steps.sort_by(|x, y| {
                y.1.cost
                    .partial_cmp(&x.1.cost)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(x.0.cmp(y.0))
            });
            let list: Vec<String> = steps
                .iter()
                .map(|(step, s)| {
                    format!(
                        "{}: {}, {}",
                        label(step),
                        plural(s.calls, "call"),
                        esc(&s.shown())
                    )
                })
                .collect();
            format!(
                "<th scope=\"row\">{}</th><td>{}</td>{}{}{}<td>{}</td>",
                esc(id),
                e.summaries.status().unwrap_or("-"),
                num(&thousands(u64::from(e.calls))),
                num(&thousands(e.total)),
                num(&opt_usd(e.priced().then_some(e.cost.usd()))),
                list.join("<br>")
            )
        })
        .collect();
    body.push_str(&section(
        "runs",
        "Costliest runs",
        &figure(
            &hbars("Costliest runs", &items, None),
            &match top.len() {
                1 => "The costliest run".to_owned(),
                n => format!("The {n} costliest runs"),
            },
            &table(
                "Costliest runs and their steps",
                &["run", "~status", "calls", "tokens", "cost", "~steps"],
                &run_rows,
            ),
        ),
    ));

    // Latency by model.
    let mut lat: Vec<(&String, Vec<u64>)> = scan
        .agg
        .detail
        .latency
        .iter()
        .map(|(m, v)| {
            let mut v = v.clone();
            v.sort_unstable();
            (m, v)
        })
        .collect();
    lat.sort_by(|x, y| {
        percentile(&y.1, 0.95)
            .cmp(&percentile(&x.1, 0.95))
            .then(x.0.cmp(y.0))
    });
    let items: Vec<(String, f64, String)> = lat
        .iter()
        .map(|(m, v)| {
            let (p50, p95) = (percentile(v, 0.5), percentile(v, 0.95));
            (
                plain(m),
                p50 as f64,
                format!("p50 {} ms, p95 {} ms", thousands(p50), thousands(p95)),
            )
        })
        .collect();
    let p95s: Vec<f64> = lat
        .iter()
        .map(|(_, v)| percentile(v, 0.95) as f64)
        .collect();
    let lat_rows: Vec<String> = lat
        .iter()
        .map(|(m, v)| {
            format!(
                "<th scope=\"row\">{}</th>{}{}{}{}",
                label(m),
                num(&thousands(v.len() as u64)),
                num(&thousands(percentile(v, 0.5))),
                num(&thousands(percentile(v, 0.95))),
                num(&thousands(v.last().copied().unwrap_or(0)))
            )
        })
        .collect();
    body.push_str(&section(
        "latency",
        "Latency by model",
        &figure(
            &hbars("Latency by model", &items, Some(&p95s)),
            "Latency per call: p50 (blue) and p95 (orange), in milliseconds",
            &table(
                "Latency by model (ms)",
                &["model", "calls", "p50", "p95", "max"],
                &lat_rows,
            ),
        ),
    ));

    // Cache reads and unpriced calls.
    let models = groups(scan, Dim::Model);
    let items: Vec<(String, f64, String)> = models
        .iter()
        .map(|(k, a)| {
            let s = if a.input > 0 {
                a.cache_read as f64 / a.input as f64
            } else {
                0.0
            };
            (plain(k), s, share(a.cache_read, a.input))
        })
        .collect();
    let cache_rows: Vec<String> = models
        .iter()
        .map(|(k, a)| {
            format!(
                "<th scope=\"row\">{}</th>{}{}{}{}",
                label(k),
                num(&thousands(a.input)),
                num(&thousands(a.cache_read)),
                num(&share(a.cache_read, a.input)),
                num(&thousands(a.unpriced))
            )
        })
        .collect();
    body.push_str(&section(
        "cache",
        "Cache reads and unpriced calls",
        &figure(
            &hbars("Cache-read share of input by model", &items, None),
            &format!(
                "Share of input tokens read from the provider's cache; {} of {} unpriced",
                thousands(a.unpriced),
                plural(a.calls, "call")
            ),
            &table(
                "Cache reads and unpriced calls by model",
                &["model", "input", "cache read", "share", "unpriced calls"],
                &cache_rows,
            ),
        ),
    ));

    // Budget lines the layer logged.
    let lines = &scan.agg.budget_lines;
    let mut per_budget: Vec<(String, f64, String)> = Vec::new();
    for l in lines {
        let name = format!(
            "{} ({})",
            l.budget.as_deref().unwrap_or("-"),
            l.event.trim_start_matches("budget_")
        );
        match per_budget.iter_mut().find(|(n, _, _)| *n == name) {
            Some(p) => p.1 += 1.0,
            None => per_budget.push((name, 1.0, String::new())),
        }
    }
    for p in &mut per_budget {
        p.2 = thousands(p.1 as u64);
    }
    let chart = if per_budget.is_empty() {
        empty_chart("Budget crossings", "no budget line in the logs")
    } else {
        hbars("Budget crossings", &per_budget, None)
    };
    let budget_rows: Vec<String> = lines
        .iter()
        .map(|l| {
            format!(
                "<th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}{}",
                esc(&l.timestamp),
                esc(&l.event),
                esc(l.budget.as_deref().unwrap_or("-")),
                esc(l.scope.as_deref().unwrap_or("-")),
                esc(l.scope_id.as_deref().unwrap_or("-")),
                num(&super::commands::amount(l.metric.as_deref(), l.limit).display()),
                num(&super::commands::amount(
                    l.metric.as_deref(),
                    l.value.filter(|_| l.event != "budget_unpriced")
                )
                .display())
            )
        })
        .collect();
    body.push_str(&section(
        "budgets",
        "Budget crossings",
        &figure(
            &chart,
            "Budget lines in the logs, by budget and kind",
            &table(
                "Budget lines",
                &[
                    "time",
                    "~event",
                    "~budget",
                    "~scope",
                    "~scope id",
                    "limit",
                    "value",
                ],
                &budget_rows,
            ),
        ),
    ));

    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>LLM usage</title><style>{STYLE}</style></head><body><header><h1>LLM usage</h1>\
         <p>{}</p></header><main>{body}</main></body></html>\n",
        esc(scope)
    )
}

const STYLE: &str = "\
:root{color-scheme:light;font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:#1a1a1a;background:#fff}\
body{margin:0 auto;max-width:1100px;padding:1rem}\
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.25rem;margin:2rem 0 .5rem;border-bottom:1px solid #ccc}\
header p{color:#444;margin:0}\
#totals{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:.6rem;margin:1rem 0}\
#totals div{border:1px solid #ccc;border-radius:6px;padding:.5rem .7rem}\
#totals dt{color:#444;font-size:.85rem}#totals dd{margin:0;font-size:1.3rem;font-weight:600}\
figure{margin:0 0 .5rem}figcaption{font-weight:600;font-size:.95rem;margin:.8rem 0 .2rem}\
svg.chart{width:100%;height:auto;max-width:760px;font-size:11px;fill:#1a1a1a}\
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}\
caption{text-align:left;font-weight:600;padding:.2rem 0}\
th,td{border:1px solid #ccc;padding:.2rem .5rem;text-align:left;vertical-align:top}\
tbody th,td.n{white-space:nowrap}\
thead th{background:#f0f0f0}.n{text-align:right;font-variant-numeric:tabular-nums}\
@media (max-width:600px){body{padding:.5rem}#totals dd{font-size:1.1rem}}\
@media print{section{break-inside:avoid}.scroll{overflow:visible}}";
