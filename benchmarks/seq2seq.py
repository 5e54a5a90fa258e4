"""#16's figures: the trained demo encoder-decoder compressed by edgekit beside PyTorch eager `generate`, all
measured in one run, each model in its own process (2 threads, batch 1).

    python benchmarks/seq2seq.py [--output benchmarks/results/seq2seq.json] [--keep DIR]

1. `edgekit finetune sotu-bart --data sotu-punct` (cached): a 7M-parameter BART trained here from scratch to restore
   punctuation and capitals of State of the Union passages (held-out speeches 1985, 2005, 2015 are the test set).
2. `edgekit compress TEACHER -r benchmarks/recipes/seq2seq-bench.yaml`: the fp32 export (parity-checked), the
   built-in per-part search (int8 dynamic of both graphs, of the decoder or the encoder only, 8-bit and int4
   block-wise weight-only), a student with two of the four decoder layers distilled from the teacher and quantized int8;
   PyTorch fp32 eager `generate` (KV cache, the same beam-search settings) measured beside them: encoder ms,
   time to first token, decode tokens/s, ms per request end to end at beam 1 and beam 4 (12 test inputs, median
   of 3 runs), peak memory; BLEU and chrF of the beam-4 outputs on 120 test pairs, and how many beam-4 outputs
   equal PyTorch fp32's token for token.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
INT8 = {"int8", "nbits8", "fp32+int8", "int8+fp32", "int8+nbits8", "nbits8+int8"}


def edgekit(*args: str) -> float:
    t = time.time()
    subprocess.run([sys.executable, "-m", "edgekit", *args], check=True)
    return time.time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, default=HERE / "results" / "seq2seq.json")
    ap.add_argument("--keep", type=Path, help="keep the compress output here")
    args = ap.parse_args()
    teacher = Path.home() / ".cache" / "edgekit" / "teachers" / "sotu-bart-sotu-punct"
    train_s = edgekit("finetune", "sotu-bart", "--data", "sotu-punct", "-q")
    training = json.loads((teacher / "edgekit_training.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="seq2seq-bench-"))
    out = args.keep or work / "out"
    compress_s = edgekit(
        "compress", str(teacher), "-r", str(HERE / "recipes" / "seq2seq-bench.yaml"), "-o", str(out), "--overwrite"
    )
    report = json.loads((out / "report.json").read_text())
    rows = {r["name"]: r for r in report["rows"]}
    ref = rows["pytorch-fp32"]
    widest = "4"

    def summary(r: dict) -> dict:
        return {
            "name": r["name"],
            "precision": r["precision"],
            "size_mb": round(r["size_bytes"] / 1e6, 3),
            "encoder_ms": r["encoder_ms"],
            "time_to_first_token_ms": r["time_to_first_token_ms"],
            "decode_tokens_per_s": r["decode_tokens_per_s"],
            "end_to_end_ms": r["end_to_end_ms"],
            "x_pytorch_beam1": round(ref["end_to_end_ms"]["1"] / r["end_to_end_ms"]["1"], 2),
            "x_pytorch_beam4": round(ref["end_to_end_ms"][widest] / r["end_to_end_ms"][widest], 2),
            "bleu": r["bleu"],
            "chrf": r["chrf"],
            "bleu_drop": r["metric_drop"],
            "beam4_equal_pytorch_fp32": r["beam_exact_match"],
            "greedy_equal_pytorch_fp32": r["greedy_exact_match"],
            "peak_rss_mb": r["peak_rss_mb"],
            "promoted": r.get("promoted", False),
        }

    teacher_onnx = [r for n, r in rows.items() if r["format"] == "onnx" and not n.startswith("student")]
    int8 = [r for r in teacher_onnx if r["precision"] in INT8 and r["metric_drop"] <= 1.0]
    best_int8 = min(int8, key=lambda r: r["end_to_end_ms"][widest]) if int8 else None
    student_int8 = rows.get("student-onnx-int8")
    result = {
        "command": "python benchmarks/seq2seq.py",
        "teacher": {
            "path": str(teacher),
            "parameters": training.get("parameters"),
            "test_bleu_pytorch_greedy_200": training.get("test_bleu"),
            "train_pairs": training.get("train_pairs"),
            "history": training.get("history"),
        },
        "seconds": {"finetune (cached when 0-ish)": round(train_s, 1), "compress": round(compress_s, 1)},
        "pytorch_fp32": summary(ref),
        "artifacts": [summary(r) for r in rows.values() if r["name"] != "pytorch-fp32"],
        "must_show": {
            "best_int8": summary(best_int8) if best_int8 else None,
            "best_int8_x_pytorch_beam4 (target >= 3x)": best_int8 and summary(best_int8)["x_pytorch_beam4"],
            "best_int8_bleu_drop (target <= 1)": best_int8 and best_int8["metric_drop"],
            "onnx_int8_beam4_equal_pytorch_fp32 (target >= 0.9)": rows["onnx-int8"]["beam_exact_match"],
            "student_int8_x_pytorch_beam4 (target >= 6x)": student_int8 and summary(student_int8)["x_pytorch_beam4"],
            "student_int8_bleu_drop (target <= 2)": student_int8 and student_int8["metric_drop"],
        },
        "promoted": report["promoted"],
        "report_md": (out / "report.md").read_text(),
        "environment": report["environment"],
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["must_show"], indent=2))
    print(f"wrote {args.output}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
