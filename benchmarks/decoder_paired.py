"""Decode speed of ONNX Runtime GenAI model folders side by side: each folder measured in its own process by
edgekit's harness (`edgekit.generation.measure`, ONNX Runtime GenAI's loop, greedy, batch 1), the order rotating
every round, each process optionally pinned to a set of CPUs; medians, and per-round ratios against the first
folder (the baseline).

    python benchmarks/decoder_paired.py NAME=DIR [NAME=DIR ...] [--rounds 10] [--threads 2] [--cpus 2,3]
        [--prompt-lens 32 448] [--new-tokens 64] [--runs 5] [--output benchmarks/results/decoder_paired.json]

It needs only numpy and onnxruntime-genai beside this checkout (no torch, no transformers; run it from the
checkout's root with `PYTHONPATH=.` where edgekit is not installed), so it also runs on a machine that has nothing
else, such as a lent GPU machine's CPUs; and it takes more rounds than `benchmarks/decoder.py`'s paired re-timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgekit.generation.measure import measure_in_process

HERE = Path(__file__).resolve().parent


def spec_of(path: Path, args: argparse.Namespace) -> dict:
    """The harness's spec for one decode measurement of the GenAI folder ``path``."""
    vocab = json.loads((path / "genai_config.json").read_text())["model"]["vocab_size"]
    return {
        "kind": "ortgenai",
        "path": str(path),
        "threads": args.threads,
        "vocab_size": vocab,
        "new_tokens": args.new_tokens,
        "runs": args.runs,
        "prompt_lens": args.prompt_lens,
        "batch_sizes": [1],
    }


def _named_folder(text: str) -> tuple[str, str]:
    """``NAME=DIR`` with DIR an ONNX Runtime GenAI folder; else argparse's one-line error, exit 2."""
    name, sep, folder = text.partition("=")
    if not (name and sep and (Path(folder) / "genai_config.json").is_file()):
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=DIR with DIR holding a genai_config.json")
    return name, folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=_named_folder, help="NAME=DIR, the first is the baseline")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cpus", type=lambda s: {int(c) for c in s.split(",")}, default=None)
    ap.add_argument("--prompt-lens", type=int, nargs="+", default=[32, 448])
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--output", type=Path, default=HERE / "results" / "decoder_paired.json")
    args = ap.parse_args()
    named = dict(args.folders)
    names = list(named)
    first = str(args.prompt_lens[0])
    rounds: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="edgekit-paired-") as tmp:
        for i in range(args.rounds):
            order = names[i % len(names) :] + names[: i % len(names)]
            row = {
                n: measure_in_process(spec_of(Path(named[n]), args), Path(tmp) / f"{i}-{n}", cpus=args.cpus)
                for n in order
            }
            rounds.append({"order": order} | {n: row[n] for n in names})
            print(
                f"round {i + 1}/{args.rounds}: "
                + ", ".join(f"{n} {row[n]['decode_tokens_per_s'][first]:.0f} tok/s" for n in names),
                flush=True,
            )
    base = names[0]
    summary: dict = {}
    for n in names:
        tps = [r[n]["decode_tokens_per_s"][first] for r in rounds]
        ratio = [r[n]["decode_tokens_per_s"][first] / r[base]["decode_tokens_per_s"][first] for r in rounds]
        summary[n] = {
            "folder": named[n],
            "decode_tokens_per_s_median": round(float(np.median(tps)), 1),
            "decode_tokens_per_s_min_max": [round(min(tps), 1), round(max(tps), 1)],
            "x_baseline_decode_median": round(float(np.median(ratio)), 3),
            "x_baseline_decode_min_max": [round(min(ratio), 3), round(max(ratio), 3)],
            "rounds_at_least_baseline": sum(x >= 1.0 for x in ratio),
            "ttft_ms_median": {
                p: round(float(np.median([r[n]["ttft_ms"][str(p)] for r in rounds])), 3) for p in args.prompt_lens
            },
            "ttft_x_baseline_median": {
                p: round(float(np.median([r[n]["ttft_ms"][str(p)] / r[base]["ttft_ms"][str(p)] for r in rounds])), 3)
                for p in args.prompt_lens
            },
            "peak_rss_mb_median": round(float(np.median([r[n]["peak_rss_mb"] for r in rounds])), 1),
        }
    result = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": {"cpu": _cpu_name(), "cpus_online": os.cpu_count(), "python": platform.python_version()},
        "settings": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items() if k != "output"},
        "baseline": base,
        "summary": summary,
        "rounds": rounds,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(summary, indent=2))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
