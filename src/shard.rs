//! Which shard a thread uses, for the structures sharded by thread (process totals, the sink's
//! queues): threads are numbered round-robin on first use, so they spread evenly.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
}
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// This thread's number (take it modulo the number of shards).
pub(crate) fn thread_shard() -> usize {
    INDEX
        .try_with(|c| {
            let mut i = c.get();
            if i == usize::MAX {
                // Wrapping keeps the number in range for the modulo on every thread.
                i = NEXT.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> 1);
                c.set(i);
            }
            i
        })
        .unwrap_or(0)
}
