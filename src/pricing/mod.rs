//! Prices per token, and the cost of a call.
//!
//! A [`PriceTable`] comes bundled ([`PriceTable::bundled`], derived from LiteLLM's price file
//! by `scripts/bundle_prices.py`), from LiteLLM's `model_prices_and_context_window.json` as is
//! ([`PriceTable::from_litellm_json`]), or from a small TOML file of per-million prices
//! ([`PriceTable::from_toml_str`]); tables merge, later entries winning.
//!
//! Model names are matched with the provider's LiteLLM prefix first (`gemini/`, `azure/`,
//! `xai/`, `bedrock/`…: the provider's own entry, where the bare name may be another
//! provider's), then as given, then without a prefix the caller gave, without a Bedrock
//! region prefix (`us.`, `eu.`, `apac.`…), and without a date suffix
//! (`claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`), each form with and without the
//! provider's prefix. A model that matches nothing has no cost: never a made-up number,
//! never $0.
//!
//! Overrides win by specificity: entries added on top of a table ([`PriceTable::merge`],
//! [`PriceTable::insert`], a TOML file given to the builder or to `llm-usage --prices`) are
//! tried before the table under them, each with every rule above. An override for
//! `claude-sonnet-4-5` therefore also prices `claude-sonnet-4-5-20250929`, though the table
//! under it has that dated name, unless the overrides name the dated one too.

mod litellm;
mod memo;
mod overrides;
mod rates;
mod sum;

use memo::{Memo, MemoKey, MemoRef, MEMO_CAP};

use hashbrown::HashMap;
use std::hash::Hasher;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, OnceLock};

pub use rates::{ModelPrice, Rates, ServiceTier};
pub use sum::CostSum;

use crate::record::Tokens;

/// Why a price table could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PriceError {
    /// The file could not be read.
    #[error("cannot read the price file: {0}")]
    Io(#[from] std::io::Error),
    /// The LiteLLM file is not JSON (or not an object of models).
    #[error("the LiteLLM price file is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The override file is not valid TOML of the expected shape.
    #[error("the price override file is invalid: {0}")]
    Toml(String),
    /// A price file could not be loaded: its path, and why.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: Box<PriceError>,
    },
    /// A price in the override file is negative or not finite.
    #[error("model {model}: {why}")]
    Invalid {
        /// The model.
        model: String,
        /// What is wrong.
        why: String,
    },
}

const BUNDLED: &str = include_str!("bundled.json");

/// The environment variable naming a price file for [`PriceTable::from_env`].
pub const PRICES_ENV: &str = "LLM_USAGE_PRICES";

/// Prices by model name. Cheap to clone (shared), safe to use from any thread.
#[derive(Clone, Debug, Default)]
pub struct PriceTable {
    models: Arc<HashMap<Box<str>, ModelPrice>>,
    /// The layer of each entry added on top of the loaded table (absent: layer 0); a name
    /// resolves to its match in the highest layer.
    layers: Arc<HashMap<Box<str>, u32>>,
    /// The highest layer in `layers`.
    top: u32,
    date: Option<Arc<str>>,
    skipped: usize,
    version: Arc<OnceLock<Arc<str>>>,
    memo: Arc<Memo>,
}

impl PriceTable {
    /// An empty table: every call without a provider-reported cost is unpriced.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bundled table: current chat models of OpenAI, Anthropic, Google Gemini/Vertex, xAI,
    /// Mistral, DeepSeek and AWS Bedrock, from LiteLLM's price file of [`date`](Self::date).
    pub fn bundled() -> Self {
        static TABLE: OnceLock<PriceTable> = OnceLock::new();
        TABLE
            .get_or_init(|| {
                // The bundled file is checked by the tests; should it ever fail to parse, an
                // empty table (everything unpriced) is the honest fallback.
                Self::from_litellm_bytes(BUNDLED.as_bytes()).unwrap_or_default()
            })
            .clone()
    }

    /// Loads LiteLLM's `model_prices_and_context_window.json` as is, from a reader. Entries not
    /// priced per token are left out; odd ones are skipped and counted ([`skipped`](Self::skipped)).
    ///
    /// # Errors
    ///
    /// [`PriceError::Io`] if reading fails, [`PriceError::Json`] if it is not a JSON object.
    pub fn from_litellm_json(mut reader: impl Read) -> Result<Self, PriceError> {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes)?;
        Self::from_litellm_bytes(&bytes)
    }

    /// [`from_litellm_json`](Self::from_litellm_json) from a file path.
    ///
    /// # Errors
    ///
    /// As [`from_litellm_json`](Self::from_litellm_json).
    pub fn from_litellm_path(path: impl AsRef<Path>) -> Result<Self, PriceError> {
        Self::from_litellm_bytes(&std::fs::read(path)?)
    }

    fn from_litellm_bytes(bytes: &[u8]) -> Result<Self, PriceError> {
        let loaded = litellm::load(bytes)?;
        Ok(Self {
            models: Arc::new(loaded.models),
            date: loaded.date.map(Arc::from),
            skipped: loaded.skipped,
            ..Self::default()
        })
    }

    /// Loads the TOML override format (USD per million tokens; see the `overrides` example in
    /// the README).
    ///
    /// # Errors
    ///
    /// [`PriceError::Toml`] for malformed TOML or unknown keys, [`PriceError::Invalid`] for a
    /// negative or non-finite price.
    pub fn from_toml_str(text: &str) -> Result<Self, PriceError> {
        Ok(Self {
            models: Arc::new(overrides::parse(text)?),
            ..Self::default()
        })
    }

    /// [`from_toml_str`](Self::from_toml_str) from a file path.
    ///
    /// # Errors
    ///
    /// As [`from_toml_str`](Self::from_toml_str), and [`PriceError::Io`].
    pub fn from_toml_path(path: impl AsRef<Path>) -> Result<Self, PriceError> {
        Self::from_toml_str(&std::fs::read_to_string(path)?)
    }

    /// Loads a price file by its extension: `.toml` is the override format, anything else
    /// LiteLLM's JSON.
    ///
    /// # Errors
    ///
    /// As the loader chosen.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, PriceError> {
        let path = path.as_ref();
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Self::from_toml_path(path),
            _ => Self::from_litellm_path(path),
        }
    }

    /// The default table: the file named by the `LLM_USAGE_PRICES` environment variable when
    /// it is set (a `.toml` file of overrides on top of the bundled table, any other file
    /// LiteLLM's JSON as a whole table), else [`bundled`](Self::bundled). Operations refresh
    /// prices by pointing it at a newer `model_prices_and_context_window.json`, without a
    /// rebuild; every line names the table it was priced with (`price_version`).
    ///
    /// # Errors
    ///
    /// [`PriceError::File`] when the variable is set and its file cannot be loaded.
    pub fn from_env() -> Result<Self, PriceError> {
        match std::env::var_os(PRICES_ENV) {
            Some(path) if !path.is_empty() => Self::from_file_or_overrides(Path::new(&path)),
            _ => Ok(Self::bundled()),
        }
    }

    /// A `.toml` file merged over the bundled table, any other file a whole LiteLLM table; an
    /// error names the file.
    ///
    /// # Errors
    ///
    /// [`PriceError::File`] naming the file and what was wrong.
    pub fn from_file_or_overrides(path: &Path) -> Result<Self, PriceError> {
        let named = |e: PriceError| PriceError::File {
            path: path.display().to_string(),
            source: Box::new(e),
        };
        let table = Self::from_path(path).map_err(named)?;
        Ok(if path.extension().is_some_and(|e| e == "toml") {
            Self::bundled().merge(&table)
        } else {
            table
        })
    }

    fn changed(&mut self) {
        self.version = Arc::default();
        self.memo = Arc::default();
    }

    /// Adds (or replaces) a model's price, as an override: it wins over the table's entries
    /// for the same model's dated and prefixed names (see the module documentation).
    pub fn insert(&mut self, model: impl Into<String>, price: ModelPrice) -> &mut Self {
        let model = model.into().into_boxed_str();
        self.top = self.top.max(1);
        Arc::make_mut(&mut self.layers).insert(model.clone(), self.top);
        Arc::make_mut(&mut self.models).insert(model, price);
        self.changed();
        self
    }

    /// Adds a model's price, builder style.
    #[must_use]
    pub fn with(mut self, model: impl Into<String>, price: ModelPrice) -> Self {
        self.insert(model, price);
        self
    }

    /// Adds every model of `other` on top of this table (overrides on top of the bundled or
    /// LiteLLM table): each of `other`'s names wins over this table's entries for it and for
    /// its dated and prefixed names (see the module documentation).
    #[must_use]
    pub fn merge(mut self, other: &PriceTable) -> Self {
        let base = self.top + 1;
        let models = Arc::make_mut(&mut self.models);
        let layers = Arc::make_mut(&mut self.layers);
        for (k, v) in other.models.iter() {
            let layer = base + other.layers.get(k).copied().unwrap_or(0);
            self.top = self.top.max(layer);
            models.insert(k.clone(), v.clone());
            layers.insert(k.clone(), layer);
        }
        self.changed();
        self
    }

    fn layer(&self, key: &str) -> u32 {
        self.layers.get(key).copied().unwrap_or(0)
    }

    /// The price under exactly this name (no resolution rules, no layers).
    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        self.models.get(model)
    }

    /// The price of `model` as a provider names it, matched as the module documentation
    /// says; with the table key it matched.
    pub fn lookup(&self, model: &str, provider: Option<&str>) -> Option<(&str, &ModelPrice)> {
        // An exact name is the answer unless the provider has entries of its own (which come
        // first) or an override above it may match the name.
        if provider.and_then(litellm_prefix).is_none() {
            if let Some((k, v)) = self.models.get_key_value(model) {
                if self.layer(k) == self.top {
                    return Some((k, v));
                }
            }
        }
        let memo_ref = MemoRef { provider, model };
        if let Ok(memo) = self.memo.read() {
            if let Some(hit) = memo.get(&memo_ref) {
                return hit
                    .as_deref()
                    .and_then(|k| self.models.get_key_value(k))
                    .map(|(k, v)| (&**k, v));
            }
        }
        let key = self.resolve(model, provider).map(Box::from);
        if let Ok(mut memo) = self.memo.write() {
            if memo.len() >= MEMO_CAP {
                memo.clear();
            }
            let owned = MemoKey {
                provider: provider.map(Box::from),
                model: Box::from(model),
            };
            memo.insert(owned, key.clone());
        }
        key.and_then(|k| self.models.get_key_value(&*k))
            .map(|(k, v)| (&**k, v))
    }

    /// The key `model` resolves to: the first match in rule order within the highest layer
    /// that has one.
    fn resolve(&self, model: &str, provider: Option<&str>) -> Option<&str> {
        let prefix = provider.and_then(litellm_prefix);
        let unprefixed = model.split_once('/').map(|(_, m)| m);
        let unregioned = strip_region(model);
        let bases = [Some(model), unprefixed, unregioned];
        let mut best: Option<(&str, u32)> = None;
        let mut consider = |k: &str| {
            let layer = self.layer(k);
            if best.is_none_or(|(_, l)| layer > l) {
                best = self.models.get_key_value(k).map(|(k, _)| (&**k, layer));
            }
            best.is_some_and(|(_, l)| l == self.top)
        };
        for base in bases.into_iter().flatten() {
            let undated = strip_date(base);
            for name in [Some(base), undated].into_iter().flatten() {
                // The provider's own entry first: `gemini/x` for Gemini's API where the bare
                // `x` is Vertex AI's, `azure/x` for Azure where `x` is OpenAI's.
                if let Some(p) = prefix {
                    let prefixed = format!("{p}{name}");
                    if self.models.contains_key(prefixed.as_str()) && consider(&prefixed) {
                        return best.map(|(k, _)| k);
                    }
                }
                if self.models.contains_key(name) && consider(name) {
                    return best.map(|(k, _)| k);
                }
            }
        }
        best.map(|(k, _)| k)
    }

    /// The cost of a call, or `None` if the model has no price.
    pub fn cost(
        &self,
        model: &str,
        provider: Option<&str>,
        tokens: &Tokens,
        cache_write_1h: u64,
        tier: ServiceTier,
    ) -> Option<f64> {
        self.lookup(model, provider)?
            .1
            .cost(tokens, cache_write_1h, tier)
    }

    /// What a logged call costs under this table, priced as the layer prices a call: the
    /// line's model and provider, tokens, 1-hour cache writes, service tier and modality
    /// counts. A provider-reported cost (`cost_source: "provider"`) is the bill and is kept;
    /// a call that recorded no usage (`"no_usage"`) has no cost under any table.
    pub fn line_cost(&self, line: &crate::format::decode::Line<'_>) -> Option<f64> {
        match line.cost_source.as_deref() {
            Some("provider") => return line.cost_usd,
            Some("no_usage") => return None,
            _ => {}
        }
        let (_, price) = self.lookup(line.model.as_deref()?, line.provider.as_deref())?;
        let tier = line
            .service_tier
            .as_deref()
            .map_or(ServiceTier::Standard, ServiceTier::from_field);
        price.cost_with_modality(
            &line.tokens,
            line.cache_write_1h,
            tier,
            line.modality.as_ref(),
        )
    }

    /// How many models the table prices.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether the table prices nothing.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// Entries of a LiteLLM file that were skipped as malformed.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The date of the figures, when the table says (the bundled one does).
    pub fn date(&self) -> Option<&str> {
        self.date.as_deref()
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
                    // Layers decide which entry a name resolves to: a table that is the same
                    // but for them prices differently. Relative order is what counts.
                    let layer = self.layer(name);
                    if layer > 0 && self.top > 1 {
                        h.write_u32(layer);
                    }
                    if let Some(p) = self.models.get(name) {
                        for (above, tier, rates) in p.fingerprint() {
                            h.write_u64(above);
                            h.write_u8(tier as u8);
                            for rate in rates {
                                h.write_u64(rate.map_or(u64::MAX, f64::to_bits));
                            }
                        }
                    }
                }
                Arc::from(format!("prices-{:08x}", h.finish() as u32))
            })
            .clone()
    }
}

/// The prefix LiteLLM files a provider's models under.
fn litellm_prefix(provider: &str) -> Option<&'static str> {
    Some(match provider {
        "openai" => "openai/",
        "anthropic" => "anthropic/",
        "gcp.gemini" | "gemini" => "gemini/",
        "gcp.vertex_ai" | "vertex_ai" => "vertex_ai/",
        "x_ai" | "xai" => "xai/",
        "mistral_ai" | "mistral" => "mistral/",
        "deepseek" => "deepseek/",
        "aws.bedrock" | "bedrock" => "bedrock/",
        "azure.ai.openai" | "azure" => "azure/",
        "azure.ai.inference" => "azure_ai/",
        "groq" => "groq/",
        "perplexity" => "perplexity/",
        "openrouter" => "openrouter/",
        "ollama" => "ollama/",
        "cohere" => "cohere/",
        "ibm.watsonx.ai" => "watsonx/",
        _ => return None,
    })
}

/// `us.anthropic.claude-…` → `anthropic.claude-…` (Bedrock cross-region inference ids).
fn strip_region(model: &str) -> Option<&str> {
    let (region, rest) = model.split_once('.')?;
    matches!(
        region,
        "us" | "eu" | "apac" | "au" | "ca" | "jp" | "us-gov" | "global"
    )
    .then_some(rest)
}

/// `name-20250929`, `name-2025-09-29` or `name@20250929` → `name`.
fn strip_date(model: &str) -> Option<&str> {
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some((name, date)) = model.rsplit_once(['-', '@']) {
        if date.len() == 8 && all_digits(date) {
            return Some(name);
        }
    }
    // ISO date: the last three dash-separated parts are YYYY, MM, DD.
    let mut parts = model.rsplitn(4, '-');
    let (d, m, y, name) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (y.len() == 4
        && m.len() == 2
        && d.len() == 2
        && all_digits(y)
        && all_digits(m)
        && all_digits(d))
    .then_some(name)
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
    fn version_is_stable_and_content_sensitive() {
        let a = PriceTable::new().with("m", ModelPrice::per_million(1.0, 2.0));
        let b = PriceTable::new().with("m", ModelPrice::per_million(1.0, 2.0));
        let c = PriceTable::new().with("m", ModelPrice::per_million(1.0, 3.0));
        assert_eq!(a.version(), b.version());
        assert_ne!(a.version(), c.version());
        assert_eq!(a.version().len(), "prices-".len() + 8);
    }

    #[test]
    fn dates_and_regions() {
        assert_eq!(
            strip_date("claude-sonnet-4-5-20250929"),
            Some("claude-sonnet-4-5")
        );
        assert_eq!(strip_date("gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(
            strip_date("claude-3-5-sonnet@20240620"),
            Some("claude-3-5-sonnet")
        );
        assert_eq!(strip_date("gpt-4o"), None);
        assert_eq!(strip_date("gpt-4-0613"), None);
        assert_eq!(
            strip_region("us.anthropic.claude-x"),
            Some("anthropic.claude-x")
        );
        assert_eq!(strip_region("anthropic.claude-x"), None);
    }
}
