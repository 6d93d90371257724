#!/usr/bin/env python3
"""Derive src/pricing/bundled.json from LiteLLM's model_prices_and_context_window.json.

Keeps every entry priced per token in the chat, completion, responses, embedding, audio,
image-generation and realtime modes of the providers people call directly and through clouds
(OpenAI and Azure, Anthropic, Google Gemini and Vertex AI, xAI, Mistral, DeepSeek, Groq,
Cohere, AWS Bedrock, Perplexity, OpenRouter, Together, Fireworks, Cerebras, Ollama), deprecated
ones included (a model past its deprecation date is still billed while it answers), and only
the fields the crate prices with. The output is itself in LiteLLM's format, one entry a line,
so PriceTable::bundled() goes through the same loader as a user's copy of the full file.

    python3 scripts/bundle_prices.py model_prices_and_context_window.json [YYYY-MM-DD]

(the file from https://github.com/BerriAI/litellm, downloaded beforehand)
"""
import datetime
import hashlib
import json
import re
import sys

if len(sys.argv) < 2:
    sys.exit("usage: bundle_prices.py model_prices_and_context_window.json [YYYY-MM-DD]")
SOURCE = sys.argv[1]
TODAY = sys.argv[2] if len(sys.argv) > 2 else datetime.date.today().isoformat()
OUT = "src/pricing/bundled.json"

PROVIDERS = {
    "openai", "text-completion-openai", "azure", "azure_text", "azure_ai", "anthropic",
    "gemini", "vertex_ai", "vertex_ai-language-models", "vertex_ai-anthropic_models",
    "vertex_ai-embedding-models", "vertex_ai-mistral_models", "vertex_ai-llama_models",
    "vertex_ai-ai21_models", "vertex_ai-deepseek_models", "vertex_ai-qwen_models",
    "vertex_ai-openai_models", "vertex_ai-minimax_models", "vertex_ai-moonshot_models",
    "vertex_ai-zai_models", "vertex_ai-image-models", "xai", "mistral", "codestral", "deepseek",
    "groq", "cohere", "cohere_chat", "bedrock", "bedrock_converse", "perplexity", "openrouter",
    "together_ai", "fireworks_ai", "cerebras", "ollama",
}
MODES = {
    "chat", "completion", "responses", "embedding", "audio_transcription", "audio_speech",
    "image_generation", "realtime",
}
BASES = (
    "input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
    "cache_creation_input_token_cost", "output_cost_per_reasoning_token",
)
FIELD = re.compile(
    r"^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost"
    r"|cache_creation_input_token_cost(_above_1hr)?|output_cost_per_reasoning_token"
    r"|(input|output)_cost_per_(audio|image)_token|cache_read_input_(audio|image)_token_cost)"
    r"(_above_\d+k_tokens)?(_batches|_flex|_priority)?$"
)

raw = open(SOURCE, "rb").read()
data = json.loads(raw)
out = {
    "_meta": {
        "source": "LiteLLM model_prices_and_context_window.json (MIT)",
        "source_sha256": hashlib.sha256(raw).hexdigest()[:16],
        "date": TODAY,
    }
}
for name, entry in sorted(data.items()):
    if not isinstance(entry, dict):
        continue
    if entry.get("litellm_provider") not in PROVIDERS or entry.get("mode") not in MODES:
        continue
    kept = {k: v for k, v in entry.items() if FIELD.match(k) and isinstance(v, (int, float))}
    # Per-token prices only: entries priced per second, character or image are left out.
    if not any(k.startswith(("input_cost_per", "output_cost_per")) for k in kept):
        continue
    kept["litellm_provider"] = entry["litellm_provider"]
    kept["mode"] = entry["mode"]
    out[name] = kept

with open(OUT, "w") as f:
    # One entry a line: compact, and a price change is a one-line diff.
    f.write("{\n")
    f.write(",\n".join(
        f"{json.dumps(k)}:{json.dumps(v, sort_keys=True, separators=(',', ':'))}"
        for k, v in out.items()
    ))
    f.write("\n}\n")
print(f"{len(out) - 1} models written to {OUT} (figures of {TODAY})")
