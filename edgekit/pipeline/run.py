"""Run a recipe on a checkpoint: stages write artifacts, then everything is benchmarked."""

from __future__ import annotations

import json
from collections import ChainMap
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from edgekit.artifact import Artifact, model_identity, write_manifest
from edgekit.checkpoint import Checkpoint, load_checkpoint
from edgekit.data.calibration import TextData, load_text_data
from edgekit.errors import InputError
from edgekit.measure.environment import environment, library_versions
from edgekit.measure.harness import BenchSettings, Target, measure
from edgekit.output import OutputDir
from edgekit.pipeline.context import StageContext
from edgekit.pipeline.plan import REFERENCE_NAME, plan, without_unavailable
from edgekit.plugins import get_runtime, runtime_for_format
from edgekit.recipe.config import BenchConfig, Recipe
from edgekit.report.build import build_report, dumps, markdown
from edgekit.stages import handler_for, stage_io
from edgekit.stages.search import SearchFailed
from edgekit_runtimes import selfcheck


def checkpoint_artifact(ckpt: Checkpoint) -> Artifact:
    weights = sorted(p for p in ckpt.path.iterdir() if p.name.startswith(("model", "pytorch_model")) and p.is_file())
    return Artifact(
        name=REFERENCE_NAME,
        path=ckpt.path,
        format="hf-checkpoint",
        precision="fp32",
        model_file=None,
        digest=model_identity(ckpt.config, weights),
        task=ckpt.task,
        meta={"size_bytes": sum(p.stat().st_size for p in weights)},
    )


@dataclass
class CompressResult:
    report: dict
    artifacts: dict[str, Artifact]
    output: Path


def settings_dict(b: BenchConfig) -> dict:
    return {k: getattr(b, k) for k in ("batch_size", "seq_len", "threads", "warmup", "runs", "fidelity_samples")}


def compress(
    checkpoint: str | Path,
    recipe: Recipe,
    output: str | Path,
    *,
    task: str | None = None,
    calibration: str | Path | None = None,
    evaluation: str | Path | None = None,
    allow_unsafe_pickle: bool = False,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    overrides=None,
    inputs: dict | None = None,
    tokenizer: str | Path | None = None,
) -> CompressResult:
    """Run ``recipe`` on ``checkpoint`` into the directory ``output``, all or nothing.

    ``checkpoint`` may also be a model file edgekit did not make (``.onnx``, ``.tflite``): see
    :func:`compress_file`; ``overrides`` (``--shape``/``--value``) and ``inputs`` (``--inputs``) state its
    inputs.

    The whole run is staged beside ``output`` and swapped in at the end (see :mod:`edgekit.output`): a
    failed or interrupted run leaves an earlier output as it was. An earlier edgekit output is replaced
    only with ``overwrite``; what edgekit did not write is never replaced.
    """
    from edgekit.pipeline.model_file import is_model_file

    if is_model_file(checkpoint):
        if task or resume or allow_unsafe_pickle:
            raise InputError(
                f"{checkpoint}: a model file takes no --task, --resume or --allow-unsafe-pickle "
                "(it is measured against itself on its own runtime)"
            )
        if (calibration or evaluation) and tokenizer is None:
            raise InputError(f"{checkpoint}: --calibration and --eval are texts: give the model's --tokenizer too")
        return compress_file(
            Path(checkpoint),
            recipe,
            output,
            progress=progress,
            overwrite=overwrite,
            overrides=overrides,
            inputs=inputs,
            tokenizer=tokenizer,
            calibration=calibration,
            evaluation=evaluation,
        )
    if overrides or inputs is not None or tokenizer is not None:
        raise InputError(
            "--shape, --value, --inputs and --tokenizer state a model file's inputs; a checkpoint brings its own"
        )
    # everything that can be checked before work starts is checked first
    ckpt = load_checkpoint(checkpoint, task=task, allow_unsafe_pickle=allow_unsafe_pickle)
    if ckpt.task_def.generative:  # generated token by token: the decoder pipeline (KV cache, perplexity)
        if calibration or evaluation:
            raise InputError(
                f"{ckpt.path}: a {ckpt.task} model takes no --calibration or --eval: its held-out text "
                "is the recipe's bench-generate data"
            )
        import importlib

        module, function = ckpt.task_def.compressor.split(":")
        compress = getattr(importlib.import_module(module), function)
        return compress(ckpt, recipe, output, progress=progress, overwrite=overwrite, resume=resume)
    bench = recipe.bench_config()
    recipe.check_lengths(ckpt.max_positions, str(ckpt.path))
    if ckpt.is_image and (calibration or evaluation):
        raise InputError(
            "--calibration and --eval take text files; an image model calibrates on the train split "
            "and is scored on the test split of --data"
        )
    data = image_data(ckpt, bench.eval) if ckpt.is_image else load_text_data(calibration, evaluation, ckpt.task_def)
    # the recipe names a labelled set to score every artifact on
    if bench.eval and evaluation is None and not ckpt.is_image:
        from dataclasses import replace

        from edgekit.data.datasets import load_dataset

        test = load_dataset(bench.eval).test
        data = replace(data, heldout=test.texts, heldout_labels=test.labels, heldout_source=test.source)
    recipe, skipped = without_unavailable(recipe, checkpoint=ckpt)
    steps = plan(recipe)
    refuse_unsupported_exports(steps, ckpt)
    for cfg, made, _parent in steps:
        if stage_io(cfg).trains and not ckpt.task_def.trainable:
            raise InputError(
                f"recipe {recipe.name}: stage {made} trains the model, which edgekit does not do for "
                f"{ckpt.task} models yet; export and quantize them (e.g. -r ptq-dynamic or search-int8)"
            )
    with OutputDir(Path(output), "compress", overwrite=overwrite) as out:
        root = checkpoint_artifact(ckpt)
        artifacts: dict[str, Artifact] = {}  # while running, each artifact is in the staging tree
        # training stages keep their resumable state in the output itself: it survives a failed run
        ctx = StageContext(
            checkpoint=ckpt,
            data=data,
            recipe_digest=recipe.digest(),
            threads=bench.threads,
            progress=progress,
            seq_len=bench.seq_len,
            artifacts=artifacts,
            run_root=out.hold(),
            resume=resume,
        )
        contexts = {REFERENCE_NAME: ctx}  # each artifact's lineage: its checkpoint is the parity reference
        versions = library_versions()
        search, failed = None, None
        with tqdm(steps, desc="compress", unit="stage", disable=not progress) as bar:
            for cfg, name, parent_name in bar:
                bar.set_postfix_str(f"{cfg.kind} -> {name}")
                parent = root if parent_name == REFERENCE_NAME else artifacts[parent_name]
                pctx = contexts[parent_name]
                try:
                    artifacts[name] = _run_stage(cfg, name, parent, pctx, out, recipe.digest(), versions)
                except SearchFailed as err:  # the report is still written, with every trial; then exit 3
                    search, failed = err.record, err
                    break
                search = artifacts[name].meta.get("search", search)
                contexts[name] = (
                    pctx
                    if artifacts[name].format != "hf-checkpoint"
                    else pctx.for_checkpoint(load_checkpoint(artifacts[name].path, task=ckpt.task))
                )

        targets = [
            _target(
                a,
                bench.threads,
                contexts[n].checkpoint.tokenizer if contexts[n].checkpoint is not ckpt else None,
                shown=out.final(n),
            )
            for n, a in artifacts.items()
        ]
        if bench.reference:
            targets.append(_reference_target(ctx, root, bench.threads))
        rows = measure(
            targets,
            BenchSettings(**settings_dict(bench)),
            task=ckpt.task,
            tokenizer=ckpt.tokenizer,
            texts=data.heldout,
            progress=progress,
            labels=_gold(ckpt, data),
        )
        for r in rows:  # each artifact's lineage: its speed-up over fp32 is over its own fp32 ancestor
            if r["name"] in artifacts:
                r["parent"] = artifacts[r["name"]].meta["parent"]["name"]
        report = build_report(
            model={
                "name": ckpt.name,
                "path": str(ckpt.path),
                "task": ckpt.task,
                "digest": root.digest,
                "model_type": ckpt.config.get("model_type"),
            },
            recipe=recipe_entry(recipe, skipped),
            environment=environment(bench.threads),
            results=rows,
            settings={
                **settings_dict(bench),
                "calibration": data.calibration_source,
                "heldout": data.heldout_source,
                **data.sample_counts(bench.fidelity_samples),
            },
            kind="compress",
        )
        mark_slower_than_parent(report, artifacts)
        if search is not None:
            report["search"] = search
        write_and_commit(out, recipe, report, artifacts)
        if failed is not None:  # what was made, and the report saying why nothing passed, stay
            raise failed
        return CompressResult(
            report=report, artifacts={n: Artifact.load(out.final(n)) for n in artifacts}, output=out.path
        )


def refuse_unsupported_exports(steps, ckpt: Checkpoint) -> None:
    """An export stage whose converter is known to get this model type wrong: exit 2 before any work."""
    from edgekit.plugins import converters
    from edgekit.recipe.config import ExportConfig

    for cfg, made, _parent in steps:
        if not isinstance(cfg, ExportConfig):
            continue
        for converter in converters().values():
            why = converter.format == cfg.format and converter.refusal(ckpt)
            if why:
                raise InputError(
                    f"{ckpt.path}: {cfg.format} export ({made}) of a {ckpt.config.get('model_type')} model is not "
                    f"supported: {why}"
                )


def recipe_entry(recipe: Recipe, skipped: list[str] | None = None) -> dict:
    """The report's ``recipe``: its name, digest, the file it is written to, its gates and the stages left out
    because their tools are not installed here (``skip_unavailable``)."""
    return {
        "name": recipe.name,
        "digest": recipe.digest(),
        "file": "recipe.yaml",
        "gates": recipe.gates.model_dump() if recipe.gates else None,
        **({"skipped": skipped} if skipped else {}),
    }


def write_and_commit(out: OutputDir, recipe: Recipe, report: dict, artifacts: dict) -> None:
    """The resolved recipe and the report beside the artifacts, then the whole output swapped into place."""
    out.write_text("recipe.yaml", recipe.to_yaml())
    out.write_text("report.md", markdown(report))
    out.write_text("report.json", dumps(report))
    out.commit([*artifacts, "recipe.yaml", "report.md", "report.json"])


def compress_file(
    model: Path,
    recipe: Recipe,
    output: str | Path,
    *,
    progress: bool = True,
    overwrite: bool = False,
    overrides=None,
    inputs: dict | None = None,
    tokenizer: str | Path | None = None,
    calibration: str | Path | None = None,
    evaluation: str | Path | None = None,
) -> CompressResult:
    """Run ``recipe`` on a model file edgekit did not make: it is the recipe's first artifact and the parity
    reference on its own runtime (:mod:`edgekit.pipeline.model_file`). With ``tokenizer`` (a text model) it is
    calibrated, checked and scored on texts (the shipped sets, or ``calibration`` / ``evaluation``), as a
    checkpoint is. All or nothing, as :func:`compress`."""
    import os

    from edgekit.data.feeds import InputOverrides
    from edgekit.measure.model_info import detect_precision
    from edgekit.pipeline.model_file import FileContext, file_artifact, file_format, file_recipe

    model = Path(os.path.abspath(model))  # stages may work in other directories (ORT's static calibration)
    fmt = file_format(model)
    precision = detect_precision(model, fmt)
    recipe, root_name = file_recipe(recipe, fmt)
    bench = recipe.bench_config()
    if precision != "fp32":
        raise InputError(
            f"{model}: its weights are {precision}, not fp32; edgekit quantizes fp32 model files "
            "(bench it as it is: edgekit bench FILE)"
        )
    if tokenizer is not None and (overrides or inputs is not None):
        raise InputError("--tokenizer feeds the model text: not with --shape, --value or --inputs")
    tok, data = None, None
    if tokenizer is not None:
        from edgekit.measure.model_files import load_tokenizer

        tok, data = load_tokenizer(Path(tokenizer)), load_text_data(calibration, evaluation)
    steps = plan(recipe, root=root_name, root_format=fmt, root_precision="fp32")
    adapter = runtime_for_format(fmt)
    if adapter.isolate:
        from edgekit.measure.probe import probe

        probe(adapter.name, model, bench.threads, bench.batch_size, bench.seq_len, overrides)
    ctx = FileContext(
        model=model,
        fmt=fmt,
        recipe_digest=recipe.digest(),
        threads=bench.threads,
        progress=progress,
        seq_len=bench.seq_len,
        batch_size=bench.batch_size,
        overrides=overrides or InputOverrides(),
        feeds=inputs,
        tokenizer=tok,
        data=data,
    )
    try:
        ctx.check_inputs()
        with OutputDir(Path(output), "compress", overwrite=overwrite) as out:
            root = file_artifact(model, root_name, fmt, precision)
            artifacts: dict[str, Artifact] = {}
            ctx.artifacts = ChainMap(artifacts, {root_name: root})  # stages name the file as an input too
            versions = library_versions()
            search, failed = None, None
            with tqdm(steps, desc="compress", unit="stage", disable=not progress) as bar:
                for cfg, name, parent_name in bar:
                    bar.set_postfix_str(f"{cfg.kind} -> {name}")
                    parent = root if parent_name == root_name else artifacts[parent_name]
                    try:
                        artifacts[name] = _run_stage(cfg, name, parent, ctx, out, recipe.digest(), versions)  # type: ignore[arg-type]
                    except SearchFailed as err:  # the report is still written, with every trial; then exit 3
                        search, failed = err.record, err
                        break
                    search = artifacts[name].meta.get("search", search)
            targets = [_target(a, bench.threads, shown=out.final(n)) for n, a in artifacts.items()]
            targets.append(
                Target(
                    name=root.name,
                    format=fmt,
                    precision=precision,
                    runtime=adapter.name,
                    path=str(model),
                    size_bytes=root.size_bytes,
                    load=lambda: adapter.load(model, threads=bench.threads),
                    is_reference=True,
                )
            )
            rows = measure(
                targets,
                BenchSettings(**settings_dict(bench)),
                progress=progress,
                feeds_override=inputs,
                overrides=ctx.overrides,
                tokenizer=tok,
                texts=data.heldout if data is not None else (),
            )
            for r in rows:
                if r["name"] in artifacts:
                    a = artifacts[r["name"]]
                    r["parent"] = a.meta["parent"]["name"]
                    if tok is not None:  # scored on the held-out texts, as a checkpoint's artifacts are
                        continue
                    v = a.meta.get("validation") or {}
                    r["fidelity"] = {
                        k: v[k] for k in ("cosine_mean", "cosine_min", "max_abs_diff", "min_cosine") if k in v
                    }
                    if "min_cosine" in r["fidelity"] and "cosine_min" not in r["fidelity"]:
                        r["fidelity"]["cosine_min"] = r["fidelity"].pop("min_cosine")
                        r["fidelity"].setdefault("cosine_mean", r["fidelity"]["cosine_min"])
            report = build_report(
                model={
                    "name": model.name,
                    "path": str(model),
                    "task": None,
                    "digest": root.digest,
                    "model_type": f"{fmt} file",
                },
                recipe=recipe_entry(recipe),
                environment=environment(bench.threads),
                results=rows,
                settings={
                    **settings_dict(bench),
                    "inputs": ctx.inputs_source,
                    "fidelity": f"cosine to {root.name} (the file on {adapter.name}) over {ctx.inputs_source}",
                    **(
                        {"calibration": data.calibration_source, "heldout": data.heldout_source}
                        if data is not None
                        else {}
                    ),
                    **({"input_overrides": ctx.overrides.as_json()} if ctx.overrides else {}),
                },
                kind="compress",
            )
            mark_slower_than_parent(report, artifacts)
            if search is not None:
                report["search"] = search
            write_and_commit(out, recipe, report, artifacts)
            if failed is not None:
                raise failed
            return CompressResult(
                report=report, artifacts={n: Artifact.load(out.final(n)) for n in artifacts}, output=out.path
            )
    finally:
        ctx.close()


CALIBRATION_IMAGES = 256


def image_data(ckpt: Checkpoint, dataset: str | None) -> TextData:
    """Calibration images (from the train split) and the labelled test images an image model is scored on."""
    if not dataset:
        raise InputError(
            f"{ckpt.path}: an image model needs a labelled image set: pass --data "
            "(`digits`, or a folder of train/validation/test image folders) or set the bench stage's eval"
        )
    from edgekit.data.datasets import load_dataset

    d = load_dataset(dataset)  # its test split comes in stratified order: any first N represents every label
    cal = d.train.stratified(CALIBRATION_IMAGES)  # a stratified, seeded sample: folders are read in label order
    return TextData(
        calibration=cal.texts,
        heldout=d.test.texts,
        calibration_source=d.train.source,
        heldout_source=d.test.source,
        heldout_labels=d.test.labels,
        calibration_labels=cal.labels,
        calibration_total=len(d.train.texts),
        label_count=len(d.label_names),
    )


def _gold(ckpt: Checkpoint, data):
    """The held-out set's gold answers in the task's form (class ids for classifiers), when it is labelled."""
    if not ckpt.task_def.evaluated or not data.heldout_labels:
        return None
    return ckpt.task_def.gold(data.heldout_labels, ckpt.config)


def mark_slower_than_parent(report: dict, artifacts: dict[str, Artifact]) -> None:
    """A quantized artifact slower than the artifact it was made from (same runtime, same shape)
    is never promoted: its row says so."""
    rows = {(r["name"], r["batch_size"], r["seq_len"], r["threads"]): r for r in report["results"]}
    for key, row in rows.items():
        a = artifacts.get(row["name"])
        parent = rows.get((a.meta["parent"]["name"], *key[1:])) if a is not None else None
        row["promotable"] = True
        if parent is None or row["precision"] == "fp32" or parent["runtime"] != row["runtime"]:
            continue
        if row["latency_ms"]["p50"] >= parent["latency_ms"]["p50"]:
            row["promotable"] = False
            row["not_promoted_because"] = (
                f"slower than its parent {parent['name']} "
                f"({row['latency_ms']['p50']:.2f} >= {parent['latency_ms']['p50']:.2f} ms)"
            )


def _run_stage(
    cfg, name: str, parent: Artifact, ctx: StageContext, out: OutputDir, recipe_digest: str, versions: dict
) -> Artifact:
    """Build one artifact in the run's staging tree and describe it (the run moves into place at its end)."""
    staged = out.stage(name)
    result = handler_for(cfg)(cfg, parent, ctx, staged)
    if result.format == "onnx":
        from edgekit.pipeline.ecosystem import contrib_ops, write_ecosystem_files

        if ctx.checkpoint is not None:  # loadable as it is by Optimum and sentence-transformers
            write_ecosystem_files(ctx.checkpoint, staged)
        result.extra["onnx_contrib_ops"] = contrib_ops(staged / result.model_file)  # [] runs on any ONNX runtime
    own = ctx  # a new checkpoint (a student) is fed through its own tokenizer: its vocabulary may be pruned
    if result.format == "hf-checkpoint":
        own = ctx.for_checkpoint(load_checkpoint(staged, task=ctx.teacher.task))
    _record_selfcheck(result.session, staged / selfcheck.FILE, own)
    write_manifest(
        staged,
        name=name,
        format=result.format,
        precision=result.precision,
        model_file=result.model_file,
        task=ctx.checkpoint.task if ctx.checkpoint is not None else None,  # type: ignore[arg-type]
        parent=parent,
        recipe_digest=recipe_digest,
        stage=cfg.model_dump(mode="json"),
        tool_versions=versions,
        extra={"validation": result.validation, **result.extra},
    )
    return Artifact.load(staged)


def _record_selfcheck(session, path: Path, ctx: StageContext) -> None:
    """Store a few inputs and this artifact's outputs beside it, for runtimes that verify on load."""
    selfcheck.record(session, ctx.parity_feeds(session)[2:], path)


def _target(a: Artifact, threads: int, tokenizer=None, shown: Path | None = None) -> Target:
    """``a`` to measure; ``shown``: the path the report records (where the artifact will be, not the staging)."""
    adapter = runtime_for_format(a.format)
    return Target(
        name=a.name,
        format=a.format,
        precision=a.precision,
        runtime=adapter.name,
        path=str(shown or a.path),
        size_bytes=a.size_bytes,
        load=lambda: adapter.load(a.model_path, threads=threads),
        tokenizer=tokenizer,
    )


def _reference_target(ctx: StageContext, root: Artifact, threads: int) -> Target:
    adapter = get_runtime("torch")
    return Target(
        name=root.name,
        format=root.format,
        precision="fp32",
        runtime=adapter.name,
        path=str(root.path),
        size_bytes=root.size_bytes,
        load=lambda: adapter.from_checkpoint(ctx.checkpoint, threads),
        is_reference=True,
    )


def load_report(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
