//! Pricing a call: the provider's reported cost, else the price table's; a model without a
//! price is remembered for the handle and reported once.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};

use crate::name::Name;
use crate::pricing::{PriceTable, ServiceTier};
use crate::record::{CallRecord, CostSource};

/// The layer's price table and what it could not price.
pub(crate) struct Pricer {
    pub(crate) prices: PriceTable,
    /// Models seen without a price, for [`crate::UsageHandle`].
    pub(crate) unpriced: RwLock<BTreeSet<Arc<str>>>,
    /// The table's version, on every line.
    pub(crate) price_version: Option<Name>,
}

impl Pricer {
    /// Sets the record's cost, its source and the table's version.
    pub(super) fn price(&self, rec: &mut CallRecord, provider_cost: Option<f64>) {
        rec.price_version = self.price_version.clone();
        if let Some(c) = provider_cost {
            rec.cost_usd = Some(c);
            rec.cost_source = CostSource::Provider;
            return;
        }
        if self.prices.is_empty() {
            // Pricing turned off (`.prices(PriceTable::new())`): nothing to look up or warn about.
            rec.cost_source = CostSource::Unpriced;
            return;
        }
        let tier = rec
            .service_tier
            .as_deref()
            .map_or(ServiceTier::Standard, ServiceTier::from_field);
        let cost = rec.model.as_ref().and_then(|model| {
            self.prices.cost_interned(
                model,
                rec.provider.as_ref(),
                &rec.tokens,
                rec.cache_write_1h,
                tier,
                rec.modality.as_deref(),
            )
        });
        match cost {
            Some(c) => {
                rec.cost_usd = Some(c);
                rec.cost_source = CostSource::Local;
                if tier != ServiceTier::Standard {
                    self.note_tier(rec, tier);
                }
            }
            None => {
                rec.cost_source = CostSource::Unpriced;
                self.note_unpriced(rec.model.as_deref());
            }
        }
    }

    /// Says on the line when a tier's price used a rate the table lacks for the tier.
    fn note_tier(&self, rec: &mut CallRecord, tier: ServiceTier) {
        let Some(model) = rec.model.as_deref() else {
            return;
        };
        let note = self
            .prices
            .lookup(model, rec.provider.as_deref())
            .and_then(|(_, p)| p.tier_note(&rec.tokens, rec.cache_write_1h, tier));
        if let Some(note) = note {
            rec.warnings.push(note);
        }
    }

    /// Remembers an unpriced model for the handle, and warns once per model per process.
    fn note_unpriced(&self, model: Option<&str>) {
        let model = model.unwrap_or("(no model)");
        let known = self
            .unpriced
            .read()
            .map(|set| set.contains(model))
            .unwrap_or(true);
        if known {
            return;
        }
        if let Ok(mut set) = self.unpriced.write() {
            set.insert(Arc::from(model));
        }
        static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
        let first = WARNED
            .lock()
            .map(|mut w| w.insert(model.to_owned()))
            .unwrap_or(false);
        if first {
            // stderr, not a tracing event: an event from inside the layer would re-enter it.
            eprintln!(
                "tracing-llm-usage: no price for model \"{}\"; its calls are logged with \
                 cost_usd null (add it with a price override)",
                crate::inert::terminal(model)
            );
        }
    }
}
