"""`edgekit diff`: per-layer error of one model file against another."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli.common import claim_output, is_stdout, output_options, write_output


@click.command()
@click.argument("reference", type=click.Path(path_type=Path))
@click.argument("candidate", type=click.Path(path_type=Path))
@click.option(
    "--inputs",
    "inputs_file",
    type=click.Path(path_type=Path),
    help="An .npz of named input arrays; default: the inputs recorded in an artifact's selfcheck.npz.",
)
@click.option("--worst", type=click.IntRange(min=1), help="Only the N layers with the lowest SNR.")
@click.option(
    "--json",
    "json_out",
    is_flag=False,
    flag_value="-",
    type=click.Path(path_type=Path),
    help="Write every row as JSON to this file; `--json` alone or `--json -` prints it on stdout instead of the "
    "table (put --json after REFERENCE and CANDIDATE).",
)
@click.option("--overwrite", is_flag=True, help="Replace an earlier edgekit JSON at --json.")
@click.option("--threads", "-t", default=2, show_default=True, type=click.IntRange(min=1))
@output_options()
def diff(reference, candidate, inputs_file, worst, json_out, overwrite, threads, console):
    """Per-layer error of CANDIDATE against REFERENCE (e.g. int8 against fp32).

    Both are model files or artifact directories of one format (ONNX or
    TFLite). Every float tensor the two graphs share by name is compared on
    the same inputs: SNR in dB (higher is better; below ~20 dB a layer is
    visibly damaged), relative MSE and cosine, in graph order, so the first
    layer whose SNR falls is where the error starts.
    """
    import json
    from dataclasses import replace

    from edgekit.measure.layer_diff import json_rows, layer_diff, text_table
    from edgekit.measure.layer_diff import worst as lowest
    from edgekit.output import stamped

    claim_output(json_out, overwrite)
    if is_stdout(json_out):
        console = replace(console, json=True)  # stdout holds the JSON: no table there
    paths = [_model_file(p) for p in (reference, candidate)]
    feeds = _diff_feeds(inputs_file, [reference, candidate])
    rows = layer_diff(paths[0], paths[1], feeds, threads)
    console.result(text_table(sorted(lowest(rows, worst), key=lambda r: r["index"]) if worst else rows))
    if json_out:
        doc = stamped({"reference": str(paths[0]), "candidate": str(paths[1]), "layers": json_rows(rows)})
        write_output(json_out, json.dumps(doc, indent=2) + "\n", overwrite=overwrite, console=console)


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
        from edgekit.measure.model_files import load_inputs

        return [load_inputs(inputs_file)]
    for d in dirs:
        check = (d if d.is_dir() else d.parent) / selfcheck.FILE
        if check.is_file():
            return [case["in"] for case in selfcheck.load_cases(check)]
    raise InputError("no inputs: pass --inputs FILE.npz, or artifact directories (their selfcheck.npz is used)")
