"""Where training runs: the GPU of this process when there is one, else the CPU.

``EDGEKIT_TRAIN_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``) overrides the choice.
Under ``torchrun`` each process takes the GPU of its ``LOCAL_RANK``. Only
training moves models: the trainer puts the student on the device for the
run and back where it found it afterwards, so exports, benchmarks and
checkpoints never see a GPU tensor.
"""

from __future__ import annotations

import os

ENV = "EDGEKIT_TRAIN_DEVICE"


def train_device():
    import torch

    from edgekit.errors import InputError

    choice = os.environ.get(ENV, "").strip()
    if choice:
        try:
            device = torch.device(choice)
        except RuntimeError as e:
            raise InputError(f"{ENV}={choice!r} is not a device (cpu, cuda, cuda:N)") from e
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"{ENV}={choice!r} but PyTorch sees no CUDA GPU")
        return device
    if not torch.cuda.is_available():
        return torch.device("cpu")
    local, count = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
    if local >= count:  # NCCL refuses two processes on one GPU
        raise InputError(
            f"process {local} on this node has no GPU of its own ({count} visible): start one process "
            f"per GPU (--nproc_per_node {count}) or train on the CPU ({ENV}=cpu)"
        )
    return torch.device("cuda", local)


def device_of(model):
    """The device of ``model``'s first parameter (CPU for a model without parameters)."""
    import torch

    return next((p.device for p in model.parameters()), torch.device("cpu"))


def to_device(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
