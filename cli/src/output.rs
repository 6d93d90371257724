//! Rendering: every command builds [`Section`]s of typed cells; `--format` picks a table
//! (aligned, thousands-separated, via comfy-table), JSON, or CSV.

use std::io::{self, Write};

use comfy_table::{presets, Cell as TableCell, CellAlignment, ContentArrangement, Table};
use serde_json::{json, Map, Value};

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
            Cell::Usd(v) | Cell::Float(v) | Cell::Share(v) => match v {
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
            Cell::Usd(v) | Cell::Float(v) | Cell::Share(v) => match v {
                Some(f) if f.is_finite() => round(*f, 9).to_string(),
                _ => String::new(),
            },
        }
    }

    fn display(&self) -> String {
        match self {
            Cell::Text(Some(t)) => tracing_llm_usage::__private::terminal(t).into_owned(),
            Cell::Text(None) => "-".into(),
            Cell::Int(i) => thousands(*i),
            // A saving that rounds to nothing is no saving: never `-$0.0000`.
            Cell::Usd(Some(v)) if *v <= -0.00005 => format!("-${:.4}", -v),
            Cell::Usd(Some(v)) if *v < 0.0 => "$0.0000".into(),
            Cell::Usd(Some(v)) => format!("${v:.4}"),
            Cell::Float(Some(v)) => format!("{v:.3}"),
            Cell::Share(Some(v)) => format!("{:.1}%", v * 100.0),
            Cell::Usd(None) | Cell::Float(None) | Cell::Share(None) => "-".into(),
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

/// A titled table.
#[derive(Clone, Debug)]
pub(crate) struct Section {
    pub(crate) name: &'static str,
    pub(crate) headers: Vec<&'static str>,
    pub(crate) rows: Vec<Vec<Cell>>,
    /// Two columns, metric and value: JSON renders it as one object.
    kv: bool,
}

impl Section {
    pub(crate) fn new(name: &'static str, headers: Vec<&'static str>) -> Self {
        Self {
            name,
            headers,
            rows: Vec::new(),
            kv: false,
        }
    }

    /// A metric/value section.
    pub(crate) fn kv(name: &'static str) -> Self {
        Self {
            kv: true,
            ..Self::new(name, vec!["metric", "value"])
        }
    }

    fn json_rows(&self) -> Value {
        if self.kv {
            return Value::Object(
                self.rows
                    .iter()
                    .filter_map(|r| match (r.first(), r.get(1)) {
                        (Some(Cell::Text(Some(k))), Some(v)) => Some((k.clone(), v.json())),
                        _ => None,
                    })
                    .collect(),
            );
        }
        Value::Array(
            self.rows
                .iter()
                .map(|r| {
                    let mut m = Map::new();
                    for (h, c) in self.headers.iter().zip(r) {
                        m.insert((*h).to_owned(), c.json());
                    }
                    Value::Object(m)
                })
                .collect(),
        )
    }
}

/// Writes `sections` to `out` in `format`; `raw_csv` leaves formula-like CSV cells as they are.
pub(crate) fn render(
    out: &mut dyn Write,
    sections: &[Section],
    format: Format,
    raw_csv: bool,
) -> io::Result<()> {
    match format {
        Format::Json => {
            let v = if let [one] = sections {
                one.json_rows()
            } else {
                Value::Object(
                    sections
                        .iter()
                        .map(|s| (s.name.to_owned(), s.json_rows()))
                        .collect(),
                )
            };
            serde_json::to_writer_pretty(&mut *out, &v)?;
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
                w.write_record(&s.headers).map_err(io::Error::other)?;
                for r in &s.rows {
                    w.write_record(r.iter().map(|c| c.csv(raw_csv)))
                        .map_err(io::Error::other)?;
                }
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
                let mut t = Table::new();
                t.load_style(presets::UTF8_FULL_CONDENSED)
                    .set_content_arrangement(ContentArrangement::Disabled);
                // No colour at all: plain text whatever the terminal (NO_COLOR holds trivially).
                t.set_header(s.headers.iter().map(TableCell::new));
                for r in &s.rows {
                    t.add_row(r.iter().map(|c| {
                        let cell = TableCell::new(c.display());
                        if c.numeric() {
                            cell.set_alignment(CellAlignment::Right)
                        } else {
                            cell
                        }
                    }));
                }
                writeln!(out, "{t}")?;
            }
            Ok(())
        }
    }
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
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
