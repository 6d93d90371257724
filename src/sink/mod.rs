//! Where lines go: [`jsonl`] encodes them, [`writer`] gets them to disk off the caller's
//! thread without losing any.

pub(crate) mod jsonl;
pub(crate) mod writer;
