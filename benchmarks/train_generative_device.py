"""The generative demo models trained on a GPU, whole, at the shipped settings.

    python benchmarks/train_generative_device.py [--device cuda|cpu]
        [--output benchmarks/results/train_generative_device.json]

Four training jobs, each through edgekit's own functions (the ones ``edgekit finetune`` and the
``distill-decoder`` / ``distill-seq2seq`` stages call), each on the shipped data and settings, run to the end on
``--device`` (default: the first CUDA GPU when PyTorch sees one, else the CPU):

1. the demo decoder (``sotu-llama`` on ``sotu``, DECODER_SETTINGS), trained from scratch;
2. its student (the ``decoder-distill-int4`` recipe's distill stage: 2 of 4 layers, KL at T=2 + LM loss);
3. the demo encoder-decoder (``sotu-bart`` on ``sotu-punct``, SEQ2SEQ_SETTINGS), trained from scratch;
4. its student (the ``seq2seq-distill-int8`` recipe's distill stage: 2 of 4 decoder layers).

Each row has the job's wall time (its evaluations and its tokenizer's training included), steps, and the
quality it reaches (held-out perplexity, held-out loss, test BLEU). Beside them, from the committed CPU
benchmark runs (2 cores, the same settings and seed): the decoder teacher's held-out perplexity and training
time (``decoder_run4.json``) and the encoder-decoder teacher's held-out loss and BLEU (``seq2seq_rerun.json``).
Nothing is cached here: every job trains in a fresh temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent


def jobs():
    """(family, name, epochs, batch size, run(out, teacher) -> record) for the four jobs, at the shipped settings."""
    from edgekit.generation.text2text_train import SEQ2SEQ_SETTINGS, distill_seq2seq, train_seq2seq
    from edgekit.generation.train import DECODER_SETTINGS, distill_decoder, train_decoder
    from edgekit.recipe import load_recipe

    dd = next(s for s in load_recipe("decoder-distill-int4").stages if s.kind == "distill-decoder")
    ds = next(s for s in load_recipe("seq2seq-distill-int8").stages if s.kind == "distill-seq2seq")
    dec, s2s = DECODER_SETTINGS, SEQ2SEQ_SETTINGS
    return [
        (
            "decoder",
            "decoder teacher (sotu-llama on sotu)",
            dec.epochs,
            dec.batch_size,
            lambda out, _t: train_decoder("sotu-llama", "sotu", out, settings=dec, progress=False),
        ),
        (
            "decoder",
            "decoder student (decoder-distill-int4: 2 of 4 layers)",
            dd.train.epochs,
            dd.train.batch_size,
            lambda out, t: distill_decoder(t, dd, out, progress=False),
        ),
        (
            "seq2seq",
            "encoder-decoder teacher (sotu-bart on sotu-punct)",
            s2s.epochs,
            s2s.batch_size,
            lambda out, _t: train_seq2seq("sotu-bart", "sotu-punct", out, settings=s2s, progress=False),
        ),
        (
            "seq2seq",
            "encoder-decoder student (seq2seq-distill-int8: 2 of 4 decoder layers)",
            ds.train.epochs,
            ds.train.batch_size,
            lambda out, t: distill_seq2seq(t, ds, out, progress=False),
        ),
    ]


QUALITY = ("heldout_perplexity", "teacher_heldout_perplexity", "heldout_loss", "teacher_heldout_loss", "test_bleu")


def timed(run, out: Path, teacher: Path | None, device: str) -> tuple[float, dict]:
    import torch

    os.environ["EDGEKIT_TRAIN_DEVICE"] = device
    if device != "cpu":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    record = run(out, teacher)
    if device != "cpu":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, record


def main() -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--output", type=Path, help="default: results/train_generative_device.json (cuda), _cpu.json (cpu)")
    args = ap.parse_args()
    if args.output is None:
        suffix = "" if args.device == "cuda" else "_cpu"
        args.output = HERE / "results" / f"train_generative_device{suffix}.json"
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgekit-train-device-") as tmp:
        teacher: dict[str, Path] = {}  # the teacher each family's student distils from: the one trained here
        for i, (family, name, epochs, batch_size, run) in enumerate(jobs()):
            out = Path(tmp) / f"{i}-{family}"
            secs, rec = timed(run, out, teacher.get(family), args.device)
            if family not in teacher:
                teacher[family] = out
            steps = rec["history"][-1]["step"]  # the trainer's own count (it evaluates at the end of training)
            row = {
                "job": name,
                "epochs": epochs,
                "batch_size": batch_size,
                "steps": steps,
                "seconds": round(secs, 1),
                "seconds_per_step": round(secs / steps, 4),
                "trained_on": rec.get("device"),
                **{k: round(float(rec[k]), 4) for k in QUALITY if k in rec},
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    # the CPU-trained teachers (same settings and seed) as the committed benchmark runs on this 2-core machine recorded
    cpu: dict = {}
    run4, s2s = HERE / "results" / "decoder_run4.json", HERE / "results" / "seq2seq_rerun.json"
    if run4.is_file():
        d = json.loads(run4.read_text())
        cpu["decoder_teacher"] = {
            "heldout_perplexity": round(d["teacher_training"]["heldout_perplexity"], 4),
            "seconds_2_cores": d["finetune_s"],
        }
    if s2s.is_file():
        t = json.loads(s2s.read_text())["teacher"]
        cpu["seq2seq_teacher"] = {
            "heldout_loss": t["history"][-1]["heldout_loss"],
            "test_bleu": t["test_bleu_pytorch_greedy_200"],
        }
    result = {
        "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "rows": rows,
        "cpu_trained_teachers": cpu,
    }
    if "decoder_teacher" in cpu and args.device == "cuda":
        result["decoder_teacher_speedup_over_2_core_cpu"] = round(
            cpu["decoder_teacher"]["seconds_2_cores"] / rows[0]["seconds"], 1
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
