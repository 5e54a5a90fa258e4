"""The device side of ``edgekit bench BUNDLE --target ssh://...``.

Runs as ``python3 runner.pyz BUNDLE_DIR --settings JSON`` on the device: a
zipapp of edgekit's own runtime-side modules (see :mod:`edgekit.device.remote`), so
the device needs Python 3.10+, numpy, ``tokenizers`` and the runtime of the
variants (onnxruntime or ai-edge-litert), nothing else and nothing installed.
Prints the report JSON on stdout; errors are one line on stderr with
edgekit's exit codes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys

NEEDED = {"numpy": "numpy", "tokenizers": "tokenizers"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="edgekit-runner")
    ap.add_argument("bundle")
    ap.add_argument("--settings", required=True, help="JSON: BenchSettings fields, sweeps, variants, runtime")
    args = ap.parse_args(argv)
    missing = [pkg for mod, pkg in NEEDED.items() if importlib.util.find_spec(mod) is None]
    if missing:
        print(
            f"edgekit-runner: error: this Python ({sys.executable}) lacks {', '.join(missing)}: "
            f"pip install {' '.join(missing)}",
            file=sys.stderr,
        )
        return 2

    from edgekit.device.bench import bench_bundle
    from edgekit.errors import EdgekitError
    from edgekit.measure.harness import BenchSettings

    opts = json.loads(args.settings)
    try:
        report = bench_bundle(
            args.bundle,
            BenchSettings(**opts["settings"]),
            variants=opts.get("variants"),
            runtime=opts.get("runtime"),
            batch_sizes=opts.get("batch_sizes"),
            seq_lens=opts.get("seq_lens"),
            threads=opts.get("threads"),
            progress=False,
        )
    except EdgekitError as err:
        print(f"edgekit-runner: error: {err.message}", file=sys.stderr)
        return int(err.exit_code)
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
