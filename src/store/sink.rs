//! The live database sink: the layer's lines reach it through the same background writer as
//! the JSONL ([`crate::sink::writer`]), so rows are written off the caller's thread, a batch
//! per transaction, and the guard's drop waits for what is queued. This is the writer's
//! [`MakeWriter`]: each batch of lines becomes one insert transaction.
//!
//! A failed batch is retried on a fresh connection (a restarted server, a killed backend);
//! rows already there are skipped by their ids, so a retry after a commit whose answer was
//! lost adds nothing twice. A batch that still fails is counted as dropped by the writer,
//! which reports it once on stderr. A line with no row (never one of the layer's own) is
//! counted in [`SinkStats::lines_rejected`] and reported once.

use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

use super::{open, rows, Backend, Keyer, StoreError};
use crate::sink::writer::SinkStats;

/// Pauses before each retry of a failed batch.
const RETRY_AFTER: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_millis(200),
    Duration::from_secs(1),
];

/// A database the writer thread inserts into.
pub(crate) struct DbSink {
    state: Mutex<State>,
    stats: Arc<SinkStats>,
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
        stats: Arc<SinkStats>,
    ) -> Result<Self, StoreError> {
        super::create_private(target, modes);
        let backend = open(target)?;
        Ok(Self {
            state: Mutex::new(State {
                target: target.to_owned(),
                backend: Some(backend),
                keyer: Keyer::default(),
            }),
            stats,
        })
    }

    fn store(&self, batch: &[u8]) -> io::Result<()> {
        let text = std::str::from_utf8(batch).map_err(io::Error::other)?;
        // Only the writer thread gets here: the lock is never contended.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let st = &mut *guard;
        let (rows, unstorable) = rows(&mut st.keyer, text);
        if let Some(why) = unstorable.first() {
            let n = u64::try_from(unstorable.len()).unwrap_or(u64::MAX);
            self.stats.lines_rejected.fetch_add(n, Ordering::Relaxed);
            self.stats
                .report_once(format_args!("a line has no database row ({why})"));
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
            match backend.insert(&rows) {
                Ok(_) => return Ok(()),
                Err(e) => {
                    st.backend = None;
                    last = Some(e);
                }
            }
        }
        Err(io::Error::other(last.map_or_else(
            || "the database failed".to_owned(),
            |e| e.to_string(),
        )))
    }
}

/// One batch's writer.
pub(crate) struct Batch<'a>(&'a DbSink);

impl Write for Batch<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The writer hands over whole lines in one `write_all`: all stored, or none.
        self.0.store(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for DbSink {
    type Writer = Batch<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Batch(self)
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    #[test]
    fn a_line_without_a_row_is_counted_and_the_rest_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        let target = path.to_str().unwrap();
        let stats = Arc::new(SinkStats::default());
        let sink = DbSink::open(target, Default::default(), stats.clone()).unwrap();
        let good = r#"{"timestamp":"2025-12-14T10:30:15.123Z","event":"llm_call","run_id":"r","tokens":{"input":7,"output":2}}"#;
        let batch = format!("{good}\n{{\"event\":\"mystery\"}}\nnot json\n{good}\n");
        sink.make_writer().write_all(batch.as_bytes()).unwrap();
        assert_eq!(stats.lines_rejected.load(Ordering::Relaxed), 2);
        let mut lines = Vec::new();
        let mut db = crate::store::Store::open(target).unwrap();
        db.for_each_line(&mut |l| lines.push(l.to_owned())).unwrap();
        assert_eq!(lines, vec![good.to_owned(), good.to_owned()]);
    }
}
