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
@click.option(
    "--generate",
    "prompt",
    metavar="PROMPT",
    help="Generate from PROMPT: a decoder language model continues it, an encoder-decoder (T5, BART, Marian) "
    "rewrites it. BUNDLE is a bundle of a text-generation or text2text-generation compress output, or one of "
    "its artifact folders (out/onnx-int4-rtn); prints the text.",
)
@click.option(
    "--audio",
    metavar="FILE.wav",
    type=click.Path(dir_okay=False),
    help="Transcribe FILE.wav (PCM at the model's sampling rate, Whisper: 16 kHz) with a speech recognition "
    "artifact folder (automatic-speech-recognition); takes the same options as --generate.",
)
@click.option(
    "--max-new-tokens", default=32, show_default=True, type=click.IntRange(min=1), help="With --generate or --audio."
)
@click.option(
    "--num-beams", type=click.IntRange(min=1), help="With --generate: beam search with this many beams (default 1)."
)
@click.option(
    "--options",
    "gen_options",
    metavar="JSON",
    help='With --generate: more generation options, e.g. \'{"do_sample": true, "top_p": 0.9, "seed": 1}\', '
    '\'{"num_beams": 4}\', \'{"stop": ["."]}\'.',
)
@click.option("--stream", is_flag=True, help="With --generate: print the text as it is generated.")
@runtime_options
@output_options(json_help="Print the result as one JSON document (what `run` always prints; for symmetry).")
def run_bundle(
    bundle_path,
    texts,
    texts_file,
    check,
    digest,
    prompt,
    audio,
    max_new_tokens,
    num_beams,
    gen_options,
    stream,
    runtime,
    variant,
    threads,
    console,
):
    """Run a bundle on TEXTS and print the result as JSON.

    \b
    Embedding bundles print one vector per text; classifiers print the label,
    its probability and every label's; each text's result says how many
    tokens it has and whether it was truncated. For an image bundle, TEXTS are
    image files. For a task whose inputs are not plain texts, each TEXT is one
    input as JSON, e.g. '{"question": "...", "context": "..."}' for question
    answering. BUNDLE is a bundle directory or its .tar.gz. Needs only the
    runtime extras (no torch; Pillow for image files).

    A decoder language model or an encoder-decoder generates with
    --generate PROMPT instead of TEXTS (greedy by default; --num-beams N
    for beam search; sampling and stop strings through --options; --stream
    prints the text as it comes). A speech recognition artifact (Whisper)
    transcribes --audio FILE.wav the same way.

    Numbers are rounded as `edgekit serve` rounds them: embeddings to 7
    decimals, probabilities and scores to 6.
    """
    import json

    from edgekit.generation.serve import is_decoder

    if prompt is not None and audio is not None:
        raise click.UsageError("give --generate PROMPT or --audio FILE.wav, not both")
    if prompt is not None or audio is not None or is_decoder(bundle_path):
        if prompt is None and audio is None and not check:
            raise click.UsageError("a decoder takes --generate PROMPT (or --check); a speech model --audio FILE.wav")
        if num_beams is not None:
            try:
                given = json.loads(gen_options) if gen_options else {}
            except ValueError:
                given = None  # _generate says what is wrong with --options
            if isinstance(given, dict):
                gen_options = json.dumps({**given, "num_beams": num_beams})
        _generate(bundle_path, prompt, audio, max_new_tokens, gen_options, stream, threads, variant, digest, check)
        return

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


def _generate(
    path: Path,
    prompt: str | None,
    audio: str | None,
    max_new_tokens: int,
    options: str | None,
    stream: bool,
    threads: int | None,
    variant: str | None,
    digest: str | None,
    check: bool,
) -> None:
    """``run --generate``: a decoder artifact or bundle continues ``prompt`` (verified files, no torch);
    ``--check``: a bundle's recorded greedy continuations are generated again and must be identical; ``--audio``:
    a speech recognition artifact transcribes a WAV file."""
    import json
    import sys
    import time

    from edgekit.errors import InputError
    from edgekit.generation.serve import load_generator
    from edgekit.tasks import get_task

    try:
        extra = json.loads(options) if options else {}
    except ValueError as err:
        raise InputError(f"--options is not JSON ({err})") from None
    if not isinstance(extra, dict):
        raise InputError("--options must be a JSON object")
    gen, manifest = load_generator(path, threads=threads or 2, variant=variant, digest=digest)
    speech = get_task(manifest.get("task") or "text-generation").modality == "audio"  # audio in, a transcript out
    if speech and (prompt is not None or check):
        raise InputError(f"{path}: a speech recognition model transcribes --audio FILE.wav (no --generate, --check)")
    if audio is not None and not speech:
        raise InputError(f"{path}: --audio takes a speech recognition artifact; this one generates text (--generate)")
    if check:
        from edgekit.generation.bundle import FILE

        desc = json.loads((Path(path) / FILE).read_text()) if (Path(path) / FILE).is_file() else None
        if desc is None:
            raise InputError(f"{path}: --check needs a decoder bundle (its recorded continuations)")
        ref = desc["reference"]
        got = [gen.generate(p, max_new_tokens=ref["max_new_tokens"]) for p in ref["prompts"]]
        want = ref["greedy"][manifest["name"]]
        same = sum(a == b for a, b in zip(got, want))
        click.echo(json.dumps({"variant": manifest["name"], "check": {"reproduced": same, "of": len(want)}}))
        if same != len(want):
            raise GateFailed(f"{manifest['name']}: {len(want) - same} of {len(want)} greedy continuations differ")
        return
    source = audio if speech else prompt
    assert source is not None
    opts = {"max_new_tokens": max_new_tokens, **extra}
    t0 = time.perf_counter()
    pieces: list[str] = []
    stats: dict = {}
    for piece in gen.stream(source, stats, **opts):
        pieces.append(piece)
        if stream:
            sys.stdout.write(piece)
            sys.stdout.flush()
    text = "".join(pieces)
    n, reason = stats["completion_tokens"], stats["finish_reason"]
    if stream:
        sys.stdout.write("\n")
        return
    click.echo(
        json.dumps(
            {
                "artifact": manifest["name"],
                "precision": manifest["precision"],
                ("audio" if speech else "prompt"): source,
                "text": text.strip() if speech else text,
                "completion_tokens": n,
                "finish_reason": reason,
                "ms": round((time.perf_counter() - t0) * 1000, 3),
            }
        )
    )
