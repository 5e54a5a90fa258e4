"""text2text-generation: encoder-decoders (T5, mT5, BART, Marian): text in, generated text out.

Like text-generation it is not one forward pass: it is compressed by the encoder-decoder pipeline
(:mod:`edgekit.generation.seq2seq_pipeline`: the encoder and a KV-cache decoder exported, quantized per
part, measured end to end at each beam width, scored by BLEU / chrF on test pairs) and served by
``generate`` (:class:`edgekit.generation.seq2seq.Text2TextGenerator`).
"""

from __future__ import annotations

from edgekit.tasks import register
from edgekit.tasks.text_generation import GeneratedText


@register
class Text2TextGeneration(GeneratedText):
    name = "text2text-generation"
    description = "an encoder and a decoder with a KV cache; generated text (beam search)"
    output_name = "logits"
    # the families whose export, cache layout and generation loop are tested (mT5 and UMT5 end in T5..., mBART
    # in Bart...); other encoder-decoders are refused by name before any weight is read
    architectures = ("T5ForConditionalGeneration", "BartForConditionalGeneration", "MarianMTModel")
    auto_class = "AutoModelForSeq2SeqLM"
    compressor = "edgekit.generation.seq2seq_pipeline:compress_seq2seq"
    default_recipe = "seq2seq"
    headline_key = "bleu"
    headline_label = "BLEU on test pairs"
    budget_key = "bleu"
