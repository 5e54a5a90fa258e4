"""Training on an NVIDIA GPU: the trainer, a distillation stage and torchrun with NCCL. Skips without CUDA."""

import json
import os
import subprocess
import sys

import pytest
import torch

from edgekit.training.loop import Trainer, TrainSettings, seed_everything

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")]


def test_trainer_trains_on_the_gpu_and_gives_the_model_back():
    seed_everything(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    y = x.sum(1, keepdim=True)
    seen = set()

    def loss(m, idx):
        device = next(m.parameters()).device
        seen.add(device.type)
        return torch.nn.functional.mse_loss(m(x[idx].to(device)), y[idx].to(device))

    start = float(torch.nn.functional.mse_loss(model(x), y))
    trainer = Trainer(
        model, loss, 64, TrainSettings(epochs=30, batch_size=8, lr=3e-2, save_every=1000), None, progress=False
    )
    trainer.fit()
    assert seen == {"cuda"} and trainer.device.type == "cuda"
    assert all(p.device.type == "cpu" for p in model.parameters())  # back where it came from
    assert float(torch.nn.functional.mse_loss(model(x), y)) < 0.5 * start


def test_distill_stage_trains_on_the_gpu(tiny_cls_ckpt, task_dir, tmp_path):
    from edgekit.artifact import Artifact
    from edgekit.pipeline.run import compress
    from edgekit.recipe.config import recipe_from_dict

    train = {"epochs": 2, "lr": 1e-3, "batch_size": 32, "max_len": 32}
    recipe = recipe_from_dict(
        {
            "version": 1,
            "name": "gpu-distill",
            "stages": [
                {"kind": "distill", "data": str(task_dir), "layers": 1, "losses": {"hidden": 1.0}, "train": train},
                {"kind": "prune", "data": str(task_dir), "heads": 0.5, "importance_batches": 2, "recover": train},
                {"kind": "export", "format": "onnx", "seq_lens": [32]},
                {
                    "kind": "bench",
                    "runs": 3,
                    "warmup": 1,
                    "seq_len": 32,
                    "threads": 1,
                    "fidelity_samples": 32,
                    "eval": str(task_dir),
                },
            ],
        }
    )
    res = compress(tiny_cls_ckpt, recipe, tmp_path / "out", progress=False)
    student = json.loads((tmp_path / "out" / "student" / "edgekit_training.json").read_text())
    pruned = json.loads((tmp_path / "out" / "pruned" / "edgekit_training.json").read_text())
    assert student["device"].startswith("cuda") and pruned["recovery_device"].startswith("cuda")
    assert len(student["history"]) == 2 and Artifact.load(tmp_path / "out" / "onnx-fp32").meta
    rows = {r["name"]: r for r in res.report["results"]}
    # the ONNX export of the GPU-trained student (exported on the CPU) scores what the student scores
    assert rows["onnx-fp32"]["fidelity"]["accuracy"] == pytest.approx(rows["pruned"]["fidelity"]["accuracy"], abs=1)


def test_finetune_under_torchrun_nccl(tiny_ckpt, task_dir, tmp_path):
    """One process per GPU; with one GPU, one process: the NCCL group and DistributedDataParallel on cuda:0."""
    out = tmp_path / "teacher"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "1",
        "-m",
        "edgekit",
        "finetune",
        str(tiny_ckpt),
        "--data",
        str(task_dir),
        "-o",
        str(out),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--max-len",
        "32",
        "--lr",
        "1e-3",
        "-q",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((out / "edgekit_training.json").read_text())
    assert record["world_size"] == 1 and record["device"] == "cuda:0" and "nccl" in record["backend"]
    assert record["history"] and 0 <= record["test_accuracy"] <= 100
