"""The reliability catalogue's harness: run a command as a user would, then check the promises.

Every case in ``tests/reliability`` runs edgekit (or a server request) and ends in one
:func:`check` call, which asserts and records:

- the exit code is the one expected (2 bad input, 3 a check failed, 0 success);
- a failure says exactly one line on stderr, ``edgekit: error: ...``, and no traceback anywhere;
- nothing the user had is lost: every snapshotted file is still there, byte for byte;
- nothing partial is left: no staging directory (``.*.edgekit-*``) next to the target;
- nothing was written outside the target (the watched directories hold only what they held, plus
  what the case says it may add).

With ``EDGEKIT_RELIABILITY_LOG=FILE`` set, each check appends one JSON line to FILE;
``benchmarks/reliability.py`` runs the catalogue that way and writes the counts.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    args: list[str]
    code: int
    stdout: str
    stderr: str


def run_cli(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300, stdin: bytes | None = None
) -> Result:
    """``python -m edgekit ARGS`` in a child process, as a user's shell would run it."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("EDGEKIT_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", *map(str, args)],
        cwd=cwd,
        env=full_env,
        input=stdin,
        capture_output=True,
        timeout=timeout,
    )
    return Result(
        list(map(str, args)),
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


def snapshot(*paths: Path) -> dict[str, str]:
    """sha256 of every file (and a marker for every directory) under ``paths``."""
    snap: dict[str, str] = {}
    for root in paths:
        root = Path(root)
        if root.is_file():
            snap[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
            continue
        if not root.exists():
            continue
        snap[str(root)] = "<dir>"
        for p in sorted(root.rglob("*")):
            if p.is_symlink():
                snap[str(p)] = "<link>" + os.readlink(p)
            elif p.is_dir():
                snap[str(p)] = "<dir>"
            else:
                snap[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return snap


def listing(d: Path) -> set[str]:
    """Names directly inside ``d``: used to see what a command wrote beside its target."""
    return {p.name for p in Path(d).iterdir()} if Path(d).exists() else set()


MARKER = ".edgekit-output.json"  # edgekit's ownership marker in an output directory: not a leftover


def is_partial(name: str) -> bool:
    """A staging directory, temp file or half-unpacked archive that a finished command must not leave."""
    if name == MARKER:
        return False
    return ".edgekit-" in name or name.startswith(".unpack-") or name.endswith((".partial", ".tmp"))


@dataclass
class Case:
    """What a case expects; ``check`` compares a run against it."""

    name: str
    area: str
    expect_code: int
    kept: dict[str, str] = field(default_factory=dict)  # snapshot of the user's files that must survive
    watch: dict[Path, set[str]] = field(default_factory=dict)  # dir -> names allowed in it afterwards


def _record(entry: dict) -> None:
    log = os.environ.get("EDGEKIT_RELIABILITY_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")


def check(
    case: Case,
    result: Result | None = None,
    *,
    code: int | None = None,
    stderr: str = "",
    stdout: str = "",
    one_line: bool | None = None,
) -> None:
    """Assert the promises for one case, and record the outcome for the catalogue.

    Pass a CLI ``result``, or for non-CLI cases (HTTP, API calls) ``code`` (the status or exit
    code observed) plus any text the process printed.
    """
    if result is not None:
        code, stderr, stdout = result.code, result.stderr, result.stdout
    assert code is not None
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    traceback = "Traceback (most recent call last)" in stderr or "Traceback (most recent call last)" in stdout
    failing = case.expect_code not in (0, 200)
    if one_line is None:
        one_line = failing and result is not None
    lost = [p for p, h in case.kept.items() if snapshot(Path(p)).get(p) != h]
    partial, outside = [], []
    for d, allowed in case.watch.items():
        now = listing(d)
        left = {n for n in now if is_partial(n)}
        partial += sorted(left)
        outside += sorted(now - allowed - left)
    entry = {
        "case": case.name,
        "area": case.area,
        "expected": case.expect_code,
        "got": code,
        "right_code": code == case.expect_code,
        "traceback": traceback,
        "stderr_lines": len(lines),
        "one_line_ok": (len(lines) == 1 and lines[0].startswith("edgekit: error:")) if one_line else True,
        "lost": len(lost),
        "partial": len(partial),
        "outside": len(outside),
    }
    _record(entry)
    detail = (
        f"{case.name}: exit {code} (expected {case.expect_code})\nstderr: {stderr[-2000:]}\nstdout: {stdout[-1000:]}"
    )
    assert code == case.expect_code, detail
    assert not traceback, detail
    if one_line:
        assert entry["one_line_ok"], detail
    assert not lost, f"{case.name}: user files lost or changed: {lost[:5]}"
    assert not partial, f"{case.name}: partial/staging files left: {partial[:5]}"
    assert not outside, f"{case.name}: written outside the target: {outside[:5]}"
