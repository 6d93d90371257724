"""Writes a generated F-077 log for the benchmarks: CALLS calls over runs of 20 (about 500 bytes
a line; 600,000 calls make about 300 MB). Deterministic (seed 42).

    python3 scripts/gen-log.py FILE CALLS
"""
import json, random, sys
path, calls = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
steps = ["persona_generation", "summary_generation", "tool_loop", "classification", "extraction", "planning"]
models = [("claude-sonnet-4-5-20250929", "anthropic", 3e-6, 1.5e-5), ("gpt-4o", "openai", 2.5e-6, 1e-5),
          ("gpt-4.1-mini", "openai", 4e-7, 1.6e-6), ("gemini-2.5-flash", "gcp.gemini", 3e-7, 2.5e-6)]
with open(path, "w") as f:
    run = 0
    for i in range(calls):
        if i % 20 == 0:
            run += 1
        model, provider, pin, pout = models[rng.randrange(len(models))]
        inp, out = rng.randrange(500, 60000), rng.randrange(50, 8000)
        cr = rng.randrange(0, inp // 2)
        sec = i // 10
        ts = "2025-12-%02dT%02d:%02d:%02d.%03dZ" % (1 + sec // 86400 % 28, sec // 3600 % 24, sec // 60 % 60, sec % 60, i % 1000)
        line = {"timestamp": ts, "event": "llm_call", "run_id": "run-%07d" % run, "step": steps[rng.randrange(len(steps))],
                "model": model, "provider": provider, "task": "task-%d" % (run % 50), "agent": "agent-%d" % (run % 7),
                "tokens": {"input": inp, "output": out, "total": inp + out, "cache_read": cr, "cache_write": 0, "reasoning": 0},
                "prompt_breakdown": {"system": inp // 10, "data": inp * 8 // 10, "instructions": inp - inp // 10 - inp * 8 // 10},
                "cost_usd": round((inp - cr) * pin + cr * pin / 10 + out * pout, 9), "cost_source": "local",
                "price_version": "prices-3f2a9c1e", "latency_ms": rng.randrange(200, 30000), "estimated": False,
                "error": None, "warnings": []}
        f.write(json.dumps(line, separators=(",", ":")) + "\n")
