"""`edgekit finetune`: train the teacher to compress (a classification head on a labelled set)."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli.common import output_options, refuse_stdout


@click.command()
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
@output_options(json_help="Print the training record (settings, accuracies, history) as one JSON document.")
def finetune(base, dataset, output, epochs, batch_size, lr, max_len, seed, resume, overwrite, console):
    """Fine-tune BASE plus a classification head on a labelled set: the teacher to compress.

    BASE is a checkpoint directory, `minilm`, or `vit-tiny`: a small Vision
    Transformer built from a configuration in code and trained from scratch
    (e.g. `edgekit finetune vit-tiny --data digits`), or `sotu-llama`: a small
    Llama-style decoder language model (and its byte-level BPE tokenizer)
    trained from scratch on a text corpus (`edgekit finetune sotu-llama --data
    sotu`: the shipped State of the Union addresses; held-out perplexity is
    reported), or `sotu-bart`: a small BART encoder-decoder trained from scratch
    to restore punctuation and capitals (`--data sotu-punct`, built from the
    same speeches; test BLEU and chrF are reported).

    The result is a normal Hugging Face checkpoint directory with
    edgekit_training.json (settings, validation and test accuracy). It is
    cached: the same base, data and settings reuse the directory. Runs under
    torchrun (DistributedDataParallel) unchanged. The checkpoint is written
    beside its place and moved in whole; a directory edgekit did not make is
    never replaced. Training, validation and test evaluation show progress
    bars with an ETA on stderr (not with --quiet).
    """
    from dataclasses import replace

    from edgekit.data.datasets import load_dataset
    from edgekit.training.finetune import VISION_BASES, VISION_SETTINGS, finetune_classifier
    from edgekit.training.loop import TrainSettings

    refuse_stdout(output, "'--output' / '-o'", "the checkpoint")
    from edgekit.generation.text2text_train import SEQ2SEQ_BASES, SEQ2SEQ_SETTINGS, train_seq2seq
    from edgekit.generation.train import DECODER_BASES, DECODER_SETTINGS, train_decoder

    # generative models trained from scratch: (default data, default settings, trainer)
    generative = {b: ("sotu", DECODER_SETTINGS, train_decoder) for b in DECODER_BASES}
    generative.update({b: ("sotu-punct", SEQ2SEQ_SETTINGS, train_seq2seq) for b in SEQ2SEQ_BASES})
    if base in generative:
        default_data, defaults, train = generative[base]
        data = default_data if dataset == "spam" else dataset  # spam is the classifiers' default
        out = output or Path.home() / ".cache" / "edgekit" / "teachers" / f"{base}-{Path(data).name}"
        given = {"epochs": epochs, "batch_size": batch_size, "lr": lr}
        settings = replace(defaults, **{k: v for k, v in given.items() if v is not None}, seed=seed)
        with console.results_only():
            record = train(
                base,
                data,
                Path(out),
                settings=settings,
                progress=console.progress,
                resume=resume,
                overwrite=overwrite or output is None,
            )
        if console.json:
            console.emit_json({"checkpoint": str(out), **record})
            return
        state = "cached" if record["cached"] else "trained"
        if "test_bleu" in record:
            console.result(f"{state}: {out} (test BLEU {record['test_bleu']:.2f}, chrF {record['test_chrf']:.2f})")
        else:
            console.result(f"{state}: {out} (held-out perplexity {record['heldout_perplexity']:.2f})")
        return
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
    with console.results_only():
        record = finetune_classifier(
            base,
            data,
            Path(out),
            settings=settings,
            progress=console.progress,
            resume=resume,
            overwrite=overwrite or output is None,
        )  # the default place is edgekit's cache
    state = "cached" if record["cached"] else "trained"
    if console.json:
        console.emit_json({"checkpoint": str(out), **record})
        return
    console.result(
        f"{state}: {out} (validation accuracy {record['val_accuracy']:.2f}%, "
        f"test accuracy {record['test_accuracy']:.2f}%)"
    )
