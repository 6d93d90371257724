//! Prices per token, and the cost of a call.
//!
//! A model with no price gives no cost: never a made-up number, never $0.

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::{Arc, OnceLock};

use crate::record::Tokens;

/// USD per token for one model. Rates left `None` fall back to the plain input or output rate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelPrice {
    /// USD per input token.
    pub input_per_token: f64,
    /// USD per output token.
    pub output_per_token: f64,
    /// USD per input token read from the cache.
    pub cache_read_per_token: Option<f64>,
    /// USD per input token written to the cache.
    pub cache_write_per_token: Option<f64>,
    /// USD per reasoning token.
    pub reasoning_per_token: Option<f64>,
}

impl ModelPrice {
    /// A price from USD per million input and output tokens.
    pub fn per_million(input: f64, output: f64) -> Self {
        Self {
            input_per_token: input / 1e6,
            output_per_token: output / 1e6,
            ..Self::default()
        }
    }

    /// The cost of `tokens` (OpenTelemetry semantics: cache counts are part of input,
    /// reasoning part of output, each priced at its own rate).
    pub fn cost(&self, tokens: &Tokens) -> f64 {
        let cached = tokens.cache_read.saturating_add(tokens.cache_write);
        let plain_input = tokens.input.saturating_sub(cached);
        let plain_output = tokens.output.saturating_sub(tokens.reasoning);
        plain_input as f64 * self.input_per_token
            + tokens.cache_read as f64 * self.cache_read_per_token.unwrap_or(self.input_per_token)
            + tokens.cache_write as f64 * self.cache_write_per_token.unwrap_or(self.input_per_token)
            + plain_output as f64 * self.output_per_token
            + tokens.reasoning as f64 * self.reasoning_per_token.unwrap_or(self.output_per_token)
    }
}

/// Prices by model name.
#[derive(Clone, Debug, Default)]
pub struct PriceTable {
    models: HashMap<String, ModelPrice>,
    version: OnceLock<Arc<str>>,
}

impl PriceTable {
    /// An empty table: every call is unpriced.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a model's price.
    pub fn insert(&mut self, model: impl Into<String>, price: ModelPrice) -> &mut Self {
        self.models.insert(model.into(), price);
        self.version = OnceLock::new();
        self
    }

    /// Adds a model's price, builder style.
    pub fn with(mut self, model: impl Into<String>, price: ModelPrice) -> Self {
        self.insert(model, price);
        self
    }

    /// The price of `model`, if the table has it.
    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        self.models.get(model)
    }

    /// How many models the table prices.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether the table prices nothing.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// The cost of a call, or `None` if the model has no price.
    pub fn cost(&self, model: &str, tokens: &Tokens) -> Option<f64> {
        self.get(model).map(|p| p.cost(tokens))
    }

    /// A short stable hash of the table's content (`prices-` and 8 hex digits), written on
    /// every call line as `price_version` so history can be re-priced later.
    pub fn version(&self) -> Arc<str> {
        self.version
            .get_or_init(|| {
                let mut names: Vec<_> = self.models.keys().collect();
                names.sort();
                let mut h = Fnv1a::default();
                for name in names {
                    h.write(name.as_bytes());
                    h.write_u8(0);
                    if let Some(p) = self.models.get(name) {
                        for rate in [
                            Some(p.input_per_token),
                            Some(p.output_per_token),
                            p.cache_read_per_token,
                            p.cache_write_per_token,
                            p.reasoning_per_token,
                        ] {
                            h.write_u64(rate.map_or(u64::MAX, f64::to_bits));
                        }
                    }
                }
                Arc::from(format!("prices-{:08x}", h.finish() as u32))
            })
            .clone()
    }
}

/// FNV-1a: stable across Rust versions and platforms, unlike `DefaultHasher`.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_and_reasoning_are_priced_apart() {
        let p = ModelPrice {
            input_per_token: 3e-6,
            output_per_token: 15e-6,
            cache_read_per_token: Some(0.3e-6),
            cache_write_per_token: Some(3.75e-6),
            reasoning_per_token: None,
        };
        let t = Tokens {
            input: 1000,
            output: 200,
            total: 1200,
            cache_read: 600,
            cache_write: 100,
            reasoning: 50,
        };
        let want = 300.0 * 3e-6 + 600.0 * 0.3e-6 + 100.0 * 3.75e-6 + 200.0 * 15e-6;
        assert!((p.cost(&t) - want).abs() < 1e-12);
    }

    #[test]
    fn version_is_stable_and_content_sensitive() {
        let a = PriceTable::new().with("m", ModelPrice::per_million(1.0, 2.0));
        let b = PriceTable::new().with("m", ModelPrice::per_million(1.0, 2.0));
        let c = PriceTable::new().with("m", ModelPrice::per_million(1.0, 3.0));
        assert_eq!(a.version(), b.version());
        assert_ne!(a.version(), c.version());
        assert_eq!(a.version().len(), "prices-".len() + 8);
    }
}
