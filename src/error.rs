//! Errors from building the layer.

use std::io;
use std::path::PathBuf;

/// Why [`crate::UsageLayerBuilder::build`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The JSONL directory could not be created.
    #[error("cannot create the usage log directory {path}: {source}")]
    LogDir {
        /// The directory asked for.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: io::Error,
    },
    /// The rolling file appender could not open its file.
    #[error("cannot open the usage log file: {0}")]
    Appender(#[from] tracing_appender::rolling::InitError),
    /// The background writer thread could not be started.
    #[error("cannot start the usage writer thread: {0}")]
    WriterThread(#[source] io::Error),
    /// The OTLP pipeline could not be built or failed to export.
    #[error("OTLP metrics: {0}")]
    Otlp(String),
    /// The database given to `.sqlite()` or `.postgres()` could not be opened or migrated.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[error("usage database: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The price file named by `LLM_USAGE_PRICES` could not be loaded.
    #[error("{}: {source}", crate::pricing::PRICES_ENV)]
    Prices {
        /// What was wrong with it (the path is in the message).
        #[from]
        source: crate::pricing::PriceError,
    },
    /// An attribute setting is wrong (a name repeated, reserved, or not among the attributes).
    #[error("attributes: {0}")]
    Attributes(String),
    /// A builder setting is out of range.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
}
