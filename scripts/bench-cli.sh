#!/usr/bin/env bash
# Times `llm-usage by step` against DuckDB's read_json + GROUP BY on the same log: a generated
# file of about 300 MB and 600,000 calls (plus run summaries). DuckDB is timed when its Python
# package is installed (`pip install duckdb`); otherwise only llm-usage is.
#
#   scripts/bench-cli.sh [FILE]        (CALLS=600000 RUNS=5 to change the size and repetitions)
set -euo pipefail
cd "$(dirname "$0")/.."
FILE=${1:-/tmp/llm-usage-bench.jsonl}
CALLS=${CALLS:-600000}
RUNS=${RUNS:-5}

if [ ! -f "$FILE" ]; then
  echo "generating $FILE ($CALLS calls)..." >&2
  python3 - "$FILE" "$CALLS" <<'PY'
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
PY
fi
ls -l "$FILE" >&2
cargo build --release --quiet --bin llm-usage

python3 - "$FILE" "$RUNS" <<'PY'
import statistics, subprocess, sys, time
path, runs = sys.argv[1], int(sys.argv[2])
def best(label, fn):
    times = []
    for _ in range(runs):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    print(f"{label:<44} median {statistics.median(times):.3f} s   min {min(times):.3f} s   ({runs} runs)")
best("llm-usage by step (release, all cores)",
     lambda: subprocess.run(["target/release/llm-usage", "by", "step", path], check=True, stdout=subprocess.DEVNULL))
try:
    import duckdb
except ImportError:
    print("duckdb is not installed (pip install duckdb): skipped")
else:
    q = f"""SELECT step, count(*) AS calls, sum(tokens.input) AS input, sum(tokens.output) AS output,
                   sum(cost_usd) AS cost FROM read_json('{path}') WHERE event = 'llm_call'
            GROUP BY step ORDER BY cost DESC"""
    best(f"duckdb {duckdb.__version__} read_json + GROUP BY (in process)", lambda: duckdb.sql(q).fetchall())
PY
