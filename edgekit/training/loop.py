"""One training loop for fine-tuning, distillation and QAT: seeded, resumable, DDP-aware.

* Deterministic: the seed fixes initialisation, dropout and the batch order
  (a permutation per epoch drawn from ``seed + epoch``).
* Resumable: every ``save_every`` steps and at each epoch's end the model,
  optimizer, scheduler, step and RNG states go to ``<run_dir>/resume.safetensors``
  (tensors in safetensors, everything else as JSON in its metadata: nothing is
  unpickled); ``resume=True`` continues from there, skipping the batches already
  done, once the state is shown to come from the same run (settings, data size,
  model structure and the caller's ``key``). A pickled ``resume.pt`` from an
  older edgekit is never loaded.
* Device: the model trains on this process's GPU when there is one (see
  :mod:`edgekit.training.device`) and goes back where it was afterwards.
* Distributed: under ``torchrun`` the process group is set up (NCCL for
  GPU tensors, gloo for CPU ones), the model wrapped in
  DistributedDataParallel and every batch split across ranks; only rank 0
  writes checkpoints and shows progress. The same code runs unchanged on one
  process.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgekit.errors import InputError

RESUME_FILE = "resume.safetensors"
LEGACY_RESUME_FILE = "resume.pt"  # what earlier releases pickled: unpickling can run code, so it is never read
STATE_KEY, RUN_KEY = "edgekit_resume", "edgekit_run"


@dataclass(frozen=True)
class TrainSettings:
    epochs: float = 2.0
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_len: int = 128
    seed: int = 0
    save_every: int = 50
    grad_clip: float = 1.0


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def launched() -> bool:
    """True in a process started by torchrun (or any launcher that sets the env:// variables)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def world() -> tuple[int, int]:
    """(rank, world size); sets up the process group when started by torchrun, even with one process."""
    import torch.distributed as dist

    if launched() and not dist.is_initialized():
        import torch

        # one group for both kinds of tensor: a model that stays on the CPU (QAT) trains on GPU hosts too
        dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def batch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    perm = np.random.default_rng(seed + epoch).permutation(n)
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]


def _encode(obj, tensors: dict):
    """``obj`` as JSON: tensors go to ``tensors`` (referenced by key); tuples, arrays and dicts are tagged so
    they come back as they were (dict keys keep their type: optimizer state is keyed by int)."""
    import torch

    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().to("cpu", copy=True).contiguous()
        return {"tensor": key}
    if isinstance(obj, np.ndarray):
        return {"ndarray": obj.tolist(), "dtype": obj.dtype.str}
    if isinstance(obj, dict):
        return {"dict": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"tuple": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in the resume state")


def _decode(obj, tensors):
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "tensor" in obj:
        return tensors.get_tensor(obj["tensor"])
    if "ndarray" in obj:
        return np.asarray(obj["ndarray"], dtype=np.dtype(obj["dtype"]))
    if "tuple" in obj:
        return tuple(_decode(v, tensors) for v in obj["tuple"])
    return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["dict"]}


def saved_step(path: Path) -> int:
    """The step the resume state in ``path`` was saved at."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(json.loads(f.metadata()[STATE_KEY])["dict"])["step"]


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


class Trainer:
    """``step_loss(model, index_batch) -> loss`` is the only task-specific part; it builds its batch on the
    model's device (:func:`edgekit.training.device.device_of`).

    ``device``: where to train (default: :func:`edgekit.training.device.train_device`). ``key``: what else
    identifies the run (the recipe stage, the data): resume state made under another key is refused."""

    def __init__(
        self,
        model,
        step_loss: Callable,
        n_examples: int,
        settings: TrainSettings,
        run_dir: Path | None,
        *,
        progress: bool = True,
        desc: str = "train",
        parameters=None,
        device=None,
        key: dict | None = None,
    ) -> None:
        import torch
        import torch.distributed as dist

        from edgekit.training.device import device_of, train_device

        self.settings, self.run_dir, self.desc = settings, run_dir, desc
        self.rank, self.world = world()
        self.home = device_of(model)  # where the model goes back to after fit()
        self.device = torch.device(device) if device is not None else train_device()
        self.model = model.to(self.device)
        self.module = model
        self.backend = dist.get_backend() if dist.is_initialized() else None
        if dist.is_initialized():
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(model, device_ids=ids)
        self.step_loss, self.n = step_loss, n_examples
        self.progress = progress and self.rank == 0
        params = [p for p in (parameters if parameters is not None else model.parameters()) if p.requires_grad]
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=settings.lr,
        )
        self.steps_per_epoch = math.ceil(n_examples / settings.batch_size)
        self.total = max(1, int(round(self.steps_per_epoch * settings.epochs)))
        warm = max(1, int(self.total * settings.warmup_ratio))
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: min((s + 1) / warm, max(0.0, (self.total - s) / max(1, self.total - warm)))
        )
        self.step = 0
        self.history: list[dict] = []
        self.key = key

    def identity(self) -> dict:
        """What a resume state must match: settings, data size, the model's structure and the caller's key."""
        structure = [[k, list(v.shape), str(v.dtype)] for k, v in self.module.state_dict().items()]
        return {
            "settings": asdict(self.settings),
            "n_examples": self.n,
            "model": _digest(structure),
            "key": _digest(self.key),
        }

    def _state(self) -> dict:
        import torch

        return {
            "model": self.module.state_dict(),
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
            "step": self.step,
            "history": self.history,
            "torch_rng": torch.get_rng_state(),
            "np_rng": np.random.get_state(),
            "py_rng": random.getstate(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
        }

    def save(self) -> None:
        if self.run_dir is None or self.rank != 0:
            return
        from safetensors.torch import save_file

        self.run_dir.mkdir(parents=True, exist_ok=True)
        tensors: dict = {}
        meta = {STATE_KEY: json.dumps(_encode(self._state(), tensors)), RUN_KEY: json.dumps(self.identity())}
        tmp = self.run_dir / (RESUME_FILE + ".tmp")
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, self.run_dir / RESUME_FILE)

    def _read(self, path: Path) -> dict:
        """The state stored in ``path``, checked to be this run's; nothing in it is executed."""
        from safetensors import safe_open

        redo = "delete it or drop --resume"
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if RUN_KEY not in meta or STATE_KEY not in meta:
                    raise ValueError("no edgekit training state in it")
                if json.loads(meta[RUN_KEY]) != json.loads(json.dumps(self.identity())):
                    raise InputError(f"resume state in {path} was made by another run or other settings; {redo}")
                state = _decode(json.loads(meta[STATE_KEY]), f)
            if not isinstance(state, dict):
                raise TypeError("the state is not a mapping")
        except InputError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure to parse means the file cannot be used
            raise InputError(
                f"resume state in {path} is damaged or not edgekit's ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}); {redo}"
            ) from None
        step, history = state.get("step"), state.get("history")
        if not isinstance(step, int) or not 0 <= step <= self.total or not isinstance(history, list):
            raise InputError(f"resume state in {path} has step {step!r} of a {self.total}-step run; {redo}")
        return state

    def load(self) -> bool:
        """Continue from ``run_dir/resume.safetensors`` if it exists; True when resumed."""
        import torch

        if self.run_dir is None:
            return False
        legacy = self.run_dir / LEGACY_RESUME_FILE
        if legacy.exists():
            raise InputError(
                f"{legacy}: resume state in the old pickle format is never loaded (unpickling can run "
                "code); delete it, or run again without --resume"
            )
        path = self.run_dir / RESUME_FILE
        if not path.is_file():
            return False
        state = self._read(path)
        try:
            self.module.load_state_dict(state["model"])
            self.opt.load_state_dict(state["opt"])
            self.sched.load_state_dict(state["sched"])
            torch.set_rng_state(state["torch_rng"])
            np.random.set_state(state["np_rng"])
            random.setstate(state["py_rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise InputError(
                f"resume state in {path} does not fit this run ({type(err).__name__}: "
                f"{str(err).splitlines()[0]}); delete it or drop --resume"
            ) from None
        self.step, self.history = state["step"], state["history"]
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        return True

    def fit(self, evaluate: Callable[[], dict] | None = None, resume: bool = False) -> list[dict]:
        import torch

        if resume:
            self.load()
        self.model.train()
        s = self.settings
        bar = tqdm(
            total=self.total,
            initial=self.step,
            desc=self.desc,
            unit="step",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        running = None
        while self.step < self.total:
            epoch, offset = divmod(self.step, self.steps_per_epoch)
            batches = batch_order(self.n, s.batch_size, s.seed, epoch)
            for idx in batches[offset:]:
                if self.step >= self.total:
                    break
                part = np.array_split(idx, self.world)[self.rank] if self.world > 1 else idx
                loss = self.step_loss(self.model, part)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.module.parameters(), s.grad_clip)
                self.opt.step()
                self.sched.step()
                self.step += 1
                value = float(loss.detach())
                running = value if running is None else 0.95 * running + 0.05 * value
                bar.update(1)
                bar.set_postfix(loss=f"{running:.4f}", epoch=epoch + 1)
                if self.step % s.save_every == 0:
                    self.save()
            if evaluate is not None and (self.step % self.steps_per_epoch == 0 or self.step >= self.total):
                from edgekit.training.data import evaluation_progress

                self.model.eval()
                with evaluation_progress(f"{self.desc}: evaluate" if self.progress else None):
                    scores = evaluate()
                metrics = {
                    "step": self.step,
                    "epoch": round(self.step / self.steps_per_epoch, 2),
                    "loss": running,
                    **scores,
                }
                self.model.train()
                self.history.append(metrics)
                if self.progress:
                    shown = ", ".join(
                        f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float) and k != "epoch"
                    )
                    # progress, on stderr: stdout holds the command's result (--json)
                    tqdm.write(f"{self.desc}: epoch {metrics['epoch']}: {shown}", file=sys.stderr)
            self.save()
        bar.close()
        self.model.eval()
        self.module.to(self.home)
        return self.history
