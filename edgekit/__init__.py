"""edgekit: compress trained Transformers for edge devices.

``edgekit.compress(model, recipe, output)`` runs a recipe (as ``edgekit compress``) and returns its
report; ``edgekit.load(bundle)`` is the runtime API (see :mod:`edgekit.device.runtime_api`). Both are
imported on first use, so ``import edgekit`` stays light (a device imports it without torch).
"""

__version__ = "0.1.0"


def load(bundle, runtime=None, threads=None, variant=None, check=True):
    """Load a bundle for inference: ``.embed(texts)``, ``.classify(texts)``, ``.run(feeds)``."""
    from edgekit.device.runtime_api import load as _load

    return _load(bundle, runtime=runtime, threads=threads, variant=variant, check=check)


def load_generator(artifact, threads=2, engine="auto"):
    """Load a generative artifact (a compress output's ``onnx-*`` folder of a text-generation or
    text2text-generation model) for generation: ``.generate(prompt, max_new_tokens=32, do_sample=False,
    temperature=1.0, top_k=0, top_p=1.0, seed=None, num_beams=1, stop=())`` returns the text (an
    encoder-decoder also takes ``length_penalty``, ``no_repeat_ngram_size`` and ``early_stopping``),
    ``.stream(prompt, ...)`` yields it piece by piece. Every file is checked against the artifact's manifest
    first; no torch is imported."""
    from edgekit.generation.serve import open_generator, verified_artifact

    verified_artifact(artifact)
    return open_generator(artifact, threads=threads, engine=engine)


def compress(
    model,
    recipe=None,
    output=None,
    *,
    threads=None,
    seq_len=None,
    batch_size=None,
    progress=False,
    overwrite=False,
    **options,
) -> dict:
    """Run ``recipe`` (a built-in name, a YAML path or a :class:`edgekit.recipe.config.Recipe`; None: the
    default, ``fastest`` for a checkpoint and ``ptq-dynamic`` for a model file, as ``edgekit compress``) on ``model``
    (a checkpoint directory, the alias ``minilm``, or a float ``.onnx``/``.tflite`` file) into the directory
    ``output``, as ``edgekit compress`` does, and return the report (``report.json``'s content).

    ``threads``, ``seq_len`` and ``batch_size`` replace the recipe's bench settings; ``options`` are
    :func:`edgekit.pipeline.run.compress`'s keywords (``task``, ``calibration``, ``evaluation``,
    ``resume``, ``overrides``, ``inputs``). Errors are :mod:`edgekit.errors` exceptions (their
    ``exit_code`` says which kind); a failed run leaves ``output`` as it was."""
    from edgekit.errors import InputError
    from edgekit.pipeline.model_file import default_recipe
    from edgekit.pipeline.run import compress as _compress
    from edgekit.recipe.config import Recipe, load_recipe

    if output is None:
        raise InputError("edgekit.compress needs output=DIRECTORY")
    if recipe is None:
        recipe = default_recipe(model)
    loaded = recipe if isinstance(recipe, Recipe) else load_recipe(str(recipe))
    loaded = loaded.with_bench(threads=threads, seq_len=seq_len, batch_size=batch_size)
    return _compress(model, loaded, output, progress=progress, overwrite=overwrite, **options).report
