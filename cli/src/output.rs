//! Rendering: every command builds [`Section`]s of typed cells; `--format` picks a table
//! (aligned, thousands-separated, drawn with box characters), JSON, or CSV.

use std::io::{self, Write};

use serde_json::{json, Map, Value};
use unicode_width::UnicodeWidthStr;

use super::agg::NONE;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Table,
    Json,
    Csv,
}

/// One value.
#[derive(Clone, Debug)]
pub(crate) enum Cell {
    Text(Option<String>),
    Int(u64),
    Usd(Option<f64>),
    Float(Option<f64>),
    Share(Option<f64>),
    /// A relative change (`+5.0%`, `-0.2%`).
    Change(Option<f64>),
}

impl Cell {
    /// A group key (the `NONE` sentinel is null).
    pub(crate) fn key(k: &str) -> Cell {
        Cell::Text((k != NONE).then(|| k.to_owned()))
    }

    pub(crate) fn text(s: impl Into<String>) -> Cell {
        Cell::Text(Some(s.into()))
    }

    fn json(&self) -> Value {
        match self {
            Cell::Text(t) => json!(t),
            Cell::Int(i) => json!(i),
            Cell::Usd(v) | Cell::Float(v) | Cell::Share(v) | Cell::Change(v) => match v {
                Some(f) if f.is_finite() => json!(round(*f, 9)),
                _ => Value::Null,
            },
        }
    }

    fn csv(&self, raw: bool) -> String {
        match self {
            Cell::Text(Some(t)) if !raw => spreadsheet_inert(t),
            Cell::Text(t) => t.clone().unwrap_or_default(),
            Cell::Int(i) => i.to_string(),
            Cell::Usd(v) | Cell::Float(v) | Cell::Share(v) | Cell::Change(v) => match v {
                Some(f) if f.is_finite() => round(*f, 9).to_string(),
                _ => String::new(),
            },
        }
    }

    /// The cell as a table shows it.
    pub(crate) fn display(&self) -> String {
        match self {
            Cell::Text(Some(t)) => tracing_llm_usage::__private::terminal(t).into_owned(),
            Cell::Text(None) => "-".into(),
            Cell::Int(i) => thousands(*i),
            Cell::Usd(Some(v)) => dollars(*v),
            Cell::Float(Some(v)) => format!("{v:.3}"),
            Cell::Share(Some(v)) => format!("{:.1}%", v * 100.0),
            Cell::Change(Some(v)) => format!("{:+.1}%", v * 100.0),
            Cell::Usd(None) | Cell::Float(None) | Cell::Share(None) | Cell::Change(None) => {
                "-".into()
            }
        }
    }

    fn numeric(&self) -> bool {
        !matches!(self, Cell::Text(_))
    }
}

/// A text cell a spreadsheet shows as text: one that begins like a formula (`=`, `+`, `-`,
/// `@`, tab, carriage return) gets a leading `'` (OWASP's advice on CSV injection).
fn spreadsheet_inert(t: &str) -> String {
    if t.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{t}")
    } else {
        t.to_owned()
    }
}

/// Rounds away binary noise (0.1 + 0.2) so the JSON and CSV show the figure people expect.
fn round(v: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (v * p).round() / p
}

/// `$1,234.5678`: four decimals, thousands separated; a saving that rounds to nothing is no
/// saving (never `-$0.0000`).
pub(crate) fn dollars(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let rounded = (v.abs() * 1e4).round();
    let sign = if v < 0.0 && rounded > 0.0 { "-" } else { "" };
    let whole = (rounded / 1e4).trunc();
    let frac = rounded - whole * 1e4;
    format!("{sign}${}.{:04}", thousands(whole as u64), frac as u64)
}

/// A sum of costs as a person reads it: `unpriced` when no call of it had a cost, `≥$x`
/// when some had none (the sum is a floor), else the dollars.
pub(crate) fn spend(cost: f64, priced: u64, unpriced: u64) -> String {
    match (priced, unpriced) {
        (0, u) if u > 0 => "unpriced".into(),
        (_, 0) => dollars(cost),
        _ => format!("≥{}", dollars(cost)),
    }
}

/// `1234567` → `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A row made when it is written.
type MakeRow<'a> = Box<dyn Fn(usize) -> Vec<Cell> + 'a>;

/// A titled table.
pub(crate) struct Section<'a> {
    pub(crate) name: &'static str,
    pub(crate) headers: Vec<std::borrow::Cow<'static, str>>,
    pub(crate) rows: Vec<Vec<Cell>>,
    /// Rows made one at a time as they are written, instead of `rows`: a listing of every run
    /// holds no row in memory.
    lazy: Option<(usize, MakeRow<'a>)>,
    /// Two columns, metric and value: JSON renders it as one object.
    kv: bool,
    /// The columns named from the data (an attribute, its values), not by the command.
    from_data: Vec<usize>,
}

impl<'a> Section<'a> {
    pub(crate) fn new(name: &'static str, headers: Vec<&'static str>) -> Self {
        Self {
            name,
            headers: headers
                .into_iter()
                .map(std::borrow::Cow::Borrowed)
                .collect(),
            rows: Vec::new(),
            lazy: None,
            kv: false,
            from_data: Vec::new(),
        }
    }

    /// Names column `i` from the data (an attribute, a value of it): in JSON, where a column
    /// is a key, such a name that repeats another column's is suffixed ` (2)`, ` (3)`, … so
    /// that no column is lost; the command's own names never change.
    pub(crate) fn name_from_data(&mut self, i: usize, name: String) {
        if i == self.headers.len() {
            self.headers.push(name.into());
        } else {
            self.headers[i] = name.into();
        }
        self.from_data.push(i);
    }

    /// Each column's key in JSON (see [`name_from_data`](Self::name_from_data)).
    fn json_keys(&self) -> Vec<String> {
        let mut taken: std::collections::HashSet<String> = (0..self.headers.len())
            .filter(|i| !self.from_data.contains(i))
            .map(|i| self.headers[i].to_string())
            .collect();
        (0..self.headers.len())
            .map(|i| {
                let name = &self.headers[i];
                if !self.from_data.contains(&i) {
                    return name.to_string();
                }
                let mut key = name.to_string();
                let mut n = 2;
                while taken.contains(&key) {
                    key = format!("{name} ({n})");
                    n += 1;
                }
                taken.insert(key.clone());
                key
            })
            .collect()
    }

    /// A metric/value section.
    pub(crate) fn kv(name: &'static str) -> Self {
        Self {
            kv: true,
            ..Self::new(name, vec!["metric", "value"])
        }
    }

    /// `len` rows, row `i` made by `row(i)` when it is written.
    pub(crate) fn lazy(mut self, len: usize, row: impl Fn(usize) -> Vec<Cell> + 'a) -> Self {
        self.lazy = Some((len, Box::new(row)));
        self
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn len(&self) -> usize {
        self.lazy.as_ref().map_or(self.rows.len(), |(n, _)| *n)
    }

    /// Calls `each` with every row, in order.
    fn each_row<E>(&self, mut each: impl FnMut(&[Cell]) -> Result<(), E>) -> Result<(), E> {
        match &self.lazy {
            Some((n, row)) => (0..*n).try_for_each(|i| each(&row(i))),
            None => self.rows.iter().try_for_each(|r| each(r)),
        }
    }

    fn row_json(keys: &[String], r: &[Cell]) -> Value {
        let mut m = Map::new();
        for (k, c) in keys.iter().zip(r) {
            m.insert(k.clone(), c.json());
        }
        Value::Object(m)
    }

    /// Pretty JSON at `level` of indentation (after its first line), row by row.
    fn write_json(&self, out: &mut dyn Write, level: usize) -> io::Result<()> {
        if self.kv {
            let mut obj = Map::new();
            self.each_row(|r| {
                if let (Some(Cell::Text(Some(k))), Some(v)) = (r.first(), r.get(1)) {
                    obj.insert(k.clone(), v.json());
                }
                Ok::<_, io::Error>(())
            })?;
            return write_indented(out, &Value::Object(obj), level);
        }
        if self.is_empty() {
            return out.write_all(b"[]");
        }
        let pad = "  ".repeat(level + 1);
        let keys = self.json_keys();
        out.write_all(b"[\n")?;
        let mut first = true;
        self.each_row(|r| {
            if !first {
                out.write_all(b",\n")?;
            }
            first = false;
            out.write_all(pad.as_bytes())?;
            write_indented(out, &Self::row_json(&keys, r), level + 1)
        })?;
        write!(out, "\n{}]", "  ".repeat(level))
    }
}

/// `v` pretty-printed, its lines after the first indented by `level` steps.
fn write_indented(out: &mut dyn Write, v: &Value, level: usize) -> io::Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(io::Error::other)?;
    let pad = "  ".repeat(level);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.write_all(b"\n")?;
            out.write_all(pad.as_bytes())?;
        }
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Writes `sections` to `out` in `format`; `raw_csv` leaves formula-like CSV cells as they are.
pub(crate) fn render(
    out: &mut dyn Write,
    sections: &[Section<'_>],
    format: Format,
    raw_csv: bool,
) -> io::Result<()> {
    match format {
        Format::Json => {
            if let [one] = sections {
                one.write_json(out, 0)?;
            } else {
                out.write_all(b"{")?;
                for (i, s) in sections.iter().enumerate() {
                    out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
                    write!(out, "  {}: ", Value::String(s.name.to_owned()))?;
                    s.write_json(out, 1)?;
                }
                out.write_all(if sections.is_empty() { b"}" } else { b"\n}" })?;
            }
            writeln!(out)
        }
        Format::Csv => {
            for (i, s) in sections.iter().enumerate() {
                if sections.len() > 1 {
                    if i > 0 {
                        writeln!(out)?;
                    }
                    writeln!(out, "# {}", s.name)?;
                }
                let mut w = csv::Writer::from_writer(&mut *out);
                w.write_record(s.headers.iter().map(|h| h.as_bytes()))
                    .map_err(io::Error::other)?;
                s.each_row(|r| {
                    w.write_record(r.iter().map(|c| c.csv(raw_csv)))
                        .map_err(io::Error::other)
                })?;
                w.flush()?;
            }
            Ok(())
        }
        Format::Table => {
            for (i, s) in sections.iter().enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                if sections.len() > 1 {
                    writeln!(out, "{}", s.name.replace('_', " "))?;
                }
                table(out, s)?;
            }
            Ok(())
        }
    }
}

/// A table drawn with box characters (comfy-table's UTF8_FULL_CONDENSED look): one pass for
/// the column widths, one to write, so no rendered row is kept.
fn table(out: &mut dyn Write, s: &Section<'_>) -> io::Result<()> {
    let mut widths: Vec<usize> = s.headers.iter().map(|h| h.width()).collect();
    s.each_row(|r| {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.display().width());
        }
        Ok::<_, io::Error>(())
    })?;
    let rule = |out: &mut dyn Write, left: &str, fill: &str, mid: &str, right: &str| {
        let parts: Vec<String> = widths.iter().map(|w| fill.repeat(w + 2)).collect();
        writeln!(out, "{left}{}{right}", parts.join(mid))
    };
    let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = (String, bool)>| {
        let mut text = String::from("│");
        for (i, ((c, right), w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push('┆');
            }
            let pad = " ".repeat(w - c.width().min(*w));
            if right {
                text.push_str(&format!(" {pad}{c} "));
            } else {
                text.push_str(&format!(" {c}{pad} "));
            }
        }
        text.push('│');
        writeln!(out, "{text}")
    };
    rule(out, "┌", "─", "┬", "┐")?;
    line(out, &mut s.headers.iter().map(|h| (h.to_string(), false)))?;
    rule(out, "╞", "═", "╪", "╡")?;
    s.each_row(|r| line(out, &mut r.iter().map(|c| (c.display(), c.numeric()))))?;
    rule(out, "└", "─", "┴", "┘")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_like_text_is_quoted_numbers_are_not() {
        let mut s = Section::new("t", vec!["text", "usd", "int"]);
        s.rows.push(vec![
            Cell::text("-1.5"),
            Cell::Usd(Some(-1.5)),
            Cell::Int(3),
        ]);
        s.rows.push(vec![
            Cell::text("=1+1"),
            Cell::Usd(Some(0.25)),
            Cell::Int(0),
        ]);
        let csv = |raw| {
            let mut out = Vec::new();
            render(&mut out, std::slice::from_ref(&s), Format::Csv, raw).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(csv(false), "text,usd,int\n'-1.5,-1.5,3\n'=1+1,0.25,0\n");
        assert_eq!(csv(true), "text,usd,int\n-1.5,-1.5,3\n=1+1,0.25,0\n");
    }

    #[test]
    fn money_never_shows_minus_zero() {
        assert_eq!(Cell::Usd(Some(-0.00001)).display(), "$0.0000");
        assert_eq!(Cell::Usd(Some(-0.25)).display(), "-$0.2500");
        assert_eq!(Cell::Usd(Some(0.0)).display(), "$0.0000");
        assert_eq!(Cell::Usd(None).display(), "-");
        assert_eq!(Cell::Usd(Some(15_859.103_74)).display(), "$15,859.1037");
        assert_eq!(
            Cell::Usd(Some(-1_234_567.000_06)).display(),
            "-$1,234,567.0001"
        );
        assert_eq!(Cell::Usd(Some(0.999_99)).display(), "$1.0000");
        assert_eq!(spend(0.0, 0, 3), "unpriced");
        assert_eq!(spend(1.5, 2, 0), "$1.5000");
        assert_eq!(spend(1.5, 2, 1), "≥$1.5000");
        assert_eq!(spend(0.0, 0, 0), "$0.0000");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
