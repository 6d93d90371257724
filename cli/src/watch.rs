//! `llm-usage watch`: follows the logs as the layer writes them (new daily files included) and
//! shows spend as it happens: a live terminal view, or plain lines when stdout is not a
//! terminal.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, Paragraph, Row, Sparkline, Table};
use tracing_llm_usage::__private::terminal;
use tracing_llm_usage::format::decode::{self, Line};
use tracing_llm_usage::pricing::CostSum;
use tracing_llm_usage::record::Timestamp;

use unicode_width::UnicodeWidthStr;

use super::output::{spend, thousands};

/// How often the files are looked at.
const POLL: Duration = Duration::from_millis(250);
/// Minutes in the sparklines.
const MINUTES: i64 = 60;
/// Runs kept open without a summary (the oldest are let go first).
const MAX_OPEN: usize = 10_000;
const RECENT: usize = 12;
/// The longest line read (as the reports).
const MAX_LINE: usize = 1 << 20;

/// One followed file: how far it was read, and a line not yet finished.
#[derive(Default)]
struct Followed {
    offset: u64,
    partial: Vec<u8>,
    /// A `.gz` file is read once, whole (a finished archive).
    done: bool,
}

/// The files under the paths given, and what was read of each.
struct Follower {
    roots: Vec<PathBuf>,
    files: BTreeMap<PathBuf, Followed>,
}

impl Follower {
    fn new(roots: Vec<PathBuf>) -> Self {
        Self {
            roots,
            files: BTreeMap::new(),
        }
    }

    /// Every file to follow now: the files given, and the logs in the directories given.
    fn list(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for root in &self.roots {
            match std::fs::read_dir(root) {
                Ok(entries) => out.extend(entries.filter_map(|e| {
                    let p = e.ok()?.path();
                    let name = p.file_name()?.to_str()?;
                    (name.ends_with(".jsonl") || name.ends_with(".jsonl.gz")).then_some(p)
                })),
                Err(_) => out.push(root.clone()),
            }
        }
        out.sort();
        out
    }

    /// Reads what was appended since the last call and hands each complete line to `each`.
    fn poll(&mut self, each: &mut dyn FnMut(&[u8])) {
        for path in self.list() {
            let f = self.files.entry(path.clone()).or_default();
            if f.done {
                continue;
            }
            if path.extension().is_some_and(|e| e == "gz") {
                f.done = true;
                if let Ok(file) = File::open(&path) {
                    let mut text = Vec::new();
                    if flate2::read::MultiGzDecoder::new(file)
                        .read_to_end(&mut text)
                        .is_ok()
                    {
                        text.split(|&b| b == b'\n')
                            .filter(|l| !l.is_empty())
                            .for_each(&mut *each);
                    }
                }
                continue;
            }
            let Ok(mut file) = File::open(&path) else {
                continue;
            };
            let len = file.metadata().map_or(0, |m| m.len());
            if len < f.offset {
                // Truncated or replaced: read it again from the start.
                f.offset = 0;
                f.partial.clear();
            }
            if len == f.offset || file.seek(SeekFrom::Start(f.offset)).is_err() {
                continue;
            }
            let mut new = Vec::new();
            if file.take(len - f.offset).read_to_end(&mut new).is_err() {
                continue;
            }
            f.offset += new.len() as u64;
            f.partial.extend_from_slice(&new);
            if let Some(last) = f.partial.iter().rposition(|&b| b == b'\n') {
                let rest = f.partial.split_off(last + 1);
                let done = std::mem::replace(&mut f.partial, rest);
                done.split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .for_each(&mut *each);
            } else if f.partial.len() > MAX_LINE {
                f.partial.clear();
            }
        }
    }
}

/// Calls and what they cost; calls without a cost are counted apart, never as $0.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Spend {
    calls: u64,
    /// Summed as the reports sum it: the live figure is theirs to the last digit.
    cost: CostSum,
    unpriced: u64,
}

impl Spend {
    fn add(&mut self, cost: Option<f64>) {
        self.calls += 1;
        match cost {
            Some(c) => self.cost.add(c),
            None => self.unpriced += 1,
        }
    }

    /// `$x`, `≥$x` when some calls had no cost, `unpriced` when none had one.
    fn shown(&self) -> String {
        spend(self.cost.usd(), self.calls - self.unpriced, self.unpriced)
    }
}

/// A run seen calling and not yet summarised.
#[derive(Clone, Debug, Default)]
struct OpenRun {
    spend: Spend,
    tokens: u64,
    last_ms: i64,
    step: Option<String>,
}

/// A run whose summary came.
#[derive(Clone, Debug)]
struct Finished {
    id: String,
    status: String,
    spend: Spend,
}

/// Everything the view shows.
#[derive(Default)]
struct Live {
    spend: Spend,
    tokens: u64,
    skipped: u64,
    /// Unix minute → (spend, tokens).
    minutes: BTreeMap<i64, (Spend, u64)>,
    open: HashMap<String, OpenRun>,
    recent: VecDeque<Finished>,
    models: HashMap<String, Spend>,
    steps: HashMap<String, Spend>,
    last: Option<String>,
}

impl Live {
    fn add(&mut self, raw: &[u8]) {
        let Ok(l) = decode::parse(raw) else {
            self.skipped += 1;
            return;
        };
        let ms = Timestamp::parse(&l.timestamp).map_or(0, Timestamp::unix_ms);
        match &*l.event {
            "llm_call" => self.call(&l, ms),
            "run_summary" => self.summary(&l),
            _ => {}
        }
        if self.last.as_deref().is_none_or(|t| *t < *l.timestamp) {
            self.last = Some(l.timestamp.to_string());
        }
    }

    fn call(&mut self, l: &Line<'_>, ms: i64) {
        let cost = l.cost_usd.filter(|c| c.is_finite());
        let tokens = l.tokens.total;
        self.spend.add(cost);
        self.tokens = self.tokens.saturating_add(tokens);
        let m = self.minutes.entry(ms.div_euclid(60_000)).or_default();
        m.0.add(cost);
        m.1 = m.1.saturating_add(tokens);
        while self.minutes.len() > (MINUTES as usize) * 4 {
            self.minutes.pop_first();
        }
        let name = |v: &Option<std::borrow::Cow<'_, str>>| v.as_deref().unwrap_or("-").to_owned();
        for (map, key) in [
            (&mut self.models, name(&l.model)),
            (&mut self.steps, name(&l.step)),
        ] {
            map.entry(key).or_default().add(cost);
        }
        if let Some(run) = &l.run_id {
            if !self.open.contains_key(&**run) && self.open.len() >= MAX_OPEN {
                let oldest = self
                    .open
                    .iter()
                    .min_by_key(|(_, r)| r.last_ms)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.open.remove(&k);
                }
            }
            let r = self.open.entry(run.to_string()).or_default();
            r.spend.add(cost);
            r.tokens = r.tokens.saturating_add(tokens);
            r.last_ms = r.last_ms.max(ms);
            r.step = l.step.as_deref().map(str::to_owned);
        }
    }

    fn summary(&mut self, l: &Line<'_>) {
        let Some(run) = &l.run_id else { return };
        let open = self.open.remove(&**run).unwrap_or_default();
        // The summary's figures; its unpriced count is the calls seen here when it has none
        // (lines of older versions), and every call when it has no cost at all.
        let spend = l.usage.as_ref().map_or(open.spend, |u| Spend {
            calls: u.call_count,
            cost: CostSum::from_nanos(u.cost_usd.map_or(0, CostSum::nanos_of)),
            unpriced: match u.cost_usd {
                None => u.call_count,
                Some(_) if u.unpriced_calls > 0 => u.unpriced_calls,
                Some(_) => open.spend.unpriced.min(u.call_count),
            },
        });
        self.recent.push_front(Finished {
            id: run.to_string(),
            status: l.status.as_deref().unwrap_or("-").to_owned(),
            spend,
        });
        self.recent.truncate(RECENT);
    }

    /// Spend and tokens a minute over the last hour up to `now_min`.
    fn per_minute(&self, now_min: i64) -> (Vec<u64>, Vec<u64>) {
        (now_min - MINUTES + 1..=now_min)
            .map(|m| {
                let (c, t) = self.minutes.get(&m).copied().unwrap_or_default();
                ((c.cost.usd() * 1e6).round() as u64, t)
            })
            .unzip()
    }

    /// The spend of the minute `now_min`, as shown: `no calls`, or what its calls cost.
    fn this_minute(&self, now_min: i64) -> String {
        match self.minutes.get(&now_min) {
            Some((spend, _)) if spend.calls > 0 => spend.shown(),
            _ => "no calls".into(),
        }
    }

    fn line(&self) -> String {
        let unpriced = match self.spend.unpriced {
            0 => String::new(),
            n => format!(" ({} unpriced)", thousands(n)),
        };
        format!(
            "calls {} tokens {} cost {}{unpriced} open runs {}{}",
            thousands(self.spend.calls),
            thousands(self.tokens),
            self.spend.shown(),
            self.open.len(),
            self.last
                .as_deref()
                .map_or_else(String::new, |t| format!(" last line {t}"))
        )
    }
}

fn top(map: &HashMap<String, Spend>, n: usize) -> Vec<(&String, Spend)> {
    let mut v: Vec<_> = map.iter().map(|(k, v)| (k, *v)).collect();
    v.sort_by(|a, b| b.1.cost.cmp(&a.1.cost).then_with(|| a.0.cmp(b.0)));
    v.truncate(n);
    v
}

fn now_minute() -> i64 {
    Timestamp::now().unix_ms().div_euclid(60_000)
}

/// Follows `paths` until the user quits (q, Esc, Ctrl-C) or, with stdout not a terminal, is
/// stopped.
pub(crate) fn run(paths: &[PathBuf]) -> Result<(), String> {
    let roots = if paths.is_empty() {
        vec![PathBuf::from("./llm_usage_logs")]
    } else {
        paths.to_vec()
    };
    for r in &roots {
        if !r.exists() {
            return Err(format!("{}: no such file or directory", r.display()));
        }
    }
    let title = roots
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut follower = Follower::new(roots);
    let mut live = Live::default();
    follower.poll(&mut |l| live.add(l));
    if io::stdout().is_terminal() {
        view(&mut follower, &mut live, &title).map_err(|e| e.to_string())
    } else {
        plain(&mut follower, &mut live).map_err(|e| e.to_string())
    }
}

/// Plain lines: the totals now, and again each second something changed.
fn plain(follower: &mut Follower, live: &mut Live) -> io::Result<()> {
    let mut out = io::stdout().lock();
    let mut shown = String::new();
    loop {
        let line = live.line();
        if line != shown {
            writeln!(out, "{} {}", Timestamp::now(), terminal(&line))?;
            out.flush()?;
            shown = line;
        }
        std::thread::sleep(Duration::from_secs(1));
        follower.poll(&mut |l| live.add(l));
    }
}

/// The live terminal view; the terminal is restored on every way out.
fn view(follower: &mut Follower, live: &mut Live, title: &str) -> io::Result<()> {
    let mut terminal = ratatui::init();
    let result = (|| -> io::Result<()> {
        let mut drawn = Instant::now() - Duration::from_secs(10);
        let mut changed = true;
        loop {
            if changed || drawn.elapsed() >= Duration::from_secs(1) {
                terminal.draw(|f| draw(f, live, title))?;
                drawn = Instant::now();
            }
            if event::poll(POLL)? {
                if let Event::Key(k) = event::read()? {
                    let ctrl_c =
                        k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                    if k.kind == KeyEventKind::Press
                        && (ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc))
                    {
                        return Ok(());
                    }
                }
            }
            let before = (
                live.spend.calls,
                live.recent.len(),
                live.skipped,
                live.open.len(),
            );
            follower.poll(&mut |l| live.add(l));
            changed = before
                != (
                    live.spend.calls,
                    live.recent.len(),
                    live.skipped,
                    live.open.len(),
                );
        }
    })();
    ratatui::restore();
    result
}

/// `s` in at most `width` columns: shortened in the middle (`run-budg…7f3a9c2e`), so that
/// both ends of an id or model name stay readable.
fn fit(s: &str, width: usize) -> String {
    if s.width() <= width {
        return s.to_owned();
    }
    if width < 3 {
        return s.chars().take(width).collect();
    }
    let chars: Vec<char> = s.chars().collect();
    let keep = width - 1;
    let (head, tail) = (keep - keep / 2, keep / 2);
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    // Wide characters: cut until it fits.
    while out.width() > width {
        out.remove(0);
    }
    out
}

/// A table whose number columns are as wide as their widest cell (never cut) and whose first
/// column takes the rest, its cells fitted in the middle.
fn fitted_table<'a>(
    headers: &[&'a str],
    rows: Vec<Vec<String>>,
    area: ratatui::layout::Rect,
    title: &'a str,
) -> Table<'a> {
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let n = headers.len();
    // Every column but the first as wide as its widest cell or header.
    let mut widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].width())
                .chain(std::iter::once(headers[i].width()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let inner = usize::from(area.width.saturating_sub(2));
    let fixed: usize = widths[1..].iter().sum::<usize>() + (n - 1);
    widths[0] = inner.saturating_sub(fixed).max(4);
    // Too narrow for every column whole: a second text column gives way first.
    if fixed + widths[0] > inner && n > 3 {
        let over = fixed + widths[0] - inner;
        widths[1] = widths[1].saturating_sub(over).max(4);
    }
    let rows: Vec<Row<'_>> = rows
        .into_iter()
        .map(|r| {
            Row::new(
                r.iter()
                    .enumerate()
                    .map(|(i, c)| if i < 2 { fit(c, widths[i]) } else { c.clone() })
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let constraints: Vec<Constraint> = widths
        .iter()
        .map(|w| Constraint::Length(*w as u16))
        .collect();
    Table::new(rows, constraints)
        .header(Row::new(headers.to_vec()).style(bold))
        .block(Block::bordered().title(title))
}

fn draw(f: &mut ratatui::Frame<'_>, live: &Live, title: &str) {
    let area = f.area();
    // Below 120 columns the tables are stacked and the sparklines lower, so that every
    // column stays readable at 80×24.
    let narrow = area.width < 120;
    let spark = if narrow { 4 } else { 5 };
    let [head, spend, toks, tables, foot] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(spark),
        Constraint::Length(spark),
        Constraint::Min(6),
        Constraint::Length(1),
    ])
    .areas(area);
    let line = live.line();
    // The last line's time goes first when the line does not fit.
    let line = if line.width() + 2 > usize::from(area.width) {
        line.split(" last line ").next().unwrap_or(&line).to_owned()
    } else {
        line
    };
    f.render_widget(
        Paragraph::new(terminal(&line).into_owned())
            .block(Block::bordered().title(format!(" llm-usage watch: {} ", terminal(title)))),
        head,
    );
    let now = now_minute();
    let (cost, tokens) = live.per_minute(now);
    let last = |v: &[u64]| v.last().copied().unwrap_or(0);
    f.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(format!(
                " spend a minute, last hour (now {}) ",
                live.this_minute(now)
            )))
            .data(&cost)
            .style(Style::default().fg(Color::Yellow)),
        spend,
    );
    f.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(format!(
                " tokens a minute, last hour (now {}) ",
                thousands(last(&tokens))
            )))
            .data(&tokens)
            .style(Style::default().fg(Color::Cyan)),
        toks,
    );
    let (runs_area, models_area, steps_area) = if narrow {
        let [top, bottom] =
            Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(tables);
        let [m, s] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(bottom);
        (top, m, s)
    } else {
        let [r, m, s] = Layout::horizontal([
            Constraint::Percentage(40),
            Constraint::Percentage(30),
            Constraint::Percentage(30),
        ])
        .areas(tables);
        (r, m, s)
    };
    let mut open: Vec<(&String, &OpenRun)> = live.open.iter().collect();
    open.sort_by(|a, b| b.1.last_ms.cmp(&a.1.last_ms).then_with(|| a.0.cmp(b.0)));
    let mut rows: Vec<Vec<String>> = open
        .iter()
        .take(8)
        .map(|(id, r)| {
            vec![
                terminal(id).into_owned(),
                format!("open, {}", terminal(r.step.as_deref().unwrap_or("-"))),
                thousands(r.spend.calls),
                r.spend.shown(),
            ]
        })
        .collect();
    rows.extend(live.recent.iter().map(|r| {
        vec![
            terminal(&r.id).into_owned(),
            terminal(&r.status).into_owned(),
            thousands(r.spend.calls),
            r.spend.shown(),
        ]
    }));
    f.render_widget(
        fitted_table(
            &["run", "status", "calls", "cost"],
            rows,
            runs_area,
            " runs: open, then finished ",
        ),
        runs_area,
    );
    for (area, title, map) in [
        (models_area, " top models ", &live.models),
        (steps_area, " top steps ", &live.steps),
    ] {
        let rows: Vec<Vec<String>> = top(map, 10)
            .into_iter()
            .map(|(k, spend)| {
                vec![
                    terminal(k).into_owned(),
                    thousands(spend.calls),
                    spend.shown(),
                ]
            })
            .collect();
        f.render_widget(
            fitted_table(&["name", "calls", "cost"], rows, area, title),
            area,
        );
    }
    f.render_widget(
        Paragraph::new(" q: quit   (updates as lines arrive)")
            .style(Style::default().add_modifier(Modifier::DIM)),
        foot,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_followed_file_gives_each_complete_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("llm_usage.2025-12-01.jsonl");
        std::fs::write(&path, "a\nb\npart").unwrap();
        let mut f = Follower::new(vec![dir.path().to_owned()]);
        let mut got: Vec<String> = Vec::new();
        f.poll(&mut |l| got.push(String::from_utf8_lossy(l).into_owned()));
        assert_eq!(got, ["a", "b"]);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"ial\nc\n").unwrap();
        std::fs::write(dir.path().join("llm_usage.2025-12-02.jsonl"), "d\n").unwrap();
        f.poll(&mut |l| got.push(String::from_utf8_lossy(l).into_owned()));
        assert_eq!(got, ["a", "b", "partial", "c", "d"]);
        f.poll(&mut |l| got.push(String::from_utf8_lossy(l).into_owned()));
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn a_summary_closes_its_run() {
        let mut live = Live::default();
        let call = br#"{"timestamp":"2025-12-01T10:00:00.000Z","event":"llm_call","run_id":"r1","step":"s","model":"m","tokens":{"input":10,"output":2,"total":12},"cost_usd":0.5}"#;
        live.add(call);
        live.add(call);
        assert_eq!((live.spend.calls, live.tokens, live.open.len()), (2, 24, 1));
        assert_eq!(live.spend.cost.usd(), 1.0);
        live.add(br#"{"timestamp":"2025-12-01T10:00:01.000Z","event":"run_summary","run_id":"r1","status":"success","usage":{"call_count":2,"cost_usd":1.0}}"#);
        assert_eq!(live.open.len(), 0);
        assert_eq!(live.recent[0].status, "success");
        live.add(b"not json");
        assert_eq!(live.skipped, 1);
        let (cost, tokens) = live.per_minute(
            Timestamp::parse("2025-12-01T10:00:30Z")
                .unwrap()
                .unix_ms()
                .div_euclid(60_000),
        );
        assert_eq!(
            (cost.last().copied(), tokens.last().copied()),
            (Some(1_000_000), Some(24))
        );
    }

    #[test]
    fn unknown_costs_are_never_shown_as_free() {
        let mut live = Live::default();
        let priced = br#"{"timestamp":"2025-12-01T10:00:00.000Z","event":"llm_call","run_id":"r1","step":"s","model":"m","tokens":{"input":10,"output":2,"total":12},"cost_usd":0.5}"#;
        let unpriced = br#"{"timestamp":"2025-12-01T10:00:00.000Z","event":"llm_call","run_id":"r1","step":"s","model":"x","tokens":{"input":10,"output":2,"total":12},"cost_usd":null,"cost_source":"unpriced"}"#;
        let no_usage = br#"{"timestamp":"2025-12-01T10:00:00.000Z","event":"llm_call","run_id":"r2","step":"t","model":"m","tokens":{},"cost_usd":null,"cost_source":"no_usage"}"#;
        live.add(priced);
        live.add(unpriced);
        live.add(no_usage);
        assert_eq!(live.models["x"].shown(), "unpriced");
        assert_eq!(live.models["m"].shown(), "≥$0.5000");
        assert_eq!(live.steps["t"].shown(), "unpriced");
        assert_eq!(live.open["r1"].spend.shown(), "≥$0.5000");
        assert_eq!(live.open["r2"].spend.shown(), "unpriced");
        assert!(
            live.line().contains("cost ≥$0.5000 (2 unpriced)"),
            "{}",
            live.line()
        );
        // A summary without a cost is unpriced; one with its unpriced count says so.
        live.add(br#"{"timestamp":"2025-12-01T10:00:01.000Z","event":"run_summary","run_id":"r2","status":"success","usage":{"call_count":1,"cost_usd":null,"unpriced_calls":1}}"#);
        live.add(br#"{"timestamp":"2025-12-01T10:00:01.000Z","event":"run_summary","run_id":"r1","status":"success","usage":{"call_count":2,"cost_usd":0.5,"unpriced_calls":1}}"#);
        assert_eq!(live.recent[1].spend.shown(), "unpriced");
        assert_eq!(live.recent[0].spend.shown(), "≥$0.5000");
    }

    #[test]
    fn names_are_shortened_in_the_middle() {
        assert_eq!(
            fit("run-budget-exceeded-opus-7f3a9c2e", 16),
            "run-budg…f3a9c2e"
        );
        assert_eq!(fit("claude-opus-4-5-20251101", 14), "claude-…251101");
        assert_eq!(fit("short", 14), "short");
        assert_eq!(fit("abcdef", 2), "ab");
    }

    #[test]
    fn a_path_is_followed_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("custom.log");
        std::fs::write(&file, "x\n").unwrap();
        let mut f = Follower::new(vec![file.clone()]);
        let mut n = 0;
        f.poll(&mut |_| n += 1);
        assert_eq!(n, 1);
    }
}
