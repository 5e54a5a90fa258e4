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
- TFLite fp32 / int8: the one-line exit-2 refusal that names the unsupported part.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

ONNX = """version: 1
name: coverage-onnx
stages:
  - kind: export
    name: onnx-fp32
    format: onnx
  - kind: quantize
    name: onnx-int8
    method: dynamic
  - kind: bench-seq2seq
    samples: 8
    timed: 2
    runs: 1
    num_beams: [1, 4]
    max_new_tokens: 16
    decode_tokens: 8
    max_metric_drop: 100
"""
TFLITE = """version: 1
name: coverage-tflite-{precision}
stages:
  - kind: export
    name: tflite-fp32
    format: tflite
{quantize}"""


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
        (t / "onnx.yaml").write_text(ONNX)
        (t / "tflite-fp32.yaml").write_text(TFLITE.format(precision="fp32", quantize=""))
        (t / "tflite-int8.yaml").write_text(
            TFLITE.format(precision="int8", quantize="  - kind: quantize\n    method: dynamic\n")
        )
        for family in [*SEQ2SEQ_FAMILIES, "whisper"]:
            ckpt = make_tiny_whisper(t / family) if family == "whisper" else make_tiny_seq2seq(t / family, family)
            arch = json.loads((ckpt / "config.json").read_text())["architectures"][0]
            row: dict = {"family": family, "architecture": arch}
            cell = compress(ckpt, t / "onnx.yaml", t / f"{family}-onnx")
            if cell["exit_code"] == 0:
                report = json.loads((t / f"{family}-onnx" / "report.json").read_text())
                by = {r["name"]: r for r in report["rows"]}
                fp32, int8 = by["onnx-fp32"], by["onnx-int8"]
                metric = report["settings"]["metric"]
                row["onnx"] = {
                    "fp32": {
                        "status": "ok",
                        "decoder_max_abs_diff": fp32["parity"]["decoder_max_abs_diff"],
                        "logit_scale": fp32["parity"]["logit_scale"],
                        "greedy_identical": fp32["parity"]["greedy_identical"],
                        "beam4_identical": fp32["parity"]["beam_identical"],
                        "beam4_equal_pytorch_on_test": fp32["beam_exact_match"],
                        "size_mb": round(fp32["size_bytes"] / 1e6, 3),
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
            else:
                row["onnx"] = {"fp32": cell, "int8": cell}
            row["tflite"] = {
                p: compress(ckpt, t / f"tflite-{p}.yaml", t / f"{family}-tflite-{p}") for p in ("fp32", "int8")
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.output.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
