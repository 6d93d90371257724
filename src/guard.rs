//! The guard that flushes the layer: shutdown writes the summaries of runs still open and
//! waits for every queued line.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::layer::Inner;

/// Flushes the layer when dropped: writes `incomplete` summaries for runs still open, then
/// waits (up to the shutdown timeout) until every queued line is written.
///
/// Keep it alive for as long as the layer should write, typically in `main`: the global
/// subscriber is never dropped, so this guard is what makes the last lines reach the file.
#[must_use = "dropping the guard stops the JSONL output"]
pub struct UsageGuard {
    pub(crate) inner: Arc<Inner>,
    pub(crate) timeout: Duration,
    pub(crate) done: bool,
}

impl fmt::Debug for UsageGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageGuard")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl UsageGuard {
    /// Shuts down now (what dropping does); returns whether every queued line was written
    /// within the timeout.
    pub fn shutdown(mut self) -> bool {
        self.finish()
    }

    fn finish(&mut self) -> bool {
        if std::mem::replace(&mut self.done, true) {
            return true;
        }
        for (held, summary) in self.inner.ledger.drain() {
            self.inner.release(held);
            self.inner.outputs.emit_summary(summary);
        }
        // One deadline for the worker and both writers: the guard waits at most the timeout.
        let deadline = std::time::Instant::now() + self.timeout;
        self.inner.outputs.shutdown(deadline)
    }
}

impl Drop for UsageGuard {
    fn drop(&mut self) {
        self.finish();
    }
}
