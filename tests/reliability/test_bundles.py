"""Reliability catalogue, area "bundles": tampered, forged, hostile and broken bundles and archives.

Every case runs ``edgekit run`` (or ``run --check``, ``bench BUNDLE``) on a copy of the tiny bundle
that a case has damaged, and expects exit 2 with one line, no traceback, the bundle untouched and
nothing written beside it or in the bundle cache (``EDGEKIT_CACHE`` points into the case's directory).
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from edgekit.artifact import sha256_file
from edgekit.device.bundle import BUNDLE_FILE, seal
from tests.reliability.harness import Case, check, listing, run_cli, snapshot

AREA = "bundles"
TOKENIZER = "tokenizer/tokenizer.json"
MODEL = "models/onnx-int8-dynamic/model.onnx"


def _copy(bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "b"
    shutil.copytree(bundle, dst)
    return dst


def _edit(bundle: Path, change, reseal: bool = False) -> None:
    """Change the description; with ``reseal``, record its digest again as a forger would."""
    meta = json.loads((bundle / BUNDLE_FILE).read_text())
    change(meta)
    (bundle / BUNDLE_FILE).write_text(json.dumps(seal(meta) if reseal else meta))


def _relist(meta: dict, bundle: Path, name: str) -> None:
    f = bundle / name
    meta["files"][name] = {"sha256": sha256_file(f), "size": f.stat().st_size}


def _other_vocab_tokenizer(bundle: Path, shift: int = 0) -> bytes:
    """The bundle's tokenizer with another vocabulary: every token's id moved (``shift``) or two tokens swapped."""
    tok = json.loads((bundle / TOKENIZER).read_text())
    vocab = tok["model"]["vocab"]
    if shift:
        tok["model"]["vocab"] = {k: v + shift for k, v in vocab.items()}
        for t in tok["added_tokens"]:
            t["id"] += shift
        for st in (tok.get("post_processor") or {}).get("special_tokens", {}).values():
            st["ids"] = [i + shift for i in st["ids"]]
    else:
        a, b = "the", "and"
        vocab[a], vocab[b] = vocab[b], vocab[a]
    return json.dumps(tok).encode()


def _archive(
    bundle: Path,
    path: Path,
    replace: dict[str, bytes] | None = None,
    extra: list[tarfile.TarInfo] | None = None,
    sizes: dict[str, int] | None = None,
) -> Path:
    """A hand-built bundle archive (bundle.json first, as ``pack`` writes it): listed files, some replaced
    by other bytes, headers that claim other sizes, and extra members (with ``size`` bytes of x)."""
    meta = json.loads((bundle / BUNDLE_FILE).read_text())
    with tarfile.open(path, "w:gz") as tar:
        for name in [BUNDLE_FILE, *sorted(meta["files"])]:
            data = (replace or {}).get(name, (bundle / name).read_bytes())
            info = tarfile.TarInfo(f"b/{name}")
            info.size = (sizes or {}).get(name, len(data))
            tar.addfile(info, io.BytesIO(data.ljust(info.size, b"\0")))
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = 3 if kind == tarfile.REGTYPE else 0
    return info


def _refused(tmp_path: Path, name: str, target: Path, *args: str, command: str = "run") -> None:
    """Run ``edgekit COMMAND TARGET ARGS``; expect exit 2, TARGET unchanged, nothing new in tmp_path."""
    kept = {p: snapshot(Path(p))[p] for p in snapshot(target)}  # per path, as check() compares (links too)
    case = Case(name, AREA, 2, kept=kept, watch={tmp_path: listing(tmp_path)})
    result = run_cli(command, str(target), *args, env={"EDGEKIT_CACHE": str(tmp_path / "cache")})
    check(case, result)


# --- paths that lead out of the bundle ------------------------------------------------------------------------


def test_tokenizer_path_absolute(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle, tmp_path)
    _edit(b, lambda m: m["preprocessing"].update(tokenizer="/etc/passwd"), reseal=True)
    _refused(tmp_path, "bundle-tokenizer-path-absolute", b, "hello")


def test_tokenizer_path_dotdot(tiny_bundle, tmp_path):
    """A forged description naming a tokenizer beside the bundle, listed with its true digest."""
    b = _copy(tiny_bundle, tmp_path)
    shutil.copy(b / TOKENIZER, tmp_path / "outside.json")

    def forge(meta):
        meta["preprocessing"]["tokenizer"] = "../outside.json"
        _relist(meta, b, "../outside.json")

    _edit(b, forge, reseal=True)
    _refused(tmp_path, "bundle-tokenizer-path-dotdot", b, "hello")


def test_tokenizer_symlink_out_of_the_bundle(tiny_bundle, tmp_path):
    """The listed tokenizer is a link to a file outside with the same bytes: the digest matches, the link is refused."""
    b = _copy(tiny_bundle, tmp_path)
    shutil.copy(b / TOKENIZER, tmp_path / "elsewhere.json")
    (b / TOKENIZER).unlink()
    (b / TOKENIZER).symlink_to(tmp_path / "elsewhere.json")
    _refused(tmp_path, "bundle-tokenizer-symlink-out", b, "hello")


# --- files swapped or edited after bundling ---------------------------------------------------------------------


def test_swapped_tokenizer(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle, tmp_path)
    (b / TOKENIZER).write_bytes(_other_vocab_tokenizer(b))
    _refused(tmp_path, "bundle-swapped-tokenizer-check", b, "--check")


def test_swapped_tokenizer_resealed_against_a_pinned_digest(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle, tmp_path)
    pinned = json.loads((b / BUNDLE_FILE).read_text())["description_sha256"]
    (b / TOKENIZER).write_bytes(_other_vocab_tokenizer(b))
    _edit(b, lambda m: _relist(m, b, TOKENIZER), reseal=True)
    _refused(tmp_path, "bundle-resealed-tokenizer-pinned-digest", b, "--digest", f"sha256:{pinned}", "hello")


def test_foreign_tokenizer_ids_outside_the_vocabulary(tiny_bundle, tmp_path):
    """A re-sealed tokenizer whose ids run past the model's embeddings: exit 2, not a runtime crash."""
    b = _copy(tiny_bundle, tmp_path)
    (b / TOKENIZER).write_bytes(_other_vocab_tokenizer(b, shift=5000))
    _edit(b, lambda m: _relist(m, b, TOKENIZER), reseal=True)
    _refused(tmp_path, "bundle-foreign-tokenizer-ids", b, "hello world")


def test_edited_postprocessing(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle, tmp_path)
    _edit(b, lambda m: m["postprocessing"].update(normalize=not m["postprocessing"]["normalize"]))
    _refused(tmp_path, "bundle-edited-postprocessing-check", b, "--check")


def test_edited_labels(tiny_cls_bundle, tmp_path):
    b = _copy(tiny_cls_bundle, tmp_path)
    _edit(b, lambda m: m["postprocessing"].update(labels=list(reversed(m["postprocessing"]["labels"]))))
    _refused(tmp_path, "bundle-edited-labels", b, "free money")


def test_description_digest_removed(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle, tmp_path)
    _edit(b, lambda m: m.pop("description_sha256"))
    _refused(tmp_path, "bundle-description-digest-removed", b, "hello")


def test_bundle_from_an_older_edgekit(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle, tmp_path)

    def downgrade(meta):  # version 1: {path: sha256}, no description digest
        meta.update(bundle_version=1, files={k: v["sha256"] for k, v in meta["files"].items()})
        meta.pop("description_sha256")

    _edit(b, downgrade)
    _refused(tmp_path, "bundle-older-version", b, "hello")


def test_model_byte_flipped(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle, tmp_path)
    data = bytearray((b / MODEL).read_bytes())
    data[len(data) // 2] ^= 0x01
    (b / MODEL).write_bytes(bytes(data))
    _refused(tmp_path, "bundle-model-byte-flipped-check", b, "--check")


def test_unlisted_file_in_the_bundle(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle, tmp_path)
    (b / "models" / "onnx-int8-dynamic" / "model.onnx.data").write_bytes(b"planted")  # what onnxruntime would read
    _refused(tmp_path, "bundle-unlisted-file", b, "hello")


def test_bench_on_a_tampered_bundle(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle, tmp_path)
    (b / "reference.npz").write_bytes((b / "reference.npz").read_bytes()[:-10])
    _refused(tmp_path, "bench-tampered-bundle", b, "--runs", "1", "--warmup", "0", command="bench")


# --- broken descriptions, paths and arguments -------------------------------------------------------------------


@pytest.mark.parametrize(
    "content", [b"\x89PNG\r\n\x1a\n\x00\xff\xfe", b'{"bundle_version": 2, "name": '], ids=["binary", "not-json"]
)
def test_corrupt_description(tiny_bundle, tmp_path, content):
    b = _copy(tiny_bundle, tmp_path)
    (b / BUNDLE_FILE).write_bytes(content)
    _refused(tmp_path, f"bundle-json-{'binary' if b'PNG' in content else 'not-json'}", b, "hello")


def test_missing_bundle_path(tmp_path):
    _refused(tmp_path, "bundle-missing-path", tmp_path / "no-such-bundle", "hello")


def test_non_utf8_text_argument(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle, tmp_path)
    _refused(tmp_path, "run-non-utf8-argv", b, "caf\udcff au lait")  # the shell passed the byte 0xff


# --- hostile and broken archives: refused, and nothing left in the cache ------------------------------------------


def test_archive_with_an_unlisted_member(tiny_bundle, tmp_path):
    archive = _archive(tiny_bundle, tmp_path / "x.tar.gz", extra=[_member("b/models/onnx-fp32/model.onnx.data")])
    _refused(tmp_path, "archive-unlisted-member", archive, "hello")


def test_archive_member_with_dotdot(tiny_bundle, tmp_path):
    archive = _archive(tiny_bundle, tmp_path / "x.tar.gz", extra=[_member("b/../../escaped.txt")])
    _refused(tmp_path, "archive-member-dotdot", archive, "hello")


def test_archive_symlink_member(tiny_bundle, tmp_path):
    archive = _archive(
        tiny_bundle, tmp_path / "x.tar.gz", extra=[_member("b/tokenizer/vocab.txt", tarfile.SYMTYPE, "/etc/passwd")]
    )
    _refused(tmp_path, "archive-symlink-member", archive, "hello")


def test_archive_decompression_bomb(tiny_bundle, tmp_path):
    """The listed tokenizer replaced by 64 MB of zeros (65 kB compressed): refused on its header."""
    big = 64 << 20
    archive = _archive(tiny_bundle, tmp_path / "x.tar.gz", replace={TOKENIZER: b""}, sizes={TOKENIZER: big})
    assert archive.stat().st_size < big // 100
    _refused(tmp_path, "archive-decompression-bomb", archive, "hello")


def test_archive_member_with_other_bytes(tiny_bundle, tmp_path):
    """A member of the listed size but other bytes: found while writing, and what was written is removed."""
    data = bytearray((tiny_bundle / MODEL).read_bytes())
    data[-100] ^= 0xFF
    archive = _archive(tiny_bundle, tmp_path / "x.tar.gz", replace={MODEL: bytes(data)})
    _refused(tmp_path, "archive-member-other-bytes", archive, "hello")


def test_archive_with_an_edited_description(tiny_bundle, tmp_path):
    meta = json.loads((tiny_bundle / BUNDLE_FILE).read_text())
    meta["preprocessing"]["max_seq_len"] = 8
    archive = _archive(tiny_bundle, tmp_path / "x.tar.gz", replace={BUNDLE_FILE: json.dumps(meta).encode()})
    _refused(tmp_path, "archive-edited-description", archive, "hello")


def test_truncated_archive(tiny_bundle, tmp_path):
    archive = tmp_path / "x.tar.gz"
    whole = (tiny_bundle.parent / "tiny.tar.gz").read_bytes()
    archive.write_bytes(whole[: len(whole) * 2 // 3])
    _refused(tmp_path, "archive-truncated", archive, "hello")


def test_archive_that_is_not_gzip(tmp_path):
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(gzip.compress(b"not a tar file at all" * 100)[:40] + b"\0" * 100)
    _refused(tmp_path, "archive-not-gzip", archive, "hello")
