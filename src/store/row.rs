//! One JSONL line → one row: which table, its unique id, and its columns.
//!
//! The id is a content key, so that loading the same line twice adds nothing: the 128-bit
//! xxh3 hash of the line's bytes, plus an ordinal when the very same bytes came before (two
//! calls identical to the millisecond). Identical lines arrive close together, so the ordinals
//! are counted over the last [`RECENT`] distinct lines only; the live sink and `import` count
//! the same way, so a database fed live and then given the JSONL files gains nothing.

use std::num::NonZeroUsize;

use crate::format::decode::{self as line, Line};
use crate::format::view;
use crate::record::Timestamp;
use crate::sink::queue::Item;

/// How many recent distinct lines the ordinal count remembers.
const RECENT: usize = 4096;

/// The table a line goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Table {
    /// `llm_call` lines.
    Usage,
    /// `run_summary` lines.
    Runs,
    /// Budget lines (`budget_warning`, `budget_exceeded`).
    Events,
}

/// A line's columns. Token counts beyond `i64::MAX` are stored as `i64::MAX` (SQL integers are
/// signed); the exact value stays in `line`.
#[derive(Debug)]
pub(crate) struct Row<'a> {
    pub(crate) table: Table,
    pub(crate) id: String,
    /// The hash `id` starts with, to order rows by cheaply.
    pub(crate) hash: u128,
    /// Canonical RFC 3339 (`2025-12-14T10:30:15.123Z`), which sorts as text.
    pub(crate) timestamp: String,
    pub(crate) fields: Line<'a>,
    /// The line as logged, without its `\n`.
    pub(crate) line: &'a str,
}

/// Clamps a count to what an SQL `BIGINT` holds.
pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Turns lines into rows with their ids.
pub(crate) struct Keyer {
    seen: lru::LruCache<u128, u32>,
}

impl Default for Keyer {
    fn default() -> Self {
        Self {
            seen: lru::LruCache::new(NonZeroUsize::new(RECENT).unwrap_or(NonZeroUsize::MIN)),
        }
    }
}

impl Keyer {
    /// Parses one line (without its `\n`). `Err` says why it cannot be stored.
    pub(crate) fn row<'a>(&mut self, text: &'a str) -> Result<Row<'a>, String> {
        let fields = line::parse_str(text)?;
        let table = match &*fields.event {
            "llm_call" => Table::Usage,
            "run_summary" => Table::Runs,
            _ => Table::Events,
        };
        if table == Table::Runs && fields.run_id.is_none() {
            return Err("run_summary without a run_id".into());
        }
        let timestamp = Timestamp::parse(&fields.timestamp)
            .ok_or_else(|| format!("timestamp {:?} is not RFC 3339", fields.timestamp))?
            .to_string();
        let (id, hash) = self.id(text);
        Ok(Row {
            table,
            id,
            hash,
            timestamp,
            fields,
            line: text,
        })
    }

    /// The row of a record the layer made, with its encoded line (without its `\n`): its
    /// columns come from the record ([`crate::format::view`]), not from the line parsed back.
    pub(crate) fn row_of<'a>(&mut self, item: &'a Item, text: &'a str) -> Row<'a> {
        let (table, timestamp, fields) = match item {
            Item::Call(rec) => (Table::Usage, rec.timestamp, view::call(rec)),
            Item::Summary(summary) => (Table::Runs, summary.timestamp, view::summary(summary)),
            Item::Budget(event) => (Table::Events, event.timestamp, view::budget(event)),
        };
        let (id, hash) = self.id(text);
        Row {
            table,
            id,
            hash,
            timestamp: timestamp.to_string(),
            fields,
            line: text,
        }
    }

    /// The id of the line `text` (its hash, and its ordinal among the recent identical
    /// lines), and the hash.
    fn id(&mut self, text: &str) -> (String, u128) {
        let hash = xxhash_rust::xxh3::xxh3_128(text.as_bytes());
        let n = match self.seen.get_mut(&hash) {
            Some(n) => {
                *n += 1;
                *n
            }
            None => {
                self.seen.put(hash, 0);
                0
            }
        };
        let id = if n == 0 {
            format!("{hash:032x}")
        } else {
            format!("{hash:032x}-{n}")
        };
        (id, hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALL: &str = r#"{"timestamp":"2025-12-14T10:30:15.123Z","event":"llm_call","run_id":"r","tokens":{"input":3,"output":1}}"#;

    #[test]
    fn identical_lines_get_ordinals_and_recount_the_same_way() {
        let ids = |k: &mut Keyer| {
            [CALL, CALL, CALL]
                .iter()
                .map(|l| k.row(l).unwrap().id)
                .collect::<Vec<_>>()
        };
        let first = ids(&mut Keyer::default());
        assert_eq!(first[0].len(), 32);
        assert_eq!(first[1], format!("{}-1", first[0]));
        assert_eq!(first[2], format!("{}-2", first[0]));
        assert_eq!(ids(&mut Keyer::default()), first);
    }

    #[test]
    fn tables_and_bad_lines() {
        let mut k = Keyer::default();
        let summary = r#"{"timestamp":"2025-12-14T10:31:00Z","event":"run_summary","run_id":"r","status":"success"}"#;
        let row = k.row(summary).unwrap();
        assert_eq!(row.table, Table::Runs);
        assert_eq!(row.timestamp, "2025-12-14T10:31:00.000Z");
        assert!(k
            .row(r#"{"timestamp":"yesterday","event":"llm_call"}"#)
            .unwrap_err()
            .contains("RFC 3339"));
        assert!(k
            .row(r#"{"event":"run_summary","timestamp":"2025-12-14T10:31:00Z"}"#)
            .is_err());
        assert_eq!(int(u64::MAX), i64::MAX);
    }
}
