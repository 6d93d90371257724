#!/usr/bin/env python3
"""Derive src/pricing/bundled.json from LiteLLM's model_prices_and_context_window.json.

Keeps the current (not deprecated) chat models of OpenAI, Anthropic, Google Gemini/Vertex,
xAI, Mistral, DeepSeek and AWS Bedrock, and only the fields the crate prices with. The output
is itself in LiteLLM's format, so PriceTable::bundled() goes through the same loader as a
user's copy of the full file.

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
    "openai", "anthropic", "gemini", "vertex_ai-language-models", "vertex_ai-anthropic_models",
    "xai", "mistral", "deepseek", "bedrock", "bedrock_converse",
}
MODES = {"chat", "responses"}
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
    deprecated = entry.get("deprecation_date")
    if isinstance(deprecated, str) and deprecated < TODAY:
        continue
    kept = {k: v for k, v in entry.items() if FIELD.match(k) and isinstance(v, (int, float))}
    if "input_cost_per_token" not in kept or "output_cost_per_token" not in kept:
        continue
    kept["litellm_provider"] = entry["litellm_provider"]
    kept["mode"] = entry["mode"]
    out[name] = kept

with open(OUT, "w") as f:
    json.dump(out, f, indent=0, sort_keys=True)
    f.write("\n")
print(f"{len(out) - 1} models written to {OUT} (figures of {TODAY})")
