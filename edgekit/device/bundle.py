"""The deployable bundle: everything inference needs, in one directory (or one archive).

::

    bundle/
      bundle.json                 what is inside, the sha256 and size of every file, and the sha256 of
                                  this description itself (``description_sha256``: the bundle's digest)
      tokenizer/tokenizer.json    for the `tokenizers` library
      models/<variant>/model.onnx one directory per precision/runtime variant
      reference.npz               each variant's task outputs on the reference texts, recorded when
                                  bundled, and the fp32 PyTorch model's (``fp32-reference``)

Opening a bundle checks the description against its own digest, then that
every path it names is a relative path inside the bundle, listed, and (with
``check``) that every listed file matches its size and sha256 and that the
bundle holds no file it does not list: a tampered, partial or padded bundle is
refused before anything is read. Archives (``.tar.gz``) are checked member by
member against the archive's own ``bundle.json`` before anything is written: an
unlisted member, one larger than listed, a path outside the destination
(absolute, ``..``), a link or a device refuses the whole archive and leaves
nothing behind. Needs the standard library and numpy only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import NoReturn

from edgekit.artifact import sha256_file
from edgekit.errors import ArtifactError
from edgekit.formats import names as format_names
from edgekit.tasks import TASKS, get_task

BUNDLE_FILE = "bundle.json"
BUNDLE_VERSION = 2  # 2: sizes and a digest of bundle.json itself
DIGEST_KEY = "description_sha256"  # sha256 of the canonical description without this key: the bundle's digest
REFERENCE_FILE = "reference.npz"
REFERENCE_IMAGES_KEY = "reference-images"  # reference.npz key of an image bundle's reference inputs
FP32_KEY = "fp32-reference"  # reference.npz key of the fp32 model's outputs (PyTorch), when recorded
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
MAX_ARCHIVE_MEMBERS = 10_000
MAX_DESCRIPTION_BYTES = 8 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Variant:
    name: str
    format: str  # a format bundles may carry (edgekit.formats: "onnx", "tflite", ...)
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
        return [
            Variant(v["name"], v["format"], v["precision"], v["file"], v["size_bytes"]) for v in self.meta["variants"]
        ]

    @property
    def reference_texts(self) -> list:
        """The reference inputs: texts, or for an image bundle its reference images (uint8 arrays)."""
        if "images" in self.meta["reference"]:
            import numpy as np

            with np.load(self.path / REFERENCE_FILE, allow_pickle=False) as data:
                return list(data[REFERENCE_IMAGES_KEY])
        task = get_task(self.meta["task"])
        return [task.item_from_json(t) for t in self.meta["reference"]["texts"]]

    @property
    def size_bytes(self) -> int:
        return sum(f["size"] for f in self.meta["files"].values()) + (self.path / BUNDLE_FILE).stat().st_size

    @property
    def digest(self) -> str:
        """The bundle's digest (its description's, which lists every file's): what a user pins."""
        return self.meta[DIGEST_KEY]

    def variant(self, name: str | None = None, formats: tuple[str, ...] | None = None) -> Variant:
        """The named variant, else the first one (the fastest when bundled) in one of ``formats``."""
        options = self.variants
        if name is not None:
            for v in options:
                if v.name == name:
                    return v
            raise ArtifactError(
                f"bundle {self.path} has no variant {name!r}; it has: {', '.join(v.name for v in options)}"
            )
        for v in options:
            if formats is None or v.format in formats:
                return v
        raise ArtifactError(
            f"bundle {self.path} has no {'/'.join(formats or ())} variant; "
            f"it has: {', '.join(f'{v.name} ({v.format})' for v in options)}"
        )

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


def description_digest(meta: dict) -> str:
    """sha256 of the description's canonical JSON (sorted keys, no spaces, ASCII), without its own digest."""
    body = {k: v for k, v in meta.items() if k != DIGEST_KEY}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("ascii")).hexdigest()


def seal(meta: dict) -> dict:
    """``meta`` with its description digest recorded (the last step of making a bundle)."""
    return {**meta, DIGEST_KEY: description_digest(meta)}


def parse_description(data: bytes, where: str) -> dict:
    """The description in ``data`` (bundle.json's bytes), checked against its own digest and for its shape.

    ``where`` names the bundle in messages. Nothing it names is read here.
    """
    if len(data) > MAX_DESCRIPTION_BYTES:
        raise ArtifactError(f"{where}: {BUNDLE_FILE} is {len(data)} bytes, more than a bundle description holds")
    try:
        meta = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ArtifactError(f"{where}: malformed bundle description ({BUNDLE_FILE}: {err})") from None
    if not isinstance(meta, dict) or "bundle_version" not in meta:
        raise ArtifactError(f"{where}: malformed bundle description ({BUNDLE_FILE} has no bundle_version)")
    version = meta["bundle_version"]
    if isinstance(version, int) and not isinstance(version, bool) and version < BUNDLE_VERSION:
        raise ArtifactError(
            f"{where}: made by an older edgekit (bundle version {version}, which does not hash its "
            "own description); re-bundle it with `edgekit bundle`"
        )
    if version != BUNDLE_VERSION:
        raise ArtifactError(f"{where}: bundle version {version!r}; this edgekit reads version {BUNDLE_VERSION}")
    if not isinstance(meta.get(DIGEST_KEY), str):
        raise ArtifactError(f"{where} was modified after it was made ({BUNDLE_FILE} has no {DIGEST_KEY})")
    if meta[DIGEST_KEY] != description_digest(meta):
        raise ArtifactError(
            f"{where} was modified after it was made (sha256 differs from the recorded one: {BUNDLE_FILE})"
        )
    _check_shape(meta, where)
    return meta


def _items_ok(task, items: list) -> bool:
    """The bundle's reference inputs are items its task takes."""
    from edgekit.errors import InputError

    try:
        task.check_items([task.item_from_json(t) for t in items])
    except (InputError, TypeError, ValueError):
        return False
    return True


def _check_shape(meta: dict, where: str) -> None:
    """Every key the runtime reads has the type it expects; every path named is a listed, relative one."""

    def fail(what: str) -> NoReturn:
        raise ArtifactError(f"{where}: malformed bundle description ({what})")

    def need(ok: bool, what: str) -> None:
        if not ok:
            fail(what)

    def is_int(x, low: int = 0) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and x >= low

    files = meta.get("files")
    if not (isinstance(files, dict) and bool(files)):
        fail("files is not a mapping of paths")

    def listed(key: str, name) -> None:
        need(isinstance(name, str), f"{key} is not a path")
        _safe_relative(name, where, key)
        need(name in files, f"{key} names {name!r}, which is not a listed bundle file")

    for name, entry in files.items():
        _safe_relative(name, where, "files")
        need(name != BUNDLE_FILE, f"files lists {BUNDLE_FILE}")
        need(
            isinstance(entry, dict)
            and isinstance(entry.get("sha256"), str)
            and bool(_SHA256.fullmatch(entry["sha256"]))
            and is_int(entry.get("size")),
            f"files[{name!r}] is not {{sha256, size}}",
        )
    need(isinstance(meta.get("name"), str), "name")
    need(meta.get("task") in TASKS, f"task is not one of {', '.join(TASKS)}")
    task = get_task(meta["task"])
    variants = meta.get("variants")
    if not (isinstance(variants, list) and bool(variants)):
        fail("variants is not a list")
    for i, v in enumerate(variants):
        need(isinstance(v, dict), f"variants[{i}]")
        need(
            all(isinstance(v.get(k), str) and v[k].isprintable() for k in ("name", "precision"))
            and v.get("format") in format_names(bundled=True)
            and is_int(v.get("size_bytes")),
            f"variants[{i}]",
        )
        listed(f"variants[{i}].file", v.get("file"))
    need(len({v["name"] for v in variants}) == len(variants), "two variants share a name")
    pre = meta.get("preprocessing")
    if not (isinstance(pre, dict) and is_int(pre.get("batch_size", 1), 1)):
        fail("preprocessing")
    if task.is_image:
        need(pre.get("kind") == "image", "an image task needs image preprocessing")
        listed("preprocessing.processor", pre.get("processor"))
        need(
            PurePosixPath(pre["processor"]).name == "preprocessor_config.json",
            "preprocessing.processor is not a preprocessor_config.json",
        )
    else:
        need(
            pre.get("kind") == "text" and is_int(pre.get("max_seq_len"), 1) and is_int(pre.get("vocab_size", 1), 1),
            "preprocessing",
        )
        listed("preprocessing.tokenizer", pre.get("tokenizer"))
    post = meta.get("postprocessing")
    if not (
        isinstance(post, dict)
        and isinstance(post.get("output"), str)
        and isinstance(post.get("normalize", False), bool)
    ):
        fail("postprocessing")
    task.check_postprocessing(post, need)
    ref = meta.get("reference")
    if not (isinstance(ref, dict) and ref.get("file") == REFERENCE_FILE):
        fail(f"reference.file is not {REFERENCE_FILE}")
    listed("reference.file", ref["file"])
    need(
        is_int(ref.get("images"), 1)
        if "images" in ref
        else isinstance(ref.get("texts"), list) and _items_ok(task, ref["texts"]),
        "reference",
    )
    fidelity = ref.get("fidelity", {})
    need(
        isinstance(fidelity, dict)
        and all(
            isinstance(f, dict)
            and all(
                isinstance(f.get(k), (int, float)) and not isinstance(f.get(k), bool)
                for k in ("cosine_mean", "cosine_min")
            )
            for f in fidelity.values()
        ),
        "reference.fidelity",
    )
    need(isinstance(meta.get("source", {}), dict), "source")


def _safe_relative(name: str, where: str, key: str) -> PurePosixPath:
    rel = PurePosixPath(name)
    if (
        not name
        or rel.is_absolute()
        or ".." in rel.parts
        or "\\" in name
        or not name.isprintable()
        or rel.as_posix() != name
    ):
        raise ArtifactError(f"{where}: {BUNDLE_FILE} names a path outside the bundle ({key}: {name!r})")
    return rel


def _read_meta(path: Path) -> dict:
    meta_path = path / BUNDLE_FILE
    if not meta_path.is_file():
        raise ArtifactError(f"{path}: not an edgekit bundle (no {BUNDLE_FILE})")
    _confined(path, BUNDLE_FILE)
    if meta_path.stat().st_size > MAX_DESCRIPTION_BYTES:
        raise ArtifactError(f"bundle {path}: {BUNDLE_FILE} is larger than a bundle description")
    try:
        data = meta_path.read_bytes()
    except OSError as err:
        raise ArtifactError(f"bundle {path}: {BUNDLE_FILE} cannot be read ({err.strerror})") from None
    return parse_description(data, f"bundle {path}")


def _confined(path: Path, name: str) -> Path:
    """``path/name``, refused when it (through links) leads outside the bundle directory."""
    f = path / name
    try:
        target = f.resolve()
        inside = target.is_relative_to(path.resolve())
    except (OSError, RuntimeError):  # a link loop
        raise ArtifactError(f"bundle {path}: {name} is a link that leads nowhere") from None
    if not inside:
        raise ArtifactError(f"bundle {path}: {name} leads outside the bundle (to {str(target)!r})")
    return f


def _present(path: Path) -> set[str]:
    """Every file and link under ``path`` (relative, POSIX), not descending into links; hidden names aside."""
    found = set()
    for d, dirs, files in os.walk(path):
        here = Path(d)
        for name in files + [n for n in dirs if (here / n).is_symlink()]:
            if not name.startswith("."):
                found.add((here / name).relative_to(path).as_posix())
        dirs[:] = [n for n in dirs if not n.startswith(".")]
    return found


def verify(path: Path, meta: dict, *, digests: bool = True) -> None:
    """Every listed file is there, inside the bundle; with ``digests``, it matches its size and sha256 and
    the bundle holds no other file (hidden ones aside)."""
    missing, changed = [], []
    for name, entry in meta["files"].items():
        f = _confined(path, name)
        if not f.is_file():
            missing.append(name)
            continue
        try:
            if digests and (f.stat().st_size != entry["size"] or sha256_file(f) != entry["sha256"]):
                changed.append(name)
        except OSError as err:
            raise ArtifactError(f"bundle {path}: {name} cannot be read ({err.strerror or err})") from None
    if missing:
        raise ArtifactError(f"bundle {path} is incomplete: missing {', '.join(sorted(missing))}")
    if changed:
        raise ArtifactError(
            f"bundle {path} was modified after it was made "
            f"(sha256 differs from the recorded one: {', '.join(sorted(changed))})"
        )
    extra = sorted(_present(path) - set(meta["files"]) - {BUNDLE_FILE}) if digests else []
    if extra:
        shown = ", ".join(n if n.isprintable() else repr(n) for n in extra[:5])
        shown += f" and {len(extra) - 5} more" if len(extra) > 5 else ""
        raise ArtifactError(f"bundle {path} was modified after it was made (files it does not list: {shown})")


def open_bundle(
    path: str | Path, *, check: bool = True, unpack_to: str | Path | None = None, digest: str | None = None
) -> Bundle:
    """Open a bundle directory or archive.

    The description is always checked against its own digest, and every path in it must be a listed file
    inside the bundle; with ``check`` every file's size and sha256 are verified too. ``digest`` pins the
    bundle: anything else (another bundle, or this one re-made) is refused.
    """
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
    elif not path.is_dir():
        raise ArtifactError(f"{path}: not a bundle (a directory with {BUNDLE_FILE}, or a .tar.gz of one)")
    meta = _read_meta(path)
    if digest is not None and digest.lower().removeprefix("sha256:") != meta[DIGEST_KEY]:
        raise ArtifactError(
            f"bundle {path} is not the one pinned: its digest is sha256:{meta[DIGEST_KEY]}, expected {digest!r}"
        )
    verify(path, meta, digests=check)
    return Bundle(path=path, meta=meta)


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEKIT_CACHE") or Path.home() / ".cache" / "edgekit") / "bundles"


def _unpacked(dest: Path) -> Path | None:
    """The bundle an earlier load unpacked into ``dest``; anything else there but staging is removed."""
    if not dest.is_dir():
        return None
    entries = [d for d in dest.iterdir() if not d.name.startswith(".unpack-")]
    found = [d for d in entries if (d / BUNDLE_FILE).is_file()]
    if len(found) == 1 and len(entries) == 1:
        return found[0]
    for d in entries:  # a broken or partial copy (someone else's hand): unpack again
        if d.is_dir() and not d.is_symlink():
            shutil.rmtree(d, ignore_errors=True)
        else:
            d.unlink(missing_ok=True)
    return None


def _cached_unpack(archive: Path) -> Path:
    """Unpack once per archive content into the cache; later loads reuse it (digests are still checked)."""
    try:
        dest = cache_dir() / sha256_file(archive)[:24]
        found = _unpacked(dest)
    except OSError as err:
        raise ArtifactError(f"{archive}: cannot read it or the bundle cache ({err})") from None
    if found is not None:
        return found
    try:
        return unpack(archive, dest)
    except ArtifactError:
        found = _unpacked(dest)  # another process unpacked the same archive meanwhile
        if found is None:
            raise
        return found


def pack(bundle_dir: Path, archive: Path) -> Path:
    """Write ``bundle_dir`` as a gzipped tar with one top-level directory: bundle.json first, then the listed files."""
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
    if not (m.isfile() or m.isdir()) or m.issparse():
        kind = "link" if m.issym() or m.islnk() else "special file"
        raise ArtifactError(f"{archive}: refused: member {m.name!r} is a {kind}")
    rel = PurePosixPath(m.name)
    if rel.is_absolute() or ".." in rel.parts or "\\" in m.name or not rel.parts:
        raise ArtifactError(f"{archive}: refused: member {m.name!r} would be written outside the destination")
    return rel


def _listed_member(m: tarfile.TarInfo, inner: str, files: dict, dirs: set[str], archive: Path) -> None:
    """A member below the top directory must be a listed file of the listed size, or a directory of them."""
    if m.isdir():
        if inner not in dirs:
            raise ArtifactError(f"{archive}: refused: member {m.name!r} is not listed in {BUNDLE_FILE}")
        return
    entry = files.get(inner)
    if entry is None:
        raise ArtifactError(f"{archive}: refused: member {m.name!r} is not listed in {BUNDLE_FILE}")
    if m.size != entry["size"]:
        raise ArtifactError(
            f"{archive}: refused: member {m.name!r} is {m.size} bytes; {BUNDLE_FILE} lists {entry['size']}"
        )


def _scan(tar: tarfile.TarFile, archive: Path) -> tuple[str, bytes, dict, list[tuple[tarfile.TarInfo, str]]]:
    """Check every member against the archive's own bundle.json before anything is written.

    Returns the top directory, bundle.json's bytes, the description, and the (member, path below the top)
    of every file to write. A member's header is checked as soon as bundle.json has been read (``pack``
    writes it first), so an oversized member is refused before its data is decompressed.
    """
    top, raw, meta, dirs = None, b"", None, set()
    entries: list[tuple[tarfile.TarInfo, str]] = []
    seen: set[str] = set()
    for count, m in enumerate(tar, 1):
        if count > MAX_ARCHIVE_MEMBERS:
            raise ArtifactError(f"{archive}: refused: more than {MAX_ARCHIVE_MEMBERS} members")
        rel = _check_member(m, archive)
        if top is None:
            top = rel.parts[0]
        if (
            rel.parts[0] != top
            or (len(rel.parts) == 1 and not m.isdir())
            or top.startswith(".")
            or not top.isprintable()
        ):
            raise ArtifactError(f"{archive}: not a bundle archive (expected one top-level directory)")
        if len(rel.parts) == 1:
            continue
        inner = PurePosixPath(*rel.parts[1:]).as_posix()
        if inner in seen:
            raise ArtifactError(f"{archive}: refused: member {m.name!r} appears twice")
        seen.add(inner)
        if inner == BUNDLE_FILE and m.isfile():
            if m.size > MAX_DESCRIPTION_BYTES:
                raise ArtifactError(f"{archive}: refused: {m.name} is {m.size} bytes, more than a description holds")
            src = tar.extractfile(m)
            if src is None:  # m.isfile(), so there is always one
                raise ArtifactError(f"{archive}: refused: {m.name} cannot be read")
            raw = src.read()
            meta = parse_description(raw, str(archive))
            dirs = {p.as_posix() for name in meta["files"] for p in PurePosixPath(name).parents} - {"."}
            for earlier, name in entries:
                _listed_member(earlier, name, meta["files"], dirs, archive)
            continue
        if meta is not None:
            _listed_member(m, inner, meta["files"], dirs, archive)
        entries.append((m, inner))
    if meta is None or top is None:  # top is set whenever meta is
        raise ArtifactError(f"{archive}: not a bundle archive (no {BUNDLE_FILE} in one top-level directory)")
    files = [(m, name) for m, name in entries if m.isfile()]
    missing = sorted(set(meta["files"]) - {name for _, name in files})
    if missing:
        raise ArtifactError(f"{archive}: refused: incomplete bundle, missing {', '.join(missing)}")
    return top, raw, meta, files


def _write_member(src, target: Path, entry: dict, name: str, archive: Path) -> None:
    """Copy one member, counting its bytes as they come: more than listed, or other bytes, refuse it."""
    h, size = hashlib.sha256(), 0
    with open(target, "xb") as out:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            size += len(chunk)
            if size > entry["size"]:
                raise ArtifactError(f"{archive}: refused: member {name} is larger than {BUNDLE_FILE} lists")
            h.update(chunk)
            out.write(chunk)
    if size != entry["size"] or h.hexdigest() != entry["sha256"]:
        raise ArtifactError(f"{archive}: refused: member {name} differs from its sha256 in {BUNDLE_FILE}")


def _missing(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist, deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


_UNREADABLE = (tarfile.TarError, EOFError, OSError, zlib.error)


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack a bundle archive into ``dest``; returns the bundle directory inside it.

    Every member is checked against the archive's ``bundle.json`` (itself checked against its digest)
    before anything is written; each file is written at most its listed size and must match its sha256.
    A refused archive leaves ``dest`` as it was: nothing staged, no directory created.
    """
    try:
        with tarfile.open(archive, "r:gz") as tar:
            top, raw, meta, members = _scan(tar, archive)
            final = dest / top
            if final.exists():
                raise ArtifactError(f"{final} already exists; unpack somewhere else")
            _extract(tar, archive, final, raw, meta, members)
    except _UNREADABLE as err:
        raise ArtifactError(f"{archive}: not a readable bundle archive ({err})") from None
    return final


def _extract(
    tar: tarfile.TarFile, archive: Path, final: Path, raw: bytes, meta: dict, members: list[tuple[tarfile.TarInfo, str]]
) -> None:
    """Write the checked members into a staging directory beside ``final``, then rename it into place;
    on any failure remove what was written and the directories made for it."""
    dest = final.parent
    created, staging = _missing(dest), None
    try:
        dest.mkdir(parents=True, exist_ok=True)
        needed = len(raw) + sum(e["size"] for e in meta["files"].values())
        if shutil.disk_usage(dest).free < needed:
            raise ArtifactError(f"{archive}: unpacking needs {needed / 1e6:.1f} MB; {dest} has less free")
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest))
        (staging / final.name).mkdir()
        (staging / final.name / BUNDLE_FILE).write_bytes(raw)
        for m, name in members:
            target = staging.joinpath(final.name, *PurePosixPath(name).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_member(tar.extractfile(m), target, meta["files"][name], name, archive)
        os.replace(staging / final.name, final)
    except BaseException as err:
        _remove(staging, created)
        if isinstance(err, OSError) and not isinstance(err, _UNREADABLE[:2]):
            raise ArtifactError(f"{archive}: cannot unpack it into {dest} ({err.strerror or err})") from None
        raise
    _remove(staging, [])


def _remove(staging: Path | None, created: list[Path]) -> None:
    """Remove the staging directory, then the directories unpacking created (deepest first) if still empty."""
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
    for d in created:
        try:
            d.rmdir()
        except FileNotFoundError:
            continue
        except OSError:  # not empty: someone else put something there meanwhile
            break
