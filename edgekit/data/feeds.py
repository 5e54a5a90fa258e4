"""Building model inputs: from text through a tokenizer, or synthesized from specs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgekit.errors import InputError

_NUMERIC = {"float32", "float16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool"}


def _static_len(specs, axis: int) -> int | None:
    for s in specs:
        if len(s.shape) > axis and isinstance(s.shape[axis], int):
            return s.shape[axis]
    return None


def tokenize(tokenizer, texts: Sequence[str], specs, seq_len: int, fixed: bool = False) -> dict[str, np.ndarray]:
    """Token feeds for ``texts`` shaped and typed as ``specs`` declare.

    Pads to the longest text (capped at ``seq_len``) unless ``fixed`` or the
    model has a static sequence axis, in which case every row has that length.
    """
    static = _static_len(specs, 1)
    length = static or seq_len
    enc = tokenizer(
        list(texts),
        padding="max_length" if (fixed or static) else "longest",
        truncation=True,
        max_length=length,
        return_tensors="np",
    )
    feeds = {}
    for spec in specs:
        if spec.name not in enc:
            raise InputError(f"model input {spec.name!r} is not produced by the tokenizer")
        feeds[spec.name] = np.ascontiguousarray(enc[spec.name].astype(spec.dtype))
    return feeds


def concat_rows(chunks: Sequence[np.ndarray]) -> np.ndarray:
    """Batches of outputs as one array, row after row. Per-token outputs of batches padded to different
    lengths are padded with zeros to the longest (task heads zero the padding positions themselves)."""
    if len({c.shape[1:] for c in chunks}) <= 1:
        return np.concatenate(chunks)
    shape = tuple(max(c.shape[a] for c in chunks) for a in range(1, chunks[0].ndim))
    out = []
    for c in chunks:
        pad = [(0, 0)] + [(0, n - m) for n, m in zip(shape, c.shape[1:])]
        out.append(np.pad(c, pad))
    return np.concatenate(out)


def token_spans(tokenizer, items: Sequence, max_length: int) -> list[tuple[list[tuple[int, int]], list[int | None]]]:
    """For each item as the model sees it (truncated to ``max_length`` tokens): every token's character span
    in its text, and which text of the item it is from (0, 1 for the second of a pair; None for special
    tokens). Works with a Hugging Face fast tokenizer and with the device's TextEncoder."""
    if hasattr(tokenizer, "spans"):
        return tokenizer.spans(list(items), max_length)
    enc = tokenizer(list(items), truncation=True, max_length=max_length, return_offsets_mapping=True)
    return [([tuple(o) for o in enc["offset_mapping"][i]], enc.sequence_ids(i)) for i in range(len(items))]


def text_batches(tokenizer, texts: Sequence[str], specs, seq_len: int, batch_size: int) -> Iterator[dict]:
    static_batch = _static_len(specs, 0)
    step = static_batch or batch_size
    for i in range(0, len(texts), step):
        chunk = list(texts[i : i + step])
        if static_batch and len(chunk) < static_batch:
            chunk += [chunk[-1]] * (static_batch - len(chunk))
        yield tokenize(tokenizer, chunk, specs, seq_len)


@dataclass(frozen=True)
class InputOverrides:
    """What a user states about a model's inputs where synthesis cannot guess (``--shape``, ``--value``):
    an input's whole shape, and a value every element of it takes (a sample rate, a flag)."""

    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.shapes or self.values)

    def check(self, specs, where: str = "the model") -> None:
        """Every stated name is an input of ``specs``, and every stated shape fits its declared one."""
        by_name = {s.name: s for s in specs}
        for flag, names in (("--shape", self.shapes), ("--value", self.values)):
            unknown = sorted(set(names) - set(by_name))
            if unknown:
                raise InputError(
                    f"{flag} {unknown[0]}: {where} has no input {unknown[0]!r}; its inputs: "
                    + ", ".join(describe_spec(s) for s in specs)
                )
        for name, shape in self.shapes.items():
            spec = by_name[name]
            fixed = [(a, d) for a, d in enumerate(spec.shape) if isinstance(d, int) and d > 0]
            if len(shape) != len(spec.shape) or any(shape[a] != d for a, d in fixed if a < len(shape)):
                raise InputError(
                    f"--shape {name}={','.join(map(str, shape)) or '(scalar)'} does not fit {where}'s "
                    f"input {describe_spec(spec)}"
                )

    def as_json(self) -> dict:
        return {"shapes": {k: list(v) for k, v in self.shapes.items()}, "values": dict(self.values)}

    @classmethod
    def from_json(cls, data: dict | None) -> InputOverrides:
        data = data or {}
        return cls(
            shapes={k: tuple(int(x) for x in v) for k, v in data.get("shapes", {}).items()},
            values={k: float(v) for k, v in data.get("values", {}).items()},
        )


def describe_spec(spec) -> str:
    """``name [dim, ...] dtype`` as the model declares it (dynamic dims by their names, or ``?``)."""
    dims = ", ".join(str(d) if isinstance(d, int) and d > 0 else str(d or "?") for d in spec.shape)
    return f"{spec.name} [{dims}] {spec.dtype}"


def synthesize(
    specs, batch_size: int, seq_len: int, seed: int = 0, overrides: InputOverrides | None = None
) -> dict[str, np.ndarray]:
    """Inputs for a model with no tokenizer, from its declared names, dtypes and shapes.

    A dynamic axis named like a batch (``batch``, ``batch_size``, ``N``), and any other dynamic axis 0,
    takes ``batch_size``; any other dynamic axis ``seq_len``. Integer inputs named like masks are ones,
    like token types zeros, other integers small ids; floats are standard normal. ``overrides`` states
    an input's shape or the value all its elements take, where these guesses are wrong.
    """
    overrides = overrides or InputOverrides()
    overrides.check(specs)
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        if spec.dtype not in _NUMERIC:
            raise InputError(f"cannot synthesize input {spec.name!r} of type {spec.dtype}; pass --tokenizer")
        shape = overrides.shapes.get(spec.name) or tuple(
            d if isinstance(d, int) and d > 0 else (batch_size if axis == 0 or _is_batch_dim(d) else seq_len)
            for axis, d in enumerate(spec.shape)
        )
        name = spec.name.lower()
        if spec.name in overrides.values:
            arr = np.full(shape, overrides.values[spec.name]).astype(spec.dtype)
        elif spec.dtype == "bool":
            arr = np.ones(shape, dtype=bool)
        elif spec.dtype.startswith(("int", "uint")):
            if "mask" in name:
                arr = np.ones(shape, dtype=spec.dtype)
            elif "type" in name or "position" in name and "ids" not in name:
                arr = np.zeros(shape, dtype=spec.dtype)
            elif "position" in name:
                arr = np.broadcast_to(np.arange(shape[-1]), shape).astype(spec.dtype)
            else:
                arr = rng.integers(1, 100, size=shape).astype(spec.dtype)
        else:
            arr = rng.standard_normal(shape).astype(spec.dtype)
        feeds[spec.name] = np.require(arr, requirements="C")  # ascontiguousarray makes a scalar 1-D
    return feeds


def _is_batch_dim(dim) -> bool:
    """A dynamic dimension whose name says it is the batch (``batch``, ``batch_size``, ``N``)."""
    return isinstance(dim, str) and ("batch" in dim.lower() or dim in ("N", "n"))


def check_feeds(feeds: dict[str, np.ndarray], specs) -> dict[str, np.ndarray]:
    """User-supplied inputs must match the model's declared names, dtypes and static dims."""
    names = {s.name for s in specs}
    missing = sorted(names - set(feeds))
    if missing:
        raise InputError(f"inputs file lacks model input(s) {', '.join(missing)}")
    unknown = sorted(set(feeds) - names)
    if unknown:
        raise InputError(f"inputs file has {', '.join(unknown)}, which the model does not take")
    for spec in specs:
        arr = feeds[spec.name]
        if arr.dtype.name != spec.dtype:
            raise InputError(f"input {spec.name!r} has dtype {arr.dtype.name}, the model takes {spec.dtype}")
        if len(arr.shape) != len(spec.shape) or any(
            isinstance(d, int) and d > 0 and d != n for d, n in zip(spec.shape, arr.shape)
        ):
            raise InputError(f"input {spec.name!r} has shape {list(arr.shape)}, the model takes {list(spec.shape)}")
    return {s.name: np.require(feeds[s.name], requirements="C") for s in specs}
