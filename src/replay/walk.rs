//! Replaying one trace: its spans opened parent before child, siblings in start order, and
//! closed child before parent, through the layer's own subscriber.

use std::fmt::Write as _;
use std::sync::PoisonError;
use std::time::Duration;

use hashbrown::HashMap;
use tracing_core::field::Value;
use tracing_core::span::{Attributes, Id};
use tracing_subscriber::registry::LookupSpan;

use super::pending::{Kept, Stored, Trace};
use super::{calls, callsites, Replayed, Replayer, Replaying};
use crate::record::Timestamp;

/// The trace id in lowercase hex: the run id of a trace that names none.
pub(super) fn hex(id: &[u8]) -> String {
    let mut s = String::with_capacity(id.len() * 2);
    for b in id {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl Replayer {
    /// Replays a trace; `whole` when its root came.
    pub(super) fn replay(&mut self, trace_id: [u8; 16], trace: Trace, whole: bool) {
        if !trace.counts {
            self.stats.traces_without_calls += 1;
            return;
        }
        let dispatch = self.dispatch.clone();
        tracing_core::dispatcher::with_default(&dispatch, || self.walk(trace_id, trace, whole));
    }

    fn walk(&mut self, trace_id: [u8; 16], trace: Trace, whole: bool) {
        let spans = trace.spans;
        let mut index: HashMap<[u8; 8], usize> = HashMap::with_capacity(spans.len());
        for (i, s) in spans.iter().enumerate() {
            index.entry(s.span_id).or_insert(i);
        }
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
        let mut roots: Vec<usize> = Vec::new();
        for (i, s) in spans.iter().enumerate() {
            match s.parent.and_then(|p| index.get(&p)) {
                Some(&p) if p != i => children[p].push(i),
                _ => roots.push(i),
            }
        }
        let by_start = |a: &usize, b: &usize| {
            let (a, b) = (&spans[*a], &spans[*b]);
            (a.start_unix_nano, a.end_unix_nano).cmp(&(b.start_unix_nano, b.end_unix_nano))
        };
        roots.sort_by(by_start);
        for c in &mut children {
            c.sort_by(by_start);
        }
        // Spans in a cycle of parents have no root: each becomes one.
        let order = depth_first(&roots, &children, spans.len());
        let incomplete = !whole || roots.len() != 1 || order.cycles;

        // Calls outside any span with a run id make the trace a run of its own.
        let trace_run = needs_trace_run(&spans, &order.visits, self.call_name);
        let ids = |span_id: [u8; 8]| (trace_id, span_id);
        let mut stack: Vec<(Option<Id>, usize)> = Vec::new();
        let run = trace_run.then(|| {
            let start = spans.iter().map(|s| s.start_unix_nano).min().unwrap_or(0);
            let end = spans.iter().map(|s| s.end_unix_nano).max().unwrap_or(0);
            let run_span = Stored {
                span_id: [0; 8],
                parent: None,
                name: None,
                start_unix_nano: start,
                end_unix_nano: end,
                fields: vec![("run_id", Kept::Str(hex(&trace_id).into()))],
            };
            let id = self.open(&run_span, None);
            (id, run_span)
        });
        let base = run.as_ref().and_then(|(id, _)| id.clone());
        for visit in &order.visits {
            match *visit {
                Visit::Enter(i) => {
                    let parent = stack
                        .iter()
                        .rev()
                        .find_map(|(id, _)| id.clone())
                        .or_else(|| base.clone());
                    let s = &spans[i];
                    let id = if s.counts() {
                        self.open(s, parent.as_ref())
                    } else {
                        None
                    };
                    stack.push((id, i));
                }
                Visit::Exit => {
                    if let Some((Some(id), i)) = stack.pop() {
                        self.close(id, &spans[i], ids(spans[i].span_id), incomplete);
                    }
                }
            }
        }
        if let Some((Some(id), run_span)) = run {
            self.close(id, &run_span, ids([0; 8]), incomplete);
        }
        self.stats.traces_replayed += 1;
        if incomplete {
            self.stats.traces_incomplete += 1;
        }
    }

    /// Opens a span with the fields the layer reads.
    fn open(&mut self, s: &Stored, parent: Option<&Id>) -> Option<Id> {
        let names: Vec<&'static str> = s.fields.iter().map(|(n, _)| *n).collect();
        let meta = callsites::callsites()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .metadata(s.name.unwrap_or("span"), &names);
        let Some(meta) = meta else {
            self.stats.attributes_dropped += names.len() as u64;
            return None;
        };
        let values: Vec<Option<&dyn Value>> = s
            .fields
            .iter()
            .map(|(_, v)| match v {
                Kept::Str(s) => Some(s as &dyn Value),
                Kept::Int(i) => Some(i as &dyn Value),
                Kept::Double(d) => Some(d as &dyn Value),
                Kept::Bool(b) => Some(b as &dyn Value),
                Kept::Empty => None,
            })
            .collect();
        let fields = meta.fields();
        let values = fields.value_set_all(&values);
        let attrs = match parent {
            Some(p) => Attributes::child_of(p.clone(), meta, &values),
            None => Attributes::new_root(meta, &values),
        };
        Some(self.dispatch.new_span(&attrs))
    }

    /// Closes a span, with its own times and ids.
    fn close(&self, id: Id, s: &Stored, ids: ([u8; 16], [u8; 8]), incomplete: bool) {
        let span = self
            .dispatch
            .downcast_ref::<Replaying>()
            .and_then(|s| s.span(&id));
        if let Some(span) = span {
            let end_ms = i64::try_from(s.end_unix_nano / 1_000_000).unwrap_or(i64::MAX);
            span.extensions_mut().replace(Replayed {
                end: Timestamp::from_unix_ms(end_ms),
                duration: Duration::from_nanos(s.end_unix_nano - s.start_unix_nano),
                ids,
                incomplete,
            });
        }
        self.dispatch.try_close(id);
    }
}

/// One step of a depth-first walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Visit {
    Enter(usize),
    Exit,
}

struct Order {
    visits: Vec<Visit>,
    /// Some spans were reachable from no root (their parents formed a cycle).
    cycles: bool,
}

/// Every span entered once, children inside their parents: from the roots, then from any
/// span left unvisited.
fn depth_first(roots: &[usize], children: &[Vec<usize>], n: usize) -> Order {
    let mut seen = vec![false; n];
    let mut visits = Vec::with_capacity(2 * n);
    let walk = |start: usize, seen: &mut Vec<bool>, visits: &mut Vec<Visit>| {
        // (span, next child to enter)
        let mut stack: Vec<(usize, usize)> = Vec::new();
        if seen[start] {
            return;
        }
        seen[start] = true;
        visits.push(Visit::Enter(start));
        stack.push((start, 0));
        while let Some((span, next)) = stack.last_mut() {
            match children[*span].get(*next) {
                Some(&c) => {
                    *next += 1;
                    if !seen[c] {
                        seen[c] = true;
                        visits.push(Visit::Enter(c));
                        stack.push((c, 0));
                    }
                }
                None => {
                    visits.push(Visit::Exit);
                    stack.pop();
                }
            }
        }
    };
    for &r in roots {
        walk(r, &mut seen, &mut visits);
    }
    let mut cycles = false;
    for i in 0..n {
        if !seen[i] {
            cycles = true;
            walk(i, &mut seen, &mut visits);
        }
    }
    Order { visits, cycles }
}

/// Whether a call of the trace has no span with a run id around it (itself included).
fn needs_trace_run(spans: &[Stored], visits: &[Visit], call_name: &str) -> bool {
    let has_run_id = |s: &Stored| s.fields.iter().any(|(k, _)| *k == "run_id");
    // How many spans with a run id are open around the current one.
    let mut open: Vec<bool> = Vec::new();
    let mut runs = 0usize;
    for v in visits {
        match *v {
            Visit::Enter(i) => {
                let s = &spans[i];
                let run = has_run_id(s);
                if !run && runs == 0 && calls(s, call_name) {
                    return true;
                }
                runs += usize::from(run);
                open.push(run);
            }
            Visit::Exit => {
                if open.pop() == Some(true) {
                    runs -= 1;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_of_parents_is_walked_once() {
        // 0 is the root; 1 and 2 name each other as parents.
        let children = vec![vec![], vec![2], vec![1]];
        let o = depth_first(&[0], &children, 3);
        assert!(o.cycles);
        assert_eq!(
            o.visits,
            [
                Visit::Enter(0),
                Visit::Exit,
                Visit::Enter(1),
                Visit::Enter(2),
                Visit::Exit,
                Visit::Exit
            ]
        );
    }

    #[test]
    fn trace_ids_are_lowercase_hex() {
        assert_eq!(hex(&[0, 1, 0xab, 0xff]), "0001abff");
    }
}
