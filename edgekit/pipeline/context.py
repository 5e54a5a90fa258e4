"""The explicit context a stage runs in (no global state)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from edgekit.checkpoint import Checkpoint
from edgekit.data.calibration import TextData
from edgekit.data.feeds import tokenize
from edgekit.errors import ParityError
from edgekit.measure.fidelity import cosine_rows

PARITY_BATCHES = ((0, 8), (8, 16), (16, 17), (17, 18))  # two padded batches, two single texts


def feeds_digest(feeds: dict[str, np.ndarray]) -> str:
    """sha256 over every input's name, dtype, shape and bytes: the key of a cached reference output."""
    h = hashlib.sha256()
    for name, value in sorted(feeds.items()):
        arr = np.ascontiguousarray(value)
        h.update(f"{name}\0{arr.dtype.str}\0{arr.shape}\0".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def text_parity_feeds(tokenizer, texts, session, max_len: int = 128) -> list[dict[str, np.ndarray]]:
    """The parity batches of ``texts`` (:data:`PARITY_BATCHES`) tokenized for ``session``, capped at
    ``max_len`` tokens and at its longest sequence bucket."""
    limit = min(max_len, getattr(session, "max_seq_len", None) or max_len)
    return [tokenize(tokenizer, texts[lo:hi] or texts[:1], session.inputs, limit) for lo, hi in PARITY_BATCHES]


def text_batches_fixed(tokenizer, texts, specs, seq_len: int, batch_size: int) -> list[dict[str, np.ndarray]]:
    """``texts`` tokenized for ``specs``, every row padded to ``seq_len`` tokens, ``batch_size`` a batch."""
    return [
        tokenize(tokenizer, texts[i : i + batch_size], specs, seq_len, fixed=True)
        for i in range(0, len(texts), batch_size)
    ]


@dataclass
class StageContext:
    checkpoint: Checkpoint
    data: TextData
    recipe_digest: str
    threads: int = 2
    progress: bool = True
    seq_len: int = 128  # the shape latency is measured at (the recipe's bench stage)
    artifacts: dict = field(default_factory=dict)  # the artifacts made so far, by name (read-only for stages)
    root: Checkpoint | None = None  # the checkpoint the recipe started from (the teacher), when this is a student's
    run_root: object = None  # where training stages keep their resumable run directories
    resume: bool = False  # training stages continue interrupted runs

    @property
    def teacher(self) -> Checkpoint:
        return self.root or self.checkpoint

    def for_checkpoint(self, checkpoint: Checkpoint) -> StageContext:
        """The context for stages working on ``checkpoint`` (a student): its own PyTorch reference."""
        from dataclasses import replace

        return replace(self, checkpoint=checkpoint, root=self.teacher, _reference={}, _reference_session=None)

    _reference: dict = field(default_factory=dict)
    _reference_session: object = None

    def reference_session(self):
        if self._reference_session is None:
            from edgekit_runtimes.torch_eager import TorchEagerAdapter

            self._reference_session = TorchEagerAdapter().from_checkpoint(self.checkpoint, self.threads)
        return self._reference_session

    def length_buckets(self) -> list[int]:
        """Sequence-length buckets for a static-shape export (``seq_lens: auto``), chosen from the lengths of the
        calibration and held-out texts: every power of two from the one that holds the shortest tenth of them
        up to the bench stage's sequence length, which is always one (at least 8 tokens)."""
        texts = [t for t in [*self.data.calibration, *self.data.heldout] if isinstance(t, str)]
        if not texts:
            return [self.seq_len]
        lengths = [len(ids) for ids in self.checkpoint.tokenizer(texts, truncation=True)["input_ids"]]
        low = max(8, int(np.percentile(lengths, 10)))
        bucket = 1 << (low - 1).bit_length()
        out = []
        while bucket < self.seq_len:
            out.append(bucket)
            bucket *= 2
        return [*out, self.seq_len]

    def parity_feeds(self, session, max_len: int = 128) -> list[dict[str, np.ndarray]]:
        """Held-out token batches shaped for ``session`` (capped at its longest sequence bucket)."""
        return text_parity_feeds(self.checkpoint.tokenizer, self.data.heldout, session, max_len)

    def output_of(self, outputs: dict[str, np.ndarray], what: str = "output") -> np.ndarray:
        """The output parity is checked on: the task's (``embeddings``, ``logits``...)."""
        name = self.checkpoint.task_def.output_name
        if name not in outputs:
            raise ParityError(f"{what}: output {name!r} missing (has {sorted(outputs)})")
        return outputs[name]

    def calibration_batches(self, specs, samples: int, batch_size: int, seq_len: int) -> list[dict[str, np.ndarray]]:
        """Calibration inputs for static quantization: the first ``samples`` calibration texts, tokenized
        for ``specs`` at ``seq_len`` tokens (padded), ``batch_size`` texts a batch."""
        return text_batches_fixed(
            self.checkpoint.tokenizer, self.data.calibration[:samples], specs, seq_len, batch_size
        )

    def reference_outputs(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        key = feeds_digest(feeds)
        if key not in self._reference:
            ref = self.reference_session()
            typed = {s.name: feeds[s.name].astype(s.dtype) for s in ref.inputs if s.name in feeds}
            self._reference[key] = next(iter(ref.run(typed).values()))
        return self._reference[key]

    def check_parity(self, session, what: str, atol: float, min_cosine: float) -> dict:
        """Compare ``session`` with the PyTorch reference on held-out texts; raise on mismatch."""
        worst_abs, worst_cos = 0.0, 1.0
        for feeds in self.parity_feeds(session):
            got = self.output_of(session.run(feeds), what)
            ref = self.reference_outputs(feeds)
            if got.shape != ref.shape:
                raise ParityError(f"{what}: output shape {got.shape} != reference {ref.shape}")
            worst_abs = max(worst_abs, float(np.abs(got - ref).max()))
            worst_cos = min(worst_cos, float(cosine_rows(ref, got).min()))
        result = {"max_abs_diff": worst_abs, "min_cosine": worst_cos, "atol": atol, "required_min_cosine": min_cosine}
        if not np.isfinite(worst_abs) or worst_abs > atol or worst_cos < min_cosine:
            raise ParityError(
                f"{what}: does not match the PyTorch reference (max abs diff {worst_abs:.2e} > {atol:.0e} "
                f"or min cosine {worst_cos:.6f} < {min_cosine})"
            )
        return result
