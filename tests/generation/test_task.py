"""The text-generation task's declarations, as the task contract checks a one-pass task's."""

import json

import transformers

from edgekit.generation.runtime import TextGenerator
from edgekit.tasks import all_tasks, get_task, infer_task


def test_declarations_are_consistent(tiny_decoder):
    task = get_task("text-generation")
    assert task.generative and [t.name for t in all_tasks() if t.generative] == ["text-generation"]
    assert callable(getattr(TextGenerator, task.api_method)) and task.api_method == "generate"
    assert hasattr(transformers, task.auto_class)
    for arch in ("LlamaForCausalLM", "Qwen2ForCausalLM", "GPT2LMHeadModel"):
        assert infer_task({"architectures": [arch]}) == task.name, arch
    assert infer_task({"architectures": ["BertForMaskedLM"]}) != task.name
    assert infer_task(json.loads((tiny_decoder / "config.json").read_text())) == task.name
    assert task.postprocessing({}, lambda name: {"max_length": 64})["generation"] == {"max_length": 64}
