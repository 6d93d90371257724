#!/usr/bin/env bash
# Makes the README's screenshots from the quickstart's logs: docs/images/report.png (the page
# `llm-usage report --html` writes, rendered by headless Chromium) and docs/images/watch.png
# (`llm-usage watch` in a 110x32 tmux pane, its cells drawn as HTML and rendered the same way).
# Needs chromium and tmux (Debian: apt-get install chromium tmux).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=docs/images
WORK=$(mktemp -d /tmp/llm-usage-shots.XXXXXX)
trap 'tmux -L llm-usage-shots kill-server 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

(cd "$WORK" && cargo run --quiet --manifest-path "$OLDPWD/Cargo.toml" --example quickstart > /dev/null)
cargo build --quiet -p llm-usage
BIN=$PWD/target/debug/llm-usage

shot() { # html png width height
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
    --user-data-dir="$WORK/profile" --window-size="$3,$4" --screenshot="$2" "file://$1" 2> /dev/null
}

(cd "$WORK" && "$BIN" report --html report.html llm_usage_logs)
shot "$WORK/report.html" "$OUT/report.png" 1000 1500

tmux -L llm-usage-shots new-session -d -s w -x 110 -y 32 -c "$WORK" "'$BIN' watch llm_usage_logs; sleep 30"
sleep 2
tmux -L llm-usage-shots capture-pane -e -p -t w > "$WORK/watch.ansi"
python3 - "$WORK/watch.ansi" "$WORK/watch.html" <<'PY'
import html, re, sys
# The pane's text with its SGR colours, as a terminal would show it (dark background).
colours = {30: "#2e3436", 31: "#cc0000", 32: "#4e9a06", 33: "#c4a000", 34: "#3465a4",
           35: "#75507b", 36: "#06989a", 37: "#d3d7cf", 90: "#555753", 91: "#ef2929",
           92: "#8ae234", 93: "#fce94f", 94: "#729fcf", 95: "#ad7fa8", 96: "#34e2e2", 97: "#eeeeec"}
out, fg, bold, dim = [], None, False, False
for part in re.split(r"(\x1b\[[0-9;]*m)", open(sys.argv[1], encoding="utf-8").read()):
    m = re.fullmatch(r"\x1b\[([0-9;]*)m", part)
    if not m:
        style = f"color:{fg or '#d3d7cf'};" + ("font-weight:bold;" if bold else "") + ("opacity:.6;" if dim else "")
        out.append(f'<span style="{style}">{html.escape(part)}</span>')
        continue
    codes = [int(c) for c in m.group(1).split(";") if c] or [0]
    for c in codes:
        if c == 0: fg, bold, dim = None, False, False
        elif c == 1: bold = True
        elif c == 2: dim = True
        elif c in (22,): bold = dim = False
        elif c == 39: fg = None
        elif c in colours: fg = colours[c]
open(sys.argv[2], "w").write(
    "<!DOCTYPE html><html><body style='margin:0;background:#1e1e1e'>"
    "<pre style='margin:12px;font:14px/1.25 \"DejaVu Sans Mono\",monospace'>" + "".join(out) + "</pre></body></html>")
PY
shot "$WORK/watch.html" "$OUT/watch.png" 1000 600
ls -l "$OUT"
