//! Interning of the short, repetitive strings calls carry (model, provider, step, task,
//! agent, operation): a call then copies a pointer to an immortal string instead of
//! allocating one, or counting references to one (see [`Name`]).
//!
//! Each thread looks names up in its own direct-mapped cache of 256 entries; a miss looks in
//! the process-wide table, which makes each new text immortal until [`MAX_NAMES`] names or
//! [`MAX_BYTES`] bytes are: bounded memory whatever the input. Past that, a name is a
//! reference-counted string (one allocation, as without interning). Run ids are unique per run
//! and are not interned.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::Mutex;

use crate::name::Name;

const SLOTS: usize = 256;
const MAX_LEN: usize = 96;
/// Distinct names made immortal, at most.
const MAX_NAMES: usize = 16 * 1024;
/// Bytes of text made immortal, at most.
const MAX_BYTES: usize = 1 << 20;

/// Attribute values made immortal, at most (a table of their own: a user id per call must not
/// crowd the model and step names out of theirs).
const MAX_VALUES: usize = 4 * 1024;
/// Bytes of attribute values made immortal, at most.
const MAX_VALUE_BYTES: usize = 256 << 10;

/// A per-thread cache of immortal strings (a counted one is not cached): plain pointers, no
/// borrow flag and no reference count to maintain on a hit.
type Cache = [Cell<Option<&'static str>>; SLOTS];

thread_local! {
    static CACHE: Cache = const { [const { Cell::new(None) }; SLOTS] };
    static VALUE_CACHE: Cache = const { [const { Cell::new(None) }; SLOTS] };
}

/// Immortal strings, and the bytes they hold.
type Table = Mutex<(Option<HashSet<&'static str>>, usize)>;

/// The immortal names.
static IMMORTAL: Table = Mutex::new((None, 0));
/// The immortal attribute values.
static IMMORTAL_VALUES: Table = Mutex::new((None, 0));

/// The process-wide immortal string for `s`, while the table has room.
fn intern_global(s: &str) -> Option<&'static str> {
    intern_in(&IMMORTAL, s, MAX_NAMES, MAX_BYTES)
}

fn intern_in(table: &Table, s: &str, max_names: usize, max_bytes: usize) -> Option<&'static str> {
    let mut table = table.lock().ok()?;
    let (names, bytes) = &mut *table;
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(&known) = names.get(s) {
        return Some(known);
    }
    if names.len() >= max_names || *bytes + s.len() > max_bytes {
        return None;
    }
    // Leaked on purpose, within the bounds above: an immortal string needs no count.
    let leaked: &'static str = Box::leak(Box::from(s));
    names.insert(leaked);
    *bytes += s.len();
    Some(leaked)
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

/// The interned name for `s`.
pub(crate) fn intern(s: &str) -> Name {
    intern_with(&CACHE, s, intern_global)
}

/// The interned attribute value `s`, from a table of their own.
pub(crate) fn intern_value(s: &str) -> Name {
    intern_with(&VALUE_CACHE, s, |s| {
        intern_in(&IMMORTAL_VALUES, s, MAX_VALUES, MAX_VALUE_BYTES)
    })
}

fn intern_with(
    cache: &'static std::thread::LocalKey<Cache>,
    s: &str,
    global: impl Fn(&str) -> Option<&'static str>,
) -> Name {
    if s.len() > MAX_LEN {
        return Name::from(s);
    }
    let i = slot(s);
    let cached = cache
        .try_with(|cache| {
            let cell = &cache[i];
            match cell.get() {
                Some(hit) if hit == s => Some(hit),
                _ => {
                    let fresh = global(s);
                    if fresh.is_some() {
                        cell.set(fresh);
                    }
                    fresh
                }
            }
        })
        .unwrap_or_else(|_| global(s));
    match cached {
        Some(immortal) => Name::from_static(immortal),
        // The table is full: a counted string, as without interning.
        None => Name::from(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_same_string_on_every_thread() {
        let a = intern("claude-sonnet-4-5");
        let b = intern("claude-sonnet-4-5");
        assert!(Name::same(&a, &b));
        let c = std::thread::spawn(|| intern("claude-sonnet-4-5"))
            .join()
            .unwrap();
        assert!(Name::same(&a, &c), "one immortal string for the process");
        assert_eq!(&*intern(&"x".repeat(200)), "x".repeat(200));
    }
}
