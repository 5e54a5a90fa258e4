"""The training loop: deterministic, resumable, and the same under torchrun with two processes."""

import json
import os
import subprocess
import sys

import pytest
import torch

from edgekit.training.loop import Trainer, TrainSettings, batch_order, seed_everything


def _toy(seed: int = 0):
    seed_everything(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 4, generator=g)
    y = x.sum(1, keepdim=True)

    def loss(m, idx):  # the batch goes where the trainer put the model (a GPU when there is one)
        device = next(m.parameters()).device
        return torch.nn.functional.mse_loss(m(x[idx].to(device)), y[idx].to(device))

    return model, loss


def test_batch_order_is_fixed_by_seed_and_epoch():
    a = batch_order(10, 4, seed=3, epoch=1)
    assert [x.tolist() for x in a] == [x.tolist() for x in batch_order(10, 4, seed=3, epoch=1)]
    assert sorted(i for b in a for i in b.tolist()) == list(range(10))
    assert [x.tolist() for x in a] != [x.tolist() for x in batch_order(10, 4, seed=3, epoch=2)]


def test_deterministic_and_loss_falls(tmp_path):
    s = TrainSettings(epochs=30, batch_size=8, lr=3e-2, save_every=1000)
    weights, losses = [], []
    for _ in range(2):
        model, loss = _toy()
        start = float(loss(model, list(range(64))))
        Trainer(model, loss, 64, s, None, progress=False).fit()
        losses.append((start, float(loss(model, list(range(64))))))
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(weights[0], weights[1])
    assert losses[0][1] < 0.5 * losses[0][0]


def test_device_override_is_checked(monkeypatch):
    from edgekit.errors import InputError
    from edgekit.training.device import ENV, train_device

    monkeypatch.setenv(ENV, "cpu")
    assert train_device() == torch.device("cpu")
    monkeypatch.setenv(ENV, "tpu-please")
    with pytest.raises(InputError, match="not a device"):
        train_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv(ENV, "cuda")
        with pytest.raises(InputError, match="no CUDA GPU"):
            train_device()


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    s = TrainSettings(epochs=3, batch_size=8, lr=1e-2, save_every=5)
    full, loss = _toy()
    Trainer(full, loss, 64, s, tmp_path / "a", progress=False).fit()

    class Stop(Exception):
        pass

    part, loss2 = _toy()
    calls = {"n": 0}

    def interrupted(m, idx):
        calls["n"] += 1
        if calls["n"] == 13:  # killed mid-epoch, after the checkpoint at step 10
            raise Stop
        return loss2(m, idx)

    with pytest.raises(Stop):
        Trainer(part, interrupted, 64, s, tmp_path / "b", progress=False).fit()
    resumed, loss3 = _toy(seed=99)  # fresh weights: everything must come from the checkpoint
    trainer = Trainer(resumed, loss3, 64, s, tmp_path / "b", progress=False)
    trainer.fit(resume=True)
    assert trainer.step == 24
    for p, q in zip(full.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q)


def test_finetune_under_torchrun_two_processes_gloo(tiny_ckpt, task_dir, tmp_path):
    """`edgekit finetune` under torchrun: DistributedDataParallel on the gloo backend, 2 CPU processes."""
    out = tmp_path / "teacher"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EDGEKIT_TRAIN_DEVICE": "cpu"}  # on a GPU host too
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
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
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((out / "edgekit_training.json").read_text())
    assert record["world_size"] == 2 and record["device"] == "cpu" and "gloo" in record["backend"]
    assert record["history"] and 0 <= record["test_accuracy"] <= 100
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
