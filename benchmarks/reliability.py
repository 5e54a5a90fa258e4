"""Run the reliability catalogue (tests/reliability) and write its counts as JSON.

    python benchmarks/reliability.py [--output benchmarks/results/reliability.json] [-- PYTEST ARGS]

Every case in the catalogue runs a command (or sends an HTTP request) as a user or an attacker
would and ends in ``tests/reliability/harness.check``, which records the exit code or status it
saw, whether any traceback was printed, whether stderr was one line, and how many of the user's
files were lost or changed, left half-written, or written outside the target. This script runs
the catalogue with that record switched on and writes the totals: ``cases``, ``right_code``,
and the counts that must all be 0 (``tracebacks``, ``not_one_line``, ``data_lost``, ``partial``,
``outside``), per area and in all.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COUNTS = ("tracebacks", "not_one_line", "data_lost", "partial", "outside")


def summarise(entries: list[dict]) -> dict:
    def totals(rows: list[dict]) -> dict:
        return {
            "cases": len(rows),
            "right_code": sum(r["right_code"] for r in rows),
            "tracebacks": sum(r["traceback"] for r in rows),
            "not_one_line": sum(not r["one_line_ok"] for r in rows),
            "data_lost": sum(r["lost"] > 0 for r in rows),
            "partial": sum(r["partial"] > 0 for r in rows),
            "outside": sum(r["outside"] > 0 for r in rows),
        }

    areas: dict[str, list[dict]] = defaultdict(list)
    for e in entries:
        areas[e["area"]].append(e)
    return {"total": totals(entries), "areas": {a: totals(rows) for a, rows in sorted(areas.items())}, "cases": entries}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "reliability.json")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "cases.jsonl"
        env = {**os.environ, "EDGEKIT_RELIABILITY_LOG": str(log)}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-m",
                "reliability",
                str(ROOT / "tests" / "reliability"),
                *args.pytest_args,
            ],
            cwd=ROOT,
            env=env,
        )
        entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    result = {"pytest_exit": proc.returncode, **summarise(entries)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    t = result["total"]
    print(
        f"reliability: {t['cases']} cases, {t['right_code']} right exit codes; "
        + ", ".join(f"{k} {t[k]}" for k in COUNTS)
        + f" -> {args.output}"
    )
    bad = proc.returncode != 0 or t["right_code"] != t["cases"] or any(t[k] for k in COUNTS)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
