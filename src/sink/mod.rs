//! Where finished calls go: [`queue`] takes them off the caller's thread (its worker encodes
//! their lines with [`crate::format::encode`]), [`writer`] gets the lines to disk, and the
//! records with their lines ([`records`]) to the database, without losing any;
//! [`private_files`] creates the files and directories with their modes.

pub(crate) mod private_files;
pub(crate) mod queue;
pub(crate) mod records;
pub(crate) mod writer;
