#!/usr/bin/env bash
# The GUI's figures (issue 13): from a restart of web, auth or NATS to the open page showing "live"
# again, and the first paint of /web/ after login, measured by chromium on the real stack
# (integration-tests/web/test_browser_stack.py, E2E_ROUNDS rounds, 5 by default). Anchors measured
# in the same run: the supervisor's own restart-until-READY, and the page fetched without rendering.
# Rewrites only its own section of bench/RESULTS.md. Needs the build (cmake --build build) and chromium.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${XT_BUILD_DIR:-$ROOT/build}
ROUNDS=${E2E_ROUNDS:-5}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
XT_SOURCE_DIR=$ROOT XT_BIN_DIR=$BUILD/bin XT_TEST_BIN_DIR=$BUILD/tests XT_PORT_OFFSET=900 E2E_ROUNDS=$ROUNDS \
  PYTHONPATH=$ROOT/integration-tests/lib python3 "$ROOT/integration-tests/web/test_browser_stack.py" | tee "$out" \
  | grep -E '^(figure|step|RESTARTS)' >&2
python3 - "$out" "$ROOT/bench/RESULTS.md" "$ROUNDS" <<'PY'
import re, statistics, sys, datetime, os
figs = {}
for line in open(sys.argv[1]):
    m = re.match(r"figure: (\S+) (-?\d+)", line)
    if m:
        figs.setdefault(m.group(1), []).append(int(m.group(2)))
med = lambda k: statistics.median(figs[k]) if figs.get(k) else float("nan")
def row(name, key, anchor_key, anchor_name):
    v, a = med(key), med(anchor_key)
    return f"| {name} | {v:.0f} ms | {anchor_name}: {a:.0f} ms | {v / a:.2f}x | {len(figs.get(key, []))} |"
auth = "auth_restart_to_answer_ms" if figs.get("auth_restart_to_answer_ms") else "auth_restart_to_signedout_ms"
load = os.getloadavg()[0]
section = f"""<!-- begin:web-gui -->
## web GUI: back to "live" after restarts, first paint (bench/web/gui.sh)

{datetime.date.today()}, {sys.argv[3]} rounds on the real stack (configs/services.yaml under xtask-supervisor), Debian's
chromium through playwright-core, load average {load:.1f} at the end. Medians; the anchor is measured in the same run.

| figure | median | anchor (same run) | ratio | n |
|---|---|---|---|---|
{row("`restart web` -> the open page live again (new snapshot)", "web_restart_to_live_ms", "web_restart_ready_ms", "`xtask-supervisor restart web` until READY")}
{row("`start nats` (after `stop nats`) -> banner gone, page live", "nats_start_to_live_ms", "nats_start_ready_ms", "`start nats` until READY")}
{row("`restart auth` -> the page's next request answered (" + ("works" if auth.endswith("answer_ms") else "says signed out") + ")", auth, "auth_restart_ready_ms", "`restart auth` until READY")}
{row("`stop nats` -> outage banner on the page", "nats_stop_to_banner_ms", "page_get_ms", "GET /web/ without rendering")}
{row("first contentful paint of /web/ (with a session)", "first_paint_ms", "page_get_ms", "GET /web/ without rendering")}
{row("navigation to /web/ -> badge live (snapshot applied)", "first_live_ms", "page_get_ms", "GET /web/ without rendering")}

The restart figures include the supervisor's restart (stop, start, ready probe): the page itself adds its
reconnect back-off (0.5 s doubling, from the moment the stream ended) and one snapshot. Sessions did
{"" if auth.endswith("answer_ms") else "not "}survive `restart auth` in this run.
<!-- end:web-gui -->"""
path = sys.argv[2]
text = open(path).read()
pat = re.compile(r"<!-- begin:web-gui -->.*?<!-- end:web-gui -->", re.S)
text = pat.sub(lambda _: section, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text)
print(section)
PY
