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
//!   them; a rate the tier's card lacks (above a long-context threshold: its long-context card)
//!   is the standard rate times the tier's factor, the tier's input (else output) rate over
//!   the standard one, since OpenAI, Anthropic, Google and Bedrock each discount or surcharge
//!   every kind of token of a tier alike; a model with no card for the tier is priced at the
//!   standard rates; either way the line's `warnings` say so;
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

    /// The rates that apply to a call with `input` tokens in `tier` (see the module
    /// documentation for the fallbacks).
    pub fn rates_for(&self, input: u64, tier: ServiceTier) -> Rates {
        self.tiered(input, tier).0
    }

    /// The rates for a call, and which of the six token kinds' rates the tier's cards lack
    /// (bit per kind, input first), derived from the standard ones; `None` as the factor
    /// when the model has no card at all for the tier.
    fn tiered(&self, input: u64, tier: ServiceTier) -> (Rates, u8, Option<f64>) {
        // The common case: standard tier, below every threshold. Cards are sorted, so the
        // standard base card comes first.
        let above = |c: &Card| c.above_tokens > 0 && input > c.above_tokens;
        if tier == ServiceTier::Standard && !self.cards.iter().any(above) {
            return match self.cards.first() {
                Some(c) if c.above_tokens == 0 && c.tier == ServiceTier::Standard => {
                    (c.rates, 0, Some(1.0))
                }
                _ => (Rates::default(), 0, Some(1.0)),
            };
        }
        let threshold = self
            .cards
            .iter()
            .filter(|c| above(c))
            .map(|c| c.above_tokens)
            .max()
            .unwrap_or(0);
        let std_base = self.card(0, ServiceTier::Standard).unwrap_or_default();
        let std_here = self
            .card(threshold, ServiceTier::Standard)
            .unwrap_or_default()
            .or(&std_base);
        if tier == ServiceTier::Standard {
            return (std_here, 0, Some(1.0));
        }
        // The tier's own card for this size: above a threshold only its long-context card
        // (its base rates are for smaller calls).
        let own = if threshold > 0 {
            self.card(threshold, tier)
        } else {
            self.card(0, tier)
        };
        // What the tier costs relative to the standard tier, from the rates it does have.
        let ratio = |t: Option<f64>, s: Option<f64>| match (t, s) {
            (Some(t), Some(s)) if s > 0.0 => Some(t / s),
            _ => None,
        };
        let base_own = self.card(0, tier);
        let factor = own
            .and_then(|o| ratio(o.input, std_here.input).or(ratio(o.output, std_here.output)))
            .or_else(|| {
                base_own.and_then(|o| {
                    ratio(o.input, std_base.input).or(ratio(o.output, std_base.output))
                })
            });
        let own = own.unwrap_or_default();
        let Some(f) = factor else {
            // No card for the tier: the standard rates, said so on the line.
            return (std_here, 0b11_1111, None);
        };
        let mut derived = 0u8;
        let mut pick = |bit: u8, mine: Option<f64>, std: Option<f64>| match mine {
            Some(r) => Some(r),
            None => {
                if std.is_some() {
                    derived |= 1 << bit;
                }
                std.map(|r| r * f)
            }
        };
        let rates = Rates {
            input: pick(0, own.input, std_here.input),
            output: pick(1, own.output, std_here.output),
            cache_read: pick(2, own.cache_read, std_here.cache_read),
            cache_write: pick(3, own.cache_write, std_here.cache_write),
            cache_write_1h: pick(4, own.cache_write_1h, std_here.cache_write_1h),
            reasoning: pick(5, own.reasoning, std_here.reasoning),
            audio_input: own.audio_input.or(std_here.audio_input.map(|r| r * f)),
            audio_output: own.audio_output.or(std_here.audio_output.map(|r| r * f)),
            audio_cache_read: own
                .audio_cache_read
                .or(std_here.audio_cache_read.map(|r| r * f)),
            image_input: own.image_input.or(std_here.image_input.map(|r| r * f)),
            image_output: own.image_output.or(std_here.image_output.map(|r| r * f)),
            image_cache_read: own
                .image_cache_read
                .or(std_here.image_cache_read.map(|r| r * f)),
        };
        (rates, derived, Some(f))
    }

    /// What a line should say when a `tier` call's price used a rate the table does not
    /// give for that tier (only kinds of tokens the call has); `None` when every rate it used
    /// is the tier's own.
    pub(crate) fn tier_note(
        &self,
        tokens: &Tokens,
        cache_write_1h: u64,
        tier: ServiceTier,
    ) -> Option<String> {
        if tier == ServiceTier::Standard {
            return None;
        }
        let (_, derived, factor) = self.tiered(tokens.input, tier);
        let write_1h = cache_write_1h.min(tokens.cache_write);
        let plain = tokens
            .input
            .saturating_sub(tokens.cache_read.saturating_add(tokens.cache_write));
        let used = [
            ("input", plain),
            ("output", tokens.output.saturating_sub(tokens.reasoning)),
            ("cache read", tokens.cache_read),
            ("cache write", tokens.cache_write - write_1h),
            ("1-hour cache write", write_1h),
            ("reasoning", tokens.reasoning),
        ];
        let kinds: Vec<&str> = used
            .iter()
            .enumerate()
            .filter(|(i, (_, n))| derived & (1 << i) != 0 && *n > 0)
            .map(|(_, (name, _))| *name)
            .collect();
        if kinds.is_empty() {
            return None;
        }
        let tier = format!("{tier:?}").to_lowercase();
        Some(match factor {
            Some(f) => format!(
                "service tier {tier}: the price table has no {tier} rate for {} at this size; \
                 priced at the standard rate × {f} (the tier's rate over the standard one)",
                kinds.join(", ")
            ),
            None => format!(
                "service tier {tier}: the price table has no {tier} rates for this model; \
                 priced at the standard rates"
            ),
        })
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
