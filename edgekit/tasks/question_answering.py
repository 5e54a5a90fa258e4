"""question-answering: extractive answers (SQuAD-style), the span of a context that answers a question.

An item is a ``(question, context)`` pair, tokenized as a text pair (truncation trims the longer text,
normally the context). The exported graph gives every token a start and an end logit (``span_logits``,
``[batch, seq, 2]``, zero at padding); the answer is the best span of context tokens, decoded here with
numpy from the logits and the tokens' character offsets, on the build machine and on a device alike.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data.items import MAX_TEXT_CHARS
from edgekit.errors import CalibrationError, InputError
from edgekit.tasks import Task, register

MAX_ANSWER_TOKENS = 30  # the longest answer span decoded, in tokens (bundle.json postprocessing)
CONTEXT = 1  # the sequence id of the context's tokens (the second text of the pair)
ITEM_FORM = 'a (question, context) pair of strings or {"question": str, "context": str}'


@dataclass(frozen=True)
class Answer:
    """One question's answer: the text, its character span in the context, and its probability."""

    answer: str
    start: int  # character offsets in the context: context[start:end] == answer
    end: int
    score: float  # P(start) x P(end) under the softmax of each over the context's tokens
    span_logits: np.ndarray = field(repr=False, compare=False)  # [tokens, 2], the raw graph output

    def as_dict(self) -> dict:
        return {"answer": self.answer, "start": self.start, "end": self.end, "score": self.score}


# -- span decoding (numpy; shared by evaluate on the build side and predict on a device) ------------
def best_span(
    logits: np.ndarray, sequence_ids: Sequence[int | None], max_answer_tokens: int = MAX_ANSWER_TOKENS
) -> tuple[int, int, float] | None:
    """The best answer span as token indices ``(start, end)`` and its probability, or None when no context
    token is left (truncated away).

    Only context tokens (sequence id 1) may start or end it, ``start <= end`` and it is at most
    ``max_answer_tokens`` long. The span scores ``start_logit + end_logit``; the probability is the product
    of the start's and the end's softmax over the context tokens."""
    n = min(len(sequence_ids), len(logits))
    pos = np.array([i for i in range(n) if sequence_ids[i] == CONTEXT], dtype=np.int64)
    if not len(pos):
        return None
    start = np.asarray(logits[pos, 0], dtype=np.float64)
    end = np.asarray(logits[pos, 1], dtype=np.float64)
    gap = pos[None, :] - pos[:, None]  # end token - start token
    valid = (gap >= 0) & (gap < max_answer_tokens)
    scores = np.where(valid, start[:, None] + end[None, :], -np.inf)
    i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)

    def log_softmax(x: np.ndarray) -> np.ndarray:
        m = x.max()
        return x - m - np.log(np.exp(x - m).sum())

    prob = float(np.exp(log_softmax(start)[i] + log_softmax(end)[j]))
    return int(pos[i]), int(pos[j]), prob


def decode(
    logits: np.ndarray,
    items: Sequence[tuple[str, str]],
    spans: Sequence[tuple[Sequence[tuple[int, int]], Sequence[int | None]]],
    max_answer_tokens: int = MAX_ANSWER_TOKENS,
) -> list[Answer]:
    """The answer of each item from the model's span logits (``[items, seq, 2]``, rows zero-padded) and each
    item's token character offsets and sequence ids (:func:`edgekit.data.feeds.token_spans`)."""
    answers = []
    for row, (_question, context), (offsets, seq_ids) in zip(logits, items, spans):
        n = min(len(offsets), len(row))
        best = best_span(row, seq_ids[:n], max_answer_tokens)
        kept = np.asarray(row[:n], dtype=np.float32)
        if best is None:
            answers.append(Answer("", 0, 0, 0.0, kept))
            continue
        i, j, prob = best
        lo, hi = int(offsets[i][0]), int(offsets[j][1])
        answers.append(Answer(context[lo:hi], lo, hi, round(prob, 6), kept))
    return answers


# -- SQuAD v1.1 scoring -------------------------------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's normalisation: lower case, no punctuation, no articles (a, an, the), single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token-level F1 of the normalised texts (SQuAD v1.1)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Sequence[str], golds: Sequence[Sequence[str]]) -> dict:
    """Exact match and F1, each the best over an item's gold answers, averaged, in points (0-100)."""
    em = [max((exact_match(p, g) for g in gs), default=0.0) for p, gs in zip(predictions, golds)]
    f1 = [max((f1_score(p, g) for g in gs), default=0.0) for p, gs in zip(predictions, golds)]
    return {
        "exact_match": round(100.0 * float(np.mean(em)), 3) if em else 0.0,
        "f1": round(100.0 * float(np.mean(f1)), 3) if f1 else 0.0,
        "eval_samples": len(em),
    }


def _pad_tokens(a: np.ndarray, length: int) -> np.ndarray:
    """``a`` ([items, seq, 2]) zero-padded along the sequence axis to ``length`` (padding outputs are zero)."""
    return a if a.shape[1] >= length else np.pad(a, [(0, 0), (0, length - a.shape[1])] + [(0, 0)] * (a.ndim - 2))


@register
class QuestionAnswering(Task):
    name = "question-answering"
    description = "extractive answers: start and end logits of the answer span in a context"
    output_name = "span_logits"
    architectures = ("ForQuestionAnswering",)
    auto_class = "AutoModelForQuestionAnswering"
    budget_key = "span_agreement"  # a search budget's min_fidelity holds the answers kept, not logit cosine
    trainable = False  # per-token outputs: distillation, pruning and QAT take per-input outputs
    api_method = "answer"
    endpoint = "/answer"
    request_field = "questions"
    response_key = "answers"
    eval_key = "f1"
    eval_label = "answer F1"
    headline_key = "span_agreement"
    headline_label = "answer span agreement"

    # -- items ---------------------------------------------------------------------------------------
    def check_items(self, items) -> list[tuple[str, str]]:
        if isinstance(items, dict) or (
            isinstance(items, tuple) and len(items) == 2 and all(isinstance(x, str) for x in items)
        ):
            items = [items]  # one question
        if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
            raise InputError(f"questions must be a list, each {ITEM_FORM}")
        if not items:
            raise InputError("questions is empty")
        out = []
        for i, item in enumerate(items):
            pair = self.item_from_json(item)
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
                raise InputError(f"question {i}: expected {ITEM_FORM}")
            for what, text in zip(("question", "context"), pair):
                if not text.strip():
                    raise InputError(f"question {i}: the {what} is empty")
                if len(text) > MAX_TEXT_CHARS:
                    raise InputError(f"question {i}: the {what} is longer than {MAX_TEXT_CHARS} characters")
            out.append(pair)
        return out

    def item_from_json(self, obj: Any) -> Any:
        """``{"question": ..., "context": ...}`` or ``[question, context]`` as a pair; anything else as it is
        (:meth:`check_items` refuses it, naming the item)."""
        if isinstance(obj, dict) and "question" in obj and "context" in obj:
            return (obj["question"], obj["context"])
        if isinstance(obj, (list, tuple)) and len(obj) == 2:
            return tuple(obj)
        return obj

    def item_as_json(self, item: Any) -> Any:
        question, context = item
        return {"question": question, "context": context}

    # -- data ----------------------------------------------------------------------------------------
    def builtin_data(self) -> tuple[Path, Path] | None:
        from edgekit.data.calibration import data_dir

        return data_dir() / "qa" / "train.jsonl", data_dir() / "qa" / "test.jsonl"

    def load_items(self, path: Path) -> tuple[list, list | None]:
        """A JSONL file, one ``{"question", "context"}`` object a line (SQuAD-style records: ``id`` and
        ``answers``, a list of ``{"text", "answer_start"}``, as well); the gold is each record's answer texts (a
        tuple: core counts distinct gold values), None when no record has ``answers``."""
        path = Path(path)
        if not path.is_file():
            raise CalibrationError(f"question file not found: {path}")
        if path.suffix.lower() != ".jsonl":
            raise CalibrationError(f'{path}: questions come as .jsonl, one {{"question", "context"}} object a line')
        from edgekit.data.calibration import read_jsonl

        items, gold = [], []
        for n, obj in read_jsonl(path):
            fields = ("question", "context")
            if not (isinstance(obj, dict) and all(isinstance(obj.get(k), str) and obj[k].strip() for k in fields)):
                raise CalibrationError(f"{path}:{n}: needs non-empty string fields 'question' and 'context'")
            items.append((obj["question"], obj["context"]))
            gold.append(_answer_texts(obj.get("answers"), f"{path}:{n}"))
        if not items:
            raise CalibrationError(f"{path}: no questions in the file")
        if all(g is None for g in gold):
            return items, None
        if any(g is None for g in gold):
            raise CalibrationError(f"{path}: some records have 'answers' and some do not")
        return items, gold

    # -- evaluation ----------------------------------------------------------------------------------
    @property
    def evaluated(self) -> bool:
        return True

    def gold(self, labels: list, config: dict) -> Any:
        return [list(answers) for answers in labels]

    def evaluate(self, outputs: np.ndarray, gold: Any, items: Sequence, tokenizer, seq_len: int) -> dict:
        from edgekit.data.feeds import token_spans

        items = list(items[: len(outputs)])
        answers = decode(outputs, items, token_spans(tokenizer, items, seq_len))
        return squad_scores([a.answer for a in answers], gold[: len(answers)])

    # -- build side ----------------------------------------------------------------------------------
    def head(self, model_output, attention_mask):
        import torch

        logits = torch.stack([model_output.start_logits, model_output.end_logits], -1)
        return logits * attention_mask[..., None].to(logits.dtype)

    def postprocessing(self, config: dict, files: Callable[[str], Any]) -> dict:
        return {"output": self.output_name, "max_answer_tokens": MAX_ANSWER_TOKENS}

    # -- measurement ---------------------------------------------------------------------------------
    def fidelity(self, reference: np.ndarray, output: np.ndarray) -> dict:
        """Cosine to the reference, and ``span_agreement``: the share of items whose most likely start and
        end tokens (over the tokens that are not padding) are the reference's."""
        if reference.ndim == 3 and output.ndim == 3 and reference.shape[0] == output.shape[0]:
            length = max(reference.shape[1], output.shape[1])  # batches padded to other lengths: zeros
            reference, output = _pad_tokens(reference, length), _pad_tokens(output, length)
        result = super().fidelity(reference, output)
        if "error" in result:
            return result
        live = np.abs(reference).sum(-1) != 0  # [items, seq]: not padding
        ref = np.where(live[..., None], reference, -np.inf).argmax(1)  # [items, 2]: start and end token
        out = np.where(live[..., None], output, -np.inf).argmax(1)
        result["span_agreement"] = float((ref == out).all(-1).mean())
        return result

    # -- device side ---------------------------------------------------------------------------------
    def predict(self, model, items) -> list[Answer]:
        from edgekit.data.feeds import token_spans

        items = self.check_items(items)
        logits = model.forward(items)
        spans = token_spans(model.encoder, items, model.max_seq_len)
        return decode(logits, items, spans, int(model._post.get("max_answer_tokens", MAX_ANSWER_TOKENS)))

    def check_postprocessing(self, post: dict, need: Callable[[bool, str], None]) -> None:
        need(post.get("output") == self.output_name, f"postprocessing.output is not {self.output_name}")
        n = post.get("max_answer_tokens")
        need(isinstance(n, int) and not isinstance(n, bool) and n >= 1, "postprocessing.max_answer_tokens")

    def as_json(self, result) -> list[dict]:
        return [a.as_dict() for a in result]

    def recorded(self, result, post: dict) -> np.ndarray:
        """The span logits of each answer, zero-padded to the longest: ``[items, tokens, 2]``, float32."""
        length = max(len(a.span_logits) for a in result)
        out = np.zeros((len(result), length, 2), dtype=np.float32)
        for k, a in enumerate(result):
            out[k, : len(a.span_logits)] = a.span_logits
        return out


def _answer_texts(answers: Any, where: str) -> tuple[str, ...] | None:
    """The gold answer texts of a SQuAD-style ``answers`` list (None when the record has none)."""
    if answers is None:
        return None
    if not isinstance(answers, list) or not answers:
        raise CalibrationError(f'{where}: "answers" must be a non-empty list of {{"text", "answer_start"}}')
    texts = []
    for a in answers:
        if not (isinstance(a, dict) and isinstance(a.get("text"), str)):
            raise CalibrationError(f'{where}: each answer needs a string "text"')
        texts.append(a["text"])
    return tuple(texts)
