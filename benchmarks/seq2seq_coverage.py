"""Encoder-decoder coverage: T5, mT5, BART, Marian and Whisper (random-weight twins built from configs) x
ONNX / TFLite x fp32 / int8.

    python benchmarks/seq2seq_coverage.py [--output benchmarks/results/seq2seq_coverage.json]

Every cell is a real `edgekit compress` run (its own process, the CLI's exit code and stderr recorded):
- ONNX fp32: the encoder (+ cross keys/values) and KV-cache decoder exported and parity-checked by the
  pipeline (decoder logits over 12 teacher-forced steps, greedy and beam-4 outputs on 4 inputs); the
  measured maximum logit difference and the beam agreement with PyTorch are recorded;
- ONNX int8: dynamic int8 of both graphs, measured by the pipeline (the task's metric: BLEU on 8 test pairs,
  Whisper's word error rate on 8 shipped speech clips; beam-4 outputs equal to PyTorch fp32's on what share of
  them, size). Whisper's encoder reads log-mel features (6 s windows in the twin), decoded from its two-token
  prompt with its suppressed tokens;
- TFLite fp32 / int8: the same through litert-torch (fixed shapes, the decoder run over all its tokens each step;
  int8 by ai-edge-quantizer's dynamic recipe), parity-checked and measured by the same pipeline; a refusal is the
  one-line exit-2 message that names the unsupported part.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCH = """  - kind: bench-seq2seq
    samples: 8
    timed: 2
    runs: 1
    num_beams: [1, 4]
    max_new_tokens: 16
    decode_tokens: 8
    max_metric_drop: 100
"""
RECIPE = """version: 1
name: coverage-{fmt}
stages:
  - kind: export
    name: {fmt}-fp32
    format: {fmt}
  - kind: quantize
    name: {fmt}-int8
    method: dynamic
"""


def compress(ckpt: Path, recipe: Path, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", "compress", str(ckpt), "-r", str(recipe), "-o", str(out), "-q", "--json"],
        capture_output=True,
        text=True,
    )
    cell: dict = {"exit_code": proc.returncode}
    if proc.returncode != 0:
        cell.update(status="refused" if proc.returncode == 2 else "failed", error=proc.stderr.strip().splitlines()[-1])
    return cell


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, default=HERE / "results" / "seq2seq_coverage.json")
    args = ap.parse_args()
    from edgekit.testing import SEQ2SEQ_FAMILIES, make_tiny_seq2seq, make_tiny_whisper

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        for fmt in ("onnx", "tflite"):
            (t / f"{fmt}.yaml").write_text(RECIPE.format(fmt=fmt) + BENCH)
        for family in [*SEQ2SEQ_FAMILIES, "whisper"]:
            ckpt = make_tiny_whisper(t / family) if family == "whisper" else make_tiny_seq2seq(t / family, family)
            arch = json.loads((ckpt / "config.json").read_text())["architectures"][0]
            row: dict = {"family": family, "architecture": arch}
            for fmt in ("onnx", "tflite"):
                cell = compress(ckpt, t / f"{fmt}.yaml", t / f"{family}-{fmt}")
                if cell["exit_code"] != 0:
                    row[fmt] = {"fp32": cell, "int8": cell}
                    continue
                report = json.loads((t / f"{family}-{fmt}" / "report.json").read_text())
                by = {r["name"]: r for r in report["rows"]}
                fp32, int8 = by[f"{fmt}-fp32"], by[f"{fmt}-int8"]
                metric = report["settings"]["metric"]
                row[fmt] = {
                    "fp32": {
                        "status": "ok",
                        "decoder_max_abs_diff": fp32["parity"]["decoder_max_abs_diff"],
                        "logit_scale": fp32["parity"]["logit_scale"],
                        "greedy_identical": fp32["parity"]["greedy_identical"],
                        "beam4_identical": fp32["parity"]["beam_identical"],
                        "beam4_equal_pytorch_on_test": fp32["beam_exact_match"],
                        "size_mb": round(fp32["size_bytes"] / 1e6, 3),
                        "end_to_end_ms_beam4": fp32["end_to_end_ms"]["4"],
                    },
                    "int8": {
                        "status": "ok",
                        "beam4_equal_pytorch_on_test": int8["beam_exact_match"],
                        "metric": metric,
                        metric: int8[metric],
                        f"{metric}_fp32": int8[f"{metric}_fp32"],
                        "size_mb": round(int8["size_bytes"] / 1e6, 3),
                        "end_to_end_ms_beam4": int8["end_to_end_ms"]["4"],
                        "fp32_end_to_end_ms_beam4": fp32["end_to_end_ms"]["4"],
                    },
                }
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.output.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
