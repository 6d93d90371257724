"""Writes a realistic LLM usage log, as a busy agent service makes one: many short runs (1 to 20
calls, about 4.5 on average) made by several threads at once, so that the lines of concurrent
runs interleave; each run's summary after its last call; budget lines for the runs that cross a
limit; timestamps in writing order. The lines are what the layer writes, key for key.
Deterministic for a seed.

    python3 benches/gen-log.py OUT CALLS [--days N] [--gzip] [--seed S] [--threads T]

With --days N, OUT is a directory and gets N daily files llm_usage.YYYY-MM-DD.jsonl[.gz]
(the calls spread evenly over the days); otherwise OUT is one file. 472,000 calls (about
107,000 runs) make about 300 MB.
"""
import argparse, gzip, json, os, random

STEPS = ["persona_generation", "summary_generation", "tool_loop", "classification", "extraction",
         "planning", "retrieval", "critique", "answer"]
# model, provider, $/input token, $/output token
MODELS = [("claude-sonnet-4-5-20250929", "anthropic", 3e-6, 1.5e-5), ("gpt-4o", "openai", 2.5e-6, 1e-5),
          ("gpt-4.1-mini", "openai", 4e-7, 1.6e-6), ("gemini-2.5-flash", "gcp.gemini", 3e-7, 2.5e-6),
          ("claude-haiku-4-5", "anthropic", 1e-6, 5e-6), ("o4-mini", "openai", 1.1e-6, 4.4e-6)]
RUN_BUDGET = 1.0  # USD a run: a budget_warning at 80 %, a budget_exceeded at 100 %


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def ts(ms):
    s, ms = divmod(ms, 1000)
    days, s = divmod(s, 86400)
    y, m, d = civil(days)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (y, m, d, s // 3600, s // 60 % 60, s % 60, ms)


def civil(days):
    # days since 1970-01-01 → (year, month, day), Howard Hinnant's algorithm
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return y + (m <= 2), m, d


def run_length(rng):
    # 1 to 20 calls, most runs short: mean about 4.5
    return min(20, 1 + int(rng.expovariate(1 / 4.0)))


def calls_of_run(rng, run_no, start_ms, n):
    """(timestamp ms, line) of one run: its calls, budget lines, and its summary."""
    run_id = "run-%08x" % (run_no * 2654435761 % (1 << 32))
    task = "task-%d" % rng.randrange(40)
    agent = "agent-%d" % rng.randrange(7)
    model, provider, pin, pout = MODELS[rng.randrange(len(MODELS))]
    t = start_ms
    out = []
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "call_count": 0, "cost_usd": 0.0}
    by_step = {}
    prompt = {"system": 0, "data": 0, "instructions": 0}
    warned = exceeded = False
    for i in range(n):
        if rng.random() < 0.15:
            model, provider, pin, pout = MODELS[rng.randrange(len(MODELS))]
        step = STEPS[rng.randrange(len(STEPS))]
        inp = rng.randrange(300, 40000)
        o = rng.randrange(20, 3000)
        cr = rng.randrange(0, inp // 2) if rng.random() < 0.4 else 0
        reasoning = rng.randrange(0, o) if model == "o4-mini" else 0
        latency = rng.randrange(150, 12000)
        t += latency + rng.randrange(0, 400)
        cost = round((inp - cr) * pin + cr * pin / 10 + o * pout, 9)
        error = "timeout" if rng.random() < 0.01 else None
        pb = {"system": inp // 10, "data": inp * 8 // 10, "instructions": inp - inp // 10 - inp * 8 // 10}
        line = {"timestamp": ts(t), "event": "llm_call", "run_id": run_id, "step": step, "model": model,
                "provider": provider, "task": task, "agent": agent,
                "tokens": {"input": inp, "output": o, "total": inp + o, "cache_read": cr, "cache_write": 0,
                           "reasoning": reasoning},
                "prompt_breakdown": pb, "cost_usd": cost, "cost_source": "local",
                "price_version": "prices-3f2a9c1e", "latency_ms": latency, "estimated": False,
                "error": error, "warnings": []}
        out.append((t, dumps(line)))
        usage["input_tokens"] += inp
        usage["output_tokens"] += o
        usage["total_tokens"] += inp + o
        usage["call_count"] += 1
        usage["cost_usd"] = round(usage["cost_usd"] + cost, 9)
        s = by_step.setdefault(step, {"step": step, "input_tokens": 0, "output_tokens": 0, "calls": 0, "cost_usd": 0.0})
        s["input_tokens"] += inp
        s["output_tokens"] += o
        s["calls"] += 1
        s["cost_usd"] = round(s["cost_usd"] + cost, 9)
        for k in prompt:
            prompt[k] += pb[k]
        spent = usage["cost_usd"]
        for kind, limit_share, done in (("budget_warning", 0.8, warned), ("budget_exceeded", 1.0, exceeded)):
            if not done and spent >= RUN_BUDGET * limit_share:
                out.append((t, dumps({"timestamp": ts(t), "event": kind, "budget": "run-usd", "scope": "run",
                                      "scope_id": run_id, "metric": "usd", "limit": RUN_BUDGET, "value": spent,
                                      "run_id": run_id, "step": step, "model": model})))
                if kind == "budget_warning":
                    warned = True
                else:
                    exceeded = True
    t += rng.randrange(1, 50)
    status = "error" if rng.random() < 0.02 else "success"
    summary = {"timestamp": ts(t), "event": "run_summary", "run_id": run_id, "status": status,
               "elapsed_seconds": round((t - start_ms) / 1000, 3), "usage": usage,
               "by_step": sorted(by_step.values(), key=lambda s: -s["cost_usd"]), "prompt_breakdown": prompt}
    out.append((t, dumps(summary)))
    return out, t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("calls", type=int)
    ap.add_argument("--days", type=int, default=0)
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=16)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    start = 1764547200000  # 2025-12-01T00:00:00Z
    days = max(a.days, 1)
    span_ms = days * 86400000
    # Each worker thread runs one run after another; a run's lines are written as they happen,
    # so the threads' lines interleave. Runs start at a pace that spreads CALLS over the days.
    per_thread = a.calls / a.threads
    pending = []  # (time, seq, line) still to write, by thread
    threads = [{"t": start + rng.randrange(0, 5000), "calls": 0} for _ in range(a.threads)]
    made = 0
    run_no = 0
    lines = []
    # A run takes about 4.5 calls of 6.3 s each: the pause after it keeps a thread's runs
    # spread over the whole span.
    runs_per_thread = per_thread / 4.5
    for th in threads:
        th["gap"] = max(1, int(span_ms / max(runs_per_thread, 1) - 4.5 * 6300))
    while made < a.calls:
        th = min(threads, key=lambda x: x["t"])
        n = min(run_length(rng), a.calls - made)
        run_no += 1
        out, end = calls_of_run(rng, run_no, th["t"], n)
        lines.extend(out)
        made += n
        th["t"] = end + rng.randrange(0, 2 * th["gap"])
    lines.sort(key=lambda x: x[0])  # writing order (stable: a run's own lines keep theirs)
    if a.days:
        os.makedirs(a.out, exist_ok=True)
        by_day = {}
        for t, l in lines:
            by_day.setdefault(ts(t)[:10], []).append(l)
        for day, ls in sorted(by_day.items()):
            write(os.path.join(a.out, "llm_usage.%s.jsonl" % day), ls, a.gzip)
    else:
        write(a.out, [l for _, l in lines], a.gzip)
    print("%d calls in %d runs, %d lines" % (made, run_no, len(lines)))


def write(path, lines, gz):
    data = ("\n".join(lines) + "\n").encode()
    if gz:
        with gzip.open(path + ("" if path.endswith(".gz") else ".gz"), "wb", compresslevel=6) as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
