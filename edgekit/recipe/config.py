"""Recipes: a versioned, strictly validated, ordered list of stage configs.

A recipe is pure data. It loads from YAML (a built-in name or a file) or is
built in Python; an unknown key or a wrong type fails at load time with the
path of the offending key. Which code runs a stage is decided by the stage
registry (:mod:`edgekit.stages`), keyed by the config's type.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from edgekit import formats
from edgekit.errors import RecipeError

RECIPE_VERSION: Final = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageConfig(_Strict):
    """Fields every stage has: the name of the artifact it writes and the one it reads."""

    name: str | None = Field(None, description="name of the artifact this stage writes")
    input: str | None = Field(None, description="artifact to read; default: the previous stage's")


def _known_formats(schema: dict) -> None:
    schema["enum"] = list(formats.names())


class ExportConfig(StageConfig):
    kind: Literal["export"]
    format: str = Field(
        "onnx",
        description="the model format to export to: one the installed plugins declare (edgekit.formats)",
        json_schema_extra=_known_formats,
    )
    opset: int = Field(17, ge=14, le=21, description="ONNX only")
    seq_lens: list[Annotated[int, Field(ge=1)]] | Literal["auto"] = Field(
        default_factory=lambda: [128],
        min_length=1,
        description="TFLite only: one static-shape signature per sequence-length bucket; `auto`: buckets chosen "
        "from the calibration and held-out texts' lengths (powers of two up to the bench stage's seq_len). "
        "Generative models: a decoder's prefill lengths, an encoder-decoder's decoder lengths (unset: the "
        "converter's own)",
    )
    atol: float = Field(1e-4, gt=0, description="max abs difference allowed against PyTorch")
    min_cosine: float = Field(0.99999, gt=0, le=1)

    def given_seq_lens(self) -> tuple[int, ...] | None:
        """The recipe's own ``seq_lens`` list, or None when it left them to the default or to ``auto``."""
        if "seq_lens" not in self.model_fields_set or self.seq_lens == "auto":
            return None
        return tuple(self.seq_lens)

    @field_validator("format", mode="before")
    @classmethod
    def _registered_format(cls, value: object) -> object:
        """A format the registry knows; otherwise the message a ``Literal`` of the known names gives."""
        known = formats.names()
        if not (isinstance(value, str) and value in known):
            expected = formats.either([repr(n) for n in known])
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return value


class OptimizeConfig(StageConfig):
    kind: Literal["optimize"]
    fusions: Literal["transformer", "basic"] = "transformer"
    gelu_approximation: bool = Field(False, description="replace erf Gelu by the faster tanh approximation")
    skip_layer_norm: bool = Field(
        True,
        description="fuse each residual add and LayerNorm into ONNX Runtime's SkipLayerNormalization, as Optimum "
        "does; false writes Add, Add, LayerNormalization in an order ONNX Runtime does not re-fuse when it loads "
        "the model (its CPU SkipLayerNormalization kernel is several times slower than the three ops)",
    )
    atol: float = Field(1e-3, gt=0)
    min_cosine: float = Field(0.9999, gt=0, le=1)


class CalibrationConfig(_Strict):
    method: Literal["minmax", "entropy", "percentile"] = "minmax"
    percentile: float = Field(99.999, gt=90, le=100)
    samples: int = Field(256, ge=1)
    batch_size: int = Field(8, ge=1)
    seq_len: int = Field(128, ge=8, description="batches are padded to this fixed length")


class QuantizeConfig(StageConfig):
    kind: Literal["quantize"]
    method: Literal["dynamic", "static", "weight_only", "fp16"]
    per_channel: bool = True
    weight_type: Literal["int8", "uint8"] = "int8"
    activation_type: Literal["uint8", "int8"] = "uint8"
    op_types: list[str] | None = Field(None, description="op types to quantize; default depends on the method")
    exclude: list[str] = Field(
        default_factory=list, description="regular expressions; matching nodes are not statically quantized"
    )
    fallback: Literal["float", "dynamic"] = Field(
        "float", description="what excluded nodes become: float, or dynamic int8 (TFLite)"
    )
    quantize_embeddings: bool = Field(True, description="also store the word-embedding table in int8")
    calibration: CalibrationConfig = CalibrationConfig()
    min_cosine: float = Field(0.9, ge=0, le=1, description="sanity floor on held-out texts; below it the stage fails")
    max_fidelity_drop: Annotated[float, Field(ge=0, le=1)] | Literal["budget"] | None = Field(
        None,
        description="static int8 with NNCF's accuracy control (OpenVINO): layers are reverted to float, the "
        "costliest first, until the mean cosine to the fp32 model on held-out texts drops by at most this much; "
        "`budget` (in a search's candidates): 1 - the search budget's min_fidelity",
    )


class BenchConfig(StageConfig):
    kind: Literal["bench"]
    batch_size: int = Field(1, ge=1)
    seq_len: int = Field(128, ge=1)
    threads: int = Field(2, ge=1)
    warmup: int = Field(10, ge=0)
    runs: int = Field(50, ge=1)
    fidelity_samples: int = Field(300, ge=1, description="held-out texts used to measure fidelity")
    eval: str | None = Field(
        None,
        description="labelled set whose test split every artifact is scored on "
        "(`spam` or a directory); default: --eval, else the shipped texts",
    )
    reference: bool = Field(True, description="also measure the fp32 PyTorch reference")


class TrainConfig(_Strict):
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-4, gt=0)
    max_len: int = Field(128, ge=8, description="tokens per training example")
    seed: int = 0
    save_every: int = Field(50, ge=1, description="steps between resume checkpoints")
    min_steps: int = Field(
        0, ge=0, description="train at least this many steps: a small data set gets more epochs than `epochs` says"
    )


class LossConfig(_Strict):
    temperature: float = Field(2.0, gt=0)
    kd: float = Field(1.0, ge=0, description="KL to the teacher's logits (classifiers)")
    hard: float = Field(0.5, ge=0, description="cross-entropy with the labels (classifiers)")
    hidden: float = Field(0.0, ge=0, description="MSE between mapped hidden states")
    embedding: float = Field(1.0, ge=0, description="1 - cosine to the teacher's sentence embeddings (encoders)")


class DistillConfig(StageConfig):
    """A student with fewer layers, initialised from the teacher's, trained to match it."""

    kind: Literal["distill"]
    data: str = Field("spam", description="labelled set (`spam` or a directory); encoders use the shipped texts")
    layers: int | list[int] = Field(3, description="student layers: a count (evenly spaced) or teacher indices")
    losses: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig(epochs=2.0)


class PruneConfig(StageConfig):
    """Remove attention heads, FFN neurons and/or layers by measured importance, then recover by distillation."""

    kind: Literal["prune"]
    data: str = "spam"
    heads: float | int | None = Field(None, description="ratio (0-1) of heads to remove, or heads to keep per layer")
    ffn: float | int | None = Field(None, description="ratio of FFN neurons to remove, or neurons to keep per layer")
    layers: int | list[int] | None = Field(None, description="layers to keep: a count (most important) or indices")
    sparsity: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="unstructured: zero this fraction of each encoder "
        "weight matrix by magnitude (smaller compressed files, no speed-up)",
    )
    vocabulary: bool = Field(False, description="keep only the word embeddings of tokens the task data uses")
    importance_batches: int = Field(16, ge=1)
    recover: TrainConfig | None = Field(TrainConfig(epochs=1.0), description="recovery distillation; null: none")
    losses: LossConfig = LossConfig()


class QATConfig(StageConfig):
    """Quantization-aware training (PyTorch 2 export + torchao fake quantization), distilled from the
    fp32 teacher, exported as QDQ ONNX that ONNX Runtime runs in int8."""

    kind: Literal["qat"]
    data: str = "spam"
    mode: Literal["qat", "ptq"] = Field(
        "qat",
        description="qat: calibrate, then fake-quant training; ptq: the same "
        "quantizer and precision, calibrated only (the static PTQ baseline)",
    )
    calibration_batches: int = Field(16, ge=1, description="training batches that calibrate the observers first")
    keep_best: bool = Field(True, description="keep the calibrated start when training lowers validation accuracy")
    freeze_observers: bool = Field(
        True,
        description="QAT: keep the calibrated quantization ranges fixed while the "
        "weights train (else the observers keep moving with every batch)",
    )
    dropout: bool = Field(
        False,
        description="QAT: train with dropout; off, training fits the quantization error "
        "against the fp32 model instead of re-learning the task",
    )
    train: TrainConfig = TrainConfig(epochs=0.5, lr=2e-5)
    losses: LossConfig = LossConfig()
    opset: int = Field(18, ge=17, le=21)
    min_cosine: float = Field(0.9, ge=0, le=1, description="sanity floor against the fp32 input model")


class BudgetConfig(_Strict):
    """What a candidate must keep. One of the two; both measured on the artifact's own runtime."""

    min_fidelity: float | None = Field(
        None,
        gt=0,
        le=1,
        description="mean cosine to the fp32 PyTorch outputs (token-level tasks: their own share, "
        "token label or answer span agreement)",
    )
    max_accuracy_drop: float | None = Field(
        None, ge=0, le=100, description="points of task accuracy lost vs fp32 PyTorch (needs a labelled --eval set)"
    )
    max_perplexity_increase: float | None = Field(
        None,
        ge=0,
        description="decoder language models: perplexity on held-out text at most (1 + this) x PyTorch fp32's",
    )
    max_metric_drop: float | None = Field(
        None,
        ge=0,
        description="encoder-decoders: points of the task metric (BLEU, chrF) lost vs PyTorch fp32 on the test pairs",
    )
    max_size_mb: float | None = Field(None, gt=0, description="limit on the model file")
    max_peak_rss_mb: float | None = Field(None, gt=0, description="limit on peak memory while loading and running")

    def model_post_init(self, _ctx) -> None:
        given = [self.min_fidelity, self.max_accuracy_drop, self.max_perplexity_increase, self.max_metric_drop]
        if sum(v is not None for v in given) != 1:
            raise ValueError(
                "give exactly one of min_fidelity, max_accuracy_drop, max_perplexity_increase and max_metric_drop"
            )


class SearchConfig(StageConfig):
    """Try quantization candidates on one or more fp32 artifacts; keep the fastest within budget."""

    kind: Literal["search"]
    budget: BudgetConfig
    targets: list[str] = Field(
        default_factory=list, description="fp32 artifacts to search from (ONNX and/or TFLite); default: the input"
    )
    candidates: list[QuantizeConfig] | None = Field(
        None, description="explicit candidates (quantize stages); default: the built-in space for each format"
    )
    sensitivity_fallback: int = Field(
        3, ge=0, le=8, description="extra candidates keeping the k most sensitive layers in float, k = 1, 2, 4, ..."
    )
    max_trials: int = Field(16, ge=1)
    time_limit_s: float = Field(900, gt=0)
    runs: int = Field(30, ge=5, description="timed runs per candidate (interleaved with its fp32 parent)")
    samples: int = Field(300, ge=8, description="held-out texts the budget is measured on")


class Int4Config(StageConfig):
    """Decoders: block-wise weight-only quantization of an ONNX decoder (ONNX Runtime's MatMulNBits), 4-bit, or
    8-bit with ``bits: 8`` (the scheme ONNX Runtime GenAI's builder calls int8)."""

    kind: Literal["int4"]
    bits: Literal[4, 8] = Field(4, description="4, or 8: the same block-wise weight-only scheme at 8 bits (rtn)")
    algorithm: Literal["rtn", "hqq", "k_quant"] = Field(
        "rtn", description="round-to-nearest, HQQ (optimised scales and zero points) or k-quant"
    )
    block_size: Literal[16, 32, 64, 128] = 32
    accuracy_level: Literal[0, 1, 2, 3, 4] = Field(
        4, description="4: the kernel computes in int8 (fast on CPUs); 0: float compute"
    )
    symmetric: bool = True


class DistillDecoderConfig(StageConfig):
    """Decoders: a student with fewer layers (and a narrower FFN), initialised from the teacher's layers and
    trained on its next-token distribution (KL at ``temperature``) plus the language-model loss."""

    kind: Literal["distill-decoder"]
    layers: int = Field(2, ge=1, description="student layers (taken evenly from the teacher)")
    ffn_keep: float = Field(1.0, gt=0, le=1, description="share of FFN channels kept (largest weight norms)")
    data: str = Field("sotu", description="`sotu` (shipped) or a directory with train.txt and heldout.txt")
    temperature: float = Field(2.0, gt=0)
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the KL term (1 - alpha: language-model loss)")
    train: TrainConfig = TrainConfig(epochs=1.0, batch_size=16, lr=1e-3, max_len=256)


class GenerateBenchConfig(StageConfig):
    """Decoders: how every artifact is measured, and the budget the promoted one keeps."""

    kind: Literal["bench-generate"]
    prompt_lens: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [32, 128, 448], min_length=1, description="time to first token at these prompt lengths"
    )
    new_tokens: int = Field(64, ge=1, description="tokens generated per decode measurement")
    batch_sizes: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [1], min_length=1)
    threads: int = Field(2, ge=1)
    runs: int = Field(3, ge=1)
    perplexity_tokens: int = Field(16384, ge=64, description="held-out tokens perplexity is measured on")
    window: int = Field(256, ge=8, description="tokens per perplexity window")
    continuations: int = Field(8, ge=1, description="held-out prompts whose greedy continuations are compared")
    continuation_tokens: int = Field(32, ge=1)
    data: str = Field("sotu", description="held-out text: `sotu` (shipped) or a directory with heldout.txt")
    max_perplexity_increase: float = Field(
        0.06, ge=0, description="the promoted artifact's perplexity is at most (1 + this) x PyTorch fp32's"
    )
    reference: bool = Field(True, description="also measure PyTorch eager generate (fp32, KV cache)")
    retime_rounds: int = Field(
        3,
        ge=0,
        description="the fastest passing candidates (up to 3) are re-timed alternately in this many rounds, each in "
        "its own process, and the best median is promoted (0: promote on the first measurement)",
    )


class DistillSeq2SeqConfig(StageConfig):
    """Encoder-decoders: a student keeping the teacher's encoder and ``decoder_layers`` of its decoder layers,
    trained on the teacher's token distributions (KL at ``temperature``, teacher-forced on the gold targets) plus
    the cross-entropy on the targets."""

    kind: Literal["distill-seq2seq"]
    decoder_layers: int = Field(1, ge=1, description="student decoder layers (taken evenly from the teacher)")
    data: str = Field("sotu-punct", description="`sotu-punct` (shipped) or a directory with train.jsonl/test.jsonl")
    temperature: float = Field(2.0, gt=0)
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the KL term (1 - alpha: cross-entropy)")
    train: TrainConfig = TrainConfig(epochs=4.0, batch_size=32, lr=5e-4, max_len=64)


class Seq2SeqBenchConfig(StageConfig):
    """Encoder-decoders: how every artifact is measured, and the budget the promoted one keeps."""

    kind: Literal["bench-seq2seq"]
    data: str | None = Field(
        None,
        description="test data; default the task's shipped set: `sotu-punct` pairs (text2text-generation), "
        "`sotu-speech` clips (automatic-speech-recognition); or a directory with test.jsonl",
    )
    metric: Literal["bleu", "chrf", "rouge1", "rouge2", "rouge_l", "wer"] | None = Field(
        None,
        description="the metric budgets hold; default the task's: bleu (sacrebleu; rouge_l etc. with rouge-score for "
        "summarisation-like data), wer (jiwer)",
    )
    samples: int = Field(120, ge=4, description="test pairs scored (beam search at the largest num_beams)")
    timed: int = Field(12, ge=1, description="test inputs timed end to end per num_beams")
    num_beams: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [1, 4], min_length=1)
    max_new_tokens: int = Field(96, ge=1)
    decode_tokens: int = Field(32, ge=2, description="tokens generated per decode tokens/s measurement")
    threads: int = Field(2, ge=1)
    runs: int = Field(3, ge=1)
    max_metric_drop: float = Field(1.0, ge=0, description="points of the metric the promoted artifact may lose")
    reference: bool = Field(True, description="also time PyTorch eager generate (fp32, KV cache)")


Stage = Annotated[
    ExportConfig
    | OptimizeConfig
    | QuantizeConfig
    | BenchConfig
    | SearchConfig
    | DistillConfig
    | PruneConfig
    | QATConfig
    | Int4Config
    | DistillDecoderConfig
    | GenerateBenchConfig
    | DistillSeq2SeqConfig
    | Seq2SeqBenchConfig,
    Field(discriminator="kind"),
]


class GatesConfig(_Strict):
    """Regression gates `edgekit report --baseline` applies to this recipe's report (flags override)."""

    max_latency_regression: float | None = Field(None, ge=0, description="percent growth of p50")
    max_size_growth: float | None = Field(None, ge=0, description="percent growth of the model file")
    max_accuracy_drop: float | None = Field(None, ge=0, description="points of accuracy / fidelity")


class Recipe(_Strict):
    version: Literal[1] = RECIPE_VERSION
    name: str
    description: str = ""
    stages: list[Stage] = Field(min_length=1)
    gates: GatesConfig | None = None
    skip_unavailable: bool = Field(
        False,
        description="leave out the stages of formats whose export, runtime or quantizer is not installed here "
        "(and the stages built on them); the report lists what was left out and why",
    )

    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)

    def with_data(self, data: str) -> Recipe:
        """The same recipe on another labelled set: every training stage's ``data`` and the bench ``eval``."""
        stages = []
        for st in self.stages:
            if isinstance(st, BenchConfig):
                st = st.model_copy(update={"eval": data})
            elif "data" in type(st).model_fields:
                st = st.model_copy(update={"data": data})
            stages.append(st)
        return self.model_copy(update={"stages": stages})

    def with_bench(self, **settings: int | None) -> Recipe:
        """The same recipe measured otherwise: ``settings`` (``threads``, ``seq_len``, ``batch_size``; None
        keeps the recipe's) replace those of its bench stage, which is added when it has none. Validated as a
        recipe's own bench stage is."""
        updates = {k: v for k, v in settings.items() if v is not None}
        if not updates:
            return self
        stages = list(self.stages)
        gen = max((i for i, st in enumerate(stages) if isinstance(st, GenerateBenchConfig)), default=None)
        if gen is not None:  # a decoder recipe: threads, the batch size and the prompt length of its bench
            mapped = {
                "threads": updates.get("threads"),
                "batch_sizes": [updates["batch_size"]] if "batch_size" in updates else None,
                "prompt_lens": [updates["seq_len"]] if "seq_len" in updates else None,
            }
            base = stages[gen].model_dump(exclude_unset=True)
            try:
                stages[gen] = GenerateBenchConfig(**{**base, **{k: v for k, v in mapped.items() if v is not None}})
            except ValidationError as err:
                raise RecipeError(
                    f"recipe {self.name}: {err.errors()[0]['loc'][-1]}: {err.errors()[0]['msg']}"
                ) from None
            return self.model_copy(update={"stages": stages})
        at = max((i for i, st in enumerate(stages) if isinstance(st, BenchConfig)), default=None)
        base = stages[at].model_dump(exclude_unset=True) if at is not None else {"kind": "bench"}
        try:
            bench = BenchConfig(**{**base, **updates})
        except ValidationError as err:
            raise RecipeError(f"recipe {self.name}: {err.errors()[0]['loc'][-1]}: {err.errors()[0]['msg']}") from None
        if at is None:
            stages.append(bench)
        else:
            stages[at] = bench
        return self.model_copy(update={"stages": stages})

    def check_lengths(self, limit: int | None, model: str) -> None:
        """Every token length the recipe asks for fits a model taking ``limit`` positions (None: no limit)."""
        if limit is None:
            return
        for i, st in enumerate(self.stages):
            for key, value in _lengths(st):
                if value > limit:
                    raise RecipeError(
                        f"recipe {self.name}: stages.{i}.{st.kind}.{key} is {value}, but {model} takes "
                        f"at most {limit} tokens (max_position_embeddings); use {limit} or less"
                    )

    def bench_config(self) -> BenchConfig:
        benches = [s for s in self.stages if isinstance(s, BenchConfig)]
        return benches[-1] if benches else BenchConfig(kind="bench")


def _lengths(st) -> list[tuple[str, int]]:
    """The token lengths a stage runs the model at: (key, value)."""
    if isinstance(st, BenchConfig):
        return [("seq_len", st.seq_len)]
    if isinstance(st, ExportConfig) and formats.get(st.format).fixed_lengths:
        return [] if st.seq_lens == "auto" else [("seq_lens", max(st.seq_lens))]  # auto: up to the bench's
    if isinstance(st, QuantizeConfig) and st.method == "static":
        return [("calibration.seq_len", st.calibration.seq_len)]
    if isinstance(st, (DistillConfig, QATConfig)):
        return [("train.max_len", st.train.max_len)]
    if isinstance(st, PruneConfig) and st.recover is not None:
        return [("recover.max_len", st.recover.max_len)]
    return []


def _format_validation_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"recipe {source}: {loc}: {msg}{more}"


def recipe_from_dict(data: object, source: str = "<dict>") -> Recipe:
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        raise RecipeError(_format_validation_error(source, err)) from None


def builtin_recipe_names() -> list[str]:
    folder = resources.files("edgekit.recipe") / "builtin"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read_text(path: Path) -> str:
    """A recipe file's text; a missing, unreadable or binary file is a one-line error."""
    if path.is_dir():
        raise RecipeError(f"recipe {path} is a directory; pass a recipe YAML file or a built-in name")
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise RecipeError(f"recipe {path}: cannot read it ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = "\0"
    if "\0" in text:
        raise RecipeError(
            f"recipe {path}: not a YAML text file (binary content); pass a recipe YAML file or a "
            "built-in name (see `edgekit recipes`)"
        )
    return text


def load_recipe(spec: str | Path) -> Recipe:
    """Load a built-in recipe by name, or a YAML file by path."""
    spec_str = str(spec)
    path = Path(spec_str)
    if spec_str in builtin_recipe_names():
        text = (resources.files("edgekit.recipe") / "builtin" / f"{spec_str}.yaml").read_text(encoding="utf-8")
        source = spec_str
    elif path.suffix in (".yaml", ".yml") or path.exists():
        text = _read_text(path)
        source = str(path)
    else:
        names = ", ".join(builtin_recipe_names())
        raise RecipeError(f"unknown recipe {spec_str!r}: not a built-in ({names}) nor a YAML file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe {source}: not valid YAML ({str(err).splitlines()[0]})") from None
    return recipe_from_dict(data, source)


def describe_builtins() -> list[tuple[str, str]]:
    return [(name, load_recipe(name).description) for name in builtin_recipe_names()]
