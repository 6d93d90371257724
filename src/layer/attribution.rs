//! Attribution: which run, step, task and agent a call belongs to, from the spans around it;
//! the state the layer keeps in the extensions of the spans it follows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tracing_core::Subscriber;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::attributes::{AttributeKeys, Attributes, Gather};
use crate::fields::{CallFields, ScopeFields};
use crate::ledger::RunCell;
use crate::name::Name;
use crate::record::Tokens;

/// An `llm_call` span's fields so far and when it opened.
pub(super) struct CallState {
    pub(super) fields: CallFields,
    pub(super) started: Instant,
    /// What the call spans inside this one counted (one provider request is counted once,
    /// by the innermost span that carries its usage).
    pub(super) inner: Tokens,
    pub(super) inner_calls: u32,
    /// The OpenTelemetry trace and span ids of this span (feature `trace-context`).
    pub(super) trace: Option<([u8; 16], [u8; 8])>,
}

/// A watched span already reported as uncounted.
pub(super) struct Uncounted;

/// A span that hands `run_id`/`step`/`task`/`agent` down; `run` is set when it is a run.
pub(super) struct ScopeState {
    pub(super) fields: ScopeFields,
    pub(super) run: Option<Arc<RunCell>>,
    /// The run id was made for an agent whose name was not yet recorded: it is made again,
    /// naming the agent, when the name comes (genai records it after the span opens).
    pub(super) unnamed_agent_run: bool,
    /// The span declares `run_id` but has not recorded it: its run waits for it.
    pub(super) waiting: bool,
}

/// What a closing call span counts of its own, given the call spans inside it.
pub(super) enum Own {
    /// These tokens (all of its usage, or what its inner spans did not count).
    Tokens(Tokens),
    /// Nothing: a wrapper (an agent's `chat` around its turns, a user's `llm_call` around a
    /// client's span) that only handed its step, task and agent down.
    Wrapper,
    /// Nothing: it recorded the same usage its inner spans counted.
    Duplicate,
}

/// One provider request is counted once, by the innermost span that carries its usage; a
/// span with more than its inner spans counted gets the rest, and a warning on its line.
pub(super) fn own_tokens(state: &mut CallState) -> Own {
    let f = &mut state.fields;
    let tokens = f.tokens();
    if state.inner_calls == 0 {
        return Own::Tokens(tokens);
    }
    if !f.has_usage() {
        return Own::Wrapper;
    }
    let (inner, n) = (state.inner, state.inner_calls);
    let rest = tokens_beyond(&tokens, &inner);
    if rest == Tokens::default() {
        return Own::Duplicate;
    }
    f.warnings.push(format!(
        "{} input and {} output tokens of this span were counted by {n} call span(s) inside \
         it and are not counted again",
        inner.input, inner.output
    ));
    Own::Tokens(rest)
}

/// Where a closing call belongs: its own fields, else those of the nearest enclosing call
/// and scope spans. Enclosing call spans learn what this one counted, so that they do not
/// count it again.
pub(super) struct Attribution {
    pub(super) step: Option<Name>,
    pub(super) task: Option<Name>,
    pub(super) agent: Option<Name>,
    pub(super) run_id: Option<Arc<str>>,
    /// The run span's aggregate, when the call is inside one.
    pub(super) cell: Option<Arc<RunCell>>,
    /// The builder's attributes: the call's own values, else its nearest ancestors'.
    pub(super) attributes: Attributes,
}

/// Walks the call's ancestors (its own extensions must not be held).
pub(super) fn attribute<S>(
    span: &SpanRef<'_, S>,
    f: &mut CallFields,
    tokens: &Tokens,
    keys: &AttributeKeys,
) -> Attribution
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut attributes = Gather::new(keys);
    attributes.take_from(&f.attributes);
    let mut step = f.step.take();
    let mut task = f.task.take();
    let mut agent = f.agent();
    let mut run_id = f.run_id.take();
    let own_run_id = run_id.is_some();
    let mut cell: Option<Arc<RunCell>> = None;
    let mut run_found = false;
    let mut next = span.parent();
    while let Some(ancestor) = next {
        next = ancestor.parent();
        let ext = ancestor.extensions();
        if let Some(outer) = ext.get::<CallState>() {
            // An enclosing call span: its context applies, and it learns what was
            // counted inside it.
            let o = &outer.fields;
            if step.is_none() {
                step.clone_from(&o.step);
            }
            if task.is_none() {
                task.clone_from(&o.task);
            }
            if agent.is_none() {
                agent = o.agent();
            }
            if run_id.is_none() {
                run_id.clone_from(&o.run_id);
            }
            attributes.take_from(&o.attributes);
            drop(ext);
            if let Some(outer) = ancestor.extensions_mut().get_mut::<CallState>() {
                outer.inner = tokens_sum(&outer.inner, tokens);
                outer.inner_calls = outer.inner_calls.saturating_add(1);
            }
            continue;
        }
        let Some(scope) = ext.get::<ScopeState>() else {
            continue;
        };
        if step.is_none() {
            step.clone_from(&scope.fields.step);
        }
        if task.is_none() {
            task.clone_from(&scope.fields.task);
        }
        if agent.is_none() {
            agent = scope.fields.agent().cloned();
        }
        attributes.take_from(&scope.fields.attributes);
        if !run_found {
            if let Some(run) = &scope.run {
                run_found = true;
                // A run id on the call itself names its run; an enclosing run span with
                // another id is not it.
                if !own_run_id || scope.fields.run_id == run_id {
                    run_id.clone_from(&scope.fields.run_id);
                    cell = Some(run.clone());
                }
            } else if run_id.is_none() {
                run_id.clone_from(&scope.fields.run_id);
            }
        }
        if run_found && step.is_some() && task.is_some() && agent.is_some() && attributes.done() {
            break;
        }
    }

    Attribution {
        step,
        task,
        agent,
        run_id,
        cell,
        attributes: attributes.finish(&mut f.warnings),
    }
}

/// A scope span's attributes: its own values, else its nearest ancestors' (a run summary
/// carries its run span's).
pub(super) fn scope_attributes<S>(
    span: &SpanRef<'_, S>,
    own: &ScopeFields,
    keys: &AttributeKeys,
) -> Attributes
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut gather = Gather::new(keys);
    gather.take_from(&own.attributes);
    let mut next = span.parent();
    while let Some(ancestor) = next {
        if gather.done() {
            break;
        }
        next = ancestor.parent();
        let ext = ancestor.extensions();
        if let Some(scope) = ext.get::<ScopeState>() {
            gather.take_from(&scope.fields.attributes);
        } else if let Some(call) = ext.get::<CallState>() {
            gather.take_from(&call.fields.attributes);
        }
    }
    gather.finish(&mut Vec::new())
}

/// Whether a span has a run among its ancestors (a run span, or a span naming a `run_id`).
pub(super) fn inside_run<S>(span: &SpanRef<'_, S>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut next = span.parent();
    while let Some(ancestor) = next {
        next = ancestor.parent();
        let ext = ancestor.extensions();
        if ext
            .get::<ScopeState>()
            .is_some_and(|s| s.run.is_some() || s.fields.run_id.is_some())
            || ext
                .get::<CallState>()
                .is_some_and(|c| c.fields.run_id.is_some())
        {
            return true;
        }
    }
    false
}

/// Run ids the layer makes (for agent invocations outside any run, named by the agent, and
/// for runs that never record their id, `run-…`): unique in the process, and across restarts
/// by the process's start time.
pub(super) fn made_run_id(agent: Option<&str>) -> Arc<str> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| crate::record::Timestamp::now().unix_ms());
    let n = SEQ.fetch_add(1, Ordering::Relaxed) + 1;
    Arc::from(format!("{}-{start:x}-{n}", agent.unwrap_or("invoke_agent")))
}

/// Each count of `tokens` beyond what `inner` already counted (saturating at zero).
fn tokens_beyond(tokens: &Tokens, inner: &Tokens) -> Tokens {
    Tokens {
        input: tokens.input.saturating_sub(inner.input),
        output: tokens.output.saturating_sub(inner.output),
        total: tokens.total.saturating_sub(inner.total),
        cache_read: tokens.cache_read.saturating_sub(inner.cache_read),
        cache_write: tokens.cache_write.saturating_sub(inner.cache_write),
        reasoning: tokens.reasoning.saturating_sub(inner.reasoning),
    }
}

/// `a + b`, count by count (saturating).
fn tokens_sum(a: &Tokens, b: &Tokens) -> Tokens {
    Tokens {
        input: a.input.saturating_add(b.input),
        output: a.output.saturating_add(b.output),
        total: a.total.saturating_add(b.total),
        cache_read: a.cache_read.saturating_add(b.cache_read),
        cache_write: a.cache_write.saturating_add(b.cache_write),
        reasoning: a.reasoning.saturating_add(b.reasoning),
    }
}
