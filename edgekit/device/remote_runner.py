"""The device side of ``edgekit bench BUNDLE --target ssh://...``.

Runs as ``python3 runner.pyz BUNDLE_DIR --settings JSON`` on the device: a
zipapp of edgekit's own runtime-side modules (see :mod:`edgekit.device.remote`), so
the device needs Python 3.10+, numpy, ``tokenizers`` and the runtime of the
variants (onnxruntime or ai-edge-litert), nothing else and nothing installed.
Prints the report JSON on stdout; errors are one line on stderr with
edgekit's exit codes. What the device lacks is said once, all of it: the
base packages and, when no variant can run, a runtime for each.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

NEEDED = {"numpy": "numpy", "tokenizers": "tokenizers"}
# Where the runtime adapters cannot be imported (no numpy yet), what runs each bundled format: the
# modules of its adapters, in the order edgekit picks them (mirrors edgekit_runtimes' adapters).
RUNTIME_MODULES = {"onnx": ("onnxruntime",), "tflite": ("ai_edge_litert", "tflite_runtime")}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _runtime_choices(fmt: str) -> list[list[str]]:
    """For each adapter that runs ``fmt`` by default, the modules it needs (empty: it is installed)."""
    try:
        from edgekit.plugins import runtime_adapters

        adapters = runtime_adapters()
    except Exception:  # noqa: BLE001 - the adapters need numpy: fall back to what they are known to need
        return [[m] if not _installed(m) else [] for m in RUNTIME_MODULES.get(fmt, ())]
    return [cls.missing() for cls in adapters.values() if fmt in cls.formats and not cls.explicit_only]


def _variant_formats(bundle: str, wanted: list[str] | None) -> dict[str, str]:
    """Variant name -> format, from the bundle's description (read as plain JSON; it is verified later)."""
    try:
        meta = json.loads((Path(bundle) / "bundle.json").read_text(encoding="utf-8"))
        found = {v["name"]: v["format"] for v in meta["variants"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # the bundle's own loader reports what is wrong with it
    return {n: f for n, f in found.items() if not wanted or n in wanted}


def missing_packages(bundle: str, wanted: list[str] | None) -> list[str]:
    """Every package this Python must install before anything can be timed: numpy and tokenizers if absent
    and, when no variant has a runtime here, the first runtime of each variant's format. Empty: go ahead."""
    missing = [pkg for mod, pkg in NEEDED.items() if not _installed(mod)]
    choices = {fmt: _runtime_choices(fmt) for fmt in set(_variant_formats(bundle, wanted).values())}
    if choices and not any(not needs for options in choices.values() for needs in options):
        for fmt in sorted(choices):
            for module in (choices[fmt] or [[]])[0]:
                pkg = module.replace("_", "-")
                if pkg not in missing:
                    missing.append(pkg)
    return missing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="edgekit-runner")
    ap.add_argument("bundle")
    ap.add_argument("--settings", required=True, help="JSON: BenchSettings fields, sweeps, variants, runtime")
    args = ap.parse_args(argv)
    opts = json.loads(args.settings)
    missing = missing_packages(args.bundle, opts.get("variants"))
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
