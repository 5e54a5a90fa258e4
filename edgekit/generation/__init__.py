"""Generative Transformers (decoder language models): export with a KV cache, quantize, generate, measure.

The device side (:mod:`edgekit.generation.runtime`) imports numpy, onnxruntime and tokenizers only;
the build side (export, training, the compress pipeline) imports torch lazily.
"""
