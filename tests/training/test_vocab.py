"""Vocabulary pruning: fewer embedding rows, a consistent tokenizer, unseen words spelled out."""

import torch

from edgekit.checkpoint import load_checkpoint
from edgekit.training.vocab import plan_vocabulary, prune_embeddings, write_tokenizer


def test_vocabulary_pruning_keeps_what_the_data_uses(tiny_cls_ckpt, tmp_path):
    ck = load_checkpoint(tiny_cls_ckpt)
    model, tok = ck.model, ck.tokenizer
    texts = ["the budget", "our nation"]
    keep = plan_vocabulary(tok, texts, 32)
    before = len(tok.get_vocab())
    assert len(keep) < 0.7 * before
    old_ids = tok(texts)["input_ids"]
    with torch.no_grad():
        expected = model(**tok(texts, padding=True, return_tensors="pt")).logits
    prune_embeddings(model, keep)
    new_tok = write_tokenizer(tok, keep, tmp_path / "tok")
    assert model.config.vocab_size == len(keep) == len(new_tok.get_vocab())
    assert model.base_model.embeddings.word_embeddings.weight.shape[0] == len(keep)
    # the kept texts map to the same tokens, renumbered, and the model computes the same
    assert [[keep[i] for i in row] for row in new_tok(texts)["input_ids"]] == old_ids
    with torch.no_grad():
        got = model(**new_tok(texts, padding=True, return_tensors="pt")).logits
    torch.testing.assert_close(got, expected)
    # a word never seen is spelled in kept pieces, not [UNK]
    ids = new_tok(["tomorrow"])["input_ids"][0]
    assert new_tok.unk_token_id not in ids and max(ids) < len(keep)
