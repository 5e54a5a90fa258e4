"""The image path: a ViT through distillation, pruning, ONNX/TFLite int8, scoring and a bundle."""

import json

import numpy as np
import pytest

from edgekit.artifact import Artifact
from edgekit.checkpoint import load_checkpoint
from edgekit.data.datasets import load_dataset
from edgekit.errors import InputError


def _rows(out):
    return {r["name"]: r for r in json.loads((out / "report.json").read_text())["results"]}


def test_tiny_vit_is_an_image_classifier(tiny_vit):
    ckpt = load_checkpoint(tiny_vit)
    assert ckpt.task == "image-classification" and ckpt.input_names == ["pixel_values"]
    record = json.loads((tiny_vit / "edgekit_training.json").read_text())
    assert record["test_accuracy"] > 80  # trained, not random (10 classes)


@pytest.mark.slow  # ~40 s on 2 cores: run with `python -m pytest -m slow`
def test_chain_makes_a_smaller_student_and_every_artifact(tiny_vit_chain):
    student = load_checkpoint(tiny_vit_chain / "student-pruned")
    cfg = student.config
    assert cfg["num_hidden_layers"] == 1 and cfg["edgekit_attention_heads"] == 3 and cfg["intermediate_size"] == 32
    manifest = json.loads((tiny_vit_chain / "student-pruned" / "manifest.json").read_text())
    assert manifest["vocabulary"] == {"skipped": "an image model has no vocabulary"}
    rows = _rows(tiny_vit_chain)
    assert {
        "pytorch-fp32",
        "student",
        "student-pruned",
        "onnx-fp32",
        "onnx-int8-dynamic",
        "tflite-fp32",
        "tflite-int8-dynamic",
    } <= set(rows)


def test_every_artifact_is_scored_on_the_digits_test_split(tiny_vit, tiny_vit_chain):
    rows = _rows(tiny_vit_chain)
    teacher = json.loads((tiny_vit / "edgekit_training.json").read_text())["test_accuracy"]
    ref = rows["pytorch-fp32"]["fidelity"]
    assert ref["eval_samples"] == 361 and ref["accuracy"] == pytest.approx(teacher, abs=0.01)
    for name in ("onnx-fp32", "onnx-int8-dynamic", "tflite-fp32", "tflite-int8-dynamic"):
        assert rows[name]["fidelity"]["eval_samples"] == 361
    # exported fp32 artifacts agree with the PyTorch student they came from
    assert rows["onnx-fp32"]["fidelity"]["accuracy"] == pytest.approx(
        rows["student-pruned"]["fidelity"]["accuracy"], abs=0.3
    )
    assert rows["tflite-fp32"]["fidelity"]["accuracy"] == pytest.approx(
        rows["student-pruned"]["fidelity"]["accuracy"], abs=0.3
    )
    # int8 stays close to its fp32 parent
    assert abs(rows["onnx-int8-dynamic"]["fidelity"]["accuracy"] - rows["onnx-fp32"]["fidelity"]["accuracy"]) < 5


def test_image_bundle_classifies_images(tiny_vit_chain, tmp_path):
    import edgekit
    from edgekit.pipeline.bundling import build_bundle

    bundle = build_bundle(tiny_vit_chain, tmp_path / "bundle", artifacts=["onnx-int8-dynamic", "tflite-int8-dynamic"])
    assert bundle.meta["preprocessing"]["kind"] == "image"
    test = load_dataset("digits").test
    for runtime in ("onnxruntime", "litert"):
        model = edgekit.load(bundle.path, runtime=runtime, threads=1)
        assert model.check()["passed"]
        preds = model.classify_images(test.texts[:40])
        acc = np.mean([p.label == y for p, y in zip(preds, test.labels[:40])]) * 100
        assert acc > 40 and all(abs(sum(p.scores.values()) - 1) < 1e-4 for p in preds)
        with pytest.raises(InputError, match="classify_images"):
            model.classify(["text"])
        model.close()


def test_classify_images_reads_files_and_rejects_bad_input(tiny_vit_chain, tmp_path):
    from PIL import Image

    import edgekit
    from edgekit.pipeline.bundling import build_bundle

    bundle = build_bundle(tiny_vit_chain, tmp_path / "b", artifacts=["onnx-int8-dynamic"])
    model = edgekit.load(bundle.path, threads=1)
    img = load_dataset("digits").test.texts[0]
    Image.fromarray(img).save(tmp_path / "digit.png")
    from_file = model.classify_images(str(tmp_path / "digit.png"))[0]
    from_array = model.classify_images(img)[0]
    assert from_file.label == from_array.label
    assert from_file.score == pytest.approx(from_array.score, abs=1e-5)
    with pytest.raises(InputError, match="no such file"):
        model.classify_images(str(tmp_path / "missing.png"))
    with pytest.raises(InputError, match="empty"):
        model.classify_images([])


def test_edgekit_run_classifies_image_files(tiny_vit_chain, tmp_path, run_cli):
    from PIL import Image

    from edgekit.pipeline.bundling import build_bundle

    bundle = build_bundle(tiny_vit_chain, tmp_path / "b", artifacts=["tflite-int8-dynamic"])
    test = load_dataset("digits").test
    files = []
    for i in range(3):
        files.append(str(tmp_path / f"d{i}.png"))
        Image.fromarray(test.texts[i]).save(files[-1])
    res = run_cli("run", str(bundle.path), *files)
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.output)
    assert [r["image"] for r in out["results"]] == files
    assert all(r["label"] in [str(d) for d in range(10)] for r in out["results"])
    assert run_cli("run", str(bundle.path), "--check").exit_code == 0


def test_compress_refuses_an_image_model_without_image_data(tiny_vit, tmp_path, run_cli):
    res = run_cli("compress", str(tiny_vit), "-r", "ptq-dynamic", "-o", str(tmp_path / "o"))
    assert res.exit_code == 2 and "labelled image set" in res.stderr
    assert not (tmp_path / "o").exists()


def test_serve_classifies_posted_images_and_never_opens_paths(tiny_vit_chain, tmp_path):
    import base64
    import io
    import threading

    from PIL import Image

    import edgekit
    from edgekit.device.serve import make_server
    from edgekit.pipeline.bundling import build_bundle
    from tests.device.test_serve import _request

    bundle = build_bundle(tiny_vit_chain, tmp_path / "b", artifacts=["onnx-int8-dynamic"])
    model = edgekit.load(bundle.path, threads=1)
    srv = make_server(model, "127.0.0.1", 0, max_texts=4)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        test = load_dataset("digits").test
        files = []
        for img in test.texts[:3]:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            files.append(base64.b64encode(buf.getvalue()).decode())
        expected = [p.as_dict() for p in model.classify_images(test.texts[:3])]
        status, out = _request(srv, "POST", "/classify", {"images": files})
        assert status == 200 and [p["label"] for p in out["predictions"]] == [p["label"] for p in expected]
        assert out["predictions"][0]["score"] == pytest.approx(expected[0]["score"], abs=1e-5)
        status, out = _request(srv, "POST", "/predict", {"arrays": [img.tolist() for img in test.texts[:3]]})
        assert status == 200 and [p["label"] for p in out["predictions"]] == [p["label"] for p in expected]
        (tmp_path / "secret.png").write_bytes(base64.b64decode(files[0]))
        for body, status, message in [
            ({"images": [str(tmp_path / "secret.png")]}, 400, "not valid base64"),  # a path is not opened
            ({"images": [base64.b64encode(b"not an image").decode()]}, 400, "not an image file"),
            ({"arrays": [[[1, 2], [3]]]}, 400, "rows of numbers"),
            ({"texts": ["hello"]}, 400, "classifies images, not texts"),
            ({"images": files, "arrays": []}, 400, "send"),
            ({"images": files * 2}, 413, "at most 4"),
        ]:
            got = _request(srv, "POST", "/classify", body)
            assert got[0] == status and message in got[1]["error"], (body, got)
        assert _request(srv, "POST", "/embed", {"images": files})[0] == 422
        assert _request(srv, "GET", "/health") == (200, {"status": "ok"})
    finally:
        srv.shutdown()
        srv.server_close()


def test_ffn_output_patterns_find_the_vit_projection(tiny_vit_chain):
    """The search's and recipes' "keep the FFN output projection out of static int8" rule reaches ViTs."""
    import re

    import onnx

    from edgekit.stages.quantize.tflite_backend import matching_ops, op_scopes
    from edgekit.stages.search_space import FFN_OUTPUT_ONNX, FFN_OUTPUT_TFLITE

    nodes = [
        n.name
        for n in onnx.load(str(tiny_vit_chain / "onnx-fp32" / "model.onnx")).graph.node
        if re.search(FFN_OUTPUT_ONNX, n.name)
    ]
    assert len(nodes) == 1 and "mlp/fc2" in nodes[0]  # the pruned student has one layer
    scopes = op_scopes(tiny_vit_chain / "tflite-fp32" / "model.tflite")
    assert matching_ops(scopes, FFN_OUTPUT_TFLITE, ["FULLY_CONNECTED"]) == 1
    assert matching_ops(scopes, ".*", ["EMBEDDING_LOOKUP"]) == 0


def test_static_int8_onnx_on_a_vit(tiny_vit, tmp_path):
    """ptq-static on a ViT: the optimized graph keeps shape inference working (no FusedMatMul), calibration
    reads images, and the FFN output projections stay in float as the recipe says."""
    import onnx

    from edgekit.pipeline.run import compress
    from tests.helpers import fast_recipe

    out = tmp_path / "out"
    compress(tiny_vit, fast_recipe("ptq-static", fidelity_samples=64).with_data("digits"), out, progress=False)
    ops = {n.op_type for n in onnx.load(str(out / "onnx-fp32-opt" / "model.onnx")).graph.node}
    assert "FusedMatMul" not in ops
    art = Artifact.load(out / "onnx-int8-static")
    assert art.meta["float_nodes"] == ["/model/vit/layers.0/mlp/fc2/MatMul", "/model/vit/layers.1/mlp/fc2/MatMul"]
    q = {n.op_type for n in onnx.load(str(art.model_path)).graph.node}
    assert "QuantizeLinear" in q and "DequantizeLinear" in q
    assert art.meta["validation"]["cosine_mean"] > 0.99
