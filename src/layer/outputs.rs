//! Where the layer's records and lines go: the queue to the JSONL and database writers and
//! the metrics, and the health counters of those writers.

use std::sync::Arc;

use crate::format::encode;
use crate::ledger::RunSummary;
use crate::record::CallRecord;
use crate::sink::queue::{Item, Queue};
use crate::sink::writer::SinkStats;

/// The layer's outputs.
pub(crate) struct Outputs {
    /// Off the caller's thread: the JSONL and database writers and the metrics (`None` when
    /// there are none of them).
    pub(crate) queue: Option<Queue>,
    /// The JSONL writer's counters.
    pub(crate) stats: Arc<SinkStats>,
    /// The database writer's counters.
    pub(crate) db_stats: Arc<SinkStats>,
    /// The delivery of log records of the OTLP pipeline given with `.otlp(…)`.
    #[cfg(feature = "otlp")]
    pub(crate) log_delivery: Option<Arc<crate::otlp::DeliveryStats>>,
}

impl Outputs {
    /// Queues a line the caller encodes into `encode` (summaries and budget events: a few per
    /// run), if anything writes lines; `item` says which kind it is.
    pub(super) fn emit_line(&self, item: fn(Vec<u8>) -> Item, encode: impl FnOnce(&mut Vec<u8>)) {
        if let Some(sink) = self.queue.as_ref().filter(|s| s.has_writers()) {
            let mut line = Vec::with_capacity(512);
            encode(&mut line);
            if !line.is_empty() {
                sink.push(item(line));
            }
        }
    }

    /// A finished call: the queue's worker encodes its line and records its measurements.
    pub(super) fn push_call(&self, rec: CallRecord) {
        if let Some(queue) = &self.queue {
            queue.push_call(rec);
        }
    }

    /// A run's summary line.
    pub(crate) fn emit_summary(&self, summary: &RunSummary) {
        self.emit_line(Item::Summary, |buf| encode::summary(summary, buf));
    }

    /// Writes what is queued, until `deadline`; whether everything was written.
    pub(crate) fn shutdown(&self, deadline: std::time::Instant) -> bool {
        self.queue.as_ref().is_none_or(|q| q.shutdown(deadline))
    }
}
