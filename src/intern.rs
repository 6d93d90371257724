//! Per-thread interning of the short, repetitive strings calls carry (model, provider, step,
//! task, agent): a call then clones an `Arc` instead of allocating a string.
//!
//! A direct-mapped cache of 256 entries per thread: bounded memory whatever the input, a miss
//! costs one allocation (as without the cache). Run ids are unique per run and are not
//! interned.

use std::cell::RefCell;
use std::sync::Arc;

const SLOTS: usize = 256;
const MAX_LEN: usize = 96;

thread_local! {
    static CACHE: RefCell<Vec<Option<Arc<str>>>> = RefCell::new(vec![None; SLOTS]);
}

fn slot(s: &str) -> usize {
    // The first and last eight bytes and the length: enough to spread model and step names
    // (a collision only costs a miss, the content is compared), without a byte loop.
    let b = s.as_bytes();
    let word = |at: usize| {
        let mut w = [0u8; 8];
        let end = (at + 8).min(b.len());
        w[..end - at].copy_from_slice(&b[at..end]);
        u64::from_le_bytes(w)
    };
    let h = if b.len() >= 8 {
        word(0) ^ word(b.len() - 8).rotate_left(29)
    } else {
        word(0)
    } ^ b.len() as u64;
    (h.wrapping_mul(0x517c_c1b7_2722_0a95) >> 56) as usize % SLOTS
}

/// The shared `Arc<str>` for `s`.
pub(crate) fn intern(s: &str) -> Arc<str> {
    if s.len() > MAX_LEN {
        return Arc::from(s);
    }
    let i = slot(s);
    CACHE
        .try_with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else {
                return Arc::from(s);
            };
            if let Some(hit) = &cache[i] {
                if &**hit == s {
                    return hit.clone();
                }
            }
            let fresh: Arc<str> = Arc::from(s);
            cache[i] = Some(fresh.clone());
            fresh
        })
        .unwrap_or_else(|_| Arc::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_same_arc() {
        let a = intern("claude-sonnet-4-5");
        let b = intern("claude-sonnet-4-5");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*intern(&"x".repeat(200)), "x".repeat(200));
    }
}
