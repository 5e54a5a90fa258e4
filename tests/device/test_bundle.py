"""Bundles: what goes in, what loading verifies, and what an archive may not do."""

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from edgekit.device.bundle import BUNDLE_FILE, open_bundle, pack, seal, unpack
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
    with pytest.raises(
        ArtifactError,
        match=r"modified after it was made \(sha256 differs from the recorded one: "
        r"models/onnx-int8-dynamic/model.onnx\)",
    ):
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
    (tmp_path / BUNDLE_FILE).write_text(
        json.dumps(
            {
                "bundle_version": 99,
                "name": "x",
                "task": "t",
                "files": {},
                "variants": [],
                "preprocessing": {},
                "postprocessing": {},
                "reference": {},
            }
        )
    )
    with pytest.raises(ArtifactError, match="bundle version 99"):
        open_bundle(tmp_path)


def _edit(bundle: Path, change, reseal: bool = True) -> None:
    """Change a copied bundle's description; with ``reseal`` record its digest again, as a forger would."""
    meta = json.loads((bundle / BUNDLE_FILE).read_text())
    change(meta)
    (bundle / BUNDLE_FILE).write_text(json.dumps(seal(meta) if reseal else meta))


def test_the_description_is_sealed(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle, tmp_path)
    original = open_bundle(b).digest
    assert original == json.loads((b / BUNDLE_FILE).read_text())["description_sha256"]
    _edit(b, lambda m: m["postprocessing"].update(normalize=True), reseal=False)
    with pytest.raises(
        ArtifactError,
        match=r"modified after it was made \(sha256 differs from the recorded one: "
        r"bundle.json\)",
    ):
        open_bundle(b, check=False)  # even without the file digests
    _edit(b, lambda m: m.pop("description_sha256"), reseal=False)
    with pytest.raises(ArtifactError, match="modified after it was made .bundle.json has no description_sha256"):
        open_bundle(b)
    _edit(b, lambda m: m.update(bundle_version=1), reseal=False)
    with pytest.raises(ArtifactError, match=r"made by an older edgekit \(bundle version 1.*re-bundle it"):
        open_bundle(b)
    _edit(b, lambda m: m.update(bundle_version=2))  # re-sealed by hand: a new digest, refused where pinned
    assert open_bundle(b).digest != original
    with pytest.raises(ArtifactError, match="is not the one pinned"):
        open_bundle(b, digest=f"sha256:{original}")
    assert open_bundle(tiny_bundle, digest=f"sha256:{original}").digest == original


@pytest.mark.parametrize("path", ["/etc/passwd", "../tokenizer.json", "tokenizer/../../x", "tokenizer//tokenizer.json"])
def test_every_path_stays_inside_the_bundle(tiny_bundle, tmp_path, path):
    b = _copy(tiny_bundle, tmp_path)
    _edit(b, lambda m: m["preprocessing"].update(tokenizer=path))
    with pytest.raises(ArtifactError, match=r"names a path outside the bundle \(preprocessing.tokenizer"):
        open_bundle(b, check=False)


def test_links_out_of_the_bundle_and_unlisted_files_are_refused(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle, tmp_path)
    tok = b / "tokenizer" / "tokenizer.json"
    outside = tmp_path / "elsewhere.json"
    shutil.copy(tok, outside)
    tok.unlink()
    tok.symlink_to(outside)  # the same bytes, so the digest matches: the link itself is refused
    with pytest.raises(ArtifactError, match="tokenizer/tokenizer.json leads outside the bundle"):
        open_bundle(b, check=False)
    tok.unlink()
    shutil.copy(outside, tok)
    (b / "models" / "onnx-fp32" / "extra.onnx").write_bytes(b"x")
    (b / ".edgekit-output.json").write_text("{}")  # hidden files (markers) are not the runtime's
    with pytest.raises(ArtifactError, match=r"files it does not list: models/onnx-fp32/extra.onnx\)"):
        open_bundle(b)
    (b / "models" / "onnx-fp32" / "extra.onnx").unlink()
    assert open_bundle(b).name


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


def _tar_with(bundle: Path, tmp_path: Path, extra: list[tarfile.TarInfo], name: str = "evil.tar.gz") -> Path:
    """A real bundle's archive (bundle.json first, as ``pack`` writes it) with ``extra`` members after it."""
    path = tmp_path / name
    meta = json.loads((bundle / BUNDLE_FILE).read_text())
    with tarfile.open(path, "w:gz") as tar:
        for f in [BUNDLE_FILE, *sorted(meta["files"])]:
            tar.add(bundle / f, arcname=f"b/{f}", recursive=False)
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 3
    return info


@pytest.mark.parametrize("bad", ["b/../../escaped.txt", "/tmp/edgekit-absolute.txt", "../escaped.txt"])
def test_archive_path_escape_is_refused(tiny_bundle, tmp_path, bad):
    archive = _tar_with(tiny_bundle, tmp_path, [_file(bad)])
    dest = tmp_path / "dest"
    with pytest.raises(ArtifactError, match="refused: member .* would be written outside the destination"):
        unpack(archive, dest)
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/edgekit-absolute.txt").exists()
    assert not dest.exists()  # nothing written, not even the good members


def test_archive_links_and_unlisted_members_are_refused(tiny_bundle, tmp_path):
    link = tarfile.TarInfo("b/models/onnx-fp32/model.onnx.data")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(ArtifactError, match="'b/models/onnx-fp32/model.onnx.data' is a link"):
        unpack(_tar_with(tiny_bundle, tmp_path, [link]), tmp_path / "dest")
    with pytest.raises(ArtifactError, match="member 'b/notes.txt' is not listed in bundle.json"):
        unpack(_tar_with(tiny_bundle, tmp_path, [_file("b/notes.txt")]), tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_archive_member_larger_than_listed_is_refused_before_it_is_written(tiny_bundle, tmp_path):
    """A listed file replaced by a bigger one (a decompression bomb): refused on its header."""
    meta = json.loads((tiny_bundle / BUNDLE_FILE).read_text())
    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tiny_bundle / BUNDLE_FILE, arcname=f"b/{BUNDLE_FILE}")
        for f in sorted(meta["files"]):
            info = tarfile.TarInfo(f"b/{f}")
            info.size = meta["files"][f]["size"] if f != "tokenizer/tokenizer.json" else 50_000_000
            tar.addfile(info, io.BytesIO(bytes(info.size)))
    assert path.stat().st_size < 1_000_000
    with pytest.raises(ArtifactError, match="'b/tokenizer/tokenizer.json' is 50000000 bytes; bundle.json lists"):
        unpack(path, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


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
    assert r.exit_code == 2 and "artifact named no-such-artifact; have: onnx-fp32" in r.stderr
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
    meta["files"]["reference.npz"] = {"sha256": sha256_file(ref), "size": ref.stat().st_size}
    (bundle / BUNDLE_FILE).write_text(json.dumps(seal(meta)))


def test_check_accepts_other_int8_kernels_with_the_same_fidelity(tiny_bundle, tmp_path):
    """Another CPU's int8 kernels round differently: not reproduced, but as close to fp32 as recorded."""
    import edgekit

    b = _copy(tiny_bundle, tmp_path)
    rng = np.random.default_rng(0)

    def shift(arrays, meta):  # what the bundling machine recorded was a little different
        arrays["onnx-int8-dynamic"] = arrays["onnx-int8-dynamic"] + rng.normal(
            0, 0.08, arrays["onnx-int8-dynamic"].shape
        )

    _rewrite_reference(b, shift)
    result = edgekit.load(b, variant="onnx-int8-dynamic", threads=1).check()
    assert result["cosine_to_recorded_min"] < 0.999
    assert result["passed"] and result["verdict"].startswith("different kernels")
    assert result["fidelity_to_fp32"]["cosine_mean"] == pytest.approx(
        result["fidelity_recorded"]["cosine_mean"], abs=1e-6
    )


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


@pytest.fixture(scope="module")
def mixed_bundle(tiny_ckpt, tmp_path_factory) -> Path:
    """ONNX fp32 (the checkpoint's 128 tokens) and TFLite fp32 exported at 32 tokens, in one bundle."""
    from edgekit.pipeline.bundling import build_bundle
    from edgekit.pipeline.run import compress
    from edgekit.recipe.config import recipe_from_dict
    from tests.helpers import FAST_BENCH

    root = tmp_path_factory.mktemp("mixed")
    recipe = recipe_from_dict(
        {
            "version": 1,
            "name": "mixed",
            "stages": [
                {"kind": "export", "format": "onnx"},
                {"kind": "export", "input": "pytorch-fp32", "format": "tflite", "seq_lens": [32]},
                {**FAST_BENCH, "fidelity_samples": 8, "seq_len": 16},
            ],
        },
        "mixed",
    )
    compress(tiny_ckpt, recipe, root / "out", progress=False)
    return build_bundle(root / "out", root / "b", artifacts=["onnx-fp32", "tflite-fp32"], threads=1).path


def test_variants_truncate_the_same_way(mixed_bundle, run_cli):
    """Before, ONNX took 128 tokens and TFLite 32: cosine 0.985 between them on a long text; now both take 32."""
    import edgekit
    from edgekit.data.calibration import load_text_data
    from edgekit.measure.fidelity import cosine_rows

    assert json.loads((mixed_bundle / BUNDLE_FILE).read_text())["preprocessing"]["max_seq_len"] == 32
    text = " ".join(" ".join(load_text_data().heldout[:40]).split()[:204])
    onnx, tflite = (edgekit.load(mixed_bundle, runtime=rt, threads=1) for rt in ("onnxruntime", "litert"))
    assert onnx.max_seq_len == tflite.max_seq_len == 32
    assert cosine_rows(onnx.embed([text]), tflite.embed([text]))[0] > 0.9999
    r = run_cli("run", str(mixed_bundle), "--runtime", "litert", text, "short text")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.output)
    assert out["max_tokens"] == 32
    assert [(x["truncated"], x["tokens"] > 32) for x in out["results"]] == [(True, True), (False, False)]


def _without(monkeypatch, *names: str) -> None:
    """Make the named runtime adapters look uninstalled here (their library not importable)."""
    from edgekit.plugins import runtime_adapters

    for name in names:
        cls = runtime_adapters()[name]
        monkeypatch.setattr(cls, "missing", classmethod(lambda c: list(c.requires)))


def test_bench_bundle_skips_variants_without_a_runtime(mixed_bundle, run_cli, monkeypatch):
    _without(monkeypatch, "litert", "tflite-runtime")
    common = ["--runs", "2", "--warmup", "1", "-s", "16", "-t", "1"]
    r = run_cli("bench", str(mixed_bundle), *common, "--json", "-q")
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.output)
    assert [row["name"] for row in report["results"]] == ["onnx-fp32"]
    (skipped,) = report["skipped"]
    assert skipped["name"] == "tflite-fp32" and skipped["missing"] == ["ai-edge-litert"]
    assert "no tflite runtime installed here" in skipped["reason"] and "tflite-runtime" in skipped["reason"]
    assert "warning: skipped tflite-fp32: no tflite runtime installed here" in r.stderr  # even with -q
    # asked for by name, a variant that cannot run is an error
    r = run_cli("bench", str(mixed_bundle), *common, "--variant", "tflite-fp32", "-q")
    assert r.exit_code == 2 and "pip install ai-edge-litert" in r.stderr
    # nothing can run: one line naming every variant and every package at once
    _without(monkeypatch, "onnxruntime")
    r = run_cli("bench", str(mixed_bundle), *common, "-q")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "onnx-fp32 (onnx)" in r.stderr and "tflite-fp32 (tflite)" in r.stderr
    assert "pip install onnxruntime ai-edge-litert" in r.stderr


def test_runner_reports_every_missing_package_at_once(mixed_bundle, monkeypatch):
    from edgekit.device import remote_runner

    monkeypatch.setattr(remote_runner, "_installed", lambda module: module not in {"tokenizers", "onnxruntime"})
    assert remote_runner.missing_packages(str(mixed_bundle), None) == ["tokenizers"]  # litert runs tflite-fp32
    monkeypatch.setattr(remote_runner, "_installed", lambda module: module in {"numpy"})
    _without(monkeypatch, "onnxruntime", "litert", "tflite-runtime")
    assert remote_runner.missing_packages(str(mixed_bundle), None) == ["tokenizers", "onnxruntime", "ai-edge-litert"]
    assert remote_runner.missing_packages(str(mixed_bundle), ["onnx-fp32"]) == ["tokenizers", "onnxruntime"]
    # without numpy the adapters cannot be imported: what each format needs is known without them
    import edgekit.plugins

    def broken():
        raise edgekit.plugins.InternalError("plugin 'onnxruntime' failed to import: No module named 'numpy'")

    monkeypatch.setattr(edgekit.plugins, "runtime_adapters", broken)
    monkeypatch.setattr(remote_runner, "_installed", lambda module: False)
    assert remote_runner.missing_packages(str(mixed_bundle), None) == [
        "numpy",
        "tokenizers",
        "onnxruntime",
        "ai-edge-litert",
    ]
