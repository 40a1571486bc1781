#!/usr/bin/python3
"""Sums meson's testlog.json files into one line: N passed, N failed, N skipped.

A missing log (a build that failed) counts as one failure, so a broken build
can never print a clean line. Exits 1 if anything failed."""
import json, sys

passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            lines = [json.loads(l) for l in f if l.strip()]
    except OSError:
        failed += 1
        continue
    for t in lines:
        r = t.get("result")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
