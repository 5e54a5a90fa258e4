"""Distillation speed on the CPU and on a GPU, side by side in one process.

    python benchmarks/train_device.py [--steps 30] [--output benchmarks/results/train_device.json]

A MiniLM-sized classifier (hidden 384, 6 layers, 12 heads, FFN 1536, the
BERT vocabulary), built from its configuration in code with random weights
(no download; speed does not depend on the weights), is distilled into a
3-layer student with the spam recipe's losses (logits KL, labels and the
hidden-state MSE) at batch 32 and 128 tokens, through edgekit's own
``distill`` and ``Trainer``. Each device runs 2 warm-up steps, then
``--steps`` timed ones (the teacher's logits pass over the batches
included). Without a GPU only the CPU row is written.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def teacher_model():
    from transformers import BertConfig, BertForSequenceClassification

    from edgekit.training.loop import seed_everything

    seed_everything(0)
    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        num_labels=2,
        attn_implementation="eager",
    )
    return BertForSequenceClassification(cfg).eval()


def token_data(n: int, seq: int):
    import torch

    from edgekit.training.data import Encoded

    rng = np.random.default_rng(0)
    ids = torch.from_numpy(rng.integers(1000, 30000, size=(n, seq)).astype(np.int64))
    mask = torch.ones_like(ids)
    return Encoded(ids, mask, torch.zeros_like(ids), np.full(n, seq), torch.from_numpy(rng.integers(0, 2, n)))


def seconds_per_step(teacher, device: str, steps: int, seq: int, batch: int) -> dict:
    import torch

    from edgekit.training.distill import DistillLosses, distill, student_from_teacher
    from edgekit.training.loop import TrainSettings

    data = token_data(batch * steps, seq)
    marks = []

    def mark():
        if device != "cpu":
            torch.cuda.synchronize()
        marks.append(time.perf_counter())

    student = student_from_teacher(teacher, [1, 3, 5]).train()
    losses = DistillLosses(hidden=1.0)
    mark()
    distill(
        teacher,
        student,
        data,
        "text-classification",
        TrainSettings(epochs=1, batch_size=batch, lr=3e-4, max_len=seq, save_every=10**9),
        losses,
        None,
        layer_map=[1, 3, 5],
        progress=False,
        device=device,
        evaluate=lambda: (mark(), {})[1],
    )  # evaluate runs once, at the end of the epoch
    return {
        "device": device,
        "steps": steps,
        "seconds": round(marks[-1] - marks[0], 2),
        "seconds_per_step": round((marks[-1] - marks[0]) / steps, 4),
    }


def main() -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--output", type=Path, default=HERE / "results" / "train_device.json")
    args = ap.parse_args()
    teacher = teacher_model()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        # one short run to warm up the device (kernels, allocator), then the timed one
        seconds_per_step(teacher, device, 2, args.seq, args.batch)
        rows.append(seconds_per_step(teacher, device, args.steps, args.seq, args.batch))
        print(f"{device}: {rows[-1]['seconds_per_step']:.4f} s/step ({rows[-1]['steps']} steps)")
    result = {
        "model": "MiniLM-sized BERT classifier (random weights) -> 3-layer student",
        "batch": args.batch,
        "seq_len": args.seq,
        "losses": "kd + hard + hidden",
        "cpu_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "rows": rows,
    }
    if len(rows) == 2:
        result["gpu_speedup"] = round(rows[0]["seconds_per_step"] / rows[1]["seconds_per_step"], 1)
        print(f"GPU {result['gpu_speedup']}x the CPU")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
