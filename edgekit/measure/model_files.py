"""``edgekit bench FILE``: benchmark any model file, made by edgekit or not."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from edgekit import formats
from edgekit.data.calibration import load_text_data
from edgekit.errors import InputError, ModelFileError
from edgekit.measure.environment import environment
from edgekit.measure.harness import BenchSettings, Target, measure
from edgekit.measure.model_info import check_token_inputs, detect_format, detect_precision, token_limits
from edgekit.plugins import load_session, runtime_for_format
from edgekit.report.build import build_report


def load_tokenizer(path: Path):
    from edgekit.checkpoint import offline

    offline()
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except Exception as err:  # noqa: BLE001
        raise ModelFileError(f"{path}: cannot load a tokenizer ({str(err).splitlines()[0]})") from None


def load_inputs(path: Path) -> dict:
    """Named arrays from an .npz (never unpickled: object arrays are refused)."""
    import zipfile

    import numpy as np

    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ModelFileError(f"{path}: not a readable .npz of named arrays ({err})") from None
    raise ModelFileError(
        f"{path}: one unnamed array (.npy), not an .npz of named arrays; save the inputs with "
        "numpy.savez(FILE, input_ids=..., attention_mask=...)"
    )


def _selfcheck(adapter, model: Path, threads: int) -> float | None:
    """Replay the recorded inputs of an edgekit artifact; a mismatch is a failed check."""
    from edgekit_runtimes import selfcheck

    path = model.parent / selfcheck.FILE
    if not path.is_file():
        return None
    return selfcheck.verify(adapter.load(model, threads=threads), path, f"{model}: {adapter.name}")


def _prepare(model: Path, runtime: str | None, settings: BenchSettings, overrides=None):
    """Resolve an artifact directory or file, pick its adapter, probe it in isolation when asked."""
    artifact_dir, precision = None, None
    if model.is_dir() and (model / "manifest.json").is_file():  # an edgekit artifact directory
        from edgekit.artifact import Artifact

        artifact = Artifact.load(model)
        artifact_dir, model, precision = model, artifact.model_path, artifact.precision
    fmt = detect_format(model)
    if precision is None:  # a file edgekit did not describe: what its weights are stored as
        precision = detect_precision(model, fmt)
    adapter = runtime_for_format(fmt, runtime)
    if adapter.isolate:
        from edgekit.measure.probe import probe

        probe(adapter.name, model, settings.threads, settings.batch_size, settings.seq_len, overrides)
    return model, artifact_dir, fmt, precision, adapter


GENERIC_STEMS = {"model", "model_quantized", "model_optimized"}  # files named for their kind only


def display_names(prepared: list[tuple[Path, Path | None]]) -> list[str]:
    """A unique, meaningful row name for each ``(model file, artifact directory or None)``: the artifact
    directory's name; a file's stem, or its directory's name for a file named only ``model.*``. Models whose
    names would repeat are told apart by their file names (``m.onnx``, ``m.tflite``), else by the fewest
    trailing parts of their paths that differ (``run1/onnx-int8``); the same file given twice is numbered."""
    files = [Path(os.path.abspath(m)) for m, _ in prepared]
    generic = [
        d is None and m.stem.lower() in GENERIC_STEMS and files[i].parent.name for i, (m, d) in enumerate(prepared)
    ]
    # what a model is called after: its artifact directory, the directory of a generic file, else the file
    idents = [
        Path(os.path.abspath(d)) if d is not None else files[i].parent if generic[i] else files[i]
        for i, (_, d) in enumerate(prepared)
    ]
    names = [
        idents[i].name if prepared[i][1] is not None or generic[i] else prepared[i][0].stem
        for i in range(len(prepared))
    ]

    def tail(p: Path, k: int) -> str:
        return "/".join(p.parts[-k:]).lstrip("/") or str(p)

    def candidates(i: int):
        yield files[i].name
        for k in range(2, len(idents[i].parts) + 1):
            yield tail(idents[i], k)
        for k in range(2, len(files[i].parts) + 1):
            yield tail(files[i], k)

    for _ in range(4):  # a renamed group may, rarely, meet another name: look again
        groups: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            groups.setdefault(n, []).append(i)
        clashes = [g for g in groups.values() if len({files[i] for i in g}) > 1]
        if not clashes:
            break
        for group in clashes:
            options = {i: list(candidates(i)) for i in group}
            for step in range(max(len(o) for o in options.values())):
                pick = {i: options[i][min(step, len(options[i]) - 1)] for i in group}
                by_file = {files[i]: pick[i] for i in group}
                if len(set(by_file.values())) == len(by_file):
                    names = [pick.get(i, n) for i, n in enumerate(names)]
                    break
    counts: dict[str, int] = {}
    for i, n in enumerate(names):  # the same file given twice: number the repeats
        counts[n] = counts.get(n, 0) + 1
        if counts[n] > 1:
            names[i] = f"{n} #{counts[n]}"
    return names


def _check_tokens(
    prepared: list, seq_lens: list[int], feeds: dict | None, inputs_file: Path | None, tok, tokenizer: Path | None
) -> None:
    """Token ids and lengths within what each ONNX model's embedding tables hold, before anything runs."""
    for path, _, fmt, _, _ in prepared:
        limits = token_limits(path, fmt)
        vocab, positions = limits.get("vocab"), limits.get("positions")
        if positions is not None and feeds is None and max(seq_lens) > positions:
            raise InputError(
                f"--seq-len {max(seq_lens)} is beyond what {path} takes: {positions} positions (its "
                f"position embedding table, max_position_embeddings); use at most {positions}"
            )
        check_token_inputs(feeds or {}, path, limits, inputs_file)
        if vocab is not None and tok is not None and len(tok) > vocab:
            raise InputError(
                f"tokenizer {tokenizer} has {len(tok)} tokens but {path} embeds {vocab}: it is not "
                "this model's tokenizer; pass the model's own"
            )


def _index_error(err: Exception) -> bool:
    """A runtime's complaint that a token id indexes past an embedding table."""
    text = str(err).lower()
    return "index" in text and ("out of bounds" in text or "out of range" in text or "out of data bounds" in text)


def _target(model: Path, name: str, fmt: str, precision: str, adapter, threads: int) -> Target:
    def load():
        return load_session(adapter, model, threads)

    return Target(
        name=name,
        format=fmt,
        precision=precision,
        runtime=adapter.name,
        path=str(model),
        size_bytes=formats.model_size(model),
        load=load,
    )


def bench_file(
    models: Path | list[Path],
    *,
    runtime: str | None,
    settings: BenchSettings,
    tokenizer: Path | None = None,
    texts_file: Path | None = None,
    inputs_file: Path | None = None,
    batch_sizes: list[int] | None = None,
    seq_lens: list[int] | None = None,
    threads: list[int] | None = None,
    progress: bool = True,
    overrides=None,
) -> dict:
    """Benchmark one or more model files side by side, over every combination of the sweep lists.

    ``overrides`` (:class:`edgekit.data.feeds.InputOverrides`, ``--shape``/``--value``) states the shapes
    or values of inputs synthesized from the models' specs."""
    models = [Path(m) for m in (models if isinstance(models, list) else [models])]
    if overrides and (inputs_file or tokenizer):
        raise InputError("--shape and --value shape synthesized inputs: not with --inputs or --tokenizer")
    resolved = [_prepare(m, runtime, settings, overrides) for m in models]
    names = display_names([(path, artifact_dir) for path, artifact_dir, *_ in resolved])
    prepared = [(path, name, fmt, prec, adapter) for (path, _, fmt, prec, adapter), name in zip(resolved, names)]
    checks = {name: _selfcheck(adapter, path, settings.threads) for path, name, _, _, adapter in prepared}
    tok = load_tokenizer(tokenizer) if tokenizer else None
    texts = load_text_data(evaluation=texts_file).heldout if tok is not None else []
    feeds = load_inputs(inputs_file) if inputs_file else None
    sweep = settings.sweep(batch_sizes, seq_lens, threads)
    _check_tokens(prepared, sweep["seq_lens"], feeds, inputs_file, tok, tokenizer)
    rows = []
    for t in sweep["threads"]:
        for b in sweep["batch_sizes"]:
            for s in sweep["seq_lens"]:
                point = replace(settings, batch_size=b, seq_len=s, threads=t)
                targets = [_target(path, name, fmt, prec, adapter, t) for path, name, fmt, prec, adapter in prepared]
                try:
                    rows += measure(
                        targets,
                        point,
                        tokenizer=tok,
                        texts=texts,
                        progress=progress,
                        feeds_override=feeds,
                        overrides=overrides,
                    )
                except Exception as err:  # a runtime rejecting token ids whose range the graph did not show
                    if (feeds is None and tok is None) or not _index_error(err):
                        raise
                    source = inputs_file or f"tokenizer {tokenizer}"
                    raise InputError(
                        f"{source}: a token id is outside a model's vocabulary "
                        f"({str(err).splitlines()[0][:200]}); use the model's own tokenizer"
                    ) from None
    for row in rows:
        if checks.get(row["name"]) is not None:
            row["fidelity"] = {"selfcheck_cosine_min": checks[row["name"]]}
    return build_report(
        model={
            "name": models[0].name if len(models) == 1 else ", ".join(p[1] for p in prepared),
            "path": str(models[0]),
            "task": None,
        },
        recipe=None,
        environment=environment(settings.threads),
        results=rows,
        settings={
            **settings.__dict__,
            "sweep": sweep,
            "inputs": str(inputs_file) if inputs_file else "tokenized text" if tok else "synthesized from input specs",
            **({"input_overrides": overrides.as_json()} if overrides else {}),
        },
        kind="bench",
    )
