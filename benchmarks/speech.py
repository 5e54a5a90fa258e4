"""Speech recognition at real scale: a random-weight twin of whisper-tiny's shape (39M parameters, 80 mel bins,
30 s windows, 51,865-token vocabulary) compressed by edgekit beside PyTorch eager generation, each model in its own
process (2 threads, batch 1).

    python benchmarks/speech.py [--output benchmarks/results/speech.json]

No Whisper weights can be downloaded here and none was trained (see the README), so the transcripts are random:
the word error rates are 100% and only the speed, size, parity and beam-agreement columns mean something. It
shows what the chain does at a real Whisper's size: the fp32 export's parity (decoder logits over 12 steps from
the prompt, greedy and beam-4 outputs identical to PyTorch), the per-part int8/int4 search, and per request on
the shipped speech clips: encoder ms (a 30 s window), time to first token, decode tokens/s, ms end to end at
beam 1 and beam 4 (4 clips timed, median of 2 runs), peak memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPE = """version: 1
name: speech-bench
stages:
  - kind: export
    name: onnx-fp32
    format: onnx
  - kind: search
    budget: {max_metric_drop: 1}
  - kind: bench-seq2seq
    samples: 8
    timed: 4
    runs: 2
    num_beams: [1, 4]
    max_new_tokens: 24
    decode_tokens: 16
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, default=HERE / "results" / "speech.json")
    args = ap.parse_args()
    from edgekit.testing import WHISPER_TINY_SHAPE, make_tiny_whisper

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        ckpt = make_tiny_whisper(t / "whisper-tiny-shape", seconds=30, shape=WHISPER_TINY_SHAPE)
        (t / "r.yaml").write_text(RECIPE)
        start = time.time()
        subprocess.run(
            [sys.executable, "-m", "edgekit", "compress", str(ckpt), "-r", str(t / "r.yaml"), "-o", str(t / "out")],
            check=True,
        )
        seconds = time.time() - start
        report = json.loads((t / "out" / "report.json").read_text())
        markdown = (t / "out" / "report.md").read_text()
    ref = next(r for r in report["rows"] if r["name"] == "pytorch-fp32")
    rows = [
        {
            "name": r["name"],
            "precision": r["precision"],
            "size_mb": round(r["size_bytes"] / 1e6, 2),
            "encoder_ms": r["encoder_ms"],
            "time_to_first_token_ms": r["time_to_first_token_ms"],
            "decode_tokens_per_s": r["decode_tokens_per_s"],
            "end_to_end_ms": r["end_to_end_ms"],
            "x_pytorch_beam4": round(ref["end_to_end_ms"]["4"] / r["end_to_end_ms"]["4"], 2),
            "beam4_equal_pytorch": r["beam_exact_match"],
            "wer": r["wer"],
            "promoted": r["promoted"],
        }
        for r in report["rows"]
    ]
    parity = next(r["parity"] for r in report["rows"] if r["name"] == "onnx-fp32")
    result = {"compress_seconds": round(seconds, 1), "parity": parity, "rows": rows, "report_md": markdown}
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown)
    print(f"wrote {args.output} (compress {seconds:.0f} s)")


if __name__ == "__main__":
    main()
