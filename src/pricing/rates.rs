//! Per-token rates of one model, and the cost of a call under them.
//!
//! The cost rules (OpenTelemetry token semantics: cache counts are part of input, reasoning
//! part of output):
//!
//! * plain input = input − cache read − cache write, at the input rate;
//! * cache reads at the cache-read rate, cache writes at the cache-write rate (writes with a
//!   1-hour lifetime at the 1-hour rate), each falling back to the input rate;
//! * plain output = output − reasoning at the output rate; reasoning at the reasoning rate,
//!   falling back to the output rate;
//! * above a long-context threshold (compared with the whole input, cache included) the
//!   higher rates apply to all of the call's tokens;
//! * a `batch`, `flex` or `priority` service tier uses that tier's rates where the model has
//!   them, field by field, else the standard ones;
//! * tokens a provider reports by modality (`gen_ai.usage.audio.input_tokens`, …) are priced
//!   at the model's audio or image rates where it has them: those tokens' share of plain
//!   input, cache reads and output is charged at its own rate instead of the text one.

use crate::record::{ModalityCounts, ModalityTokens};

use crate::record::Tokens;

/// A service tier with its own prices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ServiceTier {
    /// The default tier.
    Standard,
    /// Batch APIs (LiteLLM's `_batches` fields).
    Batch,
    /// OpenAI's flex processing.
    Flex,
    /// Priority processing.
    Priority,
}

impl ServiceTier {
    /// The tier a `service_tier` field value names (`batch`, `flex`, `priority`); anything
    /// else (`default`, `auto`, `standard`…) is the standard tier.
    pub fn from_field(value: &str) -> Self {
        match value.trim().to_ascii_lowercase().as_str() {
            "batch" | "batches" => ServiceTier::Batch,
            "flex" => ServiceTier::Flex,
            "priority" => ServiceTier::Priority,
            _ => ServiceTier::Standard,
        }
    }
}

/// USD per token for each kind of token; `None` where the table says nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    /// Plain input tokens.
    pub input: Option<f64>,
    /// Plain output tokens.
    pub output: Option<f64>,
    /// Input tokens read from the cache.
    pub cache_read: Option<f64>,
    /// Input tokens written to the cache (5-minute lifetime).
    pub cache_write: Option<f64>,
    /// Input tokens written to the cache with a 1-hour lifetime.
    pub cache_write_1h: Option<f64>,
    /// Reasoning output tokens.
    pub reasoning: Option<f64>,
    /// Audio input tokens (LiteLLM's `input_cost_per_audio_token`).
    pub audio_input: Option<f64>,
    /// Audio output tokens (`output_cost_per_audio_token`).
    pub audio_output: Option<f64>,
    /// Audio input tokens read from the cache (`cache_read_input_audio_token_cost`).
    pub audio_cache_read: Option<f64>,
    /// Image input tokens (`input_cost_per_image_token`).
    pub image_input: Option<f64>,
    /// Image output tokens (`output_cost_per_image_token`).
    pub image_output: Option<f64>,
    /// Image input tokens read from the cache (`cache_read_input_image_token_cost`).
    pub image_cache_read: Option<f64>,
}

impl Rates {
    /// Input and output rates in USD per million tokens.
    pub fn per_million(input: f64, output: f64) -> Self {
        Self {
            input: Some(input / 1e6),
            output: Some(output / 1e6),
            ..Self::default()
        }
    }

    pub(crate) fn each(&self) -> [Option<f64>; 12] {
        [
            self.input,
            self.output,
            self.cache_read,
            self.cache_write,
            self.cache_write_1h,
            self.reasoning,
            self.audio_input,
            self.audio_output,
            self.audio_cache_read,
            self.image_input,
            self.image_output,
            self.image_cache_read,
        ]
    }

    /// Fills every rate this card lacks from `other`.
    fn or(self, other: &Rates) -> Rates {
        Rates {
            input: self.input.or(other.input),
            output: self.output.or(other.output),
            cache_read: self.cache_read.or(other.cache_read),
            cache_write: self.cache_write.or(other.cache_write),
            cache_write_1h: self.cache_write_1h.or(other.cache_write_1h),
            reasoning: self.reasoning.or(other.reasoning),
            audio_input: self.audio_input.or(other.audio_input),
            audio_output: self.audio_output.or(other.audio_output),
            audio_cache_read: self.audio_cache_read.or(other.audio_cache_read),
            image_input: self.image_input.or(other.image_input),
            image_output: self.image_output.or(other.image_output),
            image_cache_read: self.image_cache_read.or(other.image_cache_read),
        }
    }

    /// Whether any audio or image rate is set.
    pub(crate) fn has_modality_rates(&self) -> bool {
        self.each()[6..].iter().any(Option::is_some)
    }
}

/// One rate card: the rates that apply above `above_tokens` input tokens (0: from the first
/// token) in one service tier.
#[derive(Clone, Debug, PartialEq)]
struct Card {
    above_tokens: u64,
    tier: ServiceTier,
    rates: Rates,
}

/// Everything a table knows about one model's prices.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelPrice {
    cards: Vec<Card>,
}

impl ModelPrice {
    /// A model priced at `rates` in the standard tier.
    pub fn new(rates: Rates) -> Self {
        Self::default().with_rates(0, ServiceTier::Standard, rates)
    }

    /// A model priced in USD per million input and output tokens.
    pub fn per_million(input: f64, output: f64) -> Self {
        Self::new(Rates::per_million(input, output))
    }

    /// Adds the rates of `tier` above `above_tokens` input tokens (0 for every call);
    /// fields left `None` fall back as the module documentation says.
    #[must_use]
    pub fn with_rates(mut self, above_tokens: u64, tier: ServiceTier, rates: Rates) -> Self {
        self.set(above_tokens, tier, |r| *r = rates.or(r));
        self
    }

    pub(crate) fn set(&mut self, above_tokens: u64, tier: ServiceTier, f: impl FnOnce(&mut Rates)) {
        match self
            .cards
            .iter_mut()
            .find(|c| c.above_tokens == above_tokens && c.tier == tier)
        {
            Some(card) => f(&mut card.rates),
            None => {
                let mut rates = Rates::default();
                f(&mut rates);
                self.cards.push(Card {
                    above_tokens,
                    tier,
                    rates,
                });
                self.cards.sort_by_key(|c| (c.above_tokens, c.tier));
            }
        }
    }

    /// The standard rates for calls below every long-context threshold.
    pub fn standard(&self) -> Rates {
        self.card(0, ServiceTier::Standard).unwrap_or_default()
    }

    fn card(&self, above_tokens: u64, tier: ServiceTier) -> Option<Rates> {
        self.cards
            .iter()
            .find(|c| c.above_tokens == above_tokens && c.tier == tier)
            .map(|c| c.rates)
    }

    /// The rates that apply to a call with `input` tokens in `tier`: the tier's long-context
    /// card, then the standard long-context card, then the tier's base card, then the
    /// standard base card, field by field.
    pub fn rates_for(&self, input: u64, tier: ServiceTier) -> Rates {
        // The common case: standard tier, below every threshold. Cards are sorted, so the
        // standard base card comes first.
        if tier == ServiceTier::Standard
            && !self
                .cards
                .iter()
                .any(|c| c.above_tokens > 0 && input > c.above_tokens)
        {
            return match self.cards.first() {
                Some(c) if c.above_tokens == 0 && c.tier == ServiceTier::Standard => c.rates,
                _ => Rates::default(),
            };
        }
        let threshold = self
            .cards
            .iter()
            .map(|c| c.above_tokens)
            .filter(|&t| t > 0 && input > t)
            .max()
            .unwrap_or(0);
        let mut rates = Rates::default();
        for (above, t) in [
            (threshold, tier),
            (threshold, ServiceTier::Standard),
            (0, tier),
            (0, ServiceTier::Standard),
        ] {
            if let Some(card) = self.card(above, t) {
                rates = rates.or(&card);
            }
        }
        rates
    }

    /// The cost of a call, or `None` when the model lacks an input or output rate (never a
    /// guessed number). `cache_write_1h` is the part of `tokens.cache_write` written with a
    /// 1-hour lifetime.
    pub fn cost(&self, tokens: &Tokens, cache_write_1h: u64, tier: ServiceTier) -> Option<f64> {
        Resolved::from_rates(&self.rates_for(tokens.input, tier))?.cost(tokens, cache_write_1h)
    }

    /// Like [`cost`](Self::cost), with the tokens a provider reported by modality priced at
    /// the model's audio and image rates where it has them (the text rates otherwise).
    pub fn cost_with_modality(
        &self,
        tokens: &Tokens,
        cache_write_1h: u64,
        tier: ServiceTier,
        modality: Option<&ModalityTokens>,
    ) -> Option<f64> {
        let rates = self.rates_for(tokens.input, tier);
        let resolved = Resolved::from_rates(&rates)?;
        let base = resolved.cost(tokens, cache_write_1h)?;
        let Some(m) = modality.filter(|_| rates.has_modality_rates()) else {
            return Some(base);
        };
        // Each modality's tokens move from the text rate to their own.
        let delta = |counts: Option<&ModalityCounts>, input, cache_read, output| {
            let Some(c) = counts else {
                return 0.0;
            };
            let cached = c.cache_read.unwrap_or(0);
            let plain = c.input.unwrap_or(0).saturating_sub(cached);
            let shift =
                |n: u64, own: Option<f64>, text: f64| own.map_or(0.0, |r| n as f64 * (r - text));
            shift(plain, input, resolved.input)
                + shift(cached, cache_read, resolved.cache_read)
                + shift(c.output.unwrap_or(0), output, resolved.output)
        };
        let cost =
            base + delta(
                m.audio.as_ref(),
                rates.audio_input,
                rates.audio_cache_read,
                rates.audio_output,
            ) + delta(
                m.image.as_ref(),
                rates.image_input,
                rates.image_cache_read,
                rates.image_output,
            );
        (cost.is_finite() && cost >= 0.0).then_some(cost)
    }

    /// The rates of every standard-tier call below the lowest long-context threshold (which
    /// is returned with them; `u64::MAX` when there is none), fallbacks applied: what a
    /// thread's recent lookups keep, so that the common call is priced without the cards.
    pub(crate) fn standard_resolved(&self) -> Option<(Resolved, u64)> {
        let lowest = self
            .cards
            .iter()
            .map(|c| c.above_tokens)
            .filter(|&t| t > 0)
            .min()
            .unwrap_or(u64::MAX);
        Some((
            Resolved::from_rates(&self.rates_for(0, ServiceTier::Standard))?,
            lowest,
        ))
    }

    /// Every rate of every card, for hashing.
    pub(crate) fn fingerprint(
        &self,
    ) -> impl Iterator<Item = (u64, ServiceTier, [Option<f64>; 12])> + '_ {
        self.cards
            .iter()
            .map(|c| (c.above_tokens, c.tier, c.rates.each()))
    }
}

/// A card's rates with every fallback applied (cache rates from input, reasoning from
/// output): the cost is then a sum of six products.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Resolved {
    input: f64,
    output: f64,
    cache_read: f64,
    cache_write: f64,
    cache_write_1h: f64,
    reasoning: f64,
}

impl Resolved {
    /// `None` when the input or the output rate is missing.
    fn from_rates(r: &Rates) -> Option<Self> {
        let input = r.input?;
        let output = r.output?;
        let cache_write = r.cache_write.unwrap_or(input);
        Some(Self {
            input,
            output,
            cache_read: r.cache_read.unwrap_or(input),
            cache_write,
            cache_write_1h: r.cache_write_1h.unwrap_or(cache_write),
            reasoning: r.reasoning.unwrap_or(output),
        })
    }

    /// The cost of a call at these rates (the module documentation's rules); `None` when it
    /// is not a finite, non-negative number.
    pub(crate) fn cost(&self, tokens: &Tokens, cache_write_1h: u64) -> Option<f64> {
        let cached = tokens.cache_read.saturating_add(tokens.cache_write);
        let plain_input = tokens.input.saturating_sub(cached);
        let write_1h = cache_write_1h.min(tokens.cache_write);
        let write_5m = tokens.cache_write - write_1h;
        let plain_output = tokens.output.saturating_sub(tokens.reasoning);
        let cost = plain_input as f64 * self.input
            + tokens.cache_read as f64 * self.cache_read
            + write_5m as f64 * self.cache_write
            + write_1h as f64 * self.cache_write_1h
            + plain_output as f64 * self.output
            + tokens.reasoning as f64 * self.reasoning;
        (cost.is_finite() && cost >= 0.0).then_some(cost)
    }
}
