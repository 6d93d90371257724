#!/usr/bin/env bash
# llm-usage against DuckDB on realistic logs (benches/gen-log.py): one file of about 300 MB,
# and a month of 30 daily files, plain and gzip. For each command: the median wall time of
# RUNS runs and the peak RSS (/usr/bin/time -v); for `by step`, DuckDB's read_json + GROUP BY on
# the same files (in process, its import excluded) and the ratio; and the physical limit,
# reading the bytes from the page cache (`dd` in 1 MB blocks, or `zcat` for .gz: one core). Then `import` into SQLite,
# fresh and repeated (and into PostgreSQL when LLM_USAGE_BENCH_POSTGRES is a URL). Last, the
# bytes each command keeps a run: its peak RSS on a log of BIG_CALLS calls against the same log
# with its run ids merged into 256 (median of 3), over the number of runs (BIG_CALLS=0: skipped).
#
#   bash benches/cli.sh   (BENCH_DIR=/tmp/llm-usage-bench CALLS=472000 RUNS=5 BIG_CALLS=1500000)
#
# Needs python3 with the duckdb package for the DuckDB column (`pip install duckdb`).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${BENCH_DIR:-/tmp/llm-usage-bench}
CALLS=${CALLS:-472000}
RUNS=${RUNS:-5}
mkdir -p "$DIR"
[ -f "$DIR/one.jsonl" ] || python3 benches/gen-log.py "$DIR/one.jsonl" "$CALLS"
[ -d "$DIR/month" ] || python3 benches/gen-log.py "$DIR/month" "$CALLS" --days 30
[ -d "$DIR/month-gz" ] || python3 benches/gen-log.py "$DIR/month-gz" "$CALLS" --days 30 --gzip
BIG_CALLS=${BIG_CALLS:-1500000}
if [ "$BIG_CALLS" != 0 ] && [ ! -f "$DIR/big-fewruns.jsonl" ]; then
    python3 benches/gen-log.py "$DIR/big.jsonl" "$BIG_CALLS"
    sed -E 's/"run_id":"run-[0-9a-f]{6}/"run_id":"run-xx/g' "$DIR/big.jsonl" > "$DIR/big-fewruns.jsonl"
fi
cargo build --release --quiet -p llm-usage
BIN=$PWD/target/release/llm-usage

python3 - "$BIN" "$DIR" "$RUNS" "$BIG_CALLS" <<'PY'
import glob, json, os, re, statistics, subprocess, sys, tempfile, time
bin_, d, runs, big_calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
inputs = [("one file", os.path.join(d, "one.jsonl"), [os.path.join(d, "one.jsonl")]),
          ("30 daily files", os.path.join(d, "month"), sorted(glob.glob(os.path.join(d, "month", "*.jsonl")))),
          ("30 daily .gz", os.path.join(d, "month-gz"), sorted(glob.glob(os.path.join(d, "month-gz", "*.jsonl.gz"))))]

def wall(cmd):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)

def rss_mb(cmd):
    r = subprocess.run(["/usr/bin/time", "-v", *cmd], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    return kb / 1024

def mb(paths):
    return sum(os.path.getsize(p) for p in paths) / 1e6

try:
    import duckdb
    con = duckdb.connect()
except ImportError:
    con = None
    print("duckdb is not installed (pip install duckdb): its column is empty")

commands = [["stats"], ["report"], ["by", "step"], ["by", "model"], ["by", "day"],
            ["budget", "--per-day", "50"], ["by", "run"], ["run", "list"], ["budget", "--per-run", "0.5"]]
for label, target, files in inputs:
    gz = files[0].endswith(".gz")
    # dd really reads (cat to /dev/null may skip the copy); zcat also inflates.
    reader = "zcat {} > /dev/null" if gz else "for f in {}; do dd if=$f of=/dev/null bs=1M status=none; done"
    limit = wall(["sh", "-c", reader.format(" ".join(files))])
    print(f"\n## {label}: {len(files)} file(s), {mb(files):.0f} MB{' compressed' if gz else ''}; "
          f"reading them from the page cache ({'zcat' if gz else 'dd'}, one core): {limit:.3f} s")
    print(f"{'command':<28}{'wall s':>9}{'peak RSS MB':>13}")
    for c in commands:
        cmd = [bin_, *c, target]
        print(f"{' '.join(c):<28}{wall(cmd):>9.3f}{rss_mb(cmd):>13.1f}", flush=True)
    if con is not None:
        src = "[" + ",".join(f"'{f}'" for f in files) + "]"
        q = f"""SELECT step, count(*) AS calls, sum(tokens.input) AS input, sum(tokens.output) AS output,
                       sum(cost_usd) AS cost FROM read_json({src}, format='newline_delimited')
                WHERE event = 'llm_call' GROUP BY step ORDER BY cost DESC"""
        ddb = []
        for _ in range(runs):
            t = time.perf_counter(); con.sql(q).fetchall(); ddb.append(time.perf_counter() - t)
        ours = wall([bin_, "by", "step", target])
        print(f"by step: llm-usage {ours:.3f} s, DuckDB {duckdb.__version__} {statistics.median(ddb):.3f} s: "
              f"{statistics.median(ddb) / ours:.2f}x DuckDB's speed; {ours / limit:.2f}x the read limit")

print("\n## import into SQLite (one file)")
with tempfile.TemporaryDirectory() as tmp:
    db = os.path.join(tmp, "usage.sqlite")
    one = inputs[0][1]
    t = time.perf_counter()
    subprocess.run(["/usr/bin/time", "-v", "-o", os.path.join(tmp, "t"), bin_, "import", one, "--db", db],
                   check=True, stdout=subprocess.DEVNULL)
    fresh = time.perf_counter() - t
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(os.path.join(tmp, "t")).read()).group(1))
    again = wall([bin_, "import", one, "--db", db])
    print(f"fresh {fresh:.2f} s (peak RSS {kb / 1024:.0f} MB); repeated, adding nothing, {again:.2f} s")
    pg = os.environ.get("LLM_USAGE_BENCH_POSTGRES")
    if pg:
        t = time.perf_counter()
        subprocess.run([bin_, "import", one, "--db", pg], check=True, stdout=subprocess.DEVNULL)
        print(f"PostgreSQL: fresh {time.perf_counter() - t:.2f} s; repeated {wall([bin_, 'import', one, '--db', pg]):.2f} s")

if big_calls:
    many, few = os.path.join(d, "big.jsonl"), os.path.join(d, "big-fewruns.jsonl")
    stats = json.loads(subprocess.run([bin_, "stats", many, "--format", "json"], check=True,
                                      capture_output=True, text=True).stdout)
    n = stats["runs"]
    print(f"\n## bytes a run: {stats['calls']:,} calls in {n:,} runs ({mb([many]):.0f} MB) "
          f"against the same calls in 256 runs; peak RSS, median of 3")
    print(f"{'command':<28}{'MB':>8}{'MB (256 runs)':>15}{'bytes a run':>13}")
    for c in [["stats"], ["by", "step"], ["by", "run"], ["run", "list"],
              ["budget", "--per-run", "0.5"]]:
        a = statistics.median(rss_mb([bin_, *c, many]) for _ in range(3))
        b = statistics.median(rss_mb([bin_, *c, few]) for _ in range(3))
        print(f"{' '.join(c):<28}{a:>8.1f}{b:>15.1f}{(a - b) * 1024 * 1024 / n:>13.1f}", flush=True)
PY
