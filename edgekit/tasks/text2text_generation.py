"""text2text-generation: encoder-decoders (T5, mT5, BART, Marian): text in, generated text out.

Like text-generation it is not one forward pass: it is compressed by the encoder-decoder pipeline
(:mod:`edgekit.generation.seq2seq_pipeline`: the encoder and a KV-cache decoder exported, quantized per
part, measured end to end at each beam width, scored by BLEU / chrF on test pairs) and served by
``generate`` (:class:`edgekit.generation.seq2seq.Text2TextGenerator`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from edgekit.tasks import register
from edgekit.tasks.text_generation import GeneratedText


class EncoderDecoderTask(GeneratedText):
    """What the encoder-decoder pipeline asks a task: its test data, the encoder's inputs for a row, and the
    metric of the decoded outputs. Not registered itself."""

    compressor = "edgekit.generation.seq2seq_pipeline:compress_seq2seq"
    default_recipe = "seq2seq"
    seq2seq_data: ClassVar[str]  # the shipped test set bench-seq2seq scores by default
    metrics: ClassVar[tuple[str, ...]]  # what score() returns; the first is the default budget metric
    lower_is_better: ClassVar[bool] = False  # the metric's direction (a drop is a rise of a lower-is-better one)
    distillable: ClassVar[bool] = True  # distill-seq2seq has training data for it

    def test_rows(self, data: str) -> list[dict]:
        """The labelled test rows of ``data`` (each with ``target``)."""
        raise NotImplementedError

    def sources(self, ckpt, rows: list[dict]) -> list:
        """What the encoder takes for each row (token ids; a speech model's log-mel features)."""
        raise NotImplementedError

    def score(self, tokenizer, outputs: list[list[int]], rows: list[dict]) -> dict[str, float]:
        """The metrics of the decoded ``outputs`` against the rows' targets."""
        raise NotImplementedError


@register
class Text2TextGeneration(EncoderDecoderTask):
    name = "text2text-generation"
    description = "an encoder and a decoder with a KV cache; generated text (beam search)"
    output_name = "logits"
    # the families whose export, cache layout and generation loop are tested (mT5 and UMT5 end in T5..., mBART
    # in Bart...); other encoder-decoders are refused by name before any weight is read
    architectures = ("T5ForConditionalGeneration", "BartForConditionalGeneration", "MarianMTModel")
    auto_class = "AutoModelForSeq2SeqLM"
    headline_key = "bleu"
    headline_label = "BLEU on test pairs"
    budget_key = "bleu"
    seq2seq_data = "sotu-punct"
    metrics = ("bleu", "chrf", "rouge1", "rouge2", "rouge_l")

    def test_rows(self, data: str) -> list[dict]:
        from edgekit.generation.text2text_data import pairs

        return pairs(data)[1]

    def sources(self, ckpt, rows: list[dict]) -> list:
        tok = ckpt.tokenizer
        context = int(ckpt.max_positions or 0) or 512
        return [tok(r["source"])["input_ids"][:context] for r in rows]

    def score(self, tokenizer, outputs: list[list[int]], rows: list[dict]) -> dict[str, Any]:
        """BLEU and chrF (sacrebleu, corpus level: translation-like tasks) and ROUGE-1/2/L F1 (rouge-score, Porter
        stemming, the mean over the rows: summarisation-like tasks), all in points (0-100)."""
        import sacrebleu
        from rouge_score import rouge_scorer

        hyps = [tokenizer.decode(o, skip_special_tokens=True) for o in outputs]
        targets = [r["target"] for r in rows[: len(hyps)]]
        scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
        rouge = [scorer.score(t, h) for t, h in zip(targets, hyps)]

        def mean_f1(kind: str) -> float:
            return round(100 * sum(r[kind].fmeasure for r in rouge) / max(len(rouge), 1), 3)

        return {
            "bleu": round(sacrebleu.corpus_bleu(hyps, [targets]).score, 3),
            "chrf": round(sacrebleu.corpus_chrf(hyps, [targets]).score, 3),
            "rouge1": mean_f1("rouge1"),
            "rouge2": mean_f1("rouge2"),
            "rouge_l": mean_f1("rougeL"),
        }
