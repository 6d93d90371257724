//! Reading LiteLLM's `model_prices_and_context_window.json` as is.
//!
//! Entries of the modes priced per token (chat, completion, responses, embedding, audio
//! transcription and speech, image generation, realtime) are loaded; other modes (video,
//! rerank, search, OCR…) and entries priced only per second, character or image are skipped
//! quietly. The output of an image-generation or speech model is its image or audio: where
//! such an entry has no text output rate, its image or audio output rate is the output rate.
//! An embedding has no output tokens: with no output rate, its output rate is 0. Odd entries (not an object, a negative, non-finite or non-numeric price,
//! no input or output rate) are skipped and counted. Nothing in the file can make loading fail
//! except its not being JSON.

use hashbrown::HashMap;

use serde_json::{Map, Value};

use super::rates::{ModelPrice, ServiceTier};

/// What a LiteLLM cost field prices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Input,
    Output,
    CacheRead,
    CacheWrite,
    CacheWrite1h,
    Reasoning,
    AudioInput,
    AudioOutput,
    AudioCacheRead,
    ImageInput,
    ImageOutput,
    ImageCacheRead,
}

/// `input_cost_per_token_above_200k_tokens_batches` → (Input, 200_000, Batch).
fn parse_field(name: &str) -> Option<(Kind, u64, ServiceTier)> {
    let (rest, tier) = if let Some(r) = name.strip_suffix("_batches") {
        (r, ServiceTier::Batch)
    } else if let Some(r) = name.strip_suffix("_flex") {
        (r, ServiceTier::Flex)
    } else if let Some(r) = name.strip_suffix("_priority") {
        (r, ServiceTier::Priority)
    } else {
        (name, ServiceTier::Standard)
    };
    let (rest, above) = match rest
        .strip_suffix("k_tokens")
        .and_then(|r| r.rsplit_once("_above_"))
    {
        Some((base, thousands)) => (base, thousands.parse::<u64>().ok()?.checked_mul(1000)?),
        None => (rest, 0),
    };
    let kind = match rest {
        "input_cost_per_token" => Kind::Input,
        "output_cost_per_token" => Kind::Output,
        "cache_read_input_token_cost" => Kind::CacheRead,
        "cache_creation_input_token_cost" => Kind::CacheWrite,
        "cache_creation_input_token_cost_above_1hr" => Kind::CacheWrite1h,
        "output_cost_per_reasoning_token" => Kind::Reasoning,
        "input_cost_per_audio_token" => Kind::AudioInput,
        "output_cost_per_audio_token" => Kind::AudioOutput,
        "cache_read_input_audio_token_cost" => Kind::AudioCacheRead,
        "input_cost_per_image_token" => Kind::ImageInput,
        "output_cost_per_image_token" => Kind::ImageOutput,
        "cache_read_input_image_token_cost" => Kind::ImageCacheRead,
        _ => return None,
    };
    Some((kind, above, tier))
}

/// Modes whose prices are per token.
fn is_token_mode(mode: Option<&str>) -> bool {
    matches!(
        mode,
        None | Some(
            "chat"
                | "completion"
                | "responses"
                | "embedding"
                | "audio_transcription"
                | "audio_speech"
                | "image_generation"
                | "realtime"
        )
    )
}

pub(crate) struct Loaded {
    pub(crate) models: HashMap<Box<str>, ModelPrice>,
    pub(crate) skipped: usize,
    pub(crate) date: Option<String>,
}

/// Why an entry was not loaded (`None`: loaded).
fn entry(obj: &Map<String, Value>) -> Result<Option<ModelPrice>, ()> {
    let mode = obj.get("mode").and_then(Value::as_str);
    if !is_token_mode(mode) {
        return Ok(None);
    }
    let mut price = ModelPrice::default();
    let mut has_input = false;
    let mut has_output = false;
    for (field, value) in obj {
        let Some((kind, above, tier)) = parse_field(field) else {
            continue;
        };
        let rate = value
            .as_f64()
            .filter(|r| r.is_finite() && *r >= 0.0)
            .ok_or(())?;
        if above == 0 && tier == ServiceTier::Standard {
            has_input |= kind == Kind::Input;
            has_output |= kind == Kind::Output;
        }
        price.set(above, tier, |r| {
            let slot = match kind {
                Kind::Input => &mut r.input,
                Kind::Output => &mut r.output,
                Kind::CacheRead => &mut r.cache_read,
                Kind::CacheWrite => &mut r.cache_write,
                Kind::CacheWrite1h => &mut r.cache_write_1h,
                Kind::Reasoning => &mut r.reasoning,
                Kind::AudioInput => &mut r.audio_input,
                Kind::AudioOutput => &mut r.audio_output,
                Kind::AudioCacheRead => &mut r.audio_cache_read,
                Kind::ImageInput => &mut r.image_input,
                Kind::ImageOutput => &mut r.image_output,
                Kind::ImageCacheRead => &mut r.image_cache_read,
            };
            *slot = Some(rate);
        });
    }
    if has_input && !has_output {
        let standard = price.standard();
        let output = match mode {
            Some("image_generation") => standard.image_output,
            Some("audio_speech") => standard.audio_output,
            Some("embedding") => Some(0.0),
            _ => None,
        };
        if let Some(rate) = output {
            price.set(0, ServiceTier::Standard, |r| r.output = Some(rate));
            has_output = true;
        }
    }
    if has_input && has_output {
        Ok(Some(price))
    } else if has_input || has_output {
        Err(())
    } else {
        Ok(None)
    }
}

pub(crate) fn load(bytes: &[u8]) -> Result<Loaded, serde_json::Error> {
    let doc: Map<String, Value> = serde_json::from_slice(bytes)?;
    let mut out = Loaded {
        models: HashMap::with_capacity(doc.len()),
        skipped: 0,
        date: None,
    };
    for (name, value) in &doc {
        if name == "sample_spec" {
            continue;
        }
        if name == "_meta" {
            out.date = value.get("date").and_then(Value::as_str).map(str::to_owned);
            continue;
        }
        let Some(obj) = value.as_object() else {
            out.skipped += 1;
            continue;
        };
        match entry(obj) {
            Ok(Some(price)) => {
                out.models.insert(name.as_str().into(), price);
            }
            Ok(None) => {}
            Err(()) => out.skipped += 1,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names() {
        assert_eq!(
            parse_field("input_cost_per_token"),
            Some((Kind::Input, 0, ServiceTier::Standard))
        );
        assert_eq!(
            parse_field("output_cost_per_token_above_200k_tokens_batches"),
            Some((Kind::Output, 200_000, ServiceTier::Batch))
        );
        assert_eq!(
            parse_field("cache_creation_input_token_cost_above_1hr"),
            Some((Kind::CacheWrite1h, 0, ServiceTier::Standard))
        );
        assert_eq!(
            parse_field("cache_creation_input_token_cost_above_1hr_above_200k_tokens"),
            Some((Kind::CacheWrite1h, 200_000, ServiceTier::Standard))
        );
        assert_eq!(parse_field("input_cost_per_token_ultrafast"), None);
        assert_eq!(parse_field("input_cost_per_token_above_xk_tokens"), None);
        assert_eq!(parse_field("output_cost_per_image"), None);
        assert_eq!(
            parse_field("input_cost_per_audio_token_priority"),
            Some((Kind::AudioInput, 0, ServiceTier::Priority))
        );
        assert_eq!(
            parse_field("cache_read_input_image_token_cost"),
            Some((Kind::ImageCacheRead, 0, ServiceTier::Standard))
        );
    }
}
