"""The deployable bundle: everything inference needs, in one directory (or one archive).

::

    bundle/
      bundle.json                 what is inside, and the sha256 of every file
      tokenizer/tokenizer.json    for the `tokenizers` library
      models/<variant>/model.onnx one directory per precision/runtime variant
      reference.npz               each variant's task outputs on the reference texts, recorded when
                                  bundled, and the fp32 PyTorch model's (``fp32-reference``)

Opening a bundle checks every file against its digest, so a tampered or
partial bundle is refused before anything runs. Archives (``.tar.gz``) are
unpacked member by member; a member that would land outside the destination
(absolute path, ``..``, a link, a device) refuses the whole archive. Needs the
standard library and numpy only.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from edgekit.artifact import sha256_file
from edgekit.errors import ArtifactError

BUNDLE_FILE = "bundle.json"
BUNDLE_VERSION = 1
REFERENCE_FILE = "reference.npz"
REFERENCE_IMAGES_KEY = "reference-images"  # reference.npz key of an image bundle's reference inputs
FP32_KEY = "fp32-reference"  # reference.npz key of the fp32 model's outputs (PyTorch), when recorded
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
MAX_ARCHIVE_MEMBERS = 10_000


@dataclass(frozen=True)
class Variant:
    name: str
    format: str  # "onnx" | "tflite"
    precision: str
    file: str  # relative to the bundle root
    size_bytes: int


@dataclass(frozen=True)
class Bundle:
    path: Path
    meta: dict

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def variants(self) -> list[Variant]:
        return [Variant(v["name"], v["format"], v["precision"], v["file"], v["size_bytes"]) for v in self.meta["variants"]]

    @property
    def reference_texts(self) -> list:
        """The reference inputs: texts, or for an image bundle its reference images (uint8 arrays)."""
        if "images" in self.meta["reference"]:
            import numpy as np

            with np.load(self.path / REFERENCE_FILE, allow_pickle=False) as data:
                return list(data[REFERENCE_IMAGES_KEY])
        return list(self.meta["reference"]["texts"])

    @property
    def size_bytes(self) -> int:
        return sum((self.path / f).stat().st_size for f in self.meta["files"]) + (self.path / BUNDLE_FILE).stat().st_size

    def variant(self, name: str | None = None, formats: tuple[str, ...] | None = None) -> Variant:
        """The named variant, else the first one (the fastest when bundled) in one of ``formats``."""
        options = self.variants
        if name is not None:
            for v in options:
                if v.name == name:
                    return v
            raise ArtifactError(f"bundle {self.path} has no variant {name!r}; it has: {', '.join(v.name for v in options)}")
        for v in options:
            if formats is None or v.format in formats:
                return v
        raise ArtifactError(f"bundle {self.path} has no {'/'.join(formats or ())} variant; "
                            f"it has: {', '.join(f'{v.name} ({v.format})' for v in options)}")

    def reference_keys(self) -> list[str]:
        import numpy as np

        with np.load(self.path / REFERENCE_FILE, allow_pickle=False) as data:
            return list(data.files)

    def reference_outputs(self, variant: str):
        import numpy as np

        with np.load(self.path / REFERENCE_FILE, allow_pickle=False) as data:
            if variant not in data.files:
                raise ArtifactError(f"bundle {self.path}: no reference outputs for {variant!r}")
            return data[variant]


def _read_meta(path: Path) -> dict:
    meta_path = path / BUNDLE_FILE
    if not meta_path.is_file():
        raise ArtifactError(f"{path}: not an edgekit bundle (no {BUNDLE_FILE})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        version = meta["bundle_version"]
        for key in ("name", "task", "files", "variants", "preprocessing", "postprocessing", "reference"):
            meta[key]  # noqa: B018 - presence check
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{meta_path}: malformed bundle description ({err})") from None
    if version != BUNDLE_VERSION:
        raise ArtifactError(f"{meta_path}: bundle version {version}; this edgekit reads version {BUNDLE_VERSION}")
    return meta


def _safe_relative(name: str) -> PurePosixPath:
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or "\\" in name:
        raise ArtifactError(f"bundle lists an unsafe path {name!r}")
    return rel


def verify(path: Path, meta: dict) -> None:
    """Every listed file exists and matches its digest; the variants' files are among them."""
    missing, changed = [], []
    for name, digest in meta["files"].items():
        f = path / _safe_relative(name)
        if not f.is_file():
            missing.append(name)
        elif sha256_file(f) != digest:
            changed.append(name)
    if missing:
        raise ArtifactError(f"bundle {path} is incomplete: missing {', '.join(sorted(missing))}")
    if changed:
        raise ArtifactError(f"bundle {path} was modified after it was made "
                            f"(sha256 differs from the recorded one: {', '.join(sorted(changed))})")
    for v in meta["variants"]:
        if v["file"] not in meta["files"]:
            raise ArtifactError(f"bundle {path}: variant {v['name']!r} names {v['file']}, which is not a bundle file")


def open_bundle(path: str | Path, *, check: bool = True, unpack_to: str | Path | None = None) -> Bundle:
    """Open a bundle directory or archive; with ``check`` every file's digest is verified."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: no such bundle")
    if path.is_file():
        if not path.name.endswith(ARCHIVE_SUFFIXES):
            raise ArtifactError(f"{path}: not a bundle (a directory with {BUNDLE_FILE}, or a .tar.gz of one)")
        if unpack_to is not None:
            path = unpack(path, Path(unpack_to))
        else:
            path = _cached_unpack(path)
    meta = _read_meta(path)
    if check:
        verify(path, meta)
    return Bundle(path=path, meta=meta)


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEKIT_CACHE") or Path.home() / ".cache" / "edgekit") / "bundles"


def _cached_unpack(archive: Path) -> Path:
    """Unpack once per archive content into the cache; later loads reuse it (digests are still checked)."""
    dest = cache_dir() / sha256_file(archive)[:24]
    if dest.is_dir():
        found = [d for d in dest.iterdir() if (d / BUNDLE_FILE).is_file()]
        if len(found) == 1:
            return found[0]
        shutil.rmtree(dest, ignore_errors=True)
    return unpack(archive, dest)


def pack(bundle_dir: Path, archive: Path) -> Path:
    """Write ``bundle_dir`` as a gzipped tar with one top-level directory, only the bundle's own files."""
    bundle = open_bundle(bundle_dir)
    top = archive.name.removesuffix(".tar.gz").removesuffix(".tgz") or "bundle"
    tmp = archive.with_name(f".{archive.name}.partial")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            for name in [BUNDLE_FILE, *sorted(bundle.meta["files"])]:
                tar.add(bundle.path / name, arcname=f"{top}/{name}", recursive=False)
        os.replace(tmp, archive)
    finally:
        tmp.unlink(missing_ok=True)
    return archive


def _check_member(m: tarfile.TarInfo, archive: Path) -> PurePosixPath:
    if not (m.isfile() or m.isdir()):
        kind = "link" if m.issym() or m.islnk() else "special file"
        raise ArtifactError(f"{archive}: refused: member {m.name!r} is a {kind}")
    rel = PurePosixPath(m.name)
    if rel.is_absolute() or ".." in rel.parts or "\\" in m.name or not rel.parts:
        raise ArtifactError(f"{archive}: refused: member {m.name!r} would be written outside the destination")
    return rel


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack a bundle archive into ``dest``; returns the bundle directory inside it.

    Every member is checked before anything is written; a bad one refuses the
    whole archive and ``dest`` is left as it was.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            if len(members) > MAX_ARCHIVE_MEMBERS:
                raise ArtifactError(f"{archive}: refused: {len(members)} members")
            rels = [_check_member(m, archive) for m in members]
            tops = {r.parts[0] for r in rels}
            if len(tops) != 1:
                raise ArtifactError(f"{archive}: not a bundle archive (expected one top-level directory)")
            dest.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest))
            try:
                for m, rel in zip(members, rels):
                    target = staging.joinpath(*rel.parts)
                    if m.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    src = tar.extractfile(m)
                    with open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
                final = dest / tops.pop()
                if final.exists():
                    raise ArtifactError(f"{final} already exists; unpack somewhere else")
                os.replace(staging / final.name, final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ArtifactError(f"{archive}: not a readable bundle archive ({err})") from None
    return final
