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

from edgekit.errors import InputError, ModelFileError

PROBE_TIMEOUT_S = 300


def probe(runtime: str, model: Path, threads: int, batch_size: int, seq_len: int, overrides=None) -> None:
    """Raise :class:`ModelFileError` unless the model loads and runs in a subprocess, on inputs synthesized
    from its specs as ``overrides`` (:class:`edgekit.data.feeds.InputOverrides`) state them; an
    :class:`InputError` naming the inputs when it loads but rejects those."""
    cmd = [
        sys.executable,
        "-m",
        "edgekit.measure.probe",
        runtime,
        str(model),
        str(threads),
        str(batch_size),
        str(seq_len),
        json.dumps(overrides.as_json() if overrides else {}),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ModelFileError(f"{model}: {runtime} did not load and run it within {PROBE_TIMEOUT_S} s") from None
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise ModelFileError(f"{model}: {runtime} crashed ({name}) loading or running it; refused")
    if proc.returncode == INPUTS_REJECTED:
        raise InputError(proc.stderr.strip().splitlines()[-1])
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        raise ModelFileError(f"{model}: {runtime} cannot run it ({lines[-1] if lines else 'no message'})")


INPUTS_REJECTED = 2  # the child's exit status when the model loaded but rejected the synthesized inputs


def _main(argv: list[str]) -> int:
    from edgekit.data.feeds import InputOverrides, synthesize
    from edgekit.measure.harness import synthesis_hint
    from edgekit.plugins import get_runtime

    runtime, model, threads, batch, seq = argv[0], Path(argv[1]), int(argv[2]), int(argv[3]), int(argv[4])
    overrides = InputOverrides.from_json(json.loads(argv[5]) if len(argv) > 5 else None)
    try:
        session = get_runtime(runtime).load(model, threads=threads)
        feeds = synthesize(session.inputs, batch, seq, overrides=overrides)
    except Exception as err:  # noqa: BLE001 - reported to the parent on one line
        msg = " ".join(str(err).split())[:400]
        if isinstance(err, InputError):  # a stated input that does not fit: the parent repeats it
            print(msg, file=sys.stderr)
            return INPUTS_REJECTED
        print(f"{type(err).__name__}: {msg}", file=sys.stderr)
        return 1
    try:
        out = session.run(feeds)
    except Exception as err:  # noqa: BLE001 - the model loaded: its inputs were not what it takes
        print(synthesis_hint(str(model), err, feeds), file=sys.stderr)
        return INPUTS_REJECTED
    print(json.dumps({k: list(v.shape) for k, v in out.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
