//! The budgets a call is checked against, and what a crossing sets off.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::budget::{BudgetEvent, BudgetEventKind, Budgets};
use crate::record::CallRecord;

/// The `on_budget` callback.
pub(crate) type BudgetCallback = Arc<dyn Fn(&BudgetEvent) + Send + Sync>;

/// Budgets, their callback and counter.
pub(crate) struct Budgeting {
    pub(crate) budgets: Budgets,
    pub(crate) on_budget: Option<BudgetCallback>,
    /// `llm.budget.exceeded`, when there is a meter.
    pub(crate) counter: Option<opentelemetry::metrics::Counter<u64>>,
    pub(crate) callback_panics: AtomicU64,
}

impl Budgeting {
    /// Adds the call to every budget; the crossings it caused.
    pub(super) fn check(&self, rec: &CallRecord) -> Vec<BudgetEvent> {
        if self.budgets.is_empty() {
            Vec::new()
        } else {
            self.budgets.add(rec)
        }
    }

    /// A budget crossing: the counter and the callback (after every lock of ours is
    /// released; a panic in it is caught and reported, never unwound into the caller). Its
    /// line follows the call's.
    pub(super) fn notify(&self, event: &BudgetEvent) {
        if event.event == BudgetEventKind::Exceeded {
            if let Some(counter) = &self.counter {
                counter.add(
                    1,
                    &[opentelemetry::KeyValue::new(
                        "llm.budget.name",
                        event.budget.clone(),
                    )],
                );
            }
        }
        if let Some(cb) = &self.on_budget {
            let cb = cb.clone();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(event)));
            if outcome.is_err() && self.callback_panics.fetch_add(1, Ordering::Relaxed) == 0 {
                eprintln!("tracing-llm-usage: the on_budget callback panicked; the panic was caught (further ones are only counted)");
            }
        }
    }
}
