"""Supervisor: a noisy child is never blocked when nobody reads the supervisor's stdout (lines
dropped with a counter, reported when output resumes), JSON lines, over-long lines cut, stderr."""
import json
import os
import subprocess
import threading

from xt_testlib import wait_until
from svlib import Sup, fix, run_tests


def test_noisy_child_not_blocked(tmp):
    done = os.path.join(tmp.path, "noisy-finished")
    r, w = os.pipe()  # the supervisor's stdout: nobody reads it for now
    sup = Sup(tmp, f"""
  noisy:
    command: {fix("noisy:200000", f"touch:{done}", "forever")}
  calm:
    command: {fix("print:calm", "forever")}
""", stdout=w)
    try:
        sup.start()
        os.close(w)
        # 20 MB of output through a pipe nobody reads: the child still finishes
        wait_until(lambda: os.path.exists(done), 30, what="noisy child finished writing")
        st = sup.status()
        assert st["noisy"]["dropped_lines"] > 0, st["noisy"]
        assert st["noisy"]["state"] == "READY"
        res = sup.cli("logs", "noisy", "-n", "1")
        assert res.stdout == "noisy done\n", res
        # now read: the queue drains and the loss is reported
        got = []

        def reader():
            with os.fdopen(r, "rb") as f:
                for line in f:
                    got.append(line.decode("utf-8", "replace"))
                    if b"lines dropped" in line:
                        return
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        sup.cli("restart", "calm")  # some fresh output to trigger a flush
        wait_until(lambda: any("lines dropped" in g for g in got), 10, what="drop report")
        line = [g for g in got if "lines dropped" in g][0]
        assert line.startswith("supervisor | noisy: ") and "(supervisor output not read fast enough)" in line, line
        assert sup.stop() == 0
    finally:
        sup.kill()


def test_json_lines_and_cuts(tmp):
    talker = fix('print:hello "quoted" \\ back', "stderr:to stderr", "longline:10000", "print:after", "forever")
    sup = Sup(tmp, f"""
  talker:
    command: {talker}
""", log_format="json")
    try:
        sup.start()
        sup.wait_state("talker", "READY")

        def lines():
            out = []
            for ln in sup.output().splitlines():
                if ln.startswith("{"):
                    try:
                        o = json.loads(ln)
                    except ValueError:
                        continue
                    if o.get("service") == "talker":
                        out.append(o)
            return out
        got = wait_until(lambda: (lambda l: l if any(o["line"] == "after" for o in l) else None)(lines()), 10,
                         what="talker lines")
        assert {"service": "talker", "stream": "stdout", "line": 'hello "quoted" \\ back'}.items() <= got[0].items()
        assert any(o["stream"] == "stderr" and o["line"] == "to stderr" for o in got), got
        cut = [o for o in got if o["line"].startswith("yyyy")][0]
        assert cut["line"].endswith(" [...line cut]") and len(cut["line"]) == 4096 + len(" [...line cut]")
        # the supervisor's own log lines are JSON too
        own = [ln for ln in sup.output().splitlines() if '"msg":"talker: STARTING -> READY' in ln]
        assert own and json.loads(own[0])["level"] == "info", sup.output()[-2000:]
        assert sup.stop() == 0
    finally:
        sup.kill()


if __name__ == "__main__":
    run_tests([test_noisy_child_not_blocked, test_json_lines_and_cuts])
