"""``edgekit bundle``: package artifacts from a compress run into a deployable bundle."""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgekit import __version__, formats
from edgekit.artifact import Artifact, sha256_file
from edgekit.device.bundle import (
    BUNDLE_FILE,
    BUNDLE_VERSION,
    FP32_KEY,
    REFERENCE_FILE,
    REFERENCE_IMAGES_KEY,
    Bundle,
    Variant,
    open_bundle,
    pack,
    seal,
    verify,
)
from edgekit.errors import InputError
from edgekit.output import OutputDir, claim_file, place_file, refuse_overlap

REFERENCE_TEXTS = 16
SKIP_FILES = {"manifest.json"}  # selfcheck.npz stays: the legacy runtime verifies with it


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None


def _preprocessing(ckpt: Path) -> dict:
    from edgekit.data.images import CONFIG_FILE

    if (ckpt / CONFIG_FILE).is_file() and not (ckpt / "tokenizer.json").is_file():
        return {"kind": "image", "processor": f"preprocessor/{CONFIG_FILE}", "batch_size": 32}
    config = _read_json(ckpt / "config.json")
    st = _read_json(ckpt / "sentence_bert_config.json")
    tok_cfg = _read_json(ckpt / "tokenizer_config.json")
    candidates = [st.get("max_seq_length"), tok_cfg.get("model_max_length"), config.get("max_position_embeddings")]
    lengths = [int(c) for c in candidates if isinstance(c, (int, float)) and 0 < c < 100_000]
    pre = {
        "kind": "text",
        "tokenizer": "tokenizer/tokenizer.json",
        "max_seq_len": min(lengths) if lengths else 512,
        "batch_size": 32,
    }
    vocab = config.get("vocab_size")
    if isinstance(vocab, int) and vocab > 0:  # the model's embedding rows: token ids at or past it are refused
        pre["vocab_size"] = vocab
    return pre


def _postprocessing(ckpt: Path, task: str) -> dict:
    """The task's post-processing for the checkpoint (see :meth:`edgekit.tasks.Task.postprocessing`)."""
    from edgekit.tasks import get_task

    def files(name: str):
        return _read_json(ckpt / name) if (ckpt / name).is_file() else None

    return get_task(task).postprocessing(_read_json(ckpt / "config.json"), files)


def _write_preprocessing(ckpt: Path, staged: Path, pre: dict) -> None:
    if pre["kind"] == "image":
        (staged / "preprocessor").mkdir(parents=True)
        shutil.copy2(ckpt / Path(pre["processor"]).name, staged / pre["processor"])
    else:
        _write_tokenizer(ckpt, staged / "tokenizer")
        _check_vocab(staged / pre["tokenizer"], pre.get("vocab_size"), ckpt)


def _check_vocab(tokenizer_json: Path, vocab_size: int | None, ckpt: Path) -> None:
    """The tokenizer gives no id the model has no embedding for."""
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(str(tokenizer_json)).get_vocab(with_added_tokens=True).values()
    if vocab_size is not None and ids and max(ids) >= vocab_size:
        raise InputError(
            f"{ckpt}: its tokenizer gives token ids up to {max(ids)}, but the model has "
            f"{vocab_size} (config.json vocab_size); they do not belong together"
        )


def _write_tokenizer(ckpt: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    if (ckpt / "tokenizer.json").is_file():
        shutil.copy2(ckpt / "tokenizer.json", dest / "tokenizer.json")
        return
    from edgekit.checkpoint import offline

    offline()
    try:  # a slow tokenizer (vocab.txt only): let transformers build the fast one
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(ckpt), local_files_only=True).backend_tokenizer.save(
            str(dest / "tokenizer.json")
        )
    except Exception as err:  # noqa: BLE001
        raise InputError(f"{ckpt}: no tokenizer.json and none could be built ({str(err).splitlines()[0]})") from None


@dataclass
class Selection:
    """The artifacts to bundle, fastest first (the first is the default variant), and why."""

    names: list[str]
    picked: list[str] = field(default_factory=list)  # one line per chosen artifact: why it was chosen
    passed_over: list[str] = field(default_factory=list)  # one line per bundlable artifact left out: why
    default: bool = True  # chosen by the default rule (not named with -a)

    def lines(self) -> list[str]:
        out = [*self.picked]
        if self.passed_over:
            out.append("  left out: " + "; ".join(self.passed_over))
        if self.default:
            out.append("  (-a NAME, repeated, bundles exactly the artifacts you name)")
        return out


BUDGET_KEYS = ("min_fidelity", "max_accuracy_drop", "max_size_mb", "max_peak_rss_mb")


def recipe_budgets(source: Path, report: dict) -> dict[str, float]:
    """The budgets the run's recipe sets (its search stages' ``budget``; the strictest where several do),
    read from the recipe.yaml written beside the report. Empty when it sets none or cannot be read."""
    from edgekit.errors import RecipeError
    from edgekit.recipe.config import load_recipe

    name = (report.get("recipe") or {}).get("file") or "recipe.yaml"
    path = source / Path(str(name)).name
    if not path.is_file():
        return {}
    try:
        recipe = load_recipe(path)
    except RecipeError:
        return {}  # a recipe this version cannot read: no budgets to apply, the report's verdicts still hold
    budgets: dict[str, float] = {}
    for stage in recipe.stages:
        budget = getattr(stage, "budget", None)
        for key in BUDGET_KEYS:
            value = getattr(budget, key, None)
            if value is None:
                continue
            strictest = max if key == "min_fidelity" else min
            budgets[key] = strictest(budgets[key], value) if key in budgets else float(value)
    return budgets


def _outside_budget(row: dict, budgets: dict[str, float]) -> str | None:
    """Why ``row`` is outside the recipe's ``budgets`` (None: within them, or nothing measured to judge)."""
    fid = row.get("fidelity") or {}
    if "min_fidelity" in budgets and isinstance(fid.get("cosine_mean"), (int, float)):
        if fid["cosine_mean"] < budgets["min_fidelity"]:
            return f"fidelity {fid['cosine_mean']:.4f} below the recipe's min_fidelity {budgets['min_fidelity']}"
    if "max_accuracy_drop" in budgets and isinstance(fid.get("accuracy_drop"), (int, float)):
        if fid["accuracy_drop"] > budgets["max_accuracy_drop"]:
            return (
                f"accuracy drop {fid['accuracy_drop']:.2f} points beyond the recipe's max_accuracy_drop "
                f"{budgets['max_accuracy_drop']}"
            )
    if "max_size_mb" in budgets and row["size_bytes"] / 1e6 > budgets["max_size_mb"]:
        return f"{row['size_bytes'] / 1e6:.1f} MB beyond the recipe's max_size_mb {budgets['max_size_mb']}"
    rss = row.get("peak_rss_mb")
    if "max_peak_rss_mb" in budgets and isinstance(rss, (int, float)) and rss > budgets["max_peak_rss_mb"]:
        return f"peak memory {rss:.0f} MB beyond the recipe's max_peak_rss_mb {budgets['max_peak_rss_mb']}"
    return None


def _fidelity_words(row: dict) -> str:
    fid = row.get("fidelity") or {}
    parts = []
    if isinstance(fid.get("cosine_mean"), (int, float)):
        parts.append(f"cosine {fid['cosine_mean']:.4f} to fp32")
    if isinstance(fid.get("accuracy_drop"), (int, float)):
        parts.append(f"accuracy drop {fid['accuracy_drop']:.2f} points")
    return ", ".join(parts)


def _bundlable_rows(report: dict) -> list[dict]:
    """The report's rows of formats a bundle may carry, at the run's first measured point (batch, length,
    threads): one row per artifact."""
    runnable = formats.names(bundled=True)
    results = report["results"]
    first = results[0] if results else {}
    point = tuple(first.get(k) for k in ("batch_size", "seq_len", "threads"))
    return [
        r
        for r in results
        if r["format"] in runnable and tuple(r.get(k) for k in ("batch_size", "seq_len", "threads")) == point
    ]


def select_artifacts(source: str | Path, names: list[str] | None = None, report: dict | None = None) -> Selection:
    """What ``edgekit bundle SOURCE`` packs: the artifacts ``names`` as given, else, for each format a bundle
    may carry, the fastest artifact the run marks promotable whose measurements are within the recipe's
    budgets (:func:`recipe_budgets`), fastest first."""
    from edgekit.report.gates import load_report

    source = Path(source)
    report = report if report is not None else load_report(source / "report.json")
    runnable = formats.names(bundled=True)
    rows = _bundlable_rows(report)
    available = {r["name"]: r for r in rows}
    if names:
        unknown = [n for n in names if n not in available]
        if unknown:
            raise InputError(
                f"{source}: no {'/'.join(map(formats.label, runnable))} artifact named {', '.join(unknown)}; "
                f"have: {', '.join(available) or 'none'}"
            )
        return Selection(list(names), [f"bundling {', '.join(names)} (as named with -a)"], default=False)
    if not rows:
        raise InputError(f"{source}: the report lists no {formats.describe(runnable)} artifact to bundle")
    budgets = recipe_budgets(source, report)
    excluded: dict[str, str] = {}
    for r in rows:
        if r.get("promotable") is False:
            excluded[r["name"]] = f"not promotable, {r.get('not_promoted_because') or 'as the run marks it'}"
        else:
            problem = _outside_budget(r, budgets)
            if problem:
                excluded[r["name"]] = f"outside the budget, {problem}"
    picked_rows = []
    for fmt in sorted({r["format"] for r in rows}):
        eligible = [r for r in rows if r["format"] == fmt and r["name"] not in excluded]
        if eligible:
            picked_rows.append(min(eligible, key=lambda r: r["latency_ms"]["p50"]))
    if not picked_rows:
        why = "; ".join(f"{n}: {reason}" for n, reason in excluded.items())
        raise InputError(
            f"{source}: no artifact the run can promote to a bundle: {why}; name the ones to bundle anyway with -a NAME"
        )
    picked_rows.sort(key=lambda r: r["latency_ms"]["p50"])
    within = "within the recipe's budgets" if budgets else "the recipe sets no budget"
    picked = []
    for r in picked_rows:
        fid = _fidelity_words(r)
        picked.append(
            f"picked {r['name']}: the fastest promotable {formats.label(r['format'])} artifact "
            f"(p50 {r['latency_ms']['p50']:.2f} ms, {r['size_bytes'] / 1e6:.1f} MB"
            + (f", {fid}" if fid else "")
            + f"; {within})"
        )
    chosen = {r["name"] for r in picked_rows}
    passed_over = []
    for r in sorted(rows, key=lambda r: r["latency_ms"]["p50"]):
        if r["name"] in chosen:
            continue
        reason = excluded.get(r["name"]) or f"slower, p50 {r['latency_ms']['p50']:.2f} ms"
        passed_over.append(f"{r['name']}: {reason}")
    return Selection([r["name"] for r in picked_rows], picked, passed_over)


def _pick(source: Path, report: dict, names: list[str] | None) -> list[Artifact]:
    return [Artifact.load(source / n) for n in select_artifacts(source, names, report).names]


def _tokenizer_home(source: Path, artifact: Artifact, root: Path) -> Path:
    """The checkpoint whose tokenizer feeds ``artifact``: its nearest checkpoint ancestor in ``source``
    (a student with a pruned vocabulary has its own), else the one the run started from."""
    meta, seen = artifact.meta, set()
    while meta.get("parent") and meta["parent"]["name"] not in seen:
        name = meta["parent"]["name"]
        seen.add(name)
        parent = source / name
        if not (parent / "manifest.json").is_file():
            break
        pmeta = Artifact.load(parent).meta
        if pmeta.get("format") == "hf-checkpoint" and (
            (parent / "tokenizer.json").is_file()
            or (parent / "vocab.txt").is_file()
            or (parent / "preprocessor_config.json").is_file()
        ):
            return parent
        meta = pmeta
    return root


def _reference_texts(task: str) -> list:
    """The bundle's reference inputs: shipped held-out items of the task (texts: "edgekit" first)."""
    from edgekit.data.calibration import load_text_data
    from edgekit.tasks import get_task

    t = get_task(task)
    items = load_text_data(task=t).heldout
    if isinstance(items[0], str):
        items = ["edgekit", *items]
    return items[:REFERENCE_TEXTS]


def _items_json(task: str, items: list) -> list:
    from edgekit.tasks import get_task

    return [get_task(task).item_as_json(t) for t in items]


def _reference_images(report: dict) -> list[np.ndarray]:
    """The first test images of the set the run was scored on, as uint8 arrays."""
    from edgekit.data.datasets import load_dataset
    from edgekit.data.images import load_image

    source = report.get("settings", {}).get("heldout", "")
    spec = source.split(":", 1)[1].split("/")[0] if source.startswith("builtin:") else str(Path(source).parent)
    samples = load_dataset(spec).test.texts[:REFERENCE_TEXTS]
    return [np.asarray(load_image(s), dtype=np.uint8) for s in samples]


def _fp32_outputs(
    draft: Bundle, ckpt: Path, task: str, texts: list[str] | list[np.ndarray], threads: int
) -> np.ndarray:
    """The fp32 PyTorch model's task outputs, through the bundle's own tokenizer and post-processing."""
    from edgekit.device.runtime_api import BundleModel
    from edgekit.plugins import get_runtime

    adapter = get_runtime("torch")
    session = adapter.load(ckpt, threads=threads, task=task)
    reference = Variant(FP32_KEY, "hf-checkpoint", "fp32", str(ckpt), 0)
    return BundleModel(draft, reference, session, adapter.name, threads).task_outputs(texts)


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as a compressed .npz that ``np.load`` reads, numbers only (no pickled objects).

    Written member by member, not through ``np.savez_compressed(**arrays)``: its keyword arguments would
    take a variant named ``file`` or ``allow_pickle`` for its own parameters.
    """
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for key, value in arrays.items():
            with z.open(f"{key}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)


def _hash_all(root: Path) -> dict[str, dict]:
    return {
        p.relative_to(root).as_posix(): {"sha256": sha256_file(p), "size": p.stat().st_size}
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != BUNDLE_FILE
    }


def _common_max_length(pre: dict, sessions: list) -> None:
    """Every variant truncates at the same length: the shortest that all of them take (a TFLite model's
    largest sequence bucket may be shorter than the checkpoint's limit)."""
    if pre["kind"] == "text":
        limits = [s.max_seq_len for s in sessions if s.max_seq_len]
        pre["max_seq_len"] = min([pre["max_seq_len"], *limits])


def build_bundle(
    source: str | Path,
    output: str | Path,
    *,
    artifacts: list[str] | None = None,
    archive: bool = False,
    threads: int = 2,
    overwrite: bool = False,
    progress: bool = False,
) -> Bundle:
    """Bundle the chosen artifacts of a compress output directory ``source`` into ``output``: ``artifacts``
    by name, else the default choice of :func:`select_artifacts` (the fastest promotable one per format).

    The bundle is built beside ``output`` and moved in whole (:class:`edgekit.output.OutputDir`); an
    earlier edgekit bundle there is replaced only with ``overwrite``, anything else is refused. With
    ``progress``, a bar on stderr counts the steps (copying, loading and recording each variant, the fp32
    reference, hashing) with an ETA."""
    from tqdm import tqdm

    from edgekit.device.runtime_api import BundleModel
    from edgekit.measure.fidelity import cosine_rows
    from edgekit.plugins import load_session, runtime_for_format
    from edgekit.report.gates import load_report

    source, output = Path(source), Path(output)
    refuse_overlap(source, output)
    packed_at = output.with_name(output.name + ".tar.gz")
    if archive:
        claim_file(packed_at, overwrite)
    report = load_report(source / "report.json")
    ckpt = Path(report["model"]["path"])
    if not (ckpt / "config.json").is_file():
        raise InputError(f"{source}: the checkpoint it was made from ({ckpt}) is not there any more")
    task = report["model"]["task"]
    chosen = _pick(source, report, artifacts)
    homes = {_tokenizer_home(source, a, ckpt) for a in chosen}
    if len(homes) > 1:
        raise InputError(
            f"{source}: the chosen artifacts use different tokenizers ({', '.join(sorted(map(str, homes)))})"
            "; bundle them separately"
        )
    home = homes.pop()
    pre = _preprocessing(home)
    texts = _reference_images(report) if pre["kind"] == "image" else _reference_texts(task)
    steps = 3 * len(chosen) + 2  # copy, load, record each variant; the fp32 reference; hash and verify
    with (
        OutputDir(output, "bundle", overwrite=overwrite, exclusive=True) as out,  # a bundle holds only its files
        tqdm(total=steps, desc="bundle", unit="step", disable=not progress, leave=False, dynamic_ncols=True) as bar,
    ):
        staged = out.tree
        _write_preprocessing(home, staged, pre)
        variants = []
        for a in chosen:
            bar.set_postfix_str(f"copy {a.name}")
            dest = staged / "models" / a.name
            shutil.copytree(a.path, dest, ignore=lambda _d, names: [n for n in names if n in SKIP_FILES])
            variants.append(
                {
                    "name": a.name,
                    "format": a.format,
                    "precision": a.precision,
                    "file": f"models/{a.name}/{a.model_file}",
                    "size_bytes": a.size_bytes,
                    "artifact_digest": a.digest,
                    "validation": a.meta.get("validation", {}),
                }
            )
            bar.update(1)
        meta = {
            "bundle_version": BUNDLE_VERSION,
            "name": report["model"]["name"],
            "task": task,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "edgekit_version": __version__,
            "source": {"model_digest": report["model"].get("digest"), "recipe": report.get("recipe")},
            "preprocessing": pre,
            "postprocessing": _postprocessing(ckpt, task),
            "reference": {
                **({"images": len(texts)} if pre["kind"] == "image" else {"texts": _items_json(task, texts)}),
                "file": REFERENCE_FILE,
                "fidelity": {},
                "what": "each variant's task outputs on these texts, recorded on its runtime when "
                f"bundled, and the fp32 PyTorch model's ({FP32_KEY}); fidelity: each "
                "variant's cosine to the fp32 outputs",
            },
            "variants": variants,
            "files": {},
        }
        draft = Bundle(path=staged, meta=meta)
        adapters = [runtime_for_format(v.format) for v in draft.variants]
        sessions = []
        for adapter, v in zip(adapters, draft.variants):
            bar.set_postfix_str(f"load {v.name}")
            sessions.append(load_session(adapter, staged / v.file, threads))
            bar.update(1)
        _common_max_length(pre, sessions)
        bar.set_postfix_str("record fp32 PyTorch reference")
        recorded = {FP32_KEY: _fp32_outputs(draft, home, task, texts, threads)}
        bar.update(1)
        for v, adapter, session in zip(draft.variants, adapters, sessions):
            bar.set_postfix_str(f"record {v.name}")
            model = BundleModel(draft, v, session, adapter.name, threads)
            recorded[v.name] = model.task_outputs(texts)
            model.close()
            cos = cosine_rows(recorded[FP32_KEY], recorded[v.name])
            meta["reference"]["fidelity"][v.name] = {
                "cosine_mean": round(float(cos.mean()), 6),
                "cosine_min": round(float(cos.min()), 6),
            }
            bar.update(1)
        bar.set_postfix_str("hash and verify")
        if pre["kind"] == "image":
            recorded[REFERENCE_IMAGES_KEY] = np.stack(texts)
        save_npz(staged / REFERENCE_FILE, recorded)
        meta["files"] = _hash_all(staged)
        meta = seal(meta)
        (staged / BUNDLE_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        verify(staged, meta)
        bar.update(1)
        packed = pack(staged, out.scratch(packed_at.name)) if archive else None
        final = out.commit()
        if packed is not None:
            place_file(packed, packed_at, overwrite=overwrite)
    return open_bundle(final)


def describe(bundle: Bundle) -> str:
    lines = [f"bundle {bundle.path} ({bundle.size_bytes / 1e6:.1f} MB): {bundle.name}, {bundle.task}"]
    for v in bundle.variants:
        lines.append(f"  {v.name:<24} {v.format:<7} {v.precision:<6} {v.size_bytes / 1e6:7.1f} MB  {v.file}")
    pre = bundle.meta["preprocessing"]
    if pre["kind"] == "text":
        lines.append(f"  every variant takes up to {pre['max_seq_len']} tokens; longer texts are truncated")
    lines.append(f"  digest sha256:{bundle.digest} (pin it: edgekit run --digest ...)")
    return "\n".join(lines)
