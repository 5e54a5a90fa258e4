"""image-classification: one label per image (ViT-style), from pixel_values made by edgekit's image processor."""

from __future__ import annotations

from edgekit.tasks import Task, register


@register
class ImageClassification(Task):
    name = "image-classification"
    description = "class logits"
    modality = "image"
    labelled = True
    architectures = ("ForImageClassification",)
    auto_class = "AutoModelForImageClassification"
    api_method = "classify_images"
    endpoint = "/classify"
    headline_key = "label_agreement"
    headline_label = "label agreement"
