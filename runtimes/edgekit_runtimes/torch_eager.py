"""PyTorch eager: the fp32 reference every other artifact is compared against."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit_runtimes.base import RuntimeAdapter, Session, TensorSpec


class TorchSession(Session):
    def __init__(
        self, module, input_names: list[str], output_name: str, threads: int, inputs: list[TensorSpec] | None = None
    ) -> None:
        import torch

        self._torch = torch
        self._module = module
        self._threads = threads
        self.inputs = inputs or [TensorSpec(n, "int64", ("batch", "sequence")) for n in input_names]
        self.outputs = [TensorSpec(output_name, "float32", ("batch", None))]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        if torch.get_num_threads() != self._threads:
            torch.set_num_threads(self._threads)
        args = [torch.from_numpy(np.ascontiguousarray(feeds[s.name], dtype=s.dtype)) for s in self.inputs]
        with torch.inference_mode():
            out = self._module(*args)
        return {self.outputs[0].name: out.numpy()}


class TorchEagerAdapter(RuntimeAdapter):
    name = "torch"
    formats = ("hf-checkpoint",)
    requires = ("torch", "transformers")
    description = "PyTorch eager (fp32 reference)"

    def load(self, path: Path, threads: int = 1, task: str | None = None, allow_unsafe_pickle: bool = False) -> Session:
        from edgekit.checkpoint import load_checkpoint

        path = Path(path)
        ckpt = load_checkpoint(
            path.parent if path.is_file() else path, task=task, allow_unsafe_pickle=allow_unsafe_pickle
        )
        return self.from_checkpoint(ckpt, threads)

    def from_checkpoint(self, ckpt, threads: int = 1) -> Session:
        module = ckpt.task_module()
        inputs = None
        if ckpt.is_image:
            inputs = [TensorSpec("pixel_values", "float32", ("batch", *ckpt.tokenizer.pixel_shape))]
        return TorchSession(module, ckpt.input_names, ckpt.task_def.output_name, threads, inputs)
