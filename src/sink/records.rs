//! What the database writer takes: a batch's records, each with the line it was encoded into
//! (a row keeps the line as written, and its id is the line's hash).

use std::ops::Range;

use super::queue::Item;
use super::writer::Pending;

/// Records and their lines, in the order they were written.
#[derive(Default)]
pub(crate) struct Records {
    /// The lines, each with its `\n`.
    text: Vec<u8>,
    items: Vec<(Item, Range<usize>)>,
}

impl Records {
    /// The bytes of lines added so far, where the next line's range starts.
    pub(crate) fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Lines encoded since the last call (the records come with [`push`](Self::push)).
    pub(crate) fn add_text(&mut self, lines: &[u8]) {
        self.text.extend_from_slice(lines);
    }

    /// A record and where its line is in the text.
    pub(crate) fn push(&mut self, item: Item, line: Range<usize>) {
        self.items.push((item, line));
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Each record with its line, without the `\n`.
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Item, &[u8])> {
        self.items.iter().map(|(item, range)| {
            let line = self.text.get(range.clone()).unwrap_or_default();
            (item, line.strip_suffix(b"\n").unwrap_or(line))
        })
    }
}

impl Pending for Records {
    fn size(&self) -> usize {
        // Records' own strings are not counted: a call's are a few names, shared or short.
        self.text.len() + self.items.len() * std::mem::size_of::<(Item, Range<usize>)>()
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn take_from(&mut self, more: &mut Self, _cap: usize) {
        if self.items.is_empty() {
            std::mem::swap(self, more);
            return;
        }
        let base = self.text.len();
        self.text.append(&mut more.text);
        self.items.extend(
            more.items
                .drain(..)
                .map(|(item, r)| (item, r.start + base..r.end + base)),
        );
    }

    fn clear(&mut self) {
        self.text.clear();
        self.items.clear();
    }

    fn oversized(&self, cap: usize) -> bool {
        self.text.capacity() > cap.saturating_mul(2)
    }
}
