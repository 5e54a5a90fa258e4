"""Decoder bundles: the chosen artifacts of a decoder compress run, with their tokenizer and generation config,
every file hashed, and reference continuations recorded now (``edgekit run BUNDLE --check`` replays them).

    BUNDLE/
      bundle.json        kind edgekit-decoder-bundle, task, variants (fastest first), sha256 and size of every
                         file, the reference prompts and each variant's greedy continuation, and the sha256 of
                         this description (``description_sha256``: the bundle's digest)
      <variant>/         the artifact as compress wrote it (model.onnx, decoder.json, genai_config.json,
                         tokenizer.json, generation_config.json, manifest.json)
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from edgekit.errors import ArtifactError, InputError
from edgekit.generation.runtime import RUNNABLE_FORMATS

KIND = "edgekit-decoder-bundle"
FILE = "bundle.json"
DIGEST_KEY = "description_sha256"
REFERENCE_PROMPTS = ("The state of our Union is", "Tonight I ask the Congress to", "We will")
REFERENCE_TOKENS = 24


def _digest(desc: dict) -> str:
    body = {k: v for k, v in desc.items() if k != DIGEST_KEY}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def is_decoder_bundle(path: Path) -> bool:
    f = Path(path) / FILE
    if not f.is_file():
        return False
    try:
        return json.loads(f.read_text(encoding="utf-8")).get("kind") == KIND
    except (ValueError, OSError, AttributeError):
        return False


def pick(report: dict, names: list[str] | None) -> list[dict]:
    rows = {r["name"]: r for r in report["rows"] if r["format"] in RUNNABLE_FORMATS}
    if names:
        unknown = [n for n in names if n not in rows]
        if unknown:
            raise InputError(
                f"no ONNX or LiteRT artifact named {', '.join(unknown)} in the run (have: {', '.join(rows)})"
            )
        chosen = [rows[n] for n in names]
    else:
        chosen = [r for r in rows.values() if r.get("promoted")]
        if not chosen:
            raise InputError(
                "the run promoted no artifact (none faster than its fp32 export within budget): name one with -a"
            )
    return sorted(chosen, key=lambda r: -_speed(r))


def _speed(row: dict) -> float:
    """Decode tokens/s of a report row (a decoder's rows have one per prompt length)."""
    v = row["decode_tokens_per_s"]
    return float(max(v.values()) if isinstance(v, dict) else v)


def build_decoder_bundle(source: Path, output: Path, names: list[str] | None, *, overwrite: bool = False) -> dict:
    """Write the bundle of ``source`` (a decoder compress output) to ``output``; returns bundle.json."""
    from edgekit.generation.serve import open_generator, verified_artifact
    from edgekit.output import OutputDir, refuse_overlap
    from edgekit.tasks import get_task

    source, output = Path(source), Path(output)
    report = json.loads((source / "report.json").read_text(encoding="utf-8"))
    refused = getattr(get_task(report["model"]["task"]), "not_served", "")
    if refused:
        raise InputError(f"{source}: {refused}")
    chosen = pick(report, names)
    refuse_overlap(source, output)
    for r in chosen:
        verified_artifact(source / r["name"])
    with OutputDir(output, "bundle", overwrite=overwrite) as out:
        variants, reference = [], {}
        for r in chosen:
            shutil.copytree(source / r["name"], out.tree / r["name"])
            gen = open_generator(out.tree / r["name"])
            reference[r["name"]] = [gen.generate(p, max_new_tokens=REFERENCE_TOKENS) for p in REFERENCE_PROMPTS]
            variants.append(
                {
                    "name": r["name"],
                    "precision": r["precision"],
                    "engine": gen.engine_name,
                    "decode_tokens_per_s": r["decode_tokens_per_s"],
                    "time_to_first_token_ms": r["time_to_first_token_ms"],
                    **{k: r[k] for k in ("perplexity", "perplexity_fp32", "bleu", "chrf", "end_to_end_ms") if k in r},
                }
            )
        files = {
            str(p.relative_to(out.tree)): {
                "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                "size": p.stat().st_size,
            }
            for p in sorted(out.tree.rglob("*"))
            if p.is_file()
        }
        desc = {
            "bundle_version": 1,
            "kind": KIND,
            "task": report["model"]["task"],
            "model": report["model"]["name"],
            "variants": variants,
            "files": files,
            "reference": {"prompts": list(REFERENCE_PROMPTS), "max_new_tokens": REFERENCE_TOKENS, "greedy": reference},
        }
        desc[DIGEST_KEY] = _digest(desc)
        out.write_text(FILE, json.dumps(desc, indent=2) + "\n")
        out.commit([*(r["name"] for r in chosen), FILE])
    return desc


def open_decoder_bundle(path: Path, variant: str | None = None, digest: str | None = None) -> tuple[Path, dict]:
    """(the variant's directory, bundle.json) after checking every file the bundle lists (sha256, size, inside)."""
    path = Path(path)
    desc = json.loads((path / FILE).read_text(encoding="utf-8"))
    if desc.get(DIGEST_KEY) != _digest(desc):
        raise ArtifactError(f"{path / FILE} was modified after it was made (its description_sha256 differs)")
    if digest is not None and digest != desc[DIGEST_KEY]:
        raise ArtifactError(f"{path}: digest {desc[DIGEST_KEY]} is not the expected {digest}")
    root = path.resolve()
    for rel, entry in desc["files"].items():
        f = (path / rel).resolve()
        if root not in f.parents or (path / rel).is_symlink() or not f.is_file():
            raise ArtifactError(f"{path}: {rel} is missing or outside the bundle")
        if f.stat().st_size != entry["size"] or hashlib.sha256(f.read_bytes()).hexdigest() != entry["sha256"]:
            raise ArtifactError(f"{path}: {rel} was modified after it was made (sha256 differs from {FILE})")
    names = [v["name"] for v in desc["variants"]]
    name = variant or names[0]
    if name not in names:
        raise InputError(f"{path}: no variant {name!r} (have: {', '.join(names)})")
    return path / name, desc
