"""`edgekit bench`: benchmark model files, artifact directories or a bundle (here or over SSH)."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli.common import claim_output, describe_run, is_stdout, output_options, write_output


def _int_list(ctx, param, value):
    try:
        items = [int(v) for v in str(value).split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected whole numbers separated by commas, got {value!r}") from None
    if not items or min(items) < 1:
        raise click.BadParameter(f"expected positive whole numbers, got {value!r}")
    return items


def _named(kind: str, parse):
    def callback(ctx, param, values):
        out = {}
        for item in values:
            name, sep, text = item.partition("=")
            if not sep or not name.strip():
                raise click.BadParameter(f"expected NAME={kind}, got {item!r}")
            try:
                out[name.strip()] = parse(text)
            except ValueError:
                raise click.BadParameter(f"{item!r}: {kind} is not {parse.__doc__}") from None
        return out

    return callback


def parse_shape(text: str) -> tuple[int, ...]:
    """whole numbers >= 1 separated by commas (empty: a scalar)"""
    dims = tuple(int(d) for d in text.split(",") if d.strip())
    if any(d < 1 for d in dims):
        raise ValueError(text)
    return dims


def parse_value(text: str) -> float:
    """a number"""
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(text)
    return value


def input_options(f):
    """``--shape`` and ``--value``: what a user states about inputs synthesized from a model's specs."""
    f = click.option(
        "--value",
        "values",
        multiple=True,
        metavar="NAME=NUMBER",
        callback=_named("NUMBER", parse_value),
        help="Every element of input NAME takes this value (repeat), e.g. --value sr=16000.",
    )(f)
    return click.option(
        "--shape",
        "shapes",
        multiple=True,
        metavar="NAME=D0,D1,...",
        callback=_named("D0,D1,...", parse_shape),
        help="The whole shape of input NAME (repeat), e.g. --shape x=1,3,48,320; `NAME=` for a scalar.",
    )(f)


@click.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--runtime", help="Runtime adapter (see `edgekit runtimes`); default: the first that runs the format.")
@click.option(
    "--tokenizer",
    type=click.Path(path_type=Path),
    help="Tokenizer directory: time real text instead of inputs synthesized from the model's specs.",
)
@click.option("--texts", type=click.Path(path_type=Path), help="Texts to time with (with --tokenizer).")
@input_options
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
    help="Write the report JSON here (an existing file only with --overwrite, and only one edgekit wrote); "
    "`-` prints it on stdout instead of the table.",
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
@output_options(json_help="Print the report JSON on stdout instead of the table (as `-o -`).")
def bench(
    models,
    runtime,
    tokenizer,
    texts,
    shapes,
    values,
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
    console,
):
    """Benchmark model files (.onnx, .tflite) or edgekit artifact directories, side by side.

    Works on models edgekit did not make. Batch size, sequence length and
    threads take comma-separated lists: every combination is measured in the
    same run, all models interleaved at each point. Without --tokenizer or --inputs,
    inputs are synthesized from the model's declared input names, types and
    shapes: dynamic axis 0 (and any axis named like a batch) gets --batch-size,
    other dynamic axes --seq-len. Where that guess is wrong, state the input:
    --shape x=1,3,48,320 sets its whole shape, --value sr=16000 its value.
    A model that rejects the synthesized inputs exits 2 naming them.
    An artifact directory's recorded outputs (selfcheck.npz) are replayed
    first; a mismatch exits with code 3. TFLite models are first loaded in a
    child process, so a runtime that aborts cannot take edgekit down.

    Rows are named after the artifact directory, a file's name, or for a
    file named model.* its directory; where names would repeat, the path
    tells them apart. Precision is read from the model (int8 where it holds
    quantized weights or operators).

    \b
    A bundle (from `edgekit bundle`) is timed on its own reference texts, each
    variant checked against its recorded outputs first. Every variant whose
    runtime is installed is timed; the others are skipped with what they
    need (the report's `skipped`). With --target the bundle and a small
    runner are copied over SSH and run on the device; the report has the
    same schema, with `target` and `environment` naming it.
    """
    from dataclasses import replace

    from edgekit.measure.harness import BenchSettings
    from edgekit.output import stamped
    from edgekit.report.build import dumps, text_table

    claim_output(output, overwrite)  # refused now, not after the benchmark
    if is_stdout(output):
        console = replace(console, json=True)  # stdout holds the report: no table there
    from edgekit.data.feeds import InputOverrides

    overrides = InputOverrides(shapes=shapes, values=values)  # with --inputs/--tokenizer: refused by bench_file
    settings = BenchSettings(batch_size=batch_size[0], seq_len=seq_len[0], threads=threads[0], warmup=warmup, runs=runs)
    sweeps = {"batch_sizes": batch_size, "seq_lens": seq_len, "threads": threads}
    with console.results_only():
        report = _measure(
            models,
            settings,
            sweeps,
            runtime,
            tokenizer,
            texts,
            inputs_file,
            variants,
            target,
            identity,
            ssh_options,
            remote_python,
            remote_dir,
            console,
            overrides,
        )
    for s in report.get("skipped", []):
        console.warn(f"skipped {s['name']}: {s['reason']}")
    describe_run(console, report)
    console.result(text_table(report))
    text = dumps(stamped(report))
    if output:
        write_output(output, text, overwrite=overwrite, console=console)
    if console.json and not is_stdout(output):
        console.emit_json(None, text)


def _measure(
    models,
    settings,
    sweeps,
    runtime,
    tokenizer,
    texts,
    inputs_file,
    variants,
    target,
    identity,
    ssh_options,
    remote_python,
    remote_dir,
    console,
    overrides=None,
) -> dict:
    bundles = [m for m in models if _is_bundle(m)]
    if bundles:
        if len(models) != 1 or tokenizer or texts or inputs_file or overrides:
            raise click.UsageError(
                "a bundle is benchmarked alone, on its own texts (no --tokenizer/--texts/--inputs/--shape/--value)"
            )
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
            console,
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
            progress=console.progress,
            overrides=overrides,
            **sweeps,
        )
    return report


def _is_bundle(path: Path) -> bool:
    from edgekit.device.bundle import ARCHIVE_SUFFIXES, BUNDLE_FILE

    return (path / BUNDLE_FILE).is_file() or (path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES))


def _bench_bundle(
    path, settings, sweeps, runtime, variants, target, identity, ssh_options, remote_python, remote_dir, console
):
    if target is None:
        from edgekit.device.bench import bench_bundle

        return bench_bundle(path, settings, variants=variants, runtime=runtime, progress=console.progress, **sweeps)
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
    console.info(f"benchmarking on {target} ...")
    return runner.bench(open_bundle(path), options)
