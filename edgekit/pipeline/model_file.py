"""Run a recipe on a model file edgekit did not make (``edgekit compress model.onnx``).

A plain ``.onnx`` or ``.tflite`` has no checkpoint, tokenizer or task behind it. It is the recipe's
first artifact (named as the recipe's export stage would name it, e.g. ``onnx-fp32``, which that export
stage then is), and its own runtime is the parity reference: every stage's output is compared with the
file's outputs on the same inputs. Inputs are synthesized from the model's specs as ``edgekit bench``
synthesizes them (``--shape``/``--value`` state what cannot be guessed), or are the user's own
(``--inputs FILE.npz``). Quantize, optimize and search stages take the file; stages that need a
checkpoint (export to another format, training) are refused before any work, with exit 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import formats
from edgekit.artifact import Artifact, sha256_file
from edgekit.data.feeds import InputOverrides, check_feeds, synthesize, tokenize
from edgekit.errors import InputError, RecipeError
from edgekit.measure.harness import run_synthesized
from edgekit.pipeline.context import feeds_digest, text_batches_fixed, text_parity_feeds
from edgekit.recipe.config import BenchConfig, ExportConfig, Recipe

PARITY_SEEDS = 4  # parity and fidelity batches synthesized from the model's specs, one seed each
CALIBRATION_SEED = 1000  # calibration batches use other seeds than the parity batches they are judged on


def is_model_file(path: str | Path) -> bool:
    """``path`` is a file of a registered model format (by its suffix), not a checkpoint directory."""
    p = Path(path)
    return p.is_file() and any(p.name.lower().endswith(f.suffixes) for f in formats.all_formats() if f.suffixes)


def default_recipe(model: str | Path) -> str:
    """The recipe ``compress`` runs when none is named: for a checkpoint ``fastest`` (every installed format
    searched for the fastest artifact within the fidelity budget), for a model file ``ptq-dynamic``."""
    if is_model_file(model):
        return "ptq-dynamic"
    import json

    from edgekit.tasks import get_task, infer_task

    try:  # the task's own default (decoders: `decoder`); a config that cannot be read fails later, clearly
        config = json.loads((Path(model) / "config.json").read_text(encoding="utf-8"))
        return get_task(infer_task(config)).default_recipe
    except (OSError, ValueError, AttributeError):
        return "fastest"


def file_format(path: Path) -> str:
    from edgekit.measure.model_info import detect_format

    return detect_format(path)


def file_recipe(recipe: Recipe, fmt: str) -> tuple[Recipe, str]:
    """``recipe`` for a ``fmt`` model file: its leading export stage to ``fmt`` is the file itself (its name
    names the file's artifact); what else needs a checkpoint is refused now, with what to run instead."""
    from edgekit.stages import CHECKPOINT, default_name, stage_io

    stages = list(recipe.stages)
    root = f"{fmt}-fp32"
    first = next((i for i, s in enumerate(stages) if not isinstance(s, BenchConfig)), None)
    export = stages[first] if first is not None else None
    if first is not None and isinstance(export, ExportConfig) and export.format == fmt:
        root = export.name or default_name(export, fmt)
        del stages[first]
    for i, cfg in enumerate(stages):
        if isinstance(cfg, BenchConfig):
            continue
        if stage_io(cfg).takes == frozenset({CHECKPOINT}):
            raise RecipeError(
                f"recipe {recipe.name}: stages.{i} ({cfg.kind}) needs a Hugging Face checkpoint, not a model file "
                f"({formats.get(fmt).label}); a model file takes quantize and optimize stages "
                "(e.g. -r ptq-dynamic or -r ptq-static)"
            )
    data = recipe.model_dump(mode="json", exclude_none=True)
    data["stages"] = [s.model_dump(mode="json", exclude_none=True) for s in stages]
    from edgekit.recipe.config import recipe_from_dict

    return recipe_from_dict(data, recipe.name), root


def file_artifact(path: Path, name: str, fmt: str, precision: str) -> Artifact:
    """The model file as the recipe's first artifact (not copied: it stays where it is)."""
    return Artifact(
        name=name,
        path=path.parent,
        format=fmt,
        precision=precision,
        model_file=path.name,
        digest=sha256_file(path),
        task=None,  # type: ignore[arg-type]  # a foreign file has no task: its outputs are compared as they are
        meta={"size_bytes": formats.model_size(path)},
    )


def outputs_as_rows(outputs: dict[str, np.ndarray]) -> np.ndarray:
    """A model's outputs as one float matrix, one row per input row: every output (in name order) flattened
    per row and side by side; outputs that do not share a batch axis, flattened into one row."""
    arrays = [np.asarray(outputs[k], dtype=np.float64) for k in sorted(outputs)]
    rows = {a.shape[0] if a.ndim else None for a in arrays}
    if len(rows) == 1 and None not in rows:
        return np.concatenate([a.reshape(a.shape[0], -1) for a in arrays], axis=1)
    return np.concatenate([a.reshape(-1) for a in arrays])[None, :]


@dataclass
class FileContext:
    """What a stage needs, for a model file: the file on its runtime as the parity reference, and inputs
    synthesized from its specs (or the user's own). The counterpart of
    :class:`edgekit.pipeline.context.StageContext` for a recipe that starts from a checkpoint."""

    model: Path
    fmt: str
    recipe_digest: str
    threads: int = 2
    progress: bool = True
    seq_len: int = 128
    batch_size: int = 1
    overrides: InputOverrides = field(default_factory=InputOverrides)
    feeds: dict | None = None  # --inputs: the user's own arrays, the only batch used
    tokenizer: Any = None  # --tokenizer: a text model fed real text (calibration and held-out texts)
    data: Any = None  # with the tokenizer: edgekit.data.calibration.TextData
    artifacts: Mapping[str, Any] = field(default_factory=dict)  # made so far, and the file itself
    checkpoint: None = None
    resume: bool = False
    _reference: dict = field(default_factory=dict)
    _session: Any = None

    @property
    def inputs_source(self) -> str:
        if self.tokenizer is not None:
            return f"{self.data.heldout_source} through the given tokenizer"
        return "the given inputs" if self.feeds is not None else "inputs synthesized from the model's specs"

    def reference_session(self):
        if self._session is None:
            from edgekit.plugins import load_session, runtime_for_format

            self._session = load_session(runtime_for_format(self.fmt), self.model, self.threads)
        return self._session

    def _feeds(self, session, seed: int) -> dict[str, np.ndarray]:
        if self.tokenizer is not None:
            texts = self.data.heldout[seed * 8 : seed * 8 + 8] or self.data.heldout[:1]
            return tokenize(self.tokenizer, list(texts), session.inputs, self.seq_len)
        if self.feeds is not None:
            return check_feeds(self.feeds, session.inputs)
        return synthesize(session.inputs, self.batch_size, self.seq_len, seed=seed, overrides=self.overrides)

    def timing_feeds(self, session) -> dict[str, np.ndarray]:
        """The inputs a latency is measured on: what ``edgekit bench`` feeds this file."""
        return self._feeds(session, 0)

    def check_inputs(self) -> None:
        """The file runs on the inputs this run will use: else exit 2 naming them, before any stage."""
        session = self.reference_session()
        feeds = self._feeds(session, 0)
        if self.feeds is None:
            run_synthesized(session, feeds, str(self.model))
        else:
            try:
                session.run(feeds)
            except Exception as err:  # noqa: BLE001 - the runtime rejected the user's arrays
                raise InputError(f"{self.model}: the runtime rejected the given inputs: {err}") from None

    def parity_feeds(self, session, max_len: int = 128) -> list[dict[str, np.ndarray]]:
        if self.tokenizer is not None:  # as a checkpoint's: two padded batches, two single texts
            return text_parity_feeds(self.tokenizer, self.data.heldout, session, max_len)
        if self.feeds is not None:
            return [check_feeds(self.feeds, session.inputs)]
        return [self._feeds(session, seed) for seed in range(PARITY_SEEDS)]

    def calibration_batches(self, specs, samples: int, batch_size: int, seq_len: int) -> list[dict[str, np.ndarray]]:
        """Calibration inputs: the given inputs, or ``samples`` rows synthesized from the specs (standard
        normal floats: a guess at a model's input range, stated in the report); with a tokenizer, the
        calibration texts."""
        if self.tokenizer is not None:
            return text_batches_fixed(self.tokenizer, self.data.calibration[:samples], specs, seq_len, batch_size)
        if self.feeds is not None:
            return [check_feeds(self.feeds, specs)]
        n = max(1, samples // max(1, self.batch_size))
        return [
            synthesize(specs, self.batch_size, self.seq_len, seed=CALIBRATION_SEED + i, overrides=self.overrides)
            for i in range(n)
        ]

    def output_of(self, outputs: dict[str, np.ndarray], what: str = "output") -> np.ndarray:
        return outputs_as_rows(outputs)

    def reference_outputs(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        key = feeds_digest(feeds)
        if key not in self._reference:
            self._reference[key] = outputs_as_rows(self.reference_session().run(feeds))
        return self._reference[key]

    def check_parity(self, session, what: str, atol: float, min_cosine: float) -> dict:
        from edgekit.pipeline.context import StageContext

        return StageContext.check_parity(self, session, what, atol, min_cosine)  # type: ignore[arg-type]

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
