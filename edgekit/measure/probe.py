"""Load and run a model once in a child process, so a native abort cannot take edgekit down.

    python -m edgekit.measure.probe RUNTIME MODEL THREADS

Exit 0 and one JSON line on success; otherwise the runtime's error on one line
and exit 1. A crash shows up to the parent as a negative return code.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from edgekit.errors import ModelFileError

PROBE_TIMEOUT_S = 300


def probe(runtime: str, model: Path, threads: int, batch_size: int, seq_len: int) -> None:
    """Raise :class:`ModelFileError` unless the model loads and runs in a subprocess."""
    cmd = [
        sys.executable,
        "-m",
        "edgekit.measure.probe",
        runtime,
        str(model),
        str(threads),
        str(batch_size),
        str(seq_len),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ModelFileError(f"{model}: {runtime} did not load and run it within {PROBE_TIMEOUT_S} s") from None
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise ModelFileError(f"{model}: {runtime} crashed ({name}) loading or running it; refused")
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        raise ModelFileError(f"{model}: {runtime} cannot run it ({lines[-1] if lines else 'no message'})")


def _main(argv: list[str]) -> int:
    from edgekit.data.feeds import synthesize
    from edgekit.plugins import get_runtime

    runtime, model, threads, batch, seq = argv[0], Path(argv[1]), int(argv[2]), int(argv[3]), int(argv[4])
    try:
        session = get_runtime(runtime).load(model, threads=threads)
        out = session.run(synthesize(session.inputs, batch, seq))
    except Exception as err:  # noqa: BLE001 - reported to the parent on one line
        msg = " ".join(str(err).split())[:400]
        print(f"{type(err).__name__}: {msg}", file=sys.stderr)
        return 1
    print(json.dumps({k: list(v.shape) for k, v in out.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
