"""The text-generation task's declarations, as the task contract checks a one-pass task's."""

import json

import transformers

from edgekit.generation.runtime import TextGenerator
from edgekit.tasks import all_tasks, get_task, infer_task


def test_declarations_are_consistent(tiny_decoder):
    task = get_task("text-generation")
    assert task.generative and {t.name for t in all_tasks() if t.generative} == {
        "text-generation",
        "text2text-generation",
        "automatic-speech-recognition",
    }
    assert callable(getattr(TextGenerator, task.api_method)) and task.api_method == "generate"
    assert hasattr(transformers, task.auto_class)
    for arch in ("LlamaForCausalLM", "Qwen2ForCausalLM", "GPT2LMHeadModel"):
        assert infer_task({"architectures": [arch]}) == task.name, arch
    assert infer_task({"architectures": ["BertForMaskedLM"]}) != task.name
    assert infer_task(json.loads((tiny_decoder / "config.json").read_text())) == task.name
    assert task.postprocessing({}, lambda name: {"max_length": 64})["generation"] == {"max_length": 64}


def test_text2text_declarations():
    """T5 / mT5 / BART / Marian checkpoints infer text2text-generation; its compressor and generator exist."""
    import importlib

    from edgekit.generation.seq2seq import Text2TextGenerator

    task = get_task("text2text-generation")
    assert task.generative and callable(getattr(Text2TextGenerator, task.api_method))
    assert hasattr(transformers, task.auto_class)
    for arch in (
        "T5ForConditionalGeneration",
        "MT5ForConditionalGeneration",
        "BartForConditionalGeneration",
        "MBartForConditionalGeneration",
        "MarianMTModel",
    ):
        assert infer_task({"architectures": [arch]}) == task.name, arch
    for t in (task, get_task("text-generation")):
        module, function = t.compressor.split(":")
        assert callable(getattr(importlib.import_module(module), function))


def test_speech_declarations():
    """Whisper checkpoints infer automatic-speech-recognition; it shares the encoder-decoder compressor, its
    recogniser has the declared API method, and its metric is an error rate."""
    from edgekit.generation.speech import SpeechRecognizer

    task = get_task("automatic-speech-recognition")
    assert infer_task({"architectures": ["WhisperForConditionalGeneration"]}) == task.name
    assert task.compressor == get_task("text2text-generation").compressor
    assert callable(getattr(SpeechRecognizer, task.api_method)) and hasattr(transformers, task.auto_class)
    assert task.lower_is_better and task.metrics == ("wer",) and task.not_served and not task.distillable
