"""`edgekit run`: run a bundle on texts or images and print JSON (no torch)."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli.common import output_options, runtime_options
from edgekit.errors import GateFailed


@click.command(name="run")
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(path_type=Path))
@click.argument("texts", nargs=-1)
@click.option(
    "--file",
    "texts_file",
    type=click.Path(path_type=Path),
    help="Texts to run, one per line (or .jsonl/.csv); for a task whose inputs are not plain texts (question "
    "answering), a .jsonl file of its inputs.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Run the bundle's reference texts and compare with the outputs recorded when it was made: "
    "reproduced (cosine >= 0.999), or, on a CPU with other int8 kernels, as close to fp32 as "
    "recorded; else exit 3.",
)
@click.option(
    "--digest", metavar="SHA256", help="Refuse the bundle unless its digest is this one (`edgekit bundle` prints it)."
)
@runtime_options
@output_options(json_help="Print the result as one JSON document (what `run` always prints; for symmetry).")
def run_bundle(bundle_path, texts, texts_file, check, digest, runtime, variant, threads, console):
    """Run a bundle on TEXTS and print the result as JSON.

    \b
    Embedding bundles print one vector per text; classifiers print the label,
    its probability and every label's; each text's result says how many
    tokens it has and whether it was truncated. For an image bundle, TEXTS are
    image files. For a task whose inputs are not plain texts, each TEXT is one
    input as JSON, e.g. '{"question": "...", "context": "..."}' for question
    answering. BUNDLE is a bundle directory or its .tar.gz. Needs only the
    runtime extras (no torch; Pillow for image files).

    Numbers are rounded as `edgekit serve` rounds them: embeddings to 7
    decimals, probabilities and scores to 6.
    """
    import json

    from edgekit.device.bundle import open_bundle
    from edgekit.device.runtime_api import load

    model = load(open_bundle(bundle_path, digest=digest), runtime=runtime, threads=threads, variant=variant)
    out = {"bundle": model.bundle.name, "variant": model.variant.name, "runtime": model.runtime}
    if check:
        if not model.task_def.is_image:
            _token_counts(model, model.bundle.reference_texts)
        out["check"] = model.check()
        click.echo(json.dumps(out))
        if not out["check"]["passed"]:
            raise GateFailed(
                f"{model.variant.name} on {model.runtime}: {out['check']['verdict']} (worst cosine "
                f"{out['check']['cosine_to_recorded_min']:.4f} to the recorded outputs)"
            )
        return
    task = model.task_def
    items = list(texts) if task.request_field == "texts" else [_json_item(task, t, i) for i, t in enumerate(texts, 1)]
    if texts_file:
        items += task.load_items(texts_file)[0]
    if not items:
        raise click.UsageError("give TEXTS or --file (or --check)")
    if model.task_def.is_image:
        result = model.predict(items)
        out["results"] = [{"image": str(t), **r} for t, r in zip(items, model.task_def.as_json(result))]
        click.echo(json.dumps(out))
        return
    items = task.check_items(items)
    lengths = _token_counts(model, items)
    result = model.predict(items)
    out["max_tokens"] = model.max_seq_len
    shown = [{"text": t} if isinstance(t, str) else {"input": task.item_as_json(t)} for t in items]
    rows = [{**r, "tokens": n, "truncated": n > model.max_seq_len} for r, n in zip(shown, lengths)]
    out["results"] = [{**r, **j} for r, j in zip(rows, model.task_def.as_json(result))]
    click.echo(json.dumps(out))


def _json_item(task, text: str, i: int):
    """One input given on the command line as JSON (tasks whose inputs are not plain texts)."""
    import json

    from edgekit.errors import InputError

    try:
        return task.item_from_json(json.loads(text))
    except json.JSONDecodeError:
        raise InputError(f"input {i} is not JSON; a {task.name} bundle takes its inputs as JSON objects") from None


def _token_counts(model, texts: list) -> list[int]:
    """How many tokens each text has before truncation; text that is not UTF-8, or a token id the model has no
    embedding for (a tokenizer not the model's), is bad input."""
    from edgekit.errors import InputError

    vocab = model.bundle.meta["preprocessing"].get("vocab_size")
    counts = []
    for i, t in enumerate(texts, 1):
        try:
            for part in t if isinstance(t, tuple) else (t,):  # a text, or a text pair
                part.encode("utf-8")
        except UnicodeEncodeError:  # argv bytes that do not decode arrive as lone surrogates
            raise InputError(f"text {i} is not valid UTF-8 (the shell passed bytes that do not decode)") from None
        ids = model.encoder(t)["input_ids"]
        if vocab is not None and ids and max(ids) >= vocab:
            raise InputError(
                f"text {i} has token id {max(ids)}, the model only {vocab}: the bundle's tokenizer is not its model's"
            )
        counts.append(len(ids))
    return counts
