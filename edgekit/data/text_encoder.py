"""Tokenization for the runtime side, with the ``tokenizers`` library only (no transformers, no torch).

:class:`TextEncoder` answers the small part of the Hugging Face tokenizer call
that :func:`edgekit.data.feeds.tokenize` uses (``padding``, ``truncation``,
``max_length``, ``return_tensors="np"``), so the same feed-building code runs
on the build machine and on a device.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgekit.errors import ArtifactError


class TextEncoder:
    def __init__(self, tokenizer_json: Path, max_length: int) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:  # pragma: no cover - tokenizers is in every runtime extra
            raise ArtifactError(
                "the bundle's tokenizer needs the `tokenizers` package: pip install tokenizers"
            ) from None
        try:
            self._tok = Tokenizer.from_file(str(tokenizer_json))
        except Exception as err:  # noqa: BLE001 - the library raises plain Exception
            raise ArtifactError(f"{tokenizer_json}: not a readable tokenizer ({err})") from None
        self._tok.no_padding()
        self._tok.no_truncation()
        self.max_length = max_length
        self._lock = threading.Lock()
        padding = self._tok.padding or {}
        self.pad_id = padding.get("pad_id")
        if self.pad_id is None:
            self.pad_id = next(
                (self._tok.token_to_id(t) for t in ("[PAD]", "<pad>") if self._tok.token_to_id(t) is not None), 0
            )

    def _encode(self, batch: list, limit: int | None) -> list:
        with self._lock:  # truncation is tokenizer state; the library truncates around the special tokens
            if limit is None:
                self._tok.no_truncation()
            else:
                self._tok.enable_truncation(limit)
            return self._tok.encode_batch(batch)

    def spans(self, items: list, max_length: int) -> list[tuple[list[tuple[int, int]], list[int | None]]]:
        """Each item's token character spans and sequence ids (see :func:`edgekit.data.feeds.token_spans`)."""
        encodings = self._encode(items, min(max_length, self.max_length))
        return [([tuple(o) for o in enc.offsets], list(enc.sequence_ids)) for enc in encodings]

    def __call__(
        self,
        texts: str | Sequence[str],
        padding: str | bool = False,
        truncation: bool = False,
        max_length: int | None = None,
        return_tensors: str | None = None,
    ) -> dict:
        single = isinstance(texts, (str, tuple))  # a text, or a pair of texts (a question and its context)
        batch = [texts] if single else list(texts)
        limit = min(max_length or self.max_length, self.max_length) if truncation else None
        encodings = self._encode(batch, limit)
        rows = [(enc.ids, enc.type_ids, enc.attention_mask) for enc in encodings]
        if return_tensors is None and single:
            ids, types, mask = rows[0]
            return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
        width = (max_length or self.max_length) if padding == "max_length" else max(len(r[0]) for r in rows)
        out = {
            k: np.zeros((len(rows), width), dtype=np.int64) for k in ("input_ids", "token_type_ids", "attention_mask")
        }
        out["input_ids"].fill(self.pad_id)
        for i, (ids, types, mask) in enumerate(rows):
            n = min(len(ids), width)
            out["input_ids"][i, :n] = ids[:n]
            out["token_type_ids"][i, :n] = types[:n]
            out["attention_mask"][i, :n] = mask[:n]
        return out
