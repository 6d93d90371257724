//! The spans a [`Replayer`](super::Replayer) takes: one span of another process, as OTLP
//! carries it, borrowed from the decoded request.

/// One finished span of another process (an OTLP span), borrowed from the decoded request.
#[derive(Clone, Copy, Debug)]
pub struct ForeignSpan<'a> {
    /// The trace id (all zero is invalid).
    pub trace_id: [u8; 16],
    /// The span id (all zero is invalid).
    pub span_id: [u8; 8],
    /// The parent span's id; `None` for a trace's root span.
    pub parent_span_id: Option<[u8; 8]>,
    /// The span name (`chat gpt-4o`, `openai.chat`, `llm_call`…).
    pub name: &'a str,
    /// When the span started, in nanoseconds since the Unix epoch.
    pub start_unix_nano: u64,
    /// When the span ended, in nanoseconds since the Unix epoch.
    pub end_unix_nano: u64,
    /// The span's status is an error: its message (empty when it has none).
    pub error: Option<&'a str>,
    /// The span's attributes, in the order they came; only those the layer reads are kept.
    pub attributes: &'a [(&'a str, ForeignValue<'a>)],
}

/// An attribute value of a [`ForeignSpan`]. Arrays, maps and bytes are not read by the
/// layer and are passed as [`ForeignValue::Other`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ForeignValue<'a> {
    /// A string.
    Str(&'a str),
    /// A signed integer.
    Int(i64),
    /// A floating-point number.
    Double(f64),
    /// A boolean.
    Bool(bool),
    /// Anything else (an array, a map, bytes, an empty value): never read.
    Other,
}

/// Why a span was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// Its trace id is all zero.
    #[error("a span with an all-zero trace id")]
    NoTraceId,
    /// Its span id is all zero.
    #[error("a span with an all-zero span id")]
    NoSpanId,
}

impl ForeignSpan<'_> {
    /// Whether the span can be placed in a trace.
    pub(crate) fn check(&self) -> Result<(), Refused> {
        if self.trace_id == [0; 16] {
            return Err(Refused::NoTraceId);
        }
        if self.span_id == [0; 8] {
            return Err(Refused::NoSpanId);
        }
        Ok(())
    }
}
