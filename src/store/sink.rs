//! The live database sink: the queue's worker hands it each batch's records with the lines
//! they were encoded into ([`Records`]), through a background writer of its own
//! ([`crate::sink::writer`]), so rows are written off the caller's thread, a batch per
//! transaction, and the guard's drop waits for what is queued. A row's columns come from its
//! record ([`crate::format::view`]); the line is stored as written.
//!
//! A failed batch is retried on a fresh connection (a restarted server, a killed backend);
//! rows already there are skipped by their ids, so a retry after a commit whose answer was
//! lost adds nothing twice. A batch that still fails is counted as dropped by the writer,
//! which reports it once on stderr.

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use super::{open, Backend, Keyer, StoreError};
use crate::sink::records::Records;
use crate::sink::writer::Destination;

/// Pauses before each retry of a failed batch.
const RETRY_AFTER: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_millis(200),
    Duration::from_secs(1),
];

/// A database the writer thread inserts into.
pub(crate) struct DbSink {
    state: Mutex<State>,
}

struct State {
    target: String,
    backend: Option<Box<dyn Backend>>,
    keyer: Keyer,
}

impl DbSink {
    /// Opens (and migrates) `target` now, so a wrong path or URL fails the build.
    pub(crate) fn open(
        target: &str,
        modes: crate::sink::private_files::Modes,
    ) -> Result<Self, StoreError> {
        super::create_private(target, modes);
        let backend = open(target)?;
        Ok(Self {
            state: Mutex::new(State {
                target: target.to_owned(),
                backend: Some(backend),
                keyer: Keyer::default(),
            }),
        })
    }
}

impl Destination<Records> for DbSink {
    /// One transaction for the batch, retried; all rows stored, or none.
    fn write(&self, batch: &Records, _lines: u64) -> Result<(), (io::Error, u64)> {
        // Only the writer thread gets here: the lock is never contended.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let st = &mut *guard;
        let mut rows = Vec::with_capacity(batch.len());
        for (item, line) in batch.iter() {
            // The encoder writes UTF-8 only.
            let line = std::str::from_utf8(line).map_err(|e| (io::Error::other(e), 0))?;
            rows.push(st.keyer.row_of(item, line));
        }
        let mut last = None;
        for pause in RETRY_AFTER {
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
            let backend = match st.backend.as_mut() {
                Some(b) => b,
                None => match open(&st.target) {
                    Ok(b) => st.backend.insert(b),
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                },
            };
            match backend.insert(&rows, &[rows.len()]) {
                Ok(_) => return Ok(()),
                Err(e) => {
                    st.backend = None;
                    last = Some(e);
                }
            }
        }
        let why = last.map_or_else(|| "the database failed".to_owned(), |e| e.to_string());
        Err((io::Error::other(why), 0))
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::budget::{BudgetEvent, BudgetEventKind, BudgetMetric, BudgetScope};
    use crate::record::{CostSource, Timestamp};
    use crate::sink::queue::Item;
    use crate::sink::writer::Pending;

    /// One record of each kind and form: escapes, modality, streaming, no price, NaN.
    fn items() -> Vec<Item> {
        let call = crate::format::encode::tests::record();
        let mut rich = call.clone();
        let mut modality = crate::ModalityTokens::default();
        modality.set(crate::Modality::Audio, crate::ModalitySlot::Input, 300);
        rich.modality = Some(Box::new(modality));
        rich.stream = Some(true);
        rich.ttft_ms = Some(250);
        rich.cost_usd = Some(0.1 + 0.2);
        let mut unpriced = call.clone();
        unpriced.cost_usd = None;
        unpriced.cost_source = CostSource::Unpriced;
        unpriced.run_id = None;
        unpriced.error = None;
        let mut no_usage = unpriced.clone();
        no_usage.cost_source = CostSource::NoUsage;
        no_usage.tokens = crate::record::Tokens::default();
        no_usage.error = Some("connection reset".into());
        let mut nan = call.clone();
        nan.cost_usd = Some(f64::NAN);
        let summary = crate::format::encode::tests::summary("run-\"quoted\"\n");
        let budget = BudgetEvent {
            timestamp: Timestamp::from_unix_ms(1_765_708_217_000),
            event: BudgetEventKind::Warning,
            budget: "cap".into(),
            scope: BudgetScope::Day,
            scope_id: "2025-12-14".into(),
            metric: BudgetMetric::Tokens,
            limit: 1000.0,
            value: 1200.0,
            run_id: Some(Arc::from("run-1")),
            step: None,
            model: Some(Arc::from("gpt-4o")),
            reason: None,
            attribute: None,
            attribute_value: None,
        };
        vec![
            Item::Call(call.clone()),
            Item::Call(rich),
            Item::Call(unpriced),
            Item::Call(no_usage),
            Item::Call(nan),
            // The very same call again: a second row, with an ordinal.
            Item::Call(call),
            Item::Budget(budget),
            Item::Summary(summary),
        ]
    }

    fn table(path: &std::path::Path, name: &str) -> Vec<Vec<rusqlite::types::Value>> {
        let db = rusqlite::Connection::open(path).unwrap();
        let mut q = db
            .prepare(&format!("SELECT * FROM {name} ORDER BY seq"))
            .unwrap();
        let n = q.column_count();
        q.query_map([], |r| (0..n).map(|i| r.get(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn rows_from_records_equal_the_rows_of_their_lines_imported() {
        let dir = tempfile::tempdir().unwrap();
        let (live, imported) = (dir.path().join("live.db"), dir.path().join("import.db"));
        let mut records = Records::default();
        let mut lines = Vec::new();
        for item in items() {
            let mut line = Vec::new();
            item.encode(&mut line);
            let at = records.text_len();
            records.add_text(&line);
            records.push(item, at..at + line.len());
            lines.push(String::from_utf8(line).unwrap().trim_end().to_owned());
        }
        let mut more = Records::default();
        more.take_from(&mut records, 0);
        let sink = DbSink::open(live.to_str().unwrap(), Default::default()).unwrap();
        sink.write(&more, 7).unwrap();

        let mut store = crate::store::Store::open(imported.to_str().unwrap()).unwrap();
        let text: Vec<&str> = lines.iter().map(String::as_str).collect();
        let inserted = store.insert(&text).unwrap();
        assert_eq!((inserted.added, inserted.rejected.len()), (8, 0));
        drop(store);

        for name in ["llm_usage", "llm_runs", "llm_events"] {
            let (a, b) = (table(&live, name), table(&imported, name));
            assert_eq!(a, b, "{name}");
            assert!(!a.is_empty(), "{name}");
        }
        assert_eq!(table(&live, "llm_usage").len(), 6);
        // Loading the lines into the database fed live adds nothing.
        let mut again = crate::store::Store::open(live.to_str().unwrap()).unwrap();
        assert_eq!(again.insert(&text).unwrap().added, 0);
    }
}
