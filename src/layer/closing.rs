//! Which closing spans are worth a registry lookup.

use std::sync::atomic::{AtomicU32, Ordering};

use tracing_core::span::Id;

/// Which span ids may need work at close: a counter per hash bucket of the id, raised when a
/// call or run span opens and lowered when it closes. A zero bucket means the closing span is
/// none of ours, and the registry lookup is skipped: the common case in a busy service.
pub(crate) struct ClosingFilter {
    buckets: Box<[AtomicU32]>,
}

impl Default for ClosingFilter {
    fn default() -> Self {
        Self {
            buckets: (0..CLOSING_BUCKETS).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

const CLOSING_BUCKETS: usize = 4096;

impl ClosingFilter {
    fn bucket(&self, id: &Id) -> &AtomicU32 {
        // The registry's ids are slab indices (plus a generation): multiplying spreads them.
        let h = id.into_u64().wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 52;
        &self.buckets[h as usize % CLOSING_BUCKETS]
    }

    pub(super) fn opened(&self, id: &Id) {
        self.bucket(id).fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn closed(&self, id: &Id) {
        let bucket = self.bucket(id);
        // One atomic operation in the common case; a close we never saw open (the count
        // was zero) is undone, so the count never stays below zero.
        if bucket.fetch_sub(1, Ordering::Relaxed) == 0 {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn may_be_ours(&self, id: &Id) -> bool {
        self.bucket(id).load(Ordering::Relaxed) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_filter_counts_open_spans_per_bucket() {
        let f = ClosingFilter::default();
        let (a, b) = (Id::from_u64(7), Id::from_u64(8));
        assert!(!f.may_be_ours(&a));
        f.opened(&a);
        f.opened(&a); // an id reused while the first span's close is under way
        f.closed(&a);
        assert!(f.may_be_ours(&a));
        f.closed(&a);
        f.closed(&a); // a close we never saw open: stays at zero
        assert!(!f.may_be_ours(&a));
        f.opened(&b);
        assert!(!f.may_be_ours(&a) || f.bucket(&a).as_ptr() == f.bucket(&b).as_ptr());
        assert!(f.may_be_ours(&b));
    }
}
