"""Artifacts: immutable directories described by a ``manifest.json``.

An artifact records its format, precision, the digest of its own files, the
digest of its parent artifact and of the recipe that made it, and the tool
versions. Stages never modify an artifact: they read one and write a new one.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgekit.errors import ArtifactError

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def digest_files(files: dict[str, str]) -> str:
    """One digest over a {relative path: sha256} mapping."""
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


# config.json keys that record how and when a checkpoint was written, not what the model is
_WRITE_TIME_KEYS = ("transformers_version", "_name_or_path", "_commit_hash")


def model_identity(config: dict, weights: list[Path]) -> str:
    """A digest of what defines a checkpoint's model, independent of the library versions that wrote it.

    It covers the config minus write-time metadata (``transformers_version``, ``_name_or_path``, private
    keys) and, for safetensors weights, every tensor's name, dtype, shape and bytes (not the file's
    header, whose metadata and order a writer may change). Other weight files are digested as bytes.
    """
    h = hashlib.sha256()
    model_config = {k: v for k, v in config.items() if k not in _WRITE_TIME_KEYS and not k.startswith("_")}
    h.update(json.dumps(model_config, sort_keys=True).encode())
    for path in sorted(weights, key=lambda p: p.name):
        if path.suffix == ".safetensors":
            for name, dtype, shape, data in _safetensors_tensors(path):
                h.update(f"{name}|{dtype}|{shape}|".encode())
                h.update(data)
        else:
            h.update(f"{path.name}|{sha256_file(path)}".encode())
    return h.hexdigest()


def _safetensors_tensors(path: Path):
    """(name, dtype, shape, raw bytes) of every tensor in a safetensors file, sorted by name, read with
    the standard library alone (the format is an 8-byte header length, a JSON header and the data)."""
    with open(path, "rb") as f:
        try:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        except (struct.error, ValueError, UnicodeDecodeError) as err:
            raise ArtifactError(f"{path}: not a readable safetensors file ({err})") from None
        base = 8 + size
        for name in sorted(k for k in header if k != "__metadata__"):
            t = header[name]
            start, end = t["data_offsets"]
            f.seek(base + start)
            yield name, t["dtype"], tuple(t["shape"]), f.read(end - start)


@dataclass(frozen=True)
class Artifact:
    """A directory of model files plus what is known about them."""

    name: str
    path: Path
    format: str  # "hf-checkpoint", "onnx", ...
    precision: str  # "fp32", "int8", ...
    model_file: str | None  # the file a runtime loads, relative to path; None: the directory itself
    digest: str
    task: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def model_path(self) -> Path:
        return self.path / self.model_file if self.model_file else self.path

    @property
    def size_bytes(self) -> int:
        if self.model_file:
            from edgekit.formats import model_size

            return model_size(self.model_path)
        return int(self.meta.get("size_bytes", 0))

    @staticmethod
    def load(path: Path) -> Artifact:
        manifest_path = Path(path) / MANIFEST
        if not manifest_path.is_file():
            raise ArtifactError(f"{path}: not an edgekit artifact (no {MANIFEST})")
        try:
            m = json.loads(manifest_path.read_text(encoding="utf-8"))
            return Artifact(
                name=m["name"],
                path=Path(path),
                format=m["format"],
                precision=m["precision"],
                model_file=m["model_file"],
                digest=m["digest"],
                task=m["task"],
                meta=m,
            )
        except (json.JSONDecodeError, KeyError) as err:
            raise ArtifactError(f"{manifest_path}: malformed manifest ({err})") from None


def write_manifest(
    directory: Path,
    *,
    name: str,
    format: str,
    precision: str,
    model_file: str,
    task: str,
    parent: Artifact,
    recipe_digest: str,
    stage: dict[str, Any],
    tool_versions: dict[str, str],
    extra: dict[str, Any] | None = None,
) -> Artifact:
    """Hash every file in ``directory`` and write its manifest; returns the artifact."""
    files = {
        str(p.relative_to(directory)): sha256_file(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    if model_file not in files:
        raise ArtifactError(f"stage {stage.get('kind')} wrote no {model_file} in {directory}")
    digest = digest_files(files)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "name": name,
        "format": format,
        "precision": precision,
        "task": task,
        "model_file": model_file,
        "files": files,
        "digest": digest,
        "parent": {"name": parent.name, "digest": parent.digest, "format": parent.format},
        "recipe_digest": recipe_digest,
        "stage": stage,
        "tool_versions": tool_versions,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return Artifact(
        name=name,
        path=directory,
        format=format,
        precision=precision,
        model_file=model_file,
        digest=digest,
        task=task,
        meta=manifest,
    )
