"""Images in, ``pixel_values`` out: the image side of what a tokenizer is for text.

:class:`ImageProcessor` reads and writes the Hugging Face
``preprocessor_config.json`` of ViT-style models (size, rescale factor, mean
and std) and turns a list of images into a float32 NCHW batch. It needs only
numpy (Pillow only to open files or resize), so the same code runs in a
runtime-only install. It is called like a tokenizer (extra keyword arguments
such as ``padding`` or ``max_length`` are accepted and ignored), which lets
every text path (parity checks, calibration, benchmarks, evaluation) take
images unchanged.

An image is a path, the bytes of an image file, a ``PIL.Image``, or an array
``HxW`` (grey) or ``HxWxC``: uint8 in 0-255, or float already in 0-1.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.errors import ArtifactError

CONFIG_FILE = "preprocessor_config.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm")


def load_image(image) -> np.ndarray:
    """An image as an array: a file path or a file's bytes is opened with Pillow (grey or RGB), anything else
    is ``np.asarray``."""
    if not isinstance(image, (str, Path, bytes, bytearray)):
        return np.asarray(image)
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading image files needs Pillow: pip install pillow") from None
    if isinstance(image, (bytes, bytearray)):
        import io

        image = io.BytesIO(image)
    with Image.open(image) as im:
        return np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)


@dataclass
class ImageProcessor:
    image_size: int
    num_channels: int = 3
    image_mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    image_std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    rescale_factor: float = 1 / 255
    is_image = True  # what text paths ask to tell an image processor from a tokenizer
    model_input_names = ("pixel_values",)

    @classmethod
    def from_pretrained(cls, path: str | Path, **_ignored) -> ImageProcessor:
        cfg = json.loads((Path(path) / CONFIG_FILE).read_text(encoding="utf-8"))
        size = cfg.get("size", 224)
        side = size.get("height", size.get("shortest_edge")) if isinstance(size, dict) else size
        if side is None:
            raise ArtifactError(f"{Path(path) / CONFIG_FILE}: size has neither height nor shortest_edge")
        mean, std = cfg.get("image_mean", [0.5]), cfg.get("image_std", [0.5])
        channels = int(cfg.get("num_channels", len(mean)))
        return cls(
            image_size=int(side),
            num_channels=channels,
            image_mean=[float(m) for m in (mean * channels)[:channels]] if len(mean) == 1 else mean,
            image_std=[float(s) for s in (std * channels)[:channels]] if len(std) == 1 else std,
            rescale_factor=float(cfg.get("rescale_factor", 1 / 255)),
        )

    @property
    def pixel_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image in ``pixel_values``."""
        return (self.num_channels, self.image_size, self.image_size)

    def to_dict(self) -> dict:
        return {
            "image_processor_type": "ViTImageProcessor",
            "do_resize": True,
            "do_rescale": True,
            "do_normalize": True,
            "size": {"height": self.image_size, "width": self.image_size},
            "rescale_factor": self.rescale_factor,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
            "num_channels": self.num_channels,
        }

    def save_pretrained(self, path: str | Path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / CONFIG_FILE).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def _one(self, image) -> np.ndarray:
        """One image as a CxHxW float32 array, resized, rescaled and normalized."""
        arr = load_image(image)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3:
            raise ValueError(f"an image must be HxW or HxWxC, got shape {list(arr.shape)}")
        if arr.shape[2] != self.num_channels:
            if self.num_channels == 1:
                arr = arr[:, :, :3].mean(axis=2, keepdims=True)
            elif arr.shape[2] == 1:
                arr = np.repeat(arr, self.num_channels, axis=2)
            else:
                arr = arr[:, :, : self.num_channels]
        scale = self.rescale_factor if arr.dtype.kind in "ui" or arr.max(initial=0) > 1.0 else 1.0
        arr = arr.astype(np.float32) * np.float32(scale)
        if arr.shape[0] != self.image_size or arr.shape[1] != self.image_size:
            arr = _resize(arr, self.image_size)
        arr = (arr - np.asarray(self.image_mean, np.float32)) / np.asarray(self.image_std, np.float32)
        return np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)

    def __call__(self, images, return_tensors: str = "np", **_ignored) -> dict:
        if not isinstance(images, (list, tuple)):
            images = [images]
        pixels = (
            np.stack([self._one(im) for im in images])
            if len(images)
            else np.zeros((0, self.num_channels, self.image_size, self.image_size), np.float32)
        )
        if return_tensors == "pt":
            import torch

            return {"pixel_values": torch.from_numpy(pixels)}
        return {"pixel_values": pixels}


def _resize(arr: np.ndarray, side: int) -> np.ndarray:
    """Bilinear resize of an HxWxC float array (Pillow, one channel at a time)."""
    from PIL import Image

    planes = [
        np.asarray(Image.fromarray(arr[:, :, c], mode="F").resize((side, side), Image.Resampling.BILINEAR))
        for c in range(arr.shape[2])
    ]
    return np.stack(planes, axis=2)


def is_image_processor(obj) -> bool:
    return bool(getattr(obj, "is_image", False))


def image_folder(root: Path) -> tuple[list[Path], list[str]]:
    """Image files under ``root/<label>/``: (paths, labels), sorted."""
    paths, labels = [], []
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(label_dir.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(f)
                labels.append(label_dir.name)
    return paths, labels


def sample_images(processor: ImageProcessor, n: int, seed: int = 0) -> Sequence[np.ndarray]:
    """``n`` random uint8 images of the processor's size (export examples, when no data is at hand)."""
    rng = np.random.default_rng(seed)
    shape = (processor.image_size, processor.image_size, processor.num_channels)
    return [rng.integers(0, 256, size=shape, dtype=np.uint8) for _ in range(n)]
