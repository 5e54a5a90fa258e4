"""Image preprocessing and the shipped digits set."""

import numpy as np
import pytest

from edgekit.data.datasets import load_dataset
from edgekit.data.images import ImageProcessor, image_folder


def test_processor_rescales_normalizes_and_lays_out_nchw():
    proc = ImageProcessor(image_size=4, num_channels=1, image_mean=[0.5], image_std=[0.5])
    img = np.zeros((4, 4), np.uint8)
    img[0, 0] = 255
    px = proc([img, img])["pixel_values"]
    assert px.shape == (2, 1, 4, 4) and px.dtype == np.float32
    assert px[0, 0, 0, 0] == pytest.approx(1.0) and px[0, 0, 1, 1] == pytest.approx(-1.0)


def test_processor_converts_channels_and_resizes():
    proc = ImageProcessor(image_size=8, num_channels=1, image_mean=[0.0], image_std=[1.0])
    rgb = np.full((16, 16, 3), 255, np.uint8)
    px = proc([rgb])["pixel_values"]
    assert px.shape == (1, 1, 8, 8)
    np.testing.assert_allclose(px, 1.0, atol=1e-6)
    grey3 = ImageProcessor(image_size=8, num_channels=3)([np.zeros((8, 8), np.uint8)])["pixel_values"]
    assert grey3.shape == (1, 3, 8, 8)


def test_processor_config_round_trips(tmp_path):
    proc = ImageProcessor(image_size=8, num_channels=1, image_mean=[0.25], image_std=[0.75])
    proc.save_pretrained(tmp_path)
    back = ImageProcessor.from_pretrained(tmp_path)
    assert (back.image_size, back.num_channels, back.image_mean, back.image_std) == (8, 1, [0.25], [0.75])


def test_processor_rejects_a_non_image():
    with pytest.raises(ValueError, match="HxW"):
        ImageProcessor(image_size=8, num_channels=1)([np.zeros(5)])


def test_digits_has_a_fixed_disjoint_split():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert (len(a.train.texts), len(a.validation.texts), len(a.test.texts)) == (1257, 179, 361)
    assert a.label_names == [str(i) for i in range(10)]
    assert all(np.array_equal(x, y) for x, y in zip(a.test.texts, b.test.texts))
    assert a.train.texts[0].dtype == np.uint8 and a.train.texts[0].shape == (8, 8)
    train = {x.tobytes() for x in a.train.texts}
    assert sum(x.tobytes() in train for x in a.test.texts) < 5  # digits has a few duplicate images, no more


def test_image_folder_dataset(tmp_path):
    from PIL import Image

    for split in ("train", "validation", "test"):
        for label in ("cat", "dog"):
            d = tmp_path / split / label
            d.mkdir(parents=True)
            Image.fromarray(np.zeros((6, 6), np.uint8)).save(d / "a.png")
    data = load_dataset(str(tmp_path))
    assert data.label_names == ["cat", "dog"] and len(data.test.texts) == 2
    paths, labels = image_folder(tmp_path / "train")
    assert labels == ["cat", "dog"] and all(p.suffix == ".png" for p in paths)
