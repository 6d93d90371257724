//! The price memo: which table key a model name resolved to, shared by every thread
//! ([`Memo`]), and each thread's most recent lookups by the addresses of a call's interned
//! names (`RECENT`).
//!
//! A call's model and provider are interned, and a thread sees the same few again and again:
//! comparing three addresses replaces hashing the model name (and, for names that are not
//! table keys, the memo's lock and hash). Each entry holds the names and the table's memo it
//! was keyed by, so no address is reused while the entry lives; a table that
//! changes gets a new memo, so an entry never outlives the prices it copied.

use std::cell::RefCell;
use std::sync::Arc;

use super::rates::Resolved;
use super::{ModelPrice, PriceTable, ServiceTier};
use crate::name::Name;
use crate::record::Tokens;
use hashbrown::HashMap;
use std::sync::RwLock;

/// Memo of names that did not match exactly: (provider, model) → table key, or no match.
pub(super) type Memo = RwLock<HashMap<MemoKey, Option<Box<str>>>>;

#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct MemoKey {
    pub(super) provider: Option<Box<str>>,
    pub(super) model: Box<str>,
}

/// A borrowed [`MemoKey`] (same derived hash), so a memo hit allocates nothing.
#[derive(Hash)]
pub(super) struct MemoRef<'a> {
    pub(super) provider: Option<&'a str>,
    pub(super) model: &'a str,
}

impl hashbrown::Equivalent<MemoKey> for MemoRef<'_> {
    fn equivalent(&self, k: &MemoKey) -> bool {
        self.provider == k.provider.as_deref() && self.model == &*k.model
    }
}
pub(super) const MEMO_CAP: usize = 4096;

const SLOTS: usize = 8;

struct Entry {
    table: Arc<Memo>,
    model: Name,
    provider: Option<Name>,
    /// The model's price, or `None` when the table has none for it.
    price: Option<ModelPrice>,
    /// Its standard rates below its lowest long-context threshold, resolved: most calls.
    standard: Option<(Resolved, u64)>,
}

thread_local! {
    static RECENT: RefCell<[Option<Entry>; SLOTS]> = const { RefCell::new([const { None }; SLOTS]) };
}

fn same(a: Option<&Name>, b: Option<&Name>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Name::same(a, b),
        (None, None) => true,
        _ => false,
    }
}

impl PriceTable {
    /// [`PriceTable::cost`] for interned names, with the lookup remembered per thread.
    pub(crate) fn cost_interned(
        &self,
        model: &Name,
        provider: Option<&Name>,
        tokens: &Tokens,
        cache_write_1h: u64,
        tier: ServiceTier,
        modality: Option<&crate::record::ModalityTokens>,
    ) -> Option<f64> {
        let slot = (model.addr() >> 4) % SLOTS;
        let remembered = RECENT.try_with(|recent| {
            let mut recent = recent.try_borrow_mut().ok()?;
            let known = recent[slot].as_ref().is_some_and(|e| {
                Arc::ptr_eq(&e.table, &self.memo)
                    && Name::same(&e.model, model)
                    && same(e.provider.as_ref(), provider)
            });
            if !known {
                let price = self
                    .lookup(model, provider.map(|p| &**p))
                    .map(|(_, p)| p.clone());
                recent[slot] = Some(Entry {
                    table: self.memo.clone(),
                    model: model.clone(),
                    provider: provider.cloned(),
                    standard: price.as_ref().and_then(ModelPrice::standard_resolved),
                    price,
                });
            }
            let entry = recent[slot].as_ref()?;
            if let Some((rates, lowest)) = &entry.standard {
                if tier == ServiceTier::Standard && tokens.input <= *lowest && modality.is_none() {
                    return Some(rates.cost(tokens, cache_write_1h));
                }
            }
            Some(
                entry
                    .price
                    .as_ref()
                    .and_then(|p| p.cost_with_modality(tokens, cache_write_1h, tier, modality)),
            )
        });
        match remembered {
            Ok(Some(cost)) => cost,
            // Thread-local storage gone (thread exit) or in use: the plain lookup.
            _ => self.cost(model, provider.map(|p| &**p), tokens, cache_write_1h, tier),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::Rates;

    fn tokens(input: u64, output: u64) -> Tokens {
        Tokens {
            input,
            output,
            total: input + output,
            ..Tokens::default()
        }
    }

    fn cost(t: &PriceTable, model: &Name, provider: Option<&Name>) -> Option<f64> {
        let c = t.cost_interned(
            model,
            provider,
            &tokens(1_000_000, 0),
            0,
            ServiceTier::Standard,
            None,
        );
        assert_eq!(
            c,
            t.cost(
                model,
                provider.map(|p| &**p),
                &tokens(1_000_000, 0),
                0,
                ServiceTier::Standard
            ),
            "remembered and plain lookups agree"
        );
        c
    }

    #[test]
    fn a_changed_or_other_table_is_never_answered_from_memory() {
        let m = Name::from("m");
        let a = PriceTable::new().with("m", ModelPrice::per_million(1.0, 0.0));
        assert_eq!(cost(&a, &m, None), Some(1.0));
        assert_eq!(cost(&a, &m, None), Some(1.0));
        // A clone shares the memo until it changes; then it prices anew.
        let b = a.clone().with("m", ModelPrice::per_million(2.0, 0.0));
        assert_eq!(cost(&b, &m, None), Some(2.0));
        assert_eq!(cost(&a, &m, None), Some(1.0));
        let empty = PriceTable::new();
        assert_eq!(cost(&empty, &m, None), None);
        // The same text in another string, and a provider, are other keys with the same answer.
        let m2 = Name::from("m");
        let p = crate::intern::intern("openai");
        assert_eq!(cost(&a, &m2, Some(&p)), Some(1.0));
        assert_eq!(cost(&a, &Name::from("unknown"), Some(&p)), None);
        // More names than slots: every answer still right.
        for i in 0..40u32 {
            let name = Name::from(format!("n{}", i % 12));
            let t = PriceTable::new().with(&*name, ModelPrice::per_million(f64::from(i), 0.0));
            assert_eq!(cost(&t, &name, None), Some(f64::from(i)));
        }
    }

    #[test]
    fn the_remembered_standard_rates_agree_with_the_cards_at_every_edge() {
        let model = crate::intern::intern("long-context-model");
        let price = ModelPrice::new(Rates {
            input: Some(3e-6),
            output: Some(15e-6),
            cache_read: Some(0.3e-6),
            cache_write: Some(3.75e-6),
            cache_write_1h: Some(6e-6),
            reasoning: None,
            ..Rates::default()
        })
        .with_rates(
            200_000,
            ServiceTier::Standard,
            Rates::per_million(6.0, 22.5),
        )
        .with_rates(0, ServiceTier::Batch, Rates::per_million(1.5, 7.5));
        let table = PriceTable::new().with("long-context-model", price);
        for input in [0, 1, 199_999, 200_000, 200_001, 1_000_000] {
            for tier in [ServiceTier::Standard, ServiceTier::Batch, ServiceTier::Flex] {
                let t = Tokens {
                    input,
                    output: 5_000,
                    cache_read: input / 4,
                    cache_write: input / 8,
                    reasoning: 1_000,
                    ..Tokens::default()
                };
                let plain = table.cost(&model, None, &t, input / 16, tier);
                // Twice: the first call fills the thread's entry, the second is answered by it.
                for _ in 0..2 {
                    assert_eq!(
                        table.cost_interned(&model, None, &t, input / 16, tier, None),
                        plain,
                        "input {input}, {tier:?}"
                    );
                }
            }
        }
        // Below the threshold at the standard rates; above it, the long-context input rate
        // for all input tokens and the base card's cache rates.
        let t = |input| Tokens {
            input,
            output: 1_000_000,
            ..Tokens::default()
        };
        let below = table.cost_interned(&model, None, &t(200_000), 0, ServiceTier::Standard, None);
        assert!((below.unwrap() - (0.6 + 15.0)).abs() < 1e-9, "{below:?}");
        let above =
            table.cost_interned(&model, None, &t(1_000_000), 0, ServiceTier::Standard, None);
        assert!((above.unwrap() - (6.0 + 22.5)).abs() < 1e-9, "{above:?}");
    }
}
