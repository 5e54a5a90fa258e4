"""Bundles: what goes in, what loading verifies, and what an archive may not do."""

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from edgekit.bundle import BUNDLE_FILE, open_bundle, pack, unpack
from edgekit.errors import ArtifactError


def test_bundle_holds_models_tokenizer_reference_and_digests(tiny_bundle):
    meta = json.loads((tiny_bundle / BUNDLE_FILE).read_text())
    assert [v["name"] for v in meta["variants"]] == ["onnx-int8-dynamic", "onnx-fp32"]
    assert {"tokenizer/tokenizer.json", "reference.npz", "models/onnx-int8-dynamic/model.onnx"} <= set(meta["files"])
    assert meta["preprocessing"]["max_seq_len"] == 128  # the tiny tokenizer's model_max_length
    assert meta["postprocessing"] == {"output": "embeddings", "pooling": "mean", "normalize": False}
    assert len(meta["reference"]["texts"]) == 16
    assert not (tiny_bundle / "models" / "onnx-fp32" / "manifest.json").exists()
    assert (tiny_bundle.parent / "tiny.tar.gz").is_file()


def test_embeddings_match_the_checkpoint_tokenizer_path(tiny_bundle, tiny_compressed, tiny_ckpt):
    """tokenizers-only encoding gives the same model outputs as the transformers tokenizer."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    import edgekit

    texts = ["The economy is strong.", "We will build roads and bridges across the nation, and more", "ok"]
    model = edgekit.load(tiny_bundle, variant="onnx-fp32", threads=1)
    got = model.embed(texts)
    tok = AutoTokenizer.from_pretrained(str(tiny_ckpt))
    enc = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="np")
    sess = ort.InferenceSession(str(tiny_compressed / "onnx-fp32" / "model.onnx"))
    names = [i.name for i in sess.get_inputs()]
    expected = sess.run(None, {n: enc[n].astype(np.int64) for n in names})[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_recorded_reference_is_reproduced(tiny_bundle):
    import edgekit

    for variant in ("onnx-int8-dynamic", "onnx-fp32"):
        model = edgekit.load(tiny_bundle, variant=variant, threads=1)
        assert model.check()["cosine_to_recorded_min"] > 0.9999
    int8 = open_bundle(tiny_bundle).reference_outputs("onnx-int8-dynamic")
    fp32 = open_bundle(tiny_bundle).reference_outputs("onnx-fp32")
    assert int8.shape == fp32.shape == (16, 32)
    assert not np.allclose(int8, fp32)  # the int8 variant really is a different model


def test_default_variant_and_unknown_variant(tiny_bundle):
    import edgekit

    assert edgekit.load(tiny_bundle, threads=1).variant.name == "onnx-int8-dynamic"
    with pytest.raises(ArtifactError, match="no variant 'nope'.*onnx-int8-dynamic"):
        edgekit.load(tiny_bundle, variant="nope")
    with pytest.raises(ArtifactError, match="no tflite variant"):
        edgekit.load(tiny_bundle, runtime="litert")


def test_embed_on_a_classifier_and_classify(tiny_cls_bundle):
    import edgekit

    model = edgekit.load(tiny_cls_bundle, threads=1)
    preds = model.classify(["tax cuts for working families", "peace"])
    assert len(preds) == 2
    for p in preds:
        assert p.label in {"label_0", "label_1", "label_2"}
        assert sum(p.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert p.score == max(p.scores.values())
    assert model.check()["cosine_to_recorded_min"] > 0.9999
    from edgekit.errors import InputError

    with pytest.raises(InputError, match="text-classification model; use classify"):
        model.embed(["x"])


def _copy(bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(bundle, dst)
    return dst


def test_tampered_model_file_is_refused(tiny_bundle, tmp_path, run_cli):
    b = _copy(tiny_bundle, tmp_path)
    model = b / "models" / "onnx-int8-dynamic" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01  # one byte
    model.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"modified after it was made \(sha256 differs from the recorded one: models/onnx-int8-dynamic/model.onnx\)"):
        open_bundle(b)
    r = run_cli("run", str(b), "hello")
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and "sha256 differs" in r.stderr


def test_partial_bundle_is_refused(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle, tmp_path)
    (b / "tokenizer" / "tokenizer.json").unlink()
    with pytest.raises(ArtifactError, match="incomplete: missing tokenizer/tokenizer.json"):
        open_bundle(b)


def test_not_a_bundle_and_malformed_description(tmp_path):
    with pytest.raises(ArtifactError, match="not an edgekit bundle"):
        open_bundle(tmp_path)
    (tmp_path / BUNDLE_FILE).write_text("{not json")
    with pytest.raises(ArtifactError, match="malformed bundle description"):
        open_bundle(tmp_path)
    (tmp_path / BUNDLE_FILE).write_text(json.dumps({"bundle_version": 99, "name": "x", "task": "t", "files": {},
                                                    "variants": [], "preprocessing": {}, "postprocessing": {},
                                                    "reference": {}}))
    with pytest.raises(ArtifactError, match="bundle version 99"):
        open_bundle(tmp_path)


def test_archive_round_trip(tiny_bundle, tmp_path, monkeypatch):
    import edgekit

    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))
    archive = pack(tiny_bundle, tmp_path / "b.tar.gz")
    b = open_bundle(archive, unpack_to=tmp_path / "dest")
    assert b.path == tmp_path / "dest" / "b"
    a = edgekit.load(archive, threads=1).embed(["hello there"])
    d = edgekit.load(tiny_bundle, threads=1).embed(["hello there"])
    np.testing.assert_array_equal(a, d)
    assert len(list((tmp_path / "cache" / "bundles").iterdir())) == 1  # unpacked once, into the cache


def _tar_with(tmp_path: Path, members: list[tarfile.TarInfo], name: str = "evil.tar.gz") -> Path:
    path = tmp_path / name
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            data = b"x" * info.size if info.isfile() else None
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 3
    return info


@pytest.mark.parametrize("bad", ["b/../../escaped.txt", "/tmp/edgekit-absolute.txt", "../escaped.txt"])
def test_archive_path_escape_is_refused(tmp_path, bad):
    archive = _tar_with(tmp_path, [_file("b/bundle.json"), _file(bad)])
    dest = tmp_path / "dest"
    with pytest.raises(ArtifactError, match="refused: member .* would be written outside the destination"):
        unpack(archive, dest)
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/edgekit-absolute.txt").exists()
    assert not dest.exists() or not any(dest.iterdir())  # nothing written, not even the good member


def test_archive_links_are_refused(tmp_path):
    link = tarfile.TarInfo("b/model.onnx")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    archive = _tar_with(tmp_path, [_file("b/bundle.json"), link])
    with pytest.raises(ArtifactError, match="'b/model.onnx' is a link"):
        unpack(archive, tmp_path / "dest")


def test_cli_bundle_run_and_check(tiny_compressed, tmp_path, run_cli):
    r = run_cli("bundle", str(tiny_compressed), "-o", str(tmp_path / "b"), "-a", "onnx-int8-dynamic")
    assert r.exit_code == 0, r.stderr
    assert "onnx-int8-dynamic" in r.output
    r = run_cli("run", str(tmp_path / "b"), "one text", "another text")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.output)
    assert out["variant"] == "onnx-int8-dynamic" and out["runtime"] == "onnxruntime"
    assert [len(x["embedding"]) for x in out["results"]] == [32, 32]
    r = run_cli("run", str(tmp_path / "b"), "--check")
    assert r.exit_code == 0 and json.loads(r.output)["check"]["passed"] is True
    r = run_cli("run", str(tmp_path / "b"))
    assert r.exit_code == 2 and "give TEXTS" in r.stderr


def test_cli_bundle_bad_input(tiny_compressed, tmp_path, run_cli):
    r = run_cli("bundle", str(tiny_compressed), "-o", str(tmp_path / "b"), "-a", "no-such-artifact")
    assert r.exit_code == 2 and "no ONNX/TFLite artifact named no-such-artifact" in r.stderr
    assert not (tmp_path / "b").exists()
    r = run_cli("bundle", str(tmp_path), "-o", str(tmp_path / "b"))
    assert r.exit_code == 2


def _rewrite_reference(bundle: Path, change) -> None:
    """Edit reference.npz / bundle.json of a copied bundle and re-record the digest, as a maker would."""
    from edgekit.artifact import sha256_file

    ref = bundle / "reference.npz"
    with np.load(ref) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads((bundle / BUNDLE_FILE).read_text())
    change(arrays, meta)
    np.savez_compressed(ref, **arrays)
    meta["files"]["reference.npz"] = sha256_file(ref)
    (bundle / BUNDLE_FILE).write_text(json.dumps(meta))


def test_check_accepts_other_int8_kernels_with_the_same_fidelity(tiny_bundle, tmp_path):
    """Another CPU's int8 kernels round differently: not reproduced, but as close to fp32 as recorded."""
    import edgekit

    b = _copy(tiny_bundle, tmp_path)
    rng = np.random.default_rng(0)

    def shift(arrays, meta):  # what the bundling machine recorded was a little different
        arrays["onnx-int8-dynamic"] = arrays["onnx-int8-dynamic"] + rng.normal(0, 0.08, arrays["onnx-int8-dynamic"].shape)

    _rewrite_reference(b, shift)
    result = edgekit.load(b, variant="onnx-int8-dynamic", threads=1).check()
    assert result["cosine_to_recorded_min"] < 0.999
    assert result["passed"] and result["verdict"].startswith("different kernels")
    assert result["fidelity_to_fp32"]["cosine_mean"] == pytest.approx(result["fidelity_recorded"]["cosine_mean"], abs=1e-6)


def test_check_fails_wrong_outputs(tiny_bundle, tmp_path, run_cli):
    b = _copy(tiny_bundle, tmp_path)

    def wrong(arrays, meta):  # the model now computes something else than what was recorded
        arrays["onnx-int8-dynamic"] = -arrays["onnx-int8-dynamic"]
        arrays["fp32-reference"] = -arrays["fp32-reference"]

    _rewrite_reference(b, wrong)
    r = run_cli("run", str(b), "--check")
    assert r.exit_code == 3
    out = json.loads(r.output)["check"]
    assert not out["passed"] and out["verdict"].startswith("wrong outputs")
    assert "onnx-int8-dynamic on onnxruntime: wrong outputs" in r.stderr
