"""`edgekit compress org/name`: the local Hugging Face cache's snapshot, offline; never a download."""

from __future__ import annotations

import shutil

import pytest

from edgekit.checkpoint import resolve
from edgekit.errors import CheckpointError


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, tiny_ckpt):
    """A Hugging Face cache holding ``edgekit-test/tiny-bert`` (the tiny checkpoint) at one revision."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / "models--edgekit-test--tiny-bert"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_ckpt, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return repo / "snapshots" / commit


def test_a_hub_id_in_the_cache_is_its_snapshot(hub_cache):
    assert resolve("edgekit-test/tiny-bert") == hub_cache


def test_a_hub_id_not_in_the_cache_says_how_to_fetch_it(hub_cache, run_cli, tmp_path):
    with pytest.raises(CheckpointError, match="hf download edgekit-test/other"):
        resolve("edgekit-test/other")
    res = run_cli("compress", "edgekit-test/other", "-o", str(tmp_path / "out"), "-q")
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "nor in the Hugging Face cache" in res.stderr and "edgekit downloads nothing" in res.stderr


@pytest.mark.slow  # 14-23 s on 2 cores; the default run stays under 10 minutes
def test_compress_runs_on_a_cached_hub_id(hub_cache, run_cli, tmp_path):
    res = run_cli("compress", "edgekit-test/tiny-bert", "-r", "ptq-portable", "-s", "16", "-o", str(tmp_path / "o"))
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "o" / "onnx-int8-dynamic" / "manifest.json").is_file()


def test_an_existing_directory_wins_over_the_cache(hub_cache, tmp_path, monkeypatch):
    local = tmp_path / "edgekit-test" / "tiny-bert"
    local.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert resolve("edgekit-test/tiny-bert") == local.relative_to(tmp_path)
