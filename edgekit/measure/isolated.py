"""Timing models each in its own process, alternately.

Runtimes that share a process share its cores with each other's thread pools (XNNPACK, ONNX Runtime's and
OpenVINO's workers keep spinning or parked threads around), so a model timed beside another runtime's model
can look slower than it runs alone on a device. :func:`time_isolated` loads every model in its own worker
process (``python -m edgekit.measure.isolated SPEC.json``) and asks them in turn, one at a time, for a slice
of timed runs, round after round, so drift in machine load hits all of them alike and none runs while
another is being timed.

The worker speaks one line at a time on its standard streams: after loading and warming up it writes
``ready``; each line ``N`` it reads is answered with a JSON list of ``N`` wall times in milliseconds; end of
input ends it. Feeds travel as an ``.npz`` of plain arrays (read with ``allow_pickle=False``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edgekit.errors import InternalError
from edgekit.measure.timing import Latency, summarize, timed

ANSWER_TIMEOUT_S = 600.0  # loading a model, or one slice of timed runs


def _worker(spec_file: str) -> None:
    import os

    from edgekit.plugins import runtime_for_format

    # the protocol keeps the standard output to itself: whatever a runtime prints there goes to the log
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    spec = json.loads(Path(spec_file).read_text())
    with np.load(spec["feeds"], allow_pickle=False) as z:
        feeds = {k: z[k] for k in z.files}
    session = runtime_for_format(spec["format"]).load(Path(spec["model"]), threads=int(spec["threads"]))
    for _ in range(int(spec["warmup"])):
        session.run(feeds)
    print("ready", file=proto, flush=True)
    for line in sys.stdin:
        times = timed(lambda: session.run(feeds), int(line))
        print(json.dumps([round(float(t), 4) for t in times]), file=proto, flush=True)


def _read_line(proc: subprocess.Popen, what: str, log: Path, timeout_s: float = ANSWER_TIMEOUT_S) -> str:
    """The worker's next line (it writes one line per request, so nothing waits in the reader's buffer)."""
    import select

    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    if not ready:
        proc.kill()
        raise InternalError(f"timing {what} in its own process: no answer in {timeout_s:.0f} s")
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=30)
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:]) if log.is_file() else ""
        raise InternalError(f"timing {what} in its own process failed: {tail or 'the worker exited'}")
    return line.strip()


def time_isolated(
    models: list[tuple[str, Path, dict[str, np.ndarray]]],
    work: Path,
    threads: int,
    warmup: int,
    runs: int,
    rounds: int = 3,
    settle_s: float = 0.05,
) -> list[Latency]:
    """Latency of each ``(format, model file, feeds)`` over ``runs`` calls, each model in its own process,
    timed in ``rounds`` alternating slices (one process at a time)."""
    from edgekit.pipeline.bundling import save_npz

    work.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []
    try:
        for i, (fmt, model, feeds) in enumerate(models):
            save_npz(work / f"feeds-{i}.npz", feeds)
            spec = {"format": fmt, "model": str(model), "feeds": str(work / f"feeds-{i}.npz")}
            (work / f"spec-{i}.json").write_text(json.dumps({**spec, "threads": threads, "warmup": warmup}))
            with open(work / f"spec-{i}.log", "w") as log:  # the worker's warnings: a pipe could fill and block it
                proc = subprocess.Popen(
                    [sys.executable, "-m", "edgekit.measure.isolated", str(work / f"spec-{i}.json")],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                )
            procs.append(proc)
            # loaded one at a time: no load competes with another
            if _read_line(proc, str(model), work / f"spec-{i}.log") != "ready":
                raise InternalError(f"timing {model} in its own process: the worker did not start")
        rounds = max(1, min(rounds, runs))
        per_round = [runs // rounds + (1 if r < runs % rounds else 0) for r in range(rounds)]
        collected: list[list[float]] = [[] for _ in models]
        for n in per_round:
            for i, proc in enumerate(procs):
                time.sleep(settle_s)
                assert proc.stdin is not None
                proc.stdin.write(f"{n}\n")
                proc.stdin.flush()
                collected[i].extend(json.loads(_read_line(proc, str(models[i][1]), work / f"spec-{i}.log")))
        return [summarize(np.asarray(c)) for c in collected]
    finally:
        for proc in procs:
            if proc.stdin is not None and not proc.stdin.closed:
                proc.stdin.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


if __name__ == "__main__":
    _worker(sys.argv[1])
