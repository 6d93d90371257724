//! Token estimates from text, for providers that do not report usage (feature `tiktoken`).
//!
//! OpenAI models are counted with their own encoding: `o200k_base` for gpt-4o, gpt-4.1,
//! gpt-5, gpt-oss and the o-series, `cl100k_base` for gpt-4, gpt-3.5 and the ada/3rd-generation
//! embeddings. Other providers' tokenizers are not public; their text is counted with
//! `o200k_base` as an approximation (on English prose it lands within about 20 % of Claude's,
//! Gemini's and Llama's counts; code and other languages vary more). Should an encoding fail
//! to load, the fallback is one token per four bytes, rounded up.
//!
//! Estimates are recorded with `tokens.estimated = true` ([`Usage::estimated`]) and show up as
//! `"estimated": true` on the line. The layer itself never sees prompt text.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

use crate::providers::Usage;

/// The encoding a model's text is counted with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Encoding {
    /// GPT-4o, GPT-4.1, GPT-5, o-series.
    O200kBase,
    /// GPT-4, GPT-3.5, older embeddings.
    Cl100kBase,
}

/// The encoding for `model` (`provider/` prefixes are ignored).
pub fn encoding_for(model: &str) -> Encoding {
    let name = model.rsplit('/').next().unwrap_or(model);
    let cl100k =
        (name.starts_with("gpt-4") && !name.starts_with("gpt-4o") && !name.starts_with("gpt-4.1"))
            || name.starts_with("gpt-3.5")
            || name.starts_with("text-embedding-3")
            || name.starts_with("text-embedding-ada-002");
    if cl100k {
        Encoding::Cl100kBase
    } else {
        Encoding::O200kBase
    }
}

fn bpe(encoding: Encoding) -> Option<&'static CoreBPE> {
    static O200K: OnceLock<Option<CoreBPE>> = OnceLock::new();
    static CL100K: OnceLock<Option<CoreBPE>> = OnceLock::new();
    match encoding {
        Encoding::O200kBase => O200K.get_or_init(|| tiktoken_rs::o200k_base().ok()),
        Encoding::Cl100kBase => CL100K.get_or_init(|| tiktoken_rs::cl100k_base().ok()),
    }
    .as_ref()
}

/// How many tokens `text` is for `model` (see the module documentation for non-OpenAI
/// models).
pub fn count_tokens(model: &str, text: &str) -> u64 {
    match bpe(encoding_for(model)) {
        Some(bpe) => bpe.encode_with_special_tokens(text).len() as u64,
        None => text.len().div_ceil(4) as u64,
    }
}

impl Usage {
    /// An estimated usage: `prompt` and `completion` counted for `model`, marked
    /// `estimated` so the line says so.
    pub fn estimated(model: &str, prompt: &str, completion: &str) -> Usage {
        let input = count_tokens(model, prompt);
        let output = count_tokens(model, completion);
        Usage {
            input,
            output,
            total: input.saturating_add(output),
            estimated: true,
            ..Usage::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_by_model() {
        assert_eq!(encoding_for("gpt-4o-mini"), Encoding::O200kBase);
        assert_eq!(encoding_for("openai/gpt-4.1"), Encoding::O200kBase);
        assert_eq!(encoding_for("gpt-5"), Encoding::O200kBase);
        assert_eq!(encoding_for("o3"), Encoding::O200kBase);
        assert_eq!(encoding_for("gpt-4-0613"), Encoding::Cl100kBase);
        assert_eq!(encoding_for("gpt-3.5-turbo"), Encoding::Cl100kBase);
        assert_eq!(encoding_for("claude-sonnet-4-5"), Encoding::O200kBase);
    }

    #[test]
    fn counts() {
        // OpenAI's cookbook: "tiktoken is great!" is 6 cl100k_base tokens.
        assert_eq!(count_tokens("gpt-4", "tiktoken is great!"), 6);
        assert_eq!(count_tokens("gpt-4o", ""), 0);
        assert_eq!(count_tokens("gpt-4o", "hello world"), 2);
    }
}
