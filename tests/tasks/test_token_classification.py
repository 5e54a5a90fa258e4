"""token-classification: BIO entities and their scores, word alignment of sub-word tokens, the labelled
file format, and one run through ONNX (fp32, dynamic and static int8) and TFLite scored on a tagged set.
The runtime API, bundle and serve on a tiny tagger are the task contract's (tests/contract/tasks.py)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgekit.data.feeds import token_spans
from edgekit.errors import CalibrationError, ExitCode
from edgekit.tasks import get_task
from edgekit.tasks.token_classification import (
    TagGold,
    bio_entities,
    entity_scores,
    first_tokens,
    split_tag,
    word_spans,
)
from tests.contract.tasks import CONLL_TAGS, tiny_tagger
from tests.helpers import FAST_BENCH

TASK = get_task("token-classification")
LABELS = ["O", "B-PER", "I-PER", "B-LOC"]
OUT, B_PER, I_PER, B_LOC = range(4)


# -- BIO spans and entity-level scores -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
        (["O", "I-PER", "I-PER", "O"], [("PER", 1, 3)]),  # I- without B- starts an entity
        (["I-PER"], [("PER", 0, 1)]),
        (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 3)]),  # I- of another type: a new entity
        (["B-PER", "I-PER", "I-LOC"], [("PER", 0, 2), ("LOC", 2, 3)]),
        (["B-PER", "B-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 3)]),  # B- always starts one
        (["O", "O"], []),
        (["PER", "PER", "O", "LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),  # unprefixed tags: runs of one type
        ([], []),
    ],
)
def test_bio_entities_read_iob2_as_seqeval_does(tags, expected):
    assert bio_entities(tags) == expected


def test_split_tag():
    assert split_tag("B-MISC") == ("B", "MISC") and split_tag("I-B-X") == ("I", "B-X")
    assert split_tag("O") == ("O", "") and split_tag("PER") == ("I", "PER")


def test_entity_scores_match_seqeval_on_its_own_example():
    gold = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    # seqeval's README: f1 0.50, precision 0.50, recall 0.50, accuracy 0.80
    assert entity_scores(gold, pred) == {
        "entity_f1": 50.0,
        "entity_precision": 50.0,
        "entity_recall": 50.0,
        "token_accuracy": 80.0,
    }


def test_entity_scores_need_exact_span_and_type():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    s = entity_scores(gold, [["B-PER", "O", "O", "B-LOC"]])  # PER cut short: 1 of 2 right both ways
    assert (s["entity_precision"], s["entity_recall"], s["entity_f1"], s["token_accuracy"]) == (50, 50, 50, 75)
    s = entity_scores(gold, [["I-PER", "I-PER", "O", "O"]])  # I- without B- still spans PER exactly
    assert (s["entity_precision"], s["entity_recall"], s["entity_f1"]) == (100, 50, 66.667)
    s = entity_scores([["B-PER", "I-PER"]], [["B-PER", "I-LOC"]])  # the type changes: PER + LOC, both wrong
    assert (s["entity_precision"], s["entity_recall"], s["entity_f1"], s["token_accuracy"]) == (0, 0, 0, 50)
    s = entity_scores([["O", "O"]], [["O", "O"]])  # nothing to find, nothing found
    assert (s["entity_f1"], s["token_accuracy"]) == (0, 100)
    s = entity_scores([["B-LOC", "O"], ["O", "B-PER"]], [["B-LOC", "O"], ["B-PER", "O"]])  # micro, per sentence
    assert (s["entity_precision"], s["entity_recall"]) == (50, 50)


# -- words and sub-word tokens ------------------------------------------------------------------------
def test_first_tokens_take_each_words_first_sub_token():
    text = "Johnson lives in Paris."
    words = word_spans(text)
    assert words == [(0, 7), (8, 13), (14, 16), (17, 23)]
    offsets = [(0, 0), (0, 4), (4, 7), (8, 13), (14, 16), (17, 22), (22, 23), (0, 0)]
    ids = [None, 0, 0, 0, 0, 0, 0, None]
    assert first_tokens(words, offsets, ids) == [1, 3, 4, 5]
    truncated = [(0, 0), (0, 4), (4, 7), (8, 13), (0, 0)]
    assert first_tokens(words, truncated, [None, 0, 0, 0, None]) == [1, 3, None, None]


@pytest.fixture(scope="module")
def wordpiece(tmp_path_factory) -> Path:
    """A WordPiece tokenizer.json that splits "johnson" into "john" "##son" (and "smiths" into two)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "john", "##son", "smith", "##s", "lives", "in", "paris", "."]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    path = tmp_path_factory.mktemp("wordpiece") / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.fixture(scope="module")
def hf_tokenizer(wordpiece):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(wordpiece), pad_token="[PAD]", unk_token="[UNK]")


TEXT = "Johnson lives in Paris ."  # [CLS] john ##son lives in paris . [SEP]


def _logits(rows: list[int], length: int | None = None) -> np.ndarray:
    """One text's logits: token i's largest is label rows[i]; zero rows past the tokens (padding)."""
    out = np.zeros((length or len(rows), len(LABELS)), np.float32)
    for i, k in enumerate(rows):
        out[i] = 0.5
        out[i, k] = 3.0
    return out


def test_token_spans_agree_between_hf_tokenizer_and_text_encoder(wordpiece, hf_tokenizer):
    from edgekit.data.text_encoder import TextEncoder

    hf = token_spans(hf_tokenizer, [TEXT], 32)[0]
    device = token_spans(TextEncoder(wordpiece, 32), [TEXT], 32)[0]
    assert hf == device
    assert first_tokens(word_spans(TEXT), *hf) == [1, 3, 4, 5, 6]


def test_evaluate_reads_each_word_from_its_first_sub_token(hf_tokenizer):
    gold = TASK.gold([("B-PER", "O", "O", "B-LOC", "O")], {"id2label": dict(enumerate(LABELS))})
    # "##son" says B-LOC: read from any sub-token but the first, Johnson would be two entities
    outputs = _logits([OUT, B_PER, B_LOC, OUT, OUT, B_LOC, OUT, OUT])[None]
    s = TASK.evaluate(outputs, gold, [TEXT], hf_tokenizer, 32)
    assert s == {
        "entity_f1": 100.0,
        "entity_precision": 100.0,
        "entity_recall": 100.0,
        "token_accuracy": 100.0,
        "eval_samples": 1,
    }


def test_evaluate_counts_words_past_truncation_as_outside(hf_tokenizer):
    gold = TASK.gold([("B-PER", "O", "O", "B-LOC", "O")], {"id2label": dict(enumerate(LABELS))})
    seen = _logits([OUT, B_PER, I_PER, OUT, B_LOC])  # 5 tokens: [CLS] john ##son lives [SEP]
    expected = {"entity_f1": 66.667, "entity_precision": 100.0, "entity_recall": 50.0, "token_accuracy": 80.0}
    s = TASK.evaluate(seen[None], gold, [TEXT], hf_tokenizer, 5)
    assert s == {**expected, "eval_samples": 1}
    # the same outputs zero-padded (a batch of longer texts), scored at a longer length than the model saw
    # (a shorter sequence bucket): "in" must not be read from [SEP], which says B-LOC
    padded = np.pad(seen, ((0, 3), (0, 0)))[None]
    assert TASK.evaluate(padded, gold, [TEXT], hf_tokenizer, 32) == {**expected, "eval_samples": 1}


def test_evaluate_scores_only_as_many_texts_as_outputs(hf_tokenizer):
    gold = TASK.gold([("B-PER", "O", "O", "B-LOC", "O"), ("O",)], {"id2label": dict(enumerate(LABELS))})
    outputs = _logits([OUT, B_PER, OUT, OUT, OUT, B_LOC, OUT, OUT])[None]
    assert TASK.evaluate(outputs, gold, [TEXT, "john"], hf_tokenizer, 32)["eval_samples"] == 1


# -- the labelled file and gold -------------------------------------------------------------------------
def _write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_load_items_reads_tokens_and_tags(tmp_path):
    path = _write_jsonl(
        tmp_path / "ner.jsonl",
        [
            {"tokens": ["John", "lives", "in", "Paris"], "tags": ["B-PER", "O", "O", "B-LOC"]},
            {"tokens": ["x"], "tags": ["O"]},
        ],
    )
    texts, tags = TASK.load_items(path)
    assert texts == ["John lives in Paris", "x"]
    assert [list(t) for t in tags] == [["B-PER", "O", "O", "B-LOC"], ["O"]]
    plain = tmp_path / "plain.txt"
    plain.write_text("one text\nanother\n")
    assert TASK.load_items(plain) == (["one text", "another"], None)  # other files: plain texts, no labels
    other = _write_jsonl(tmp_path / "texts.jsonl", [{"text": "a"}, {"text": "b"}])
    assert TASK.load_items(other) == (["a", "b"], None)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"tokens": ["a", "b"], "tags": ["O"]}, "2 tokens but 1 tags"),
        ({"tokens": ["a b"], "tags": ["O"]}, "holds whitespace"),
        ({"tokens": [""], "tags": ["O"]}, "holds whitespace"),
        ({"tokens": ["a"], "tags": [1]}, "tags must be strings"),
        ({"tokens": [], "tags": []}, "non-empty list 'tokens'"),
        ({"text": "a"}, "non-empty list 'tokens'"),
    ],
)
def test_load_items_refuses_a_bad_record_with_its_line(tmp_path, record, message):
    path = _write_jsonl(tmp_path / "ner.jsonl", [{"tokens": ["ok"], "tags": ["O"]}, record])
    with pytest.raises(CalibrationError, match=message) as err:
        TASK.load_items(path)
    assert f"{path}:2:" in err.value.message and err.value.exit_code == ExitCode.INPUT


def test_gold_checks_tags_against_the_models_labels():
    config = {"id2label": {"1": "B-PER", "0": "O"}}
    gold = TASK.gold([("B-PER", "O")], config)
    assert gold == TagGold([["B-PER", "O"]], ["O", "B-PER"])  # labels in id order
    with pytest.raises(CalibrationError, match=r"record 2: tag 'B-LOC' is not one of the model's labels \(O, B-PER\)"):
        TASK.gold([("O",), ("B-LOC",)], config)
    with pytest.raises(CalibrationError, match="tags per word"):
        TASK.gold(["spam"], config)  # a text-classification set


def test_builtin_data_is_the_shipped_ner_set():
    train, test = TASK.builtin_data()
    assert (train.parent.name, train.name, test.name) == ("ner", "train.jsonl", "test.jsonl")
    if train.is_file():  # shipped in calibration_data/ner
        texts, tags = TASK.load_items(test)
        assert len(texts) == len(tags) > 0 and all(len(t.split()) == len(g) for t, g in zip(texts, tags))
        assert {tag for g in tags for tag in g} <= set(CONLL_TAGS)


# -- head, fidelity, post-processing and the runtime API's result ---------------------------------------------
def test_head_zeroes_padding_positions():
    import torch

    logits = torch.randn(2, 4, 3) + 5
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    out = TASK.head(SimpleNamespace(logits=logits), mask)
    assert torch.equal(out[1, 2:], torch.zeros(2, 3)) and torch.equal(out[0], logits[0])


def test_fidelity_counts_real_tokens_only_and_pads_other_lengths():
    ref = np.zeros((2, 3, 2), np.float32)
    ref[0, :, 0] = 1.0  # 3 tokens, label 0
    ref[1, :2, 1] = 1.0  # 2 tokens, label 1, then padding
    out = np.zeros((2, 8, 2), np.float32)  # a runtime's longer sequence bucket
    out[:, :3] = ref
    out[1, 1] = [1.0, 0.0]  # one of 5 real tokens flips
    f = TASK.fidelity(ref, out)
    assert f["token_label_agreement"] == pytest.approx(0.8) and "label_agreement" not in f
    assert f["samples"] == 2 and f["cosine_min"] < 1 and TASK.headline(f) == f["token_label_agreement"]
    assert TASK.fidelity(ref, ref)["cosine_min"] == pytest.approx(1.0)
    assert "error" in TASK.fidelity(ref, out[:1])


def test_postprocessing_lists_the_labels_in_id_order():
    post = TASK.postprocessing({"id2label": {"1": "B-PER", "0": "O", "2": "I-PER"}}, lambda name: None)
    assert post == {
        "output": "logits",
        "activation": "softmax",
        "labels": ["O", "B-PER", "I-PER"],
        "aggregation": "simple",
    }
    refused: list[str] = []
    TASK.check_postprocessing({"output": "logits"}, lambda ok, what: ok or refused.append(what))
    assert refused == ["postprocessing.labels"]


def test_tag_merges_words_into_entities_with_exact_offsets(wordpiece):
    from edgekit.data.text_encoder import TextEncoder

    texts = ["John Smiths lives in Paris .", "paris"]  # [CLS] john smith ##s lives in paris . [SEP]
    rows = [_logits([OUT, B_PER, I_PER, B_LOC, OUT, OUT, B_LOC, OUT, OUT], 16), _logits([OUT, B_LOC, OUT], 16)]
    model = SimpleNamespace(
        forward=lambda items: np.stack(rows)[: len(items)],  # a 16-token bucket, zero past the tokens
        encoder=TextEncoder(wordpiece, 16),
        max_seq_len=16,
        _post={"labels": LABELS},
    )
    result = TASK.predict(model, texts)
    rows_json = TASK.as_json(result)
    p = float(np.exp(3.0) / (np.exp(3.0) + 3 * np.exp(0.5)))  # each word's label probability
    assert rows_json == [
        {
            "entities": [
                {"entity": "PER", "text": "John Smiths", "start": 0, "end": 11, "score": round(p, 6)},
                {"entity": "LOC", "text": "Paris", "start": 21, "end": 26, "score": round(p, 6)},
            ]
        },
        {"entities": [{"entity": "LOC", "text": "paris", "start": 0, "end": 5, "score": round(p, 6)}]},
    ]
    assert len(result) == 2 and result[1][0].text == texts[1][0:5]
    recorded = TASK.recorded(result, model._post)
    assert recorded.dtype == np.float32 and recorded.shape == (2, 9, len(LABELS))  # the longest text's tokens
    assert np.allclose(recorded[0].sum(-1), 1) and not recorded[1, 3:].any()  # zero past each text's tokens
    json.dumps(rows_json)


# -- end to end: ONNX (fp32, dynamic and static int8) and TFLite, scored on a tagged set --------------------------
SENTENCES = [
    (["John", "Smith", "lives", "in", "Paris", "."], ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]),
    (
        ["The", "United", "Nations", "met", "in", "New", "York", "."],
        ["O", "B-ORG", "I-ORG", "O", "O", "B-LOC", "I-LOC", "O"],
    ),
    (
        ["Mary", "visited", "the", "Louvre", "museum", "on", "Monday", "."],
        ["B-PER", "O", "O", "B-LOC", "O", "O", "O", "O"],
    ),
    (["American", "workers", "want", "good", "jobs", "."], ["B-MISC", "O", "O", "O", "O", "O"]),
]


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    from edgekit.pipeline.run import compress
    from edgekit.recipe.config import recipe_from_dict

    root = tmp_path_factory.mktemp("token-cls")
    data = _write_jsonl(root / "ner.jsonl", [{"tokens": t, "tags": g} for t, g in SENTENCES * 6])
    recipe = recipe_from_dict(
        {
            "version": 1,
            "name": "token-cls",
            "stages": [
                {"kind": "export", "format": "onnx", "name": "onnx-fp32"},
                {"kind": "quantize", "method": "dynamic", "name": "onnx-int8-dynamic"},
                {"kind": "optimize", "input": "onnx-fp32", "name": "onnx-fp32-opt"},  # static int8 wants it
                {"kind": "quantize", "method": "static", "name": "onnx-int8-static", "calibration": {"samples": 16}},
                {
                    "kind": "export",
                    "input": "pytorch-fp32",
                    "format": "tflite",
                    "name": "tflite-fp32",
                    "seq_lens": [32],
                },
                FAST_BENCH,
            ],
        },
        "token-cls",
    )
    out = root / "out"
    compress(tiny_tagger(root / "ckpt"), recipe, out, calibration=data, evaluation=data, progress=False)
    return out


def test_every_artifact_is_scored_per_entity_and_per_token(compressed):
    rows = {r["name"]: r for r in json.loads((compressed / "report.json").read_text())["results"]}
    assert set(rows) == {
        "pytorch-fp32",
        "onnx-fp32",
        "onnx-int8-dynamic",
        "onnx-fp32-opt",
        "onnx-int8-static",
        "tflite-fp32",
    }
    ref = rows["pytorch-fp32"]["fidelity"]
    assert ref["eval_samples"] == len(SENTENCES) * 6 and 0 <= ref["entity_f1"] <= 100
    for name, row in rows.items():
        f = row["fidelity"]
        assert {"entity_f1", "entity_precision", "entity_recall", "token_accuracy"} <= set(f), name
        if name != "pytorch-fp32":
            assert 0 <= f["token_label_agreement"] <= 1 and "accuracy_drop" in f, name
    for name in ("onnx-fp32", "onnx-fp32-opt", "tflite-fp32"):  # fp32 exports compute what PyTorch does
        f = rows[name]["fidelity"]
        assert f["token_label_agreement"] >= 0.99 and f["entity_f1"] == ref["entity_f1"], name
    for name in ("onnx-int8-dynamic", "onnx-int8-static"):
        assert rows[name]["fidelity"]["token_label_agreement"] >= 0.75, name


def test_a_tflite_bundle_tags_and_replays_its_recorded_outputs(compressed, tmp_path):
    import edgekit
    from edgekit.pipeline.bundling import build_bundle

    bundle = build_bundle(compressed, tmp_path / "b", artifacts=["tflite-fp32", "onnx-int8-static"], threads=1)
    for runtime in ("litert", "onnxruntime"):  # LiteRT answers at its bucket's length: recorded per token
        model = edgekit.load(bundle.path, runtime=runtime, threads=1)
        try:
            assert model.check()["passed"]
            result = model.tag(["John Smith lives in Paris .", "hello"])
            for text, row in zip(["John Smith lives in Paris .", "hello"], TASK.as_json(result)):
                assert all(text[e["start"] : e["end"]] == e["text"] and e["entity"] for e in row["entities"])
        finally:
            model.close()
