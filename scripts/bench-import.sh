#!/usr/bin/env bash
# Times `llm-usage import` of the generated 300 MB / 600,000-call log into a fresh SQLite file
# (and the second, idempotent import of the same file); with LLM_USAGE_BENCH_POSTGRES set to
# a server URL, into PostgreSQL too (a database it creates and drops).
#
#   scripts/bench-import.sh [FILE]     (CALLS=600000 RUNS=3 to change the size and repetitions)
set -euo pipefail
cd "$(dirname "$0")/.."
FILE=${1:-/tmp/llm-usage-bench.jsonl}
CALLS=${CALLS:-600000}
RUNS=${RUNS:-3}

if [ ! -f "$FILE" ]; then
  echo "generating $FILE ($CALLS calls)..." >&2
  python3 scripts/gen-log.py "$FILE" "$CALLS"
fi
ls -l "$FILE" >&2
cargo build --release --quiet --features sqlite,postgres --bin llm-usage

python3 - "$FILE" "$RUNS" <<'PY'
import os, statistics, subprocess, sys, tempfile, time
path, runs = sys.argv[1], int(sys.argv[2])
def timed(args):
    t = time.perf_counter()
    subprocess.run(["target/release/llm-usage", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t
def report(label, times):
    print(f"{label:<44} median {statistics.median(times):.3f} s   min {min(times):.3f} s   ({len(times)} runs)")
first, again, size = [], [], 0
for _ in range(runs):
    with tempfile.TemporaryDirectory() as d:
        db = os.path.join(d, "usage.sqlite")
        first.append(timed(["import", path, "--db", db]))
        again.append(timed(["import", path, "--db", db]))
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
report("import into a new SQLite file", first)
report("the same import again (adds nothing)", again)
print(f"SQLite database size: {size / 1e6:.0f} MB")
url = os.environ.get("LLM_USAGE_BENCH_POSTGRES")
if url:
    base = url.rsplit("/", 1)[0]
    times = []
    for _ in range(runs):
        subprocess.run(["psql", url, "-qc", "DROP DATABASE IF EXISTS llm_usage_bench", "-qc", "CREATE DATABASE llm_usage_bench"], check=True)
        times.append(timed(["import", path, "--db", f"{base}/llm_usage_bench"]))
    report("import into PostgreSQL", times)
PY
