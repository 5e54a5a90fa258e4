"""`edgekit bundle`: package artifacts of a compress run into a deployable bundle."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli.common import output_options, refuse_stdout


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="The bundle directory to write.")
@click.option(
    "--artifact",
    "-a",
    "artifacts",
    multiple=True,
    help="An artifact of SOURCE to include (repeat); default: the fastest promotable one per format.",
)
@click.option("--archive", is_flag=True, help="Also write OUTPUT.tar.gz, one file to copy to a device.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an earlier edgekit output at OUTPUT (only the files edgekit wrote there, unchanged; "
    "your own files stay). Without it an existing output is refused.",
)
@output_options(json_help="Print one JSON document (path, digest, variants, why they were picked) on stdout.")
def bundle(source, output, artifacts, archive, overwrite, console):
    """Package artifacts of a compress run (SOURCE) into a deployable bundle.

    \b
    Without -a, each model format a bundle may carry (ONNX, TFLite, ...) gets its
    fastest artifact that the run marks promotable (not slower than the
    artifact it was quantized from) and whose fidelity, size and memory are
    within the recipe's budgets; what was picked, and why the others were
    left out, is printed. -a NAME (repeat) bundles exactly those artifacts.

    The bundle holds each chosen model file, the tokenizer (for the
    `tokenizers` library), the task's pre- and post-processing, each
    variant's outputs on reference texts recorded now, and the sha256 of
    every file. The first variant (the fastest) is the default one `edgekit run` loads.
    OUTPUT is built beside its final place and moved in whole; it may not be
    SOURCE or lie inside it.
    """
    from edgekit.pipeline.bundling import build_bundle, describe, select_artifacts

    refuse_stdout(output, "'--output' / '-o'", "a bundle")
    if (Path(source) / "report.json").is_file() and '"generative": true' in (Path(source) / "report.json").read_text():
        from edgekit.generation.bundle import build_decoder_bundle

        if archive:
            raise click.UsageError("--archive: decoder bundles are directories (copy the folder)")
        with console.results_only():
            desc = build_decoder_bundle(source, output, list(artifacts) or None, overwrite=overwrite)
        if console.json:
            console.emit_json({"path": str(output), "digest": desc["description_sha256"], "variants": desc["variants"]})
            return
        names = ", ".join(f"{v['name']} ({v['precision']}, {v['engine']})" for v in desc["variants"])
        console.result(f"wrote {desc['task']} bundle {output}: {names}; digest {desc['description_sha256']}")
        return
    selection = select_artifacts(source, list(artifacts) or None)
    with console.results_only():
        b = build_bundle(
            source, output, artifacts=selection.names, archive=archive, overwrite=overwrite, progress=console.progress
        )
    for line in selection.lines():  # once the bundle is made: a refused output stays a one-line error
        console.info(line)
    for name, fid in b.meta["reference"].get("fidelity", {}).items():
        console.detail(
            f"{name}: cosine to the fp32 PyTorch outputs on the reference inputs, mean {fid['cosine_mean']}, "
            f"worst {fid['cosine_min']}"
        )
    if console.json:
        console.emit_json(
            {
                "bundle": str(b.path),
                "archive": f"{b.path}.tar.gz" if archive else None,
                "name": b.name,
                "task": b.task,
                "digest": b.digest,
                "size_bytes": b.size_bytes,
                "variants": [
                    {"name": v.name, "format": v.format, "precision": v.precision, "size_bytes": v.size_bytes}
                    for v in b.variants
                ],
                "picked": selection.picked,
                "left_out": selection.passed_over,
                "default_choice": selection.default,
            }
        )
        return
    console.result(describe(b))
    if archive:
        console.note(f"wrote {b.path}.tar.gz")
