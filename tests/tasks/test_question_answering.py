"""question-answering: SQuAD scoring, span decoding, items, and a tiny QA model through ONNX (fp32, dynamic and
static int8) and TFLite, scored on a labelled file, bundled, loaded and served."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import edgekit
from edgekit.data.calibration import data_dir
from edgekit.data.items import MAX_TEXT_CHARS
from edgekit.errors import CalibrationError, ExitCode, InputError
from edgekit.tasks import get_task
from edgekit.tasks.question_answering import (
    best_span,
    decode,
    exact_match,
    f1_score,
    normalize_answer,
    squad_scores,
)
from tests.contract.tasks import post, tiny_qa_model
from tests.helpers import FAST_BENCH

QA = get_task("question-answering")
SEQ = FAST_BENCH["seq_len"]


# -- SQuAD v1.1 normalisation, exact match and F1 ------------------------------------------------------
def test_normalize_lowercases_and_drops_punctuation_articles_and_extra_spaces():
    assert normalize_answer("The  Eiffel-Tower, in PARIS!") == "eiffeltower in paris"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("Theatre of Anna, the athlete") == "theatre of anna athlete"  # whole words only
    assert normalize_answer(" a the an ") == ""


def test_exact_match_compares_normalised_texts():
    assert exact_match("the Eiffel Tower.", "Eiffel tower") == 1.0
    assert exact_match("Eiffel", "Eiffel Tower") == 0.0
    assert exact_match("1870 to 1939", "1870-1939") == 0.0  # "-" is dropped, not made a space


def test_f1_is_token_overlap_counted_with_multiplicity():
    assert f1_score("Eiffel", "the Eiffel Tower") == pytest.approx(2 / 3)  # precision 1, recall 1/2
    assert f1_score("tower tower", "tower") == pytest.approx(2 / 3)  # the repeat counts once: precision 1/2
    assert f1_score("Saxon Garden", "garden saxon") == 1.0  # a bag of tokens, order free
    assert f1_score("Paris", "London") == 0.0
    assert f1_score("the", "a") == 0.0  # nothing left after normalisation: no overlap


def test_squad_scores_take_the_best_gold_answer_in_points():
    scores = squad_scores(["Paris", "in 1871", "Momus"], [("Paris, France", "paris"), ("1871",), ("Melodram",)])
    assert scores["exact_match"] == pytest.approx(33.333)  # only the first: 1/3, rounded to 3 places
    assert scores["f1"] == pytest.approx(round(100 * (1 + 2 / 3 + 0) / 3, 3))  # best of the golds: 1, 2/3, 0
    assert scores["eval_samples"] == 3


# -- span decoding --------------------------------------------------------------------------------------
#              [CLS] where  is   [SEP] paris  is    in    france [SEP] pad   pad
SEQ_IDS = [None, 0, 0, None, 1, 1, 1, 1, None]
OFFSETS = [(0, 0), (0, 5), (6, 8), (0, 0), (0, 5), (6, 8), (9, 11), (12, 18), (0, 0)]
CONTEXT = "Paris is in France"


def _logits(start: dict[int, float], end: dict[int, float], length: int = 11) -> np.ndarray:
    out = np.zeros((length, 2), dtype=np.float32)
    out[: len(SEQ_IDS)] = -1.0
    for i, v in start.items():
        out[i, 0] = v
    for i, v in end.items():
        out[i, 1] = v
    return out


def test_best_span_stays_in_the_context():
    # the question's and the special tokens' logits are the highest; the answer comes from the context
    logits = _logits({0: 9.0, 1: 8.0, 6: 2.0}, {2: 9.0, 8: 9.0, 7: 3.0})
    assert best_span(logits, SEQ_IDS)[:2] == (6, 7)


def test_best_span_never_ends_before_it_starts():
    # the best start lies after the best end: the best valid pair wins instead
    logits = _logits({7: 5.0, 4: 3.0}, {4: 5.0, 5: 1.0})
    i, j, _ = best_span(logits, SEQ_IDS)
    assert (i, j) == (4, 4) and i <= j


def test_best_span_respects_the_longest_answer():
    logits = _logits({4: 5.5, 6: 0.0}, {7: 5.0, 5: 0.5})
    assert best_span(logits, SEQ_IDS, max_answer_tokens=4)[:2] == (4, 7)
    assert best_span(logits, SEQ_IDS, max_answer_tokens=2)[:2] == (4, 5)  # 4..7 is 4 tokens long
    assert best_span(logits, SEQ_IDS, max_answer_tokens=1)[:2] == (4, 4)


def test_best_span_probability_is_start_times_end_softmax_over_the_context():
    logits = _logits({4: 2.0, 5: 1.0}, {5: 3.0})
    i, j, prob = best_span(logits, SEQ_IDS)
    ctx = [4, 5, 6, 7]
    p_start = np.exp(logits[ctx, 0]) / np.exp(logits[ctx, 0]).sum()
    p_end = np.exp(logits[ctx, 1]) / np.exp(logits[ctx, 1]).sum()
    assert (i, j) == (4, 5) and prob == pytest.approx(p_start[0] * p_end[1])


def test_best_span_is_none_when_no_context_token_is_left():
    assert best_span(_logits({1: 1.0}, {2: 1.0}), [None, 0, 0, None]) is None


def test_decode_gives_the_context_text_and_its_character_span():
    items = [("Where is Paris?", CONTEXT), ("Where?", "x")]
    logits = np.stack([_logits({6: 4.0}, {7: 4.0}), _logits({}, {})])
    spans = [(OFFSETS, SEQ_IDS), ([(0, 0), (0, 5), (0, 0)], [None, 0, None])]  # the second: context cut off
    first, second = decode(logits, items, spans)
    assert (first.answer, first.start, first.end) == ("in France", 9, 18) and CONTEXT[9:18] == first.answer
    assert 0 < first.score <= 1
    assert first.span_logits.shape == (len(SEQ_IDS), 2)  # the item's own tokens: row padding dropped
    assert (second.answer, second.start, second.end, second.score) == ("", 0, 0, 0.0)
    assert first.as_dict() == {"answer": "in France", "start": 9, "end": 18, "score": first.score}


def test_evaluate_scores_decoded_answers_against_the_gold():
    class Tok:  # the device TextEncoder's interface: spans() answers token_spans
        def spans(self, items, max_length):
            return [(OFFSETS, SEQ_IDS)] * len(items)

    items = [("Where is Paris?", CONTEXT)] * 2
    outputs = np.stack([_logits({6: 4.0}, {7: 4.0}), _logits({4: 4.0}, {4: 4.0})])
    scores = QA.evaluate(outputs, [("France",), ("Paris", "the city")], items, Tok(), 16)
    assert scores == {"exact_match": 50.0, "f1": pytest.approx(100 * (2 / 3 + 1) / 2, abs=1e-3), "eval_samples": 2}


# -- fidelity ----------------------------------------------------------------------------------------------
def test_span_agreement_ignores_padding_and_other_lengths():
    # every real logit is negative (-1, the span's -0.5): an argmax over the padding's zeros would pick padding
    ref = np.stack([_logits({4: -0.5}, {5: -0.5}), _logits({6: -0.5}, {7: -0.5})])
    same = ref[:, : len(SEQ_IDS)].copy()  # a runtime that padded less: shorter rows
    fid = QA.fidelity(ref, same)
    assert fid["span_agreement"] == 1.0 and fid["cosine_mean"] == pytest.approx(1.0)
    moved = same.copy()
    moved[1, 6, 0] -= 1.0  # item 1's start moves; its end stays
    assert QA.fidelity(ref, moved)["span_agreement"] == 0.5
    assert QA.headline(QA.fidelity(ref, moved)) == 0.5


# -- items and files -----------------------------------------------------------------------------------------
def test_items_from_json_and_back():
    pair = ("Who?", "Me.")
    assert QA.item_from_json({"question": "Who?", "context": "Me."}) == pair
    assert QA.item_from_json(["Who?", "Me."]) == pair
    assert QA.item_as_json(pair) == {"question": "Who?", "context": "Me."}
    assert QA.check_items([{"question": "Who?", "context": "Me."}, ["Who?", "Me."], pair]) == [pair] * 3
    assert QA.check_items(pair) == [pair]  # one question
    assert QA.check_items({"question": "Who?", "context": "Me."}) == [pair]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "questions is empty"),
        ("Who?", "must be a list"),
        ([("Who?", "Me."), ("Who?", "")], "question 1: the context is empty"),
        ([("  ", "Me.")], "question 0: the question is empty"),
        ([("Who?", "Me."), ("Who?", 3)], "question 1: expected"),
        ([["a", "b", "c"]], "question 0: expected"),
        ([{"question": "Who?"}], "question 0: expected"),
        ([("Who?", "x" * (MAX_TEXT_CHARS + 1))], f"question 0: the context is longer than {MAX_TEXT_CHARS}"),
    ],
)
def test_bad_items_are_bad_input(items, message):
    with pytest.raises(InputError) as err:
        QA.check_items(items)
    assert err.value.exit_code == ExitCode.INPUT == 2
    assert message in err.value.message and "\n" not in err.value.message


def _record(i: int, question: str, context: str, answers=None) -> dict:
    rec = {"id": str(i), "question": question, "context": context}
    if answers is not None:
        rec["answers"] = [{"text": a, "answer_start": max(context.find(a), 0)} for a in answers]
    return rec


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_load_items_reads_squad_records(tmp_path):
    path = _write(
        tmp_path / "qa.jsonl",
        [_record(0, "Where?", "In Paris.", ["Paris", "in Paris"]), _record(1, "When?", "In 1870.", ["1870"])],
    )
    items, gold = QA.load_items(path)
    assert items == [("Where?", "In Paris."), ("When?", "In 1870.")]
    assert gold == [("Paris", "in Paris"), ("1870",)]
    assert QA.gold(gold, {}) == [["Paris", "in Paris"], ["1870"]]
    plain = _write(tmp_path / "q.jsonl", [_record(0, "Where?", "In Paris.")])
    assert QA.load_items(plain) == ([("Where?", "In Paris.")], None)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"question": "Where?"}'], ":1: needs non-empty string fields"),
        (["", "not json"], ":2: not a JSON object"),
        (['{"question": "Q", "context": "C", "answers": []}'], ':1: "answers" must be a non-empty list'),
        (
            ['{"question": "Q", "context": "C", "answers": [{"text": "C"}]}', '{"question": "Q", "context": "C"}'],
            "some",
        ),
    ],
)
def test_load_items_refuses_bad_files(tmp_path, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CalibrationError, match=message):
        QA.load_items(path)


def test_the_shipped_sets_are_labelled_squad_records():
    cal, heldout = QA.builtin_data()
    assert cal == data_dir() / "qa" / "train.jsonl" and heldout == data_dir() / "qa" / "test.jsonl"
    items, gold = QA.load_items(heldout)
    assert len(items) == len(gold) > 100 and all(isinstance(q, str) and isinstance(c, str) for q, c in items)
    assert all(any(a in c for a in answers) for (_, c), answers in zip(items, gold))


def test_post_processing_is_checked():
    refused: list[str] = []
    QA.check_postprocessing(QA.postprocessing({}, lambda name: None), lambda ok, what: ok or refused.append(what))
    assert refused == []
    for bad in ({"output": "logits", "max_answer_tokens": 30}, {"output": "span_logits", "max_answer_tokens": 0}):
        QA.check_postprocessing(bad, lambda ok, what: ok or refused.append(what))
    assert len(refused) == 2


def test_head_stacks_start_and_end_and_zeroes_padding():
    import torch

    out = SimpleNamespace(start_logits=torch.tensor([[1.0, 2.0, 3.0]]), end_logits=torch.tensor([[4.0, 5.0, 6.0]]))
    logits = QA.head(out, torch.tensor([[1, 1, 0]]))
    assert logits.shape == (1, 3, 2)
    assert logits.tolist() == [[[1.0, 4.0], [2.0, 5.0], [0.0, 0.0]]]


# -- end to end: compress, score, bundle, load, serve ---------------------------------------------------------
RECIPE = {
    "version": 1,
    "name": "qa",
    "stages": [
        {"kind": "export", "format": "onnx", "name": "onnx-fp32"},
        {"kind": "quantize", "method": "dynamic", "name": "onnx-int8-dynamic"},
        {"kind": "optimize", "input": "onnx-fp32", "name": "onnx-fp32-opt"},  # static int8 needs its shapes
        {
            "kind": "quantize",
            "method": "static",
            "name": "onnx-int8-static",
            "exclude": [r"layer\.\d+/output/dense/MatMul"],
            "calibration": {"samples": 32, "seq_len": SEQ},
        },
        {"kind": "export", "input": "pytorch-fp32", "format": "tflite", "seq_lens": [SEQ], "name": "tflite-fp32"},
        FAST_BENCH,
    ],
}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return tiny_qa_model(tmp_path_factory.mktemp("qa") / "ckpt")


def _brute_force_answers(ckpt: Path, items: list[tuple[str, str]]) -> list[str]:
    """The PyTorch model's answers, decoded by trying every span (one item at a time, no padding)."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(ckpt))
    model = AutoModelForQuestionAnswering.from_pretrained(str(ckpt))
    answers = []
    for question, context in items:
        enc = tok(question, context, truncation=True, max_length=SEQ, return_offsets_mapping=True)
        with torch.no_grad():
            out = model(**{k: torch.tensor([enc[k]]) for k in ("input_ids", "attention_mask", "token_type_ids")})
        start, end = out.start_logits[0].tolist(), out.end_logits[0].tolist()
        ctx = [i for i, s in enumerate(enc.sequence_ids()) if s == 1]
        best = max((start[i] + end[j], i, j) for i in ctx for j in ctx if i <= j < i + 30)
        answers.append(context[enc["offset_mapping"][best[1]][0] : enc["offset_mapping"][best[2]][1]])
    return answers


@pytest.fixture(scope="module")
def labelled(ckpt, tmp_path_factory) -> tuple[Path, list, list[str]]:
    """16 shipped questions (one per context), their gold answer the PyTorch model's own plus a wrong one."""
    records = [json.loads(line) for line in QA.builtin_data()[1].read_text().splitlines() if line.strip()]
    seen: set[str] = set()
    items = []
    for r in records:
        if r["context"] not in seen and len(items) < 16:
            seen.add(r["context"])
            items.append((r["question"], r["context"]))
    answers = _brute_force_answers(ckpt, items)
    path = tmp_path_factory.mktemp("qa-data") / "eval.jsonl"
    _write(path, [_record(i, q, c, [a, "no such answer"]) for i, ((q, c), a) in enumerate(zip(items, answers))])
    return path, items, answers


@pytest.fixture(scope="module")
def compressed(ckpt, labelled, tmp_path_factory) -> Path:
    from edgekit.pipeline.run import compress
    from edgekit.recipe.config import recipe_from_dict

    out = tmp_path_factory.mktemp("qa-out") / "out"
    compress(ckpt, recipe_from_dict(RECIPE, "qa"), out, evaluation=labelled[0], progress=False)
    return out


@pytest.fixture(scope="module")
def bundle(compressed, tmp_path_factory):
    from edgekit.pipeline.bundling import build_bundle

    out = tmp_path_factory.mktemp("qa-bundle") / "bundle"
    return build_bundle(compressed, out, artifacts=["onnx-int8-dynamic", "onnx-fp32", "tflite-fp32"], threads=1)


@pytest.mark.slow  # the chain (ONNX, two int8, TFLite, bench): ~36 s on 2 shared cores; `pytest -m slow`
def test_every_artifact_is_scored_on_the_gold_answers(compressed, labelled):
    rows = {r["name"]: r for r in json.loads((compressed / "report.json").read_text())["results"]}
    assert {"pytorch-fp32", "onnx-fp32", "onnx-int8-dynamic", "onnx-int8-static", "tflite-fp32"} <= set(rows)
    n = len(labelled[1])
    ref = rows["pytorch-fp32"]["fidelity"]
    assert ref["eval_samples"] == n and ref["exact_match"] == 100.0  # the gold is its own answer, decoded apart
    for name in ("onnx-fp32", "onnx-int8-dynamic", "onnx-int8-static", "tflite-fp32"):
        fid = rows[name]["fidelity"]
        assert {"exact_match", "f1", "span_agreement", "eval_samples", "accuracy_drop"} <= set(fid), name
        assert fid["eval_samples"] == n and 0 <= fid["exact_match"] <= 100 and 0 <= fid["f1"] <= 100
        assert 0 <= fid["span_agreement"] <= 1
    for name in ("onnx-fp32", "tflite-fp32"):  # fp32 exports compute the same answers as PyTorch
        fid = rows[name]["fidelity"]
        assert fid["span_agreement"] >= 0.99, name
        assert fid["exact_match"] == ref["exact_match"] and fid["f1"] == pytest.approx(ref["f1"]), name
    assert rows["onnx-int8-dynamic"]["fidelity"]["span_agreement"] >= 0.9


@pytest.mark.slow
def test_the_bundle_answers_on_each_runtime_as_pytorch_does(bundle, labelled):
    _, items, answers = labelled
    assert bundle.meta["postprocessing"] == {"output": "span_logits", "max_answer_tokens": 30}
    for runtime, variant in (("onnxruntime", "onnx-fp32"), ("litert", "tflite-fp32")):
        model = edgekit.load(bundle.path, runtime=runtime, variant=variant, threads=1)
        try:
            assert model.check()["passed"]
            got = model.answer([{"question": q, "context": c} for q, c in items])
            assert [a.answer for a in got] == answers, runtime  # device-side tokenizer and decoding agree
            for a, (_, context) in zip(got, items):
                assert context[a.start : a.end] == a.answer and 0 < a.score <= 1
        finally:
            model.close()


@pytest.mark.slow
def test_answer_and_serve_on_the_int8_variant(bundle, labelled):
    from edgekit.device.serve import make_server

    _, items, _ = labelled
    model = edgekit.load(bundle.path, threads=1)
    try:
        assert model.variant.name == "onnx-int8-dynamic"
        (one,) = model.answer(("Where was the Summer Theatre?", "The Summer Theatre was in the Saxon Garden."))
        assert one.answer and one.answer in "The Summer Theatre was in the Saxon Garden."
        with pytest.raises(InputError, match="question 1: the question is empty"):
            model.answer([items[0], ("", "context")])
        with pytest.raises(InputError, match="answer()"):
            model.embed(["text"])
        srv = make_server(model, "127.0.0.1", 0, quiet=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            questions = [{"question": q, "context": c} for q, c in items[:3]]
            status, out = post(srv, "/answer", {"questions": questions})
            assert status == 200 and len(out["answers"]) == 3, out
            expected = [a.as_dict() for a in model.answer(items[:3])]
            assert out["answers"] == expected
            assert all(set(a) == {"answer", "start", "end", "score"} for a in out["answers"])
            status, out = post(srv, "/answer", {"questions": [questions[0], {"question": "Where?"}]})
            assert status == 400 and out["error"].startswith("question 1:"), out
            status, out = post(srv, "/answer", {"texts": ["no"]})
            assert status == 400 and "questions" in out["error"]
        finally:
            srv.shutdown()
            srv.server_close()
    finally:
        model.close()


@pytest.mark.slow
def test_edgekit_run_answers_json_questions(bundle, run_cli):
    question = json.dumps({"question": "Where was it?", "context": "It was in the Saxon Garden."})
    res = run_cli("run", str(bundle.path), question)
    assert res.exit_code == 0, res.stderr
    (row,) = json.loads(res.output)["results"]
    assert row["input"] == json.loads(question) and row["answer"] in "It was in the Saxon Garden."
    assert run_cli("run", str(bundle.path), '{"question": "Where?"}').exit_code == 2
