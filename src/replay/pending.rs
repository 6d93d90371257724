//! Traces in flight: spans arrive in any order and across requests (children before their
//! parents), and wait here, by trace, until their trace is whole or given up on.

use std::time::{Duration, Instant};

use hashbrown::HashMap;

/// A kept attribute value (what the layer reads of a [`ForeignValue`](super::ForeignValue)).
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Kept {
    Str(Box<str>),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Declared without a value, as a call span declares the usage it records later.
    Empty,
}

/// A span waiting for its trace: only what the replay needs of it.
#[derive(Debug)]
pub(super) struct Stored {
    pub(super) span_id: [u8; 8],
    pub(super) parent: Option<[u8; 8]>,
    /// The span's name, as far as the layer reads it (`None`: a span that only links).
    pub(super) name: Option<&'static str>,
    pub(super) start_unix_nano: u64,
    pub(super) end_unix_nano: u64,
    /// The fields the layer reads, under the names it reads them by.
    pub(super) fields: Vec<(&'static str, Kept)>,
}

impl Stored {
    /// Whether the span means anything to the layer (else it only links its children).
    pub(super) fn counts(&self) -> bool {
        self.name.is_some() || !self.fields.is_empty()
    }
}

/// One trace's spans so far.
#[derive(Debug)]
pub(super) struct Trace {
    pub(super) spans: Vec<Stored>,
    /// The root span (no parent) has arrived.
    pub(super) rooted: bool,
    /// A span of it means something to the layer.
    pub(super) counts: bool,
    last: Instant,
}

/// Traces in flight, and when each is ready.
#[derive(Debug)]
pub(super) struct Pending {
    traces: HashMap<[u8; 16], Trace>,
    spans: usize,
    /// A rooted trace is replayed once no span came for it for this long.
    pub(super) settle: Duration,
    /// A trace whose root never came is replayed, incomplete, after this long without spans.
    pub(super) idle: Duration,
    /// Spans held at most; past it the least recently fed traces go first, incomplete.
    pub(super) max_spans: usize,
}

impl Pending {
    pub(super) fn new(settle: Duration, idle: Duration, max_spans: usize) -> Self {
        Self {
            traces: HashMap::new(),
            spans: 0,
            settle,
            idle,
            max_spans: max_spans.max(1),
        }
    }

    /// Spans held now.
    pub(super) fn spans(&self) -> usize {
        self.spans
    }

    /// Traces held now.
    pub(super) fn traces(&self) -> usize {
        self.traces.len()
    }

    pub(super) fn add(&mut self, trace_id: [u8; 16], span: Stored, now: Instant) {
        let t = self.traces.entry(trace_id).or_insert_with(|| Trace {
            spans: Vec::new(),
            rooted: false,
            counts: false,
            last: now,
        });
        t.rooted |= span.parent.is_none();
        t.counts |= span.counts();
        t.last = now;
        t.spans.push(span);
        self.spans += 1;
    }

    /// Traces to replay now, each with whether it is whole: rooted traces that settled, traces
    /// idle too long, and, while too many spans are held, the least recently fed.
    pub(super) fn ready(&mut self, now: Instant) -> Vec<([u8; 16], Trace, bool)> {
        let (settle, idle) = (self.settle, self.idle);
        let mut out: Vec<([u8; 16], Trace, bool)> = Vec::new();
        let mut due: Vec<(Instant, [u8; 16])> = self
            .traces
            .iter()
            .filter(|(_, t)| {
                let quiet = now.saturating_duration_since(t.last);
                (t.rooted && quiet >= settle) || quiet >= idle
            })
            .map(|(id, t)| (t.last, *id))
            .collect();
        // In the order they were last fed: lines keep the order their spans came in.
        due.sort_unstable();
        for (_, id) in due {
            if let Some(t) = self.traces.remove(&id) {
                self.spans -= t.spans.len();
                let whole = t.rooted;
                out.push((id, t, whole));
            }
        }
        out.extend(self.overflow());
        out
    }

    /// While more spans than the cap are held, the least recently fed traces, incomplete.
    pub(super) fn overflow(&mut self) -> Vec<([u8; 16], Trace, bool)> {
        let mut out = Vec::new();
        while self.spans > self.max_spans {
            let Some(id) = self
                .traces
                .iter()
                .min_by_key(|(_, t)| t.last)
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some(t) = self.traces.remove(&id) {
                self.spans -= t.spans.len();
                out.push((id, t, false));
            }
        }
        out
    }

    /// Every trace held, each with whether it is rooted (at shutdown).
    pub(super) fn drain(&mut self) -> Vec<([u8; 16], Trace, bool)> {
        self.spans = 0;
        let mut out: Vec<_> = self
            .traces
            .drain()
            .map(|(id, t)| {
                let whole = t.rooted;
                (id, t, whole)
            })
            .collect();
        // Oldest first, so that lines keep the order spans came in.
        out.sort_by_key(|(id, t, _)| (t.last, *id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: u8, parent: Option<u8>) -> Stored {
        Stored {
            span_id: [id; 8],
            parent: parent.map(|p| [p; 8]),
            name: None,
            start_unix_nano: 0,
            end_unix_nano: 0,
            fields: Vec::new(),
        }
    }

    #[test]
    fn a_rooted_trace_waits_to_settle_and_a_rootless_one_for_the_idle_timeout() {
        let t0 = Instant::now();
        let mut p = Pending::new(Duration::from_secs(1), Duration::from_secs(10), 100);
        p.add([1; 16], span(2, Some(1)), t0);
        p.add([2; 16], span(5, Some(4)), t0);
        assert!(p.ready(t0 + Duration::from_millis(500)).is_empty());
        // The root comes later than its child.
        p.add([1; 16], span(1, None), t0 + Duration::from_millis(600));
        assert!(p.ready(t0 + Duration::from_millis(1500)).is_empty());
        let r = p.ready(t0 + Duration::from_millis(1600));
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].0, r[0].1.spans.len(), r[0].2), ([1; 16], 2, true));
        assert_eq!((p.traces(), p.spans()), (1, 1));
        let r = p.ready(t0 + Duration::from_secs(10));
        assert_eq!((r[0].0, r[0].2), ([2; 16], false));
        assert_eq!((p.traces(), p.spans()), (0, 0));
    }

    #[test]
    fn past_the_cap_the_least_recently_fed_traces_go_first() {
        let t0 = Instant::now();
        let mut p = Pending::new(Duration::from_secs(1), Duration::from_secs(10), 3);
        p.add([1; 16], span(1, Some(9)), t0);
        p.add([2; 16], span(2, Some(9)), t0 + Duration::from_millis(1));
        p.add([1; 16], span(3, Some(9)), t0 + Duration::from_millis(2));
        p.add([3; 16], span(4, Some(9)), t0 + Duration::from_millis(3));
        let r = p.overflow();
        assert_eq!(
            r.iter().map(|(id, _, w)| (id[0], *w)).collect::<Vec<_>>(),
            [(2, false)]
        );
        assert_eq!(p.spans(), 3);
    }
}
