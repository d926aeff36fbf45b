#!/usr/bin/env python3
"""CPython's re as an oracle for adapter/pydiff_test.go.

Reads JSON lines {"p": pattern, "t": [text, ...]} on stdin and writes one
JSON line per request: {"e": error} when re.compile(p, re.IGNORECASE)
fails, {"timeout": true} when CPython's backtracking takes over 2 s, else
{"s": [[start, end] or null, ...]}, the span (in code points) of
re.search on each text. Stdlib only; one process serves a whole test.
"""
import json
import re
import signal
import sys
import unicodedata
import warnings

warnings.simplefilter("ignore")  # FutureWarning for "[[" and friends


class Timeout(Exception):
    pass


def on_alarm(signum, frame):
    raise Timeout()


def main():
    # sre checks for signals while it backtracks, so a pattern whose
    # backtracking explodes on a text is cut off and reported as such.
    signal.signal(signal.SIGALRM, on_alarm)
    out = sys.stdout
    out.write(json.dumps({"version": "%d.%d.%d" % sys.version_info[:3],
                          "unicode": unicodedata.unidata_version}) + "\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        try:
            rx = re.compile(req["p"], re.IGNORECASE)
        except (re.error, OverflowError, ValueError, RecursionError) as e:
            out.write(json.dumps({"e": str(e)}) + "\n")
            out.flush()
            continue
        spans = []
        try:
            signal.setitimer(signal.ITIMER_REAL, 2.0)
            for t in req["t"]:
                m = rx.search(t)
                spans.append(None if m is None else [m.start(), m.end()])
            signal.setitimer(signal.ITIMER_REAL, 0)
        except Timeout:
            out.write(json.dumps({"timeout": True}) + "\n")
            out.flush()
            continue
        out.write(json.dumps({"s": spans}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
