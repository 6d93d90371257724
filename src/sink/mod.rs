//! Where finished calls go: [`deferred`] takes them off the caller's thread, [`jsonl`]
//! encodes their lines, [`writer`] gets the lines to disk without losing any.

pub(crate) mod deferred;
pub(crate) mod jsonl;
pub(crate) mod private_files;
pub(crate) mod writer;
