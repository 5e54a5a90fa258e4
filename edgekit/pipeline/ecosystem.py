"""Artifact folders the ecosystem's loaders open as they are.

An ONNX artifact made from a checkpoint carries, beside ``model.onnx``, the checkpoint's ``config.json`` and
tokenizer files, so Optimum's ``ORTModelFor...`` classes load the folder; a feature-extraction one also
carries sentence-transformers' module files (``modules.json``, ``sentence_bert_config.json``, the pooling
config: the checkpoint's own, or mean pooling when it has none), so ``SentenceTransformer(folder,
backend="onnx")`` loads it. The ONNX graph has the token embeddings (``last_hidden_state``) they pool
beside edgekit's pooled ``embeddings`` (:attr:`edgekit.tasks.Task.ecosystem_outputs`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
)
ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")
POOLING = "1_Pooling"


def write_ecosystem_files(checkpoint, out_dir: Path) -> list[str]:
    """Copy ``checkpoint``'s config and tokenizer (and for a feature-extraction model its sentence-transformers
    module files) into the artifact folder ``out_dir``; the names written, relative to it."""
    src = Path(checkpoint.path)
    written = []
    for name in ("config.json", *TOKENIZER_FILES):
        if (src / name).is_file() and not (out_dir / name).exists():
            shutil.copyfile(src / name, out_dir / name)
            written.append(name)
    if checkpoint.task_def.ecosystem_outputs:
        written += _sentence_transformers(checkpoint, src, out_dir)
    return written


def _sentence_transformers(checkpoint, src: Path, out_dir: Path) -> list[str]:
    written = []
    modules = _read(src / "modules.json")
    if isinstance(modules, list) and modules:
        for name in ST_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, out_dir / name)
                written.append(name)
        for module in modules:  # each module's own folder (the pooling config; Normalize has none)
            path = str(module.get("path", "")) if isinstance(module, dict) else ""
            folder = src / path
            if path and ".." not in Path(path).parts and folder.is_dir():
                for f in sorted(folder.glob("*.json")):
                    (out_dir / path).mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(f, out_dir / path / f.name)
                    written.append(f"{path}/{f.name}")
        return written
    # no sentence-transformers files in the checkpoint: the pipeline edgekit's own head computes
    hidden = int(checkpoint.config.get("hidden_size") or checkpoint.config.get("dim") or 0)
    limit = int(checkpoint.config.get("max_position_embeddings") or 512)
    files = {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": POOLING, "type": "sentence_transformers.models.Pooling"},
        ],
        "sentence_bert_config.json": {"max_seq_length": min(limit, 512), "do_lower_case": False},
        f"{POOLING}/config.json": {
            "word_embedding_dimension": hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
    }
    for name, content in files.items():
        (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / name).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
        written.append(name)
    return written


def _read(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


STANDARD_DOMAINS = ("", "ai.onnx")


def contrib_ops(model_path: Path) -> list[str]:
    """The ops of an ONNX graph outside the standard ONNX domains (``com.microsoft``'s Attention,
    SkipLayerNormalization, ...): only ONNX Runtime runs them; a graph with none runs on any ONNX runtime."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    return sorted({f"{n.domain}.{n.op_type}" for n in graph.node if n.domain not in STANDARD_DOMAINS})
