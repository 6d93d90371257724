//! What both listeners share: the bearer token, the queue to the replay thread (bounded in
//! bytes: a full queue answers "busy", never buffers more), and the receiver's counters.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Mutex;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::convert::{check, Checked};
use super::forward::Forward;

/// A request on its way to the replay thread, and its size as counted against the queue.
pub(super) type Queued = (ExportTraceServiceRequest, usize);

/// The receiver's own counts.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) requests: AtomicU64,
    pub(super) spans: AtomicU64,
    pub(super) rejected_spans: AtomicU64,
    pub(super) busy: AtomicU64,
    pub(super) malformed: AtomicU64,
    pub(super) unauthorized: AtomicU64,
}

impl Counters {
    pub(super) fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// What became of a request.
pub(super) enum Outcome {
    /// Queued: its spans (and those rejected) counted.
    Taken(Checked),
    /// The queue is full: the sender should retry later.
    Busy,
    /// The receiver is shutting down.
    Closed,
}

pub(super) struct Intake {
    tx: Mutex<Option<Sender<Queued>>>,
    /// `--forward`: a copy of each request taken goes there.
    forward: Mutex<Option<Forward>>,
    queued: std::sync::Arc<AtomicUsize>,
    max_queued: usize,
    token: Option<Box<[u8]>>,
    pub(super) max_request_bytes: usize,
    pub(super) counters: Counters,
}

impl Intake {
    pub(super) fn new(
        tx: Sender<Queued>,
        queued: std::sync::Arc<AtomicUsize>,
        max_queued: usize,
        token: Option<String>,
        max_request_bytes: usize,
        forward: Option<Forward>,
    ) -> Self {
        Self {
            tx: Mutex::new(Some(tx)),
            forward: Mutex::new(forward),
            queued,
            max_queued,
            token: token.map(|t| t.into_bytes().into_boxed_slice()),
            max_request_bytes,
            counters: Counters::default(),
        }
    }

    /// Whether an `Authorization` header value carries the token (always, without one).
    pub(super) fn authorized(&self, header: Option<&[u8]>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = header
            .and_then(|h| h.strip_prefix(b"Bearer "))
            .unwrap_or_default();
        // Compared in full whatever the first difference, so timing tells nothing.
        let same = given.len() == token.len()
            && given
                .iter()
                .zip(token.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            Counters::bump(&self.counters.unauthorized, 1);
        }
        same
    }

    /// Queues a decoded request of `size` bytes, unless the queue is full.
    pub(super) fn take(&self, req: ExportTraceServiceRequest, size: usize) -> Outcome {
        Counters::bump(&self.counters.requests, 1);
        let size = size.max(1);
        let before = self.queued.fetch_add(size, Ordering::AcqRel);
        // One request always fits an empty queue, however large.
        if before > 0 && before + size > self.max_queued {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            Counters::bump(&self.counters.busy, 1);
            return Outcome::Busy;
        }
        let checked = check(&req);
        if let Some(f) = &*self.forward.lock().unwrap_or_else(|p| p.into_inner()) {
            f.send(&req);
        }
        let sent = match &*self.tx.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(tx) => tx.send((req, size)).is_ok(),
            None => false,
        };
        if !sent {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            return Outcome::Closed;
        }
        Counters::bump(&self.counters.spans, checked.spans);
        Counters::bump(&self.counters.rejected_spans, checked.rejected);
        Outcome::Taken(checked)
    }

    /// Stops taking requests: the replay thread ends once it has replayed what was queued.
    pub(super) fn close(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.forward
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn one_span() -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        ..Span::default()
                    }],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    #[test]
    fn a_full_queue_answers_busy_and_takes_again_once_drained() {
        let (tx, rx) = std::sync::mpsc::channel();
        let queued = std::sync::Arc::new(AtomicUsize::new(0));
        let intake = Intake::new(tx, queued.clone(), 1000, None, 1 << 20, None);
        // One request always fits an empty queue, however large.
        assert!(matches!(intake.take(one_span(), 5000), Outcome::Taken(_)));
        assert!(matches!(intake.take(one_span(), 10), Outcome::Busy));
        // The replay thread takes it off the queue.
        let (_, size) = rx.recv().unwrap();
        queued.fetch_sub(size, Ordering::AcqRel);
        assert!(matches!(intake.take(one_span(), 600), Outcome::Taken(_)));
        assert!(matches!(intake.take(one_span(), 300), Outcome::Taken(_)));
        assert!(matches!(intake.take(one_span(), 200), Outcome::Busy));
        assert_eq!(intake.counters.busy.load(Ordering::Relaxed), 2);
        assert_eq!(intake.counters.spans.load(Ordering::Relaxed), 3);
        intake.close();
        assert!(matches!(intake.take(one_span(), 1), Outcome::Closed));
    }

    #[test]
    fn the_bearer_token_must_match_exactly() {
        let (tx, _rx) = std::sync::mpsc::channel();
        let intake = Intake::new(tx, Default::default(), 1, Some("abc".into()), 1, None);
        assert!(intake.authorized(Some(b"Bearer abc")));
        for wrong in [
            &b"Bearer ab"[..],
            b"Bearer abcd",
            b"bearer abc",
            b"abc",
            b"",
        ] {
            assert!(!intake.authorized(Some(wrong)));
        }
        assert!(!intake.authorized(None));
    }
}
