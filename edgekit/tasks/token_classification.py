"""token-classification: one label per token (NER-style BIO tags), scored per entity at word level.

Words are the whitespace-separated parts of a text; a word takes the label of its first sub-token. A labelled
file is JSONL of ``{"tokens": [words], "tags": [one BIO tag per word]}``; its text is the words joined by
spaces. Entities are read from tags the way seqeval's default (conlleval) mode reads IOB2.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import CalibrationError
from edgekit.tasks import Task, register

OUTSIDE = "O"
_WORD = re.compile(r"\S+")


def word_spans(text: str) -> list[tuple[int, int]]:
    """The character spans of the whitespace-separated words of ``text``."""
    return [m.span() for m in _WORD.finditer(text)]


def first_tokens(
    words: Sequence[tuple[int, int]], offsets: Sequence[tuple[int, int]], sequence_ids: Sequence[int | None]
) -> list[int | None]:
    """For each word (a character span), the index of its first token; None when no token falls in it
    (the word was truncated away, or the tokenizer dropped it)."""
    starts = [s for s, _ in words]
    first: list[int | None] = [None] * len(words)
    for t, ((s, e), seq) in enumerate(zip(offsets, sequence_ids)):
        if seq is None or e <= s:  # a special token
            continue
        w = bisect_right(starts, s) - 1
        if w >= 0 and s < words[w][1] and first[w] is None:
            first[w] = t
    return first


def split_tag(tag: str) -> tuple[str, str]:
    """A tag's prefix and entity type: ("B", "PER") for B-PER, ("O", "") for O. A tag without a B-/I- prefix
    is an entity type of its own that a run of it continues (as Hugging Face's pipeline reads it)."""
    if tag == OUTSIDE:
        return "O", ""
    if tag[:2] in ("B-", "I-"):
        return tag[0], tag[2:]
    return "I", tag


def bio_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The entities of a tag sequence as (type, first word, end word exclusive): an entity starts at B-X, or
    at I-X after O or after another type, and runs while I-X of its type follow (seqeval's default mode)."""
    found = []
    start: int | None = None
    kind = ""
    for i, tag in enumerate([*tags, OUTSIDE]):
        prefix, typ = split_tag(tag)
        if start is not None and (prefix != "I" or typ != kind):
            found.append((kind, start, i))
            start = None
        if prefix != "O" and start is None:
            start, kind = i, typ
    return found


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level precision, recall and F1 (exact type and span, micro over all entities) and word
    accuracy, in points 0-100."""
    correct = n_pred = n_gold = right = words = 0
    for g, p in zip(gold, pred, strict=True):
        if len(g) != len(p):
            raise ValueError(f"{len(g)} gold tags but {len(p)} predicted")
        ge, pe = set(bio_entities(g)), set(bio_entities(p))
        correct += len(ge & pe)
        n_pred += len(pe)
        n_gold += len(ge)
        right += sum(a == b for a, b in zip(g, p))
        words += len(g)
    precision = correct / n_pred if n_pred else 0.0
    recall = correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "entity_f1": round(100 * f1, 3),
        "entity_precision": round(100 * precision, 3),
        "entity_recall": round(100 * recall, 3),
        "token_accuracy": round(100 * right / words, 3) if words else 0.0,
    }


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@dataclass(frozen=True)
class TagGold:
    """A labelled set's tags per word, with the model's labels in id order (what an output's argmax names)."""

    tags: list[list[str]]
    labels: list[str]


@dataclass(frozen=True)
class Entity:
    entity: str  # its type: PER for B-PER I-PER
    text: str  # exactly text[start:end]
    start: int
    end: int
    score: float  # mean probability of its words' labels

    def as_dict(self) -> dict:
        return {"entity": self.entity, "text": self.text, "start": self.start, "end": self.end, "score": self.score}


@dataclass(frozen=True)
class Tagged:
    """The entities of each text, and the per-token probabilities they came from (what reference.npz records)."""

    entities: list[list[Entity]]
    scores: np.ndarray  # [texts, tokens, labels] float32; zero past each text's tokens

    def __len__(self) -> int:
        return len(self.entities)

    def __getitem__(self, i: int) -> list[Entity]:
        return self.entities[i]

    def __iter__(self) -> Iterator[list[Entity]]:
        return iter(self.entities)


def _word_entities(text: str, probs: np.ndarray, offsets, sequence_ids, labels: Sequence[str]) -> list[Entity]:
    """Word labels from each word's first sub-token, merged into entities (Hugging Face's "simple" grouping)."""
    words = word_spans(text)
    tags, scores = [], []
    for t in first_tokens(words, offsets, sequence_ids):
        k = None if t is None else int(probs[t].argmax())
        tags.append(OUTSIDE if k is None else labels[k])
        scores.append(0.0 if k is None or t is None else float(probs[t, k]))
    out = []
    for kind, a, b in bio_entities(tags):
        start, end = words[a][0], words[b - 1][1]
        out.append(Entity(kind, text[start:end], start, end, round(float(np.mean(scores[a:b])), 6)))
    return out


def _tagged_rows(path: Path) -> list[tuple[list[str], list[str]]] | None:
    """The records of a JSONL file of ``{"tokens", "tags"}``; None when it is another kind of JSONL."""
    from edgekit.data.calibration import read_jsonl

    rows: list[tuple[list[str], list[str]]] = []
    for i, obj in read_jsonl(path):
        if not rows and not (isinstance(obj, dict) and "tokens" in obj):
            return None  # not a tagged file: plain texts
        tokens, tags = (obj.get("tokens"), obj.get("tags")) if isinstance(obj, dict) else (None, None)
        if not isinstance(tokens, list) or not isinstance(tags, list) or not tokens:
            raise CalibrationError(f"{path}:{i}: needs a non-empty list 'tokens' and a list 'tags'")
        if len(tokens) != len(tags):
            raise CalibrationError(f"{path}:{i}: {len(tokens)} tokens but {len(tags)} tags")
        if not all(isinstance(x, str) for x in tags):
            raise CalibrationError(f"{path}:{i}: tags must be strings")
        if not all(isinstance(x, str) for x in tokens):
            raise CalibrationError(f"{path}:{i}: tokens must be strings")
        bad = next((x for x in tokens if x.split() != [x]), None)
        if bad is not None:
            raise CalibrationError(f"{path}:{i}: token {bad!r} is empty or holds whitespace")
        rows.append((tokens, tags))
    if not rows:
        raise CalibrationError(f"{path}: no records in the file")
    return rows


@register
class TokenClassification(Task):
    name = "token-classification"
    description = "per-token label logits (NER)"
    labelled = True
    architectures = ("ForTokenClassification",)
    auto_class = "AutoModelForTokenClassification"
    budget_key = "token_label_agreement"  # a search budget's min_fidelity holds the answers kept, not logit cosine
    trainable = False  # per-token outputs: distillation, pruning and QAT take per-input outputs
    api_method = "tag"
    endpoint = "/tag"
    response_key = "entities"
    output_name = "logits"
    headline_key = "token_label_agreement"
    headline_label = "token label agreement"
    eval_key = "entity_f1"
    eval_label = "entity F1"

    # -- data ---------------------------------------------------------------------------------------
    def builtin_data(self) -> tuple[Path, Path] | None:
        from edgekit.data.calibration import data_dir

        return data_dir() / "ner" / "train.jsonl", data_dir() / "ner" / "test.jsonl"

    def load_items(self, path: Path) -> tuple[list, list | None]:
        path = Path(path)
        if path.suffix.lower() == ".jsonl" and path.is_file():
            rows = _tagged_rows(path)
            if rows is not None:
                # each record's tags as a tuple: core counts distinct gold values
                return [" ".join(tokens) for tokens, _ in rows], [tuple(tags) for _, tags in rows]
        return super().load_items(path)

    # -- evaluation ---------------------------------------------------------------------------------
    def gold(self, labels: list, config: dict) -> TagGold:
        id2label = config.get("id2label") or {}
        names = [str(id2label[k]) for k in sorted(id2label, key=int)]
        known = set(names)
        for i, tags in enumerate(labels, 1):
            if not isinstance(tags, (list, tuple)):
                raise CalibrationError(
                    f"record {i}: {self.name} is scored on tags per word: give a JSONL of {{'tokens', 'tags'}}"
                )
            bad = next((t for t in tags if t not in known), None)
            if bad is not None:
                raise CalibrationError(f"record {i}: tag {bad!r} is not one of the model's labels ({', '.join(names)})")
        return TagGold([list(t) for t in labels], names)

    def evaluate(self, outputs: np.ndarray, gold: Any, items: Sequence, tokenizer, seq_len: int) -> dict:
        from edgekit.data.feeds import token_spans

        texts = list(items)[: len(outputs)]
        tags = gold.tags[: len(texts)]
        spans = token_spans(tokenizer, texts, seq_len)
        seen = (np.abs(outputs).max(-1) > 0).sum(1)  # the tokens each output row holds (padding is zero)
        pred = []
        for i, (text, row) in enumerate(zip(texts, outputs)):
            offsets, sequence_ids = spans[i]
            if 0 < seen[i] < len(offsets):  # the model saw fewer tokens (a shorter sequence bucket)
                offsets, sequence_ids = token_spans(tokenizer, [text], int(seen[i]))[0]
            first = first_tokens(word_spans(text), offsets, sequence_ids)
            pred.append(
                [OUTSIDE if t is None or t >= len(row) else gold.labels[int(row[t].argmax())] for t in first]
            )  # words past truncation: O
        return {**entity_scores(tags, pred), "eval_samples": len(texts)}

    # -- build side -----------------------------------------------------------------------------------
    def head(self, model_output, attention_mask):
        logits = model_output.logits
        return logits * attention_mask.unsqueeze(-1).to(logits.dtype)

    def postprocessing(self, config: dict, files: Callable[[str], Any]) -> dict:
        return {**super().postprocessing(config, files), "aggregation": "simple"}

    # -- measurement ----------------------------------------------------------------------------------
    def fidelity(self, reference: np.ndarray, output: np.ndarray) -> dict:
        if reference.ndim == output.ndim == 3 and reference.shape[::2] == output.shape[::2]:
            # per-token outputs padded to different lengths (a runtime's sequence bucket): zeros either way
            length = max(reference.shape[1], output.shape[1])
            reference, output = (np.pad(a, ((0, 0), (0, length - a.shape[1]), (0, 0))) for a in (reference, output))
        result = super().fidelity(reference, output)
        if "error" in result:
            return result
        result.pop("label_agreement", None)  # over every position, padding included: the share below is the one
        real = np.abs(reference).max(-1) > 0
        agree = reference.argmax(-1) == output.argmax(-1)
        result["token_label_agreement"] = float(agree[real].mean()) if real.any() else 1.0
        return result

    # -- device side ----------------------------------------------------------------------------------
    def predict(self, model, items) -> Tagged:
        texts = self.check_items(items)
        logits = model.forward(texts)
        spans = model.encoder.spans(texts, model.max_seq_len)
        labels = model._post["labels"]
        counts = [min(len(offsets), logits.shape[1]) for offsets, _ in spans]
        scores = np.zeros((len(texts), max(counts), logits.shape[-1]), dtype=np.float32)
        entities = []
        for i, (text, (offsets, sequence_ids)) in enumerate(zip(texts, spans)):
            probs = _softmax(logits[i, : counts[i]].astype(np.float64))
            scores[i, : counts[i]] = probs
            entities.append(_word_entities(text, probs, offsets[: counts[i]], sequence_ids[: counts[i]], labels))
        return Tagged(entities, scores)

    def check_postprocessing(self, post: dict, need: Callable[[bool, str], None]) -> None:
        super().check_postprocessing(post, need)
        need(post.get("aggregation", "simple") == "simple", "postprocessing.aggregation is not simple")

    def as_json(self, result) -> list[dict]:
        return [{"entities": [e.as_dict() for e in ents]} for ents in result.entities]

    def recorded(self, result, post: dict) -> np.ndarray:
        return np.asarray(result.scores, dtype=np.float32)
