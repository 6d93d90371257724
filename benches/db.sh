#!/usr/bin/env bash
# Reports from a database against the engine's own SQL, in one run: a store of CALLS calls
# (benches/gen-log.py, spread over DAYS daily files) imported into SQLite, and into PostgreSQL
# when LLM_USAGE_BENCH_POSTGRES is a URL of a database the script may fill. For each engine, the
# median wall time of RUNS runs of
#
#   * `llm-usage by step --db` (whole store: read from the daily sums) against
#     `SELECT step, count(*), sums GROUP BY step` over the calls;
#   * `llm-usage by step --since D --until D --db` (one day) against the same with
#     `WHERE timestamp >= D AND timestamp < D+1`;
#   * `llm-usage by task --db` (whole store: not in the daily sums, so from the calls) against
#     `GROUP BY task`;
#   * `llm-usage by run --db` (whole store) against `GROUP BY run_id`;
#   * `llm-usage run list --db` against each run's sums and first and last call, and the
#     summaries' lines;
#   * `llm-usage stats --db`, whole store and one day, against the calls' sums and
#     `count(DISTINCT run_id)` over the same rows;
#
# the engine's side timed in process (Python's sqlite3, psql's \timing), and llm-usage's peak
# RSS. Then the same one-day question on a store of TIMES × CALLS calls (the extra rows on other
# days), in SQLite and (a database `<name>_big` beside the given one) PostgreSQL: its time over
# the small store's.
#
# Last, `llm-usage import` of the daily files into a new SQLite file against the loader a user
# would write instead (Python: `json.loads` + `executemany` into one table without indexes):
# IMPORT_RUNS pairs, the median of each side and of the pairs' ratios. `ONLY=import` runs this
# part alone.
#
#   bash benches/db.sh   (BENCH_DIR=/tmp/llm-usage-db CALLS=600000 DAYS=300 RUNS=5 TIMES=10
#                         IMPORT_RUNS=5 ONLY=)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${BENCH_DIR:-/tmp/llm-usage-db}
CALLS=${CALLS:-600000}
DAYS=${DAYS:-300}
RUNS=${RUNS:-5}
TIMES=${TIMES:-10}
IMPORT_RUNS=${IMPORT_RUNS:-5}
ONLY=${ONLY:-}
PG=${LLM_USAGE_BENCH_POSTGRES:-}
mkdir -p "$DIR"
[ -d "$DIR/logs" ] || python3 benches/gen-log.py "$DIR/logs" "$CALLS" --days "$DAYS"
cargo build --release --quiet -p llm-usage
BIN=$PWD/target/release/llm-usage
if [ "$ONLY" != import ]; then
[ -f "$DIR/usage.sqlite" ] || "$BIN" import "$DIR/logs" --db "$DIR/usage.sqlite" > /dev/null
if [ "$TIMES" != 0 ] && [ ! -f "$DIR/big.sqlite" ]; then
    # The same store TIMES times over, each copy on days of its own (years apart).
    python3 - "$DIR" "$TIMES" <<'PY'
import os, sqlite3, sys
d, times = sys.argv[1], int(sys.argv[2])
src = os.path.join(d, "usage.sqlite")
dst = os.path.join(d, "big.sqlite")
con = sqlite3.connect(dst)
con.execute(f"ATTACH '{src}' AS s")
for t in ("llm_schema", "llm_usage", "llm_runs", "llm_events", "llm_imports"):
    con.execute(f"CREATE TABLE {t} AS SELECT * FROM s.{t} WHERE 0")
# The daily sums and the imports under way as the library makes them (filled below by
# `llm-usage rollup`).
for (sql,) in con.execute("SELECT sql FROM s.sqlite_master WHERE tbl_name IN ('llm_daily', 'llm_loads') "
                          "AND sql IS NOT NULL ORDER BY type DESC").fetchall():
    con.execute(sql)
con.execute("INSERT INTO llm_schema SELECT * FROM s.llm_schema")
for k in range(times):
    shift = f"'+{k * 2} years'" if k else "'+0 years'"
    for t in ("llm_usage", "llm_runs", "llm_events"):
        cols = [r[1] for r in con.execute(f"PRAGMA s.table_info({t})")]
        sel = ", ".join(
            f"strftime('%Y-%m-%dT%H:%M:%fZ', timestamp, {shift})" if c == "timestamp"
            else (f"id || '-{k}'" if c == "id" else ("seq + %d" % (k * 10**8) if c == "seq" else c))
            for c in cols)
        con.execute(f"INSERT INTO {t} ({', '.join(cols)}) SELECT {sel} FROM s.{t}")
con.execute("CREATE TABLE llm_counts AS SELECT (SELECT count(*) FROM llm_usage) + "
            "(SELECT count(*) FROM llm_runs) + (SELECT count(*) FROM llm_events) AS lines")
con.commit()
for stmt in ["CREATE INDEX llm_usage_seq ON llm_usage (seq)", "CREATE INDEX llm_usage_time ON llm_usage (timestamp)",
             "CREATE INDEX llm_usage_model ON llm_usage (model, timestamp)", "CREATE INDEX llm_usage_provider ON llm_usage (provider, timestamp)",
             "CREATE INDEX llm_usage_step ON llm_usage (step, task)", "CREATE INDEX llm_usage_run ON llm_usage (run_id)",
             "CREATE INDEX llm_runs_seq ON llm_runs (seq)", "CREATE INDEX llm_runs_run ON llm_runs (run_id)",
             "CREATE INDEX llm_events_seq ON llm_events (seq)",
             "CREATE INDEX llm_runs_time ON llm_runs (timestamp)", "CREATE INDEX llm_events_time ON llm_events (timestamp)"]:
    con.execute(stmt)
con.commit()
PY
    "$BIN" rollup --db "$DIR/big.sqlite"
fi
if [ -n "$PG" ]; then
    psql -q "$PG" -c "DROP TABLE IF EXISTS llm_usage, llm_runs, llm_events, llm_imports, llm_schema, llm_counts, llm_daily, llm_loads; DROP SEQUENCE IF EXISTS llm_seq; DROP FUNCTION IF EXISTS llm_count_added, llm_count_removed, llm_recount, llm_daily_removed, llm_daily_cleared" > /dev/null
    "$BIN" import "$DIR/logs" --db "$PG" > /dev/null
    psql -q "$PG" -c "VACUUM ANALYZE" > /dev/null
fi
PG_BIG=
if [ -n "$PG" ] && [ "$TIMES" != 0 ]; then
    # The same store TIMES times over in a database of its own beside it (`<name>_big`),
    # each copy on days of its own (two years apart), as for SQLite.
    name=${PG##*/}
    PG_BIG="${PG%/*}/${name}_big"
    psql -q "$PG" -c "DROP DATABASE IF EXISTS ${name}_big" -c "CREATE DATABASE ${name}_big" > /dev/null
    pg_dump "$PG" | psql -q "$PG_BIG" > /dev/null
    for t in llm_usage llm_runs llm_events; do
        psql -q "$PG_BIG" > /dev/null <<SQL
CREATE TEMP TABLE copy AS SELECT * FROM $t;
DO \$\$ BEGIN
  FOR k IN 1..$((TIMES - 1)) LOOP
    UPDATE copy SET seq = seq + 100000000, id = id || '-' || k,
      timestamp = timestamp + interval '2 years';
    INSERT INTO $t SELECT * FROM copy;
  END LOOP;
END \$\$;
SQL
    done
    "$BIN" rollup --db "$PG_BIG"
    psql -q "$PG_BIG" -c "VACUUM ANALYZE" > /dev/null
fi

python3 - "$BIN" "$DIR" "$RUNS" "$PG" "$TIMES" "$PG_BIG" <<'PY'
import os, re, sqlite3, statistics, subprocess, sys, time
bin_, d, runs, pg, times = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
pg_big = sys.argv[6]
sqlite_db = os.path.join(d, "usage.sqlite")
con = sqlite3.connect(sqlite_db)
day = con.execute("SELECT substr(timestamp, 1, 10) FROM llm_usage ORDER BY seq LIMIT 1 OFFSET "
                  "(SELECT count(*) / 2 FROM llm_usage)").fetchone()[0]
calls = con.execute("SELECT count(*) FROM llm_usage").fetchone()[0]
next_day = con.execute("SELECT date(?, '+1 day')", (day,)).fetchone()[0]
lo, hi = day + "T00:00:00.000Z", next_day + "T00:00:00.000Z"
GROUP = """SELECT step, count(*), count(error), sum(input_tokens), sum(output_tokens), sum(total_tokens),
                  sum(cache_read_tokens), sum(reasoning_tokens), sum(cost_usd), count(cost_usd)
           FROM llm_usage {where} GROUP BY step"""

# What `stats` asks for: the calls' sums and their distinct runs (the other queries it makes
# are a count of summaries, of budget lines, and two index look-ups).
TOTALS = """SELECT count(*), count(error), sum(input_tokens), sum(output_tokens), sum(total_tokens),
                  sum(cache_read_tokens), sum(reasoning_tokens), sum(cost_usd), count(cost_usd),
                  count(DISTINCT run_id)
           FROM llm_usage {where}"""

# What `run list` asks for: each run's sums and first and last call, then the summaries' lines.
RUN_LIST = ["""SELECT run_id, count(*), sum(input_tokens), sum(output_tokens), sum(cost_usd), count(cost_usd),
                     min(timestamp), max(timestamp) FROM llm_usage GROUP BY run_id""",
            "SELECT line FROM llm_runs ORDER BY seq"]

def median(f):
    ts = []
    for _ in range(runs):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return statistics.median(ts)

def cli(args):
    return median(lambda: subprocess.run([bin_, *args], check=True, stdout=subprocess.DEVNULL))

def rss(args):
    r = subprocess.run(["/usr/bin/time", "-v", bin_, *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) / 1024

def sqlite_q(path, sql, params=()):
    def run():
        c = sqlite3.connect(path)
        c.execute(sql, params).fetchall()
        c.close()
    return median(run)

def sqlite_qs(path, sqls):
    def run():
        c = sqlite3.connect(path)
        for sql in sqls:
            c.execute(sql).fetchall()
        c.close()
    return median(run)

def pg_q(sql, url=None):
    def run():
        subprocess.run(["psql", "-q", "-X", url or pg, "-c", sql], check=True,
                       stdout=subprocess.DEVNULL)
    return median(run)

print(f"store: {calls:,} calls; one day: {day}")
print(f"{'engine':<11}{'question':<26}{'llm-usage s':>12}{'engine s':>10}{'ratio':>7}{'RSS MB':>8}")
rows = []
def row(engine, question, args, engine_s):
    ours = cli(args)
    print(f"{engine:<11}{question:<26}{ours:>12.3f}{engine_s:>10.3f}{ours / engine_s:>7.2f}{rss(args):>8.1f}", flush=True)
    return ours

win = ["--since", day, "--until", day]
row("SQLite", "by step, whole store", ["by", "step", "--db", sqlite_db],
    sqlite_q(sqlite_db, GROUP.format(where="")))
small = row("SQLite", "by step, one day", ["by", "step", *win, "--db", sqlite_db],
    sqlite_q(sqlite_db, GROUP.format(where="WHERE timestamp >= ? AND timestamp < ?"), (lo, hi)))
row("SQLite", "by task, whole store", ["by", "task", "--db", sqlite_db],
    sqlite_q(sqlite_db, GROUP.replace("step", "task").format(where="")))
row("SQLite", "by run, whole store", ["by", "run", "--db", sqlite_db],
    sqlite_q(sqlite_db, GROUP.replace("step", "run_id").format(where="")))
row("SQLite", "run list, whole store", ["run", "list", "--db", sqlite_db],
    sqlite_qs(sqlite_db, RUN_LIST))
row("SQLite", "stats, whole store", ["stats", "--db", sqlite_db],
    sqlite_q(sqlite_db, TOTALS.format(where="")))
row("SQLite", "stats, one day", ["stats", *win, "--db", sqlite_db],
    sqlite_q(sqlite_db, TOTALS.format(where="WHERE timestamp >= ? AND timestamp < ?"), (lo, hi)))
big_db = os.path.join(d, "big.sqlite")
if times and os.path.exists(big_db):
    big = row("SQLite", f"by step, one day, {times}×", ["by", "step", *win, "--db", big_db],
              sqlite_q(big_db, GROUP.format(where="WHERE timestamp >= ? AND timestamp < ?"), (lo, hi)))
    print(f"one day on the {times}× store over the store: {big / small:.2f}")
    row("SQLite", f"stats, one day, {times}×", ["stats", *win, "--db", big_db],
        sqlite_q(big_db, TOTALS.format(where="WHERE timestamp >= ? AND timestamp < ?"), (lo, hi)))
if pg:
    pg_where = f"WHERE timestamp >= '{lo}' AND timestamp < '{hi}'"
    row("PostgreSQL", "by step, whole store", ["by", "step", "--db", pg], pg_q(GROUP.format(where="")))
    small = row("PostgreSQL", "by step, one day", ["by", "step", *win, "--db", pg],
                pg_q(GROUP.format(where=pg_where)))
    if pg_big:
        big = row("PostgreSQL", f"by step, one day, {times}×", ["by", "step", *win, "--db", pg_big],
                  pg_q(GROUP.format(where=pg_where), pg_big))
        print(f"one day on the {times}× store over the store: {big / small:.2f}")
        row("PostgreSQL", f"stats, one day, {times}×", ["stats", *win, "--db", pg_big],
            pg_q(TOTALS.format(where=pg_where), pg_big))
    row("PostgreSQL", "by task, whole store", ["by", "task", "--db", pg],
        pg_q(GROUP.replace("step", "task").format(where="")))
    row("PostgreSQL", "by run, whole store", ["by", "run", "--db", pg],
        pg_q(GROUP.replace("step", "run_id").format(where="")))
    row("PostgreSQL", "run list, whole store", ["run", "list", "--db", pg], pg_q("; ".join(RUN_LIST)))
    row("PostgreSQL", "stats, whole store", ["stats", "--db", pg], pg_q(TOTALS.format(where="")))
    row("PostgreSQL", "stats, one day", ["stats", *win, "--db", pg],
        pg_q(TOTALS.format(where=pg_where)))
PY

fi

python3 - "$BIN" "$DIR" "$IMPORT_RUNS" <<'PY'
import glob, json, os, sqlite3, statistics, subprocess, sys, tempfile, time
bin_, d, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
files = sorted(glob.glob(os.path.join(d, "logs", "*.jsonl")))

def ours(tmp):
    t = time.perf_counter()
    subprocess.run([bin_, "import", os.path.join(d, "logs"), "--db", os.path.join(tmp, "ours.sqlite")],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t

def plain(tmp):
    t = time.perf_counter()
    con = sqlite3.connect(os.path.join(tmp, "plain.sqlite"))
    con.execute("CREATE TABLE lines (event TEXT, timestamp TEXT, run_id TEXT, step TEXT, model TEXT,"
                " input INTEGER, output INTEGER, cost REAL, line TEXT)")
    for f in files:
        rows = []
        for line in open(f):
            v = json.loads(line)
            tok = v.get("tokens") or {}
            rows.append((v["event"], v["timestamp"], v.get("run_id"), v.get("step"), v.get("model"),
                         tok.get("input"), tok.get("output"), v.get("cost_usd"), line))
        con.executemany("INSERT INTO lines VALUES (?,?,?,?,?,?,?,?,?)", rows)
    con.commit()
    con.close()
    return time.perf_counter() - t

# Pairs, each side first in turn, each into a directory of its own deleted before the next
# run: the machine's speed drifts, and the ratio of a pair is what counts.
pairs = []
for k in range(runs):
    times = {}
    for name, load in ((("ours", ours), ("plain", plain)) if k % 2 == 0 else (("plain", plain), ("ours", ours))):
        with tempfile.TemporaryDirectory() as tmp:
            times[name] = load(tmp)
    pairs.append((times["ours"], times["plain"]))
    print(f"  import run {k + 1}: llm-usage {times['ours']:.2f} s, Python loader {times['plain']:.2f} s, "
          f"ratio {times['ours'] / times['plain']:.2f}", flush=True)
print(f"import of {len(files)} files into a new SQLite file, median of {runs}: "
      f"llm-usage {statistics.median(o for o, _ in pairs):.2f} s, "
      f"a Python loader {statistics.median(p for _, p in pairs):.2f} s, "
      f"ratio {statistics.median(o / p for o, p in pairs):.2f}")
PY
