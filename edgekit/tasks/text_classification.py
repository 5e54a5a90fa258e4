"""text-classification: one label per text (a sequence-classification head), softmax scores."""

from __future__ import annotations

from edgekit.tasks import Task, register


@register
class TextClassification(Task):
    name = "text-classification"
    description = "class logits"
    labelled = True
    architectures = ("ForSequenceClassification",)
    auto_class = "AutoModelForSequenceClassification"
    api_method = "classify"
    endpoint = "/classify"
    headline_key = "label_agreement"
    headline_label = "label agreement"
