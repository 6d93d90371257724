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
  python3 scripts/gen-log.py "$FILE" "$CALLS"
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
