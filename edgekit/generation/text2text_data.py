"""Text-to-text pairs for encoder-decoders, built from text the project ships (no hub downloads).

``sotu-punct``: punctuation and capitalisation restoration (what a speech recogniser's raw output needs
before anyone reads it). The source is a passage of the State of the Union corpus lower-cased with its
punctuation removed; the target is the passage as written. Passages are runs of whole sentences of at
most :data:`MAX_WORDS` words. Train pairs come from the training speeches, test pairs from the held-out
ones (1985, 2005, 2015). Scored by BLEU and chrF (sacrebleu).

A directory with ``train.jsonl`` and ``test.jsonl`` (objects with ``source`` and ``target``) is a
user's own pair set.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from edgekit.errors import InputError
from edgekit.generation.corpus import corpus_files, documents

MAX_WORDS = 20
BUILTIN = {"sotu-punct": "sotu"}
_SENTENCE = re.compile(r"(?<=[.!?])(?<!Mr\.)(?<!Mrs\.)(?<!Dr\.)(?<!St\.)\s+(?=[A-Z\"'(])")
_PUNCT = re.compile(r"[.,;:!?\"()\[\]]|--|—|(?<!\w)'|'(?!\w)|(?<=\s)-|-(?=\s)")


def strip_punctuation(text: str) -> str:
    """``text`` lower-cased, its punctuation removed (in-word apostrophes and hyphens kept), spaces collapsed."""
    return " ".join(_PUNCT.sub(" ", text).lower().split())


def passages(doc: str, max_words: int = MAX_WORDS) -> list[str]:
    """Runs of consecutive sentences of ``doc`` with at most ``max_words`` words (longer sentences dropped)."""
    out: list[str] = []
    cur: list[str] = []
    n = 0
    for sent in _SENTENCE.split(doc):
        w = len(sent.split())
        if w > max_words:
            if cur:
                out.append(" ".join(cur))
            cur, n = [], 0
            continue
        if n + w > max_words and cur:
            out.append(" ".join(cur))
            cur, n = [], 0
        cur.append(sent)
        n += w
    if cur:
        out.append(" ".join(cur))
    return [p for p in out if len(p.split()) >= 3]


def pairs(name: str) -> tuple[list[dict], list[dict]]:
    """(train, test) pairs of a built-in set or of a directory with train.jsonl and test.jsonl."""
    if name in BUILTIN:
        train_file, test_file = corpus_files(BUILTIN[name])
        return _restore_pairs(train_file), _restore_pairs(test_file)
    d = Path(name)
    if d.is_dir() and (d / "train.jsonl").is_file() and (d / "test.jsonl").is_file():
        return read_jsonl(d / "train.jsonl"), read_jsonl(d / "test.jsonl")
    raise InputError(
        f"unknown text-to-text data {name!r}: give {', '.join(BUILTIN)} or a directory with train.jsonl and "
        "test.jsonl (objects with source and target)"
    )


def data_files(name: str) -> list[Path]:
    """The files ``name``'s pairs are built from (their digest keys the trained model's cache)."""
    if name in BUILTIN:
        return list(corpus_files(BUILTIN[name]))
    return [Path(name) / "train.jsonl", Path(name) / "test.jsonl"]


def _restore_pairs(path: Path) -> list[dict]:
    return [{"source": strip_punctuation(p), "target": p} for doc in documents(path) for p in passages(doc)]


def read_jsonl(path: Path, fields: tuple[str, ...] = ("source", "target")) -> list[dict]:
    """The objects of a JSON-lines file, each with the non-empty string ``fields`` (only those kept)."""
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}:{i}: not JSON ({err.msg})") from None
        if not isinstance(obj, dict) or not all(isinstance(obj.get(k), str) and obj[k] for k in fields):
            raise InputError(f"{path}:{i}: needs non-empty string fields {' and '.join(fields)}")
        rows.append({k: obj[k] for k in fields})
    if not rows:
        raise InputError(f"{path}: no rows")
    return rows
