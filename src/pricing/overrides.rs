//! The small override format: per-million prices for private or fine-tuned models, in TOML.
//!
//! ```toml
//! # USD per million tokens
//! [models."acme-ft-7b"]
//! input = 0.8
//! output = 3.2
//! cache_read = 0.08        # optional, like cache_write, cache_write_1h, reasoning
//!
//! [models."acme-ft-7b".batch]   # optional tiers: batch, flex, priority
//! input = 0.4
//! output = 1.6
//!
//! [[models."acme-ft-7b".long_context]]   # optional: rates above a whole-input size
//! above_tokens = 200000
//! input = 1.6
//! output = 6.4
//! ```

use std::collections::BTreeMap;

use hashbrown::HashMap;

use serde::Deserialize;

use super::rates::{ModelPrice, Rates, ServiceTier};
use super::PriceError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    models: BTreeMap<String, Entry>,
}

/// USD per million tokens; in a tier or long-context table every field is optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PerMillion {
    input: Option<f64>,
    output: Option<f64>,
    cache_read: Option<f64>,
    cache_write: Option<f64>,
    cache_write_1h: Option<f64>,
    reasoning: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    input: f64,
    output: f64,
    cache_read: Option<f64>,
    cache_write: Option<f64>,
    cache_write_1h: Option<f64>,
    reasoning: Option<f64>,
    batch: Option<PerMillion>,
    flex: Option<PerMillion>,
    priority: Option<PerMillion>,
    #[serde(default)]
    long_context: Vec<LongContext>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LongContext {
    above_tokens: u64,
    input: Option<f64>,
    output: Option<f64>,
    cache_read: Option<f64>,
    cache_write: Option<f64>,
    cache_write_1h: Option<f64>,
    reasoning: Option<f64>,
}

fn rate(model: &str, field: &str, per_million: Option<f64>) -> Result<Option<f64>, PriceError> {
    match per_million {
        None => Ok(None),
        Some(v) if v.is_finite() && v >= 0.0 => Ok(Some(v / 1e6)),
        Some(v) => Err(PriceError::Invalid {
            model: model.to_owned(),
            why: format!("{field} = {v} is not a price"),
        }),
    }
}

fn rates(model: &str, p: PerMillion) -> Result<Rates, PriceError> {
    Ok(Rates {
        input: rate(model, "input", p.input)?,
        output: rate(model, "output", p.output)?,
        cache_read: rate(model, "cache_read", p.cache_read)?,
        cache_write: rate(model, "cache_write", p.cache_write)?,
        cache_write_1h: rate(model, "cache_write_1h", p.cache_write_1h)?,
        reasoning: rate(model, "reasoning", p.reasoning)?,
        ..Rates::default()
    })
}

pub(crate) fn parse(text: &str) -> Result<HashMap<Box<str>, ModelPrice>, PriceError> {
    let file: File = toml::from_str(text).map_err(|e| PriceError::Toml(e.to_string()))?;
    let mut out = HashMap::with_capacity(file.models.len());
    for (name, e) in file.models {
        let base = PerMillion {
            input: Some(e.input),
            output: Some(e.output),
            cache_read: e.cache_read,
            cache_write: e.cache_write,
            cache_write_1h: e.cache_write_1h,
            reasoning: e.reasoning,
        };
        let mut price = ModelPrice::new(rates(&name, base)?);
        for (tier, p) in [
            (ServiceTier::Batch, e.batch),
            (ServiceTier::Flex, e.flex),
            (ServiceTier::Priority, e.priority),
        ] {
            if let Some(p) = p {
                price = price.with_rates(0, tier, rates(&name, p)?);
            }
        }
        for lc in e.long_context {
            let p = PerMillion {
                input: lc.input,
                output: lc.output,
                cache_read: lc.cache_read,
                cache_write: lc.cache_write,
                cache_write_1h: lc.cache_write_1h,
                reasoning: lc.reasoning,
            };
            price = price.with_rates(lc.above_tokens, ServiceTier::Standard, rates(&name, p)?);
        }
        out.insert(name.into_boxed_str(), price);
    }
    Ok(out)
}
