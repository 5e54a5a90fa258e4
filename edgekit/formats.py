"""Model file formats: one registry, the single source of truth for what a format is.

A format is declared once, as a :class:`Format`, by the plugin that brings it: the runtime
adapter module that runs it (present on devices and in the remote runner, where converters
are not), registered under the ``edgekit.formats`` entry-point group. Everything else asks
here: recipes validate ``export.format`` against :func:`names`, bundles accept the formats
with ``bundle=True``, ``edgekit bench`` recognises a file with :func:`by_suffix`, and the
quantize and search stages find a format's backend through ``quantizer``.

Adding an export format therefore means: a converter module, a runtime adapter module that
declares the :class:`Format`, their tests, and the entry-point lines; no core module changes.

Device-safe: the standard library only; what a declaration names by ``"module:attr"`` is
imported when first used.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import InputError, InternalError

GROUP = "edgekit.formats"
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")

Check = Callable[[Path], str | None]
TokenLimits = Callable[[Path], dict[str, int]]


def _resolve(ref: Any, what: str) -> Any:
    """A callable, or the object a ``"module:attr"`` string names (imported now)."""
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise InternalError(f"{what} {ref!r} cannot be imported: {err}") from None
    return obj


@dataclass(frozen=True)
class Format:
    """What edgekit knows about one model file format.

    ``name``: the name recipes, manifests, bundles and runtime adapters use (``"onnx"``).
    ``suffixes``: the file suffixes that mark a model of this format, the first one the
    artifact's file name (``model.onnx``). ``label``: how messages show it (``"ONNX"``).
    ``bundle``: whether bundles may carry it (``edgekit bundle`` picks it from a run).
    ``fixed_lengths``: its export makes one static-shape signature per ``export.seq_lens``
    bucket (so the recipe's lengths are checked against the model's positions).
    ``check``: ``(path) -> None | str``, why the file is not a model of this format (a cheap
    look before a runtime sees it). ``token_limits``: ``(path) -> {"vocab": n, "positions": n}``,
    what the model's embedding tables take, where its file shows it. ``quantizer``: the module
    of the quantize stage's backend for this format (``METHODS``, ``MODEL_FILE``, ``quantize``,
    and optionally ``space()``, the search stage's candidates, and ``sensitivity``, its
    float-fallback ranking). ``check``, ``token_limits`` and ``quantizer`` may be given as
    ``"module:attr"`` strings, imported on first use.
    """

    name: str
    suffixes: tuple[str, ...]
    label: str = ""
    bundle: bool = True
    fixed_lengths: bool = False
    check: Check | str | None = field(default=None, compare=False)
    token_limits: TokenLimits | str | None = field(default=None, compare=False)
    quantizer: str | None = None
    precision: Callable[[Path], str] | str | None = field(default=None, compare=False)
    companions: tuple[str, ...] = ()  # suffixes of the files beside the model that belong to it (IR's .bin)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise InternalError(f"format name {self.name!r} is not a plain lower-case name")
        if not self.suffixes or not all(s.startswith(".") and s == s.lower() for s in self.suffixes):
            raise InternalError(f"format {self.name!r}: suffixes must be lower-case and start with '.'")
        if not self.label:
            object.__setattr__(self, "label", self.name)

    @property
    def model_file(self) -> str:
        """The model's file name inside an artifact or bundle variant directory."""
        return f"model{self.suffixes[0]}"

    def model_in(self, path: Path) -> Path:
        """The model file ``path`` names (an artifact directory: its ``model.<suffix>``), checked to exist and to
        look like this format; ``FileNotFoundError`` / ``ValueError`` otherwise (what adapters raise on load)."""
        path = Path(path)
        if path.is_dir():
            path = path / self.model_file
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such model file")
        problem = self.problem(path)
        if problem:
            raise ValueError(f"{path}: {problem}")
        return path

    def problem(self, path: Path) -> str | None:
        """Why ``path`` is not a model of this format (None: it looks like one, or there is no check)."""
        if self.check is None:
            return None
        return _resolve(self.check, f"format {self.name!r} check")(path)

    def weights_precision(self, path: Path) -> str:
        """What the model file's weights are stored as (``int8``, ``int4``, ``fp16``, ``fp32``), read from the
        file by the declaration's ``precision`` reader; ``unknown`` without one."""
        if self.precision is None:
            return "unknown"
        return _resolve(self.precision, f"format {self.name!r} precision")(path)

    def limits(self, path: Path) -> dict[str, int]:
        """What the model at ``path`` takes as token ids and positions, where its file shows it."""
        if self.token_limits is None:
            return {}
        return _resolve(self.token_limits, f"format {self.name!r} token_limits")(path)

    def quantize_backend(self):
        """The quantize stage's backend module for this format (None: it has none)."""
        return None if self.quantizer is None else _resolve(self.quantizer, f"format {self.name!r} quantizer")


_REGISTERED: dict[str, Format] = {}  # formats registered in-process (register()), beside the entry points


def _declared() -> dict[str, Format]:
    from edgekit.plugins import declared_formats

    found: dict[str, Format] = {}
    for key, fmt in declared_formats().items():
        if not isinstance(fmt, Format):
            raise InternalError(f"{GROUP} entry point {key!r} is a {type(fmt).__name__}, not an edgekit Format")
        if fmt.name != key:
            raise InternalError(f"{GROUP} entry point {key!r} declares the format {fmt.name!r}; the names must match")
        found[key] = fmt
    return found


def _all() -> dict[str, Format]:
    table = _declared()
    for name, fmt in _REGISTERED.items():
        if name in table and table[name] != fmt:
            raise InternalError(f"format {name!r} is registered twice, differently")
        table[name] = fmt
    owner: dict[str, str] = {}
    for fmt in table.values():
        for suffix in fmt.suffixes:
            if owner.setdefault(suffix, fmt.name) != fmt.name:
                raise InternalError(f"formats {owner[suffix]!r} and {fmt.name!r} both claim the suffix {suffix!r}")
    return table


def register(fmt: Format) -> Format:
    """Register ``fmt`` in this process (plugins normally declare theirs as an ``edgekit.formats``
    entry point). Registering the same declaration twice is harmless; a different one under a
    taken name, or a suffix another format has, is an :class:`InternalError`."""
    if fmt.name in _REGISTERED and _REGISTERED[fmt.name] != fmt:
        raise InternalError(f"format {fmt.name!r} is registered twice, differently")
    _REGISTERED[fmt.name] = fmt
    try:
        _all()
    except InternalError:
        del _REGISTERED[fmt.name]
        raise
    return fmt


def unregister(name: str) -> None:
    """Forget a format :func:`register` added (entry-point formats stay)."""
    _REGISTERED.pop(name, None)


def all_formats() -> list[Format]:
    """Every known format, by name."""
    table = _all()
    return [table[n] for n in sorted(table)]


def names(*, bundled: bool = False) -> tuple[str, ...]:
    """The known format names, sorted; ``bundled``: only those bundles may carry."""
    return tuple(f.name for f in all_formats() if f.bundle or not bundled)


def get(name: str) -> Format:
    """The format called ``name``; an unknown one is an :class:`InputError` naming the known ones."""
    table = _all()
    if name not in table:
        raise InputError(f"unknown model format {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def find(name: object) -> Format | None:
    """The format called ``name``, or None (for checking untrusted values such as a bundle's)."""
    return _all().get(name) if isinstance(name, str) else None


def by_suffix(path: str | Path) -> Format | None:
    """The format whose suffix ``path`` has (case-insensitive), or None."""
    suffix = Path(path).suffix.lower()
    return next((f for f in all_formats() if suffix in f.suffixes), None)


def suffixes() -> tuple[str, ...]:
    """Every known model file suffix, in format-name order."""
    return tuple(s for f in all_formats() for s in f.suffixes)


def label(name: str) -> str:
    """How messages show the format ``name`` (its own name when it is not a known format)."""
    fmt = find(name)
    return fmt.label if fmt else name


def either(items: Iterable[str]) -> str:
    """``["a", "b", "c"]`` -> ``"a, b or c"``."""
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def describe(formats: Iterable[str]) -> str:
    """``{"onnx", "tflite"}`` -> ``"ONNX or TFLite"``; three or more: ``"ONNX, OpenVINO IR or TFLite"``."""
    return either(label(f) for f in sorted(formats))


def model_size(path: Path) -> int:
    """Bytes of the model file ``path`` with the files its format keeps beside it (an IR's ``.bin``)."""
    fmt = by_suffix(path)
    extra = [path.with_suffix(c) for c in (fmt.companions if fmt is not None else ())]
    return path.stat().st_size + sum(p.stat().st_size for p in extra if p.is_file())
