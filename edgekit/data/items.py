"""Checking what a user passes to predict on: texts and images (tasks with other items check their own)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgekit.errors import InputError

MAX_TEXT_CHARS = 100_000


def check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts):
        raise InputError("texts must be a list of strings")
    if not texts:
        raise InputError("texts is empty")
    long = [i for i, t in enumerate(texts) if len(t) > MAX_TEXT_CHARS]
    if long:
        raise InputError(f"text {long[0]} is longer than {MAX_TEXT_CHARS} characters")
    return list(texts)


def check_images(images) -> list:
    """A list of images (arrays HxW or HxWxC, file paths, or image files' bytes). One path, one file's bytes,
    one HxW array, one HxWxC array (C of 1, 3 or 4), or an N-image array (NxHxW, NxHxWxC) are accepted too."""
    if isinstance(images, (str, Path, bytes, bytearray)):
        images = [images]
    elif isinstance(images, np.ndarray):
        single = images.ndim == 2 or (images.ndim == 3 and images.shape[2] in (1, 3, 4))
        images = [images] if single else list(images)
    else:
        images = list(images)
    if not images:
        raise InputError("images is empty")
    out = []
    for i, im in enumerate(images):
        if isinstance(im, (str, Path)) and not Path(im).is_file():
            raise InputError(f"image {i}: no such file {im}")
        if isinstance(im, (str, Path, bytes, bytearray)):
            im = _decode(i, im)
        if not isinstance(im, np.ndarray) or im.ndim not in (2, 3) or im.size == 0:
            raise InputError(f"image {i}: expected an HxW or HxWxC array, a file path or a file's bytes")
        out.append(im)
    return out


def _decode(i: int, image) -> np.ndarray:
    from edgekit.data.images import load_image

    try:
        return load_image(image)
    except ImportError:
        raise
    except Exception as err:  # noqa: BLE001 - Pillow raises several kinds for a file it cannot read
        raise InputError(f"image {i}: not an image file Pillow can read ({type(err).__name__})") from None
