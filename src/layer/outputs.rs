//! Where the layer's records and lines go: the queue to the JSONL and database writers and
//! the metrics, and the health counters of those writers.

use std::sync::Arc;

use crate::budget::BudgetEvent;
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
    /// Metric measurements whose attribute value became `__other__`.
    pub(crate) metric_overflows: Arc<std::sync::atomic::AtomicU64>,
    /// The delivery of log records of the OTLP pipeline given with `.otlp(…)`.
    #[cfg(feature = "otlp")]
    pub(crate) log_delivery: Option<Arc<crate::otlp::DeliveryStats>>,
}

impl Outputs {
    /// Queues a summary or a budget event (a few per run), if anything writes lines: the
    /// queue's worker encodes it.
    fn emit_line(&self, item: impl FnOnce() -> Item) {
        if let Some(sink) = self.queue.as_ref().filter(|s| s.has_writers()) {
            sink.push(item());
        }
    }

    /// A budget crossing's line.
    pub(super) fn emit_budget(&self, event: &BudgetEvent) {
        self.emit_line(|| Item::Budget(event.clone()));
    }

    /// A finished call: the queue's worker encodes its line and records its measurements.
    pub(super) fn push_call(&self, rec: CallRecord) {
        if let Some(queue) = &self.queue {
            queue.push_call(rec);
        }
    }

    /// A run's summary line.
    pub(crate) fn emit_summary(&self, summary: RunSummary) {
        self.emit_line(|| Item::Summary(summary));
    }

    /// Writes what is queued, until `deadline`; whether everything was written.
    pub(crate) fn shutdown(&self, deadline: std::time::Instant) -> bool {
        self.queue.as_ref().is_none_or(|q| q.shutdown(deadline))
    }
}
