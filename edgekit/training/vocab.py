"""Vocabulary pruning: keep only the word-embedding rows of tokens the task data uses.

In a small BERT the word-embedding table is most of the file (MiniLM: 11.7 M
of 22.7 M parameters). Tokens never seen in the task's training and
validation text are dropped from the WordPiece vocabulary and from the
embedding matrix; special tokens and every single-character piece (``a``,
``##a``) are always kept, so an unseen word is still spelled out in pieces
rather than becoming ``[UNK]``. The tokenizer is rewritten with the new ids
(``tokenizer.json`` and ``vocab.txt``), so the pruned model takes its own
tokenizer's ids, like any checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path


def used_tokens(tokenizer, texts: Sequence[str], max_len: int) -> set[int]:
    ids: set[int] = set()
    for i in range(0, len(texts), 256):
        for row in tokenizer(list(texts[i : i + 256]), truncation=True, max_length=max_len)["input_ids"]:
            ids.update(row)
    return ids


def plan_vocabulary(tokenizer, texts: Sequence[str], max_len: int) -> list[int]:
    """Old ids to keep, in their old order."""
    vocab = tokenizer.get_vocab()
    keep = used_tokens(tokenizer, texts, max_len)
    keep.update(tokenizer.all_special_ids)
    for token, idx in vocab.items():
        bare = token[2:] if token.startswith("##") else token
        if len(bare) == 1:
            keep.add(idx)
    return sorted(keep)


def prune_embeddings(model, keep: list[int]) -> None:
    import torch

    emb = model.base_model.embeddings.word_embeddings
    new = torch.nn.Embedding(len(keep), emb.embedding_dim, padding_idx=None)
    new.weight.data = emb.weight.data[torch.tensor(keep)].clone()
    model.base_model.embeddings.word_embeddings = new
    old_to_new = {old: i for i, old in enumerate(keep)}
    model.config.vocab_size = len(keep)
    if model.config.pad_token_id is not None:
        model.config.pad_token_id = old_to_new.get(model.config.pad_token_id, 0)


def write_tokenizer(tokenizer, keep: list[int], out: Path):
    """Save ``tokenizer`` to ``out`` with its vocabulary cut to ``keep`` (renumbered); returns the new one."""
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(str(out))
    old_to_new = {old: i for i, old in enumerate(keep)}
    id_to_token = {i: t for t, i in tokenizer.get_vocab().items()}
    tok_json = out / "tokenizer.json"
    data = json.loads(tok_json.read_text(encoding="utf-8"))
    data["model"]["vocab"] = {id_to_token[old]: new for old, new in old_to_new.items()}
    for added in data.get("added_tokens", []):
        added["id"] = old_to_new[added["id"]]
    post = data.get("post_processor") or {}
    for spec in (post.get("special_tokens") or {}).values():
        spec["ids"] = [old_to_new[i] for i in spec["ids"]]
    for key in ("cls", "sep"):  # BertProcessing form
        if isinstance(post.get(key), list):
            post[key][1] = old_to_new[post[key][1]]
    if data.get("padding"):
        data["padding"]["pad_id"] = old_to_new.get(data["padding"]["pad_id"], 0)
    tok_json.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    vocab_txt = out / "vocab.txt"
    if vocab_txt.exists():
        vocab_txt.write_text("".join(id_to_token[old] + "\n" for old in keep), encoding="utf-8")
    return AutoTokenizer.from_pretrained(str(out), local_files_only=True)
