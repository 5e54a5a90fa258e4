"""Compress a decoder language model: recipe -> artifacts -> measured on the target runtime -> report.

The decoder counterpart of :mod:`edgekit.pipeline.run`, with the same promises: the whole recipe is
checked before any work, every export is parity-checked against PyTorch (prefill and decode logits, the
greedy continuation), every artifact is measured in its own process, and an artifact is promoted only
when it is faster than its fp32 export and within the perplexity budget. All or nothing: the output is
staged and swapped in at the end (:class:`edgekit.output.OutputDir`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgekit.artifact import Artifact, write_manifest
from edgekit.checkpoint import Checkpoint
from edgekit.errors import CheckpointError, ParityError, RecipeError
from edgekit.generation.runtime import RUNNABLE_FORMATS
from edgekit.recipe.config import (
    BenchConfig,
    DistillDecoderConfig,
    ExportConfig,
    GenerateBenchConfig,
    Int4Config,
    QuantizeConfig,
    Recipe,
    SearchConfig,
)

REFERENCE = "pytorch-fp32"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json")
PARITY_PROMPT, PARITY_STEPS = 24, 16


@dataclass(frozen=True)
class DecoderStep:
    config: object
    name: str
    parent: str
    kind: str  # "export", "export-tflite", "int8", "int4", "tflite-int8", "tflite-int4", "distill"


# the decoder search spaces: every quantization of an fp32 decoder edgekit measures (name suffix, stage)
SEARCH_SPACE: tuple[tuple[str, object], ...] = (
    ("int8", QuantizeConfig(kind="quantize", method="dynamic")),
    ("int8-fp32-embeddings", QuantizeConfig(kind="quantize", method="dynamic", quantize_embeddings=False)),
    ("int8-nbits", Int4Config(kind="int4", bits=8)),
    ("int8-nbits-b128", Int4Config(kind="int4", bits=8, block_size=128)),
    ("int4-rtn", Int4Config(kind="int4")),
    ("int4-rtn-b128", Int4Config(kind="int4", block_size=128)),
    ("int4-rtn-acc0", Int4Config(kind="int4", accuracy_level=0)),
    ("int4-kquant", Int4Config(kind="int4", algorithm="k_quant")),
    ("int4-hqq", Int4Config(kind="int4", algorithm="hqq")),
)
TFLITE_SEARCH_SPACE: tuple[tuple[str, object], ...] = (  # litert-torch's quantization recipes
    ("int8", QuantizeConfig(kind="quantize", method="dynamic")),
    ("int4-b32", Int4Config(kind="int4", block_size=32)),
    ("int4-b128", Int4Config(kind="int4", block_size=128)),
)
# what each kind reads and makes (artifact kinds: "<format>-<precision>", or "checkpoint")
_KINDS = {
    "export": ("checkpoint", "onnx-fp32"),
    "export-tflite": ("checkpoint", "tflite-fp32"),
    "int8": ("onnx-fp32", "onnx-int8"),
    "int4": ("onnx-fp32", "onnx-int4"),
    "tflite-int8": ("tflite-fp32", "tflite-int8"),
    "tflite-int4": ("tflite-fp32", "tflite-int4"),
    "distill": ("checkpoint", "checkpoint"),
}


@dataclass
class DecoderPlan:
    steps: list[DecoderStep]
    bench: GenerateBenchConfig
    skipped: list[str]  # "name: why" of the stages left out (skip_unavailable)


def _kind(cfg, parent_kind: str, where: str) -> str:
    tflite = parent_kind.startswith("tflite")
    if isinstance(cfg, ExportConfig) and cfg.format in RUNNABLE_FORMATS:
        return "export" if cfg.format == "onnx" else "export-tflite"
    if isinstance(cfg, QuantizeConfig) and cfg.method == "dynamic":
        return "tflite-int8" if tflite else "int8"
    if isinstance(cfg, Int4Config):
        if tflite and (cfg.algorithm != "rtn" or cfg.block_size not in (32, 128) or cfg.bits != 4):
            raise RecipeError(f"{where}: a LiteRT decoder takes int4 algorithm rtn, 4 bits, block_size 32 or 128")
        if cfg.bits == 8 and cfg.algorithm != "rtn":
            raise RecipeError(f"{where}: 8-bit weight-only quantization is rtn")
        return "tflite-int4" if tflite else "int4"
    if isinstance(cfg, DistillDecoderConfig):
        return "distill"
    what = f"{cfg.kind} {getattr(cfg, 'format', '') or getattr(cfg, 'method', '')}".strip()
    raise RecipeError(
        f"{where}: {what} does not apply to decoder language models; they take export (format onnx or tflite), "
        "quantize (method dynamic), int4, search (budget max_perplexity_increase), distill-decoder and "
        "bench-generate stages (e.g. -r decoder)"
    )


def plan_decoder(recipe: Recipe, config: dict | None = None) -> DecoderPlan:
    """Every stage of ``recipe`` checked against what decoders support, before any work starts. With the
    checkpoint's ``config``, a LiteRT export the converter cannot make is refused, or, with
    ``skip_unavailable``, left out with the stages built on it."""
    from edgekit_converters import litert_decoder

    made = {REFERENCE: "checkpoint"}
    steps: list[DecoderStep] = []
    previous, bench, budget = REFERENCE, None, None
    skipped: list[str] = []
    gone: set[str] = set()

    def add(cfg, name: str, parent: str, where: str) -> None:
        kind = _kind(cfg, made[parent], where)
        takes, makes = _KINDS[kind]
        if made[parent] != takes:
            raise RecipeError(
                f"{where}: reads {takes.replace('-', ' ')} models, but its input {parent!r} is {made[parent]}"
            )
        if name in made or name in gone:
            raise RecipeError(f"{where}: artifact name {name!r} is used twice")
        why = litert_decoder.supported(config) if kind == "export-tflite" and config is not None else None
        if parent in gone or why:
            if not recipe.skip_unavailable and why:
                raise RecipeError(f"{where}: LiteRT export refused: {why}")
            gone.add(name)
            skipped.append(f"{name}: {why or 'its input was left out'}")
            return
        made[name] = makes
        steps.append(DecoderStep(cfg, name, parent, kind))

    for i, cfg in enumerate(recipe.stages):
        where = f"recipe {recipe.name}: stages.{i} ({cfg.kind})"
        if isinstance(cfg, GenerateBenchConfig):
            bench = cfg
            continue
        if isinstance(cfg, BenchConfig):  # `-t/-b/-s` on a recipe without bench-generate: the same settings
            bench = GenerateBenchConfig(
                kind="bench-generate", threads=cfg.threads, batch_sizes=[cfg.batch_size], prompt_lens=[cfg.seq_len]
            )
            continue
        if isinstance(cfg, SearchConfig):
            if cfg.budget.max_perplexity_increase is None:
                raise RecipeError(f"{where}: a decoder search's budget is max_perplexity_increase")
            if cfg.candidates is not None:
                raise RecipeError(f"{where}: the decoder search space is built in; list quantize and int4 stages")
            for target in cfg.targets or [previous]:
                if target in gone:
                    continue
                if made.get(target) not in ("onnx-fp32", "tflite-fp32"):
                    raise RecipeError(f"{where}: target {target!r} is not an fp32 decoder artifact (ONNX or TFLite)")
                space = SEARCH_SPACE if made[target] == "onnx-fp32" else TFLITE_SEARCH_SPACE
                for suffix, cand in space:
                    add(cand, f"{target.removesuffix('-fp32')}-{suffix}", target, where)
            budget = cfg.budget.max_perplexity_increase
            continue
        parent = cfg.input or previous
        if parent not in made and parent not in gone:
            raise RecipeError(f"{where}: no earlier artifact named {parent!r}")
        if parent in gone:
            name = cfg.name or f"{parent}-{cfg.kind}"
            gone.add(name)
            skipped.append(f"{name}: its input was left out")
            continue
        kind = _kind(cfg, made[parent], where)
        fmt = "tflite" if kind.startswith(("tflite", "export-tflite")) else "onnx"
        default = {
            "export": "onnx-fp32",
            "export-tflite": "tflite-fp32",
            "int8": "onnx-int8",
            "tflite-int8": "tflite-int8",
            "int4": f"onnx-int4-{getattr(cfg, 'algorithm', '')}",
            "tflite-int4": f"tflite-int4-b{getattr(cfg, 'block_size', '')}",
            "distill": "student",
        }[kind]
        if kind.startswith("export") and parent != REFERENCE:
            default = f"{parent}-{fmt}-fp32"
        name = cfg.name or default
        add(cfg, name, parent, where)
        previous = name
    if not steps:
        raise RecipeError(f"recipe {recipe.name}: no stage makes an artifact")
    bench = bench or GenerateBenchConfig(kind="bench-generate")
    if budget is not None:  # the search's budget is the one the promoted artifact keeps
        bench = bench.model_copy(update={"max_perplexity_increase": budget})
    return DecoderPlan(steps, bench, skipped)


def check_decoder_checkpoint(ckpt: Checkpoint) -> None:
    """A decoder edgekit can export and serve: a fast tokenizer (tokenizer.json, read on the device without
    transformers) and an end-of-text token. A missing pad token is fine: nothing is padded."""
    if not (ckpt.path / "tokenizer.json").is_file():
        raise CheckpointError(
            f"{ckpt.path}: no tokenizer.json; a decoder needs its fast tokenizer "
            "(the device reads it without transformers)"
        )
    tok = ckpt.tokenizer
    if tok.eos_token_id is None:
        raise CheckpointError(f"{ckpt.path}: the tokenizer has no end-of-text (eos) token")


def load_causal_lm(path: Path):
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path), local_files_only=True, trust_remote_code=False, dtype=torch.float32, attn_implementation="eager"
    )
    return model.eval()


def heldout_tokens(tokenizer, data: str) -> np.ndarray:
    from edgekit.generation.corpus import corpus_files, documents, token_stream

    return token_stream(tokenizer, documents(corpus_files(data)[1]))


def parity(model, onnx_dir: Path, prompt: np.ndarray, atol: float) -> dict:
    """ONNX Runtime against PyTorch: prefill logits, then ``PARITY_STEPS`` decode steps fed the same tokens,
    and the greedy continuations of both; a ParityError when the logits differ by more than ``atol``
    (relative to their scale) or the continuations differ."""
    import warnings

    import torch

    from edgekit.generation.runtime import open_decoder

    dec = open_decoder(onnx_dir, threads=2)
    ids = prompt[None].astype(np.int64)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = model(input_ids=torch.as_tensor(ids), use_cache=True)
        ref_logits = [ref.logits[0, -1].numpy()]
        cache = ref.past_key_values
        got, past = dec.forward(ids, dec.empty_past(1), 0)
        prefill_diff = float(np.abs(got[0] - ref.logits[0].numpy()).max())
        got_logits = [got[0, -1]]
        ref_tok, got_tok = [int(ref_logits[0].argmax())], [int(got_logits[0].argmax())]
        n = ids.shape[1]
        for _ in range(PARITY_STEPS - 1):
            feed = ref_tok[-1]  # both are fed PyTorch's token: the logits stay comparable step by step
            r = model(input_ids=torch.tensor([[feed]]), past_key_values=cache, use_cache=True)
            cache = r.past_key_values
            g, past = dec.forward(np.array([[feed]], np.int64), past, n)
            n += 1
            ref_logits.append(r.logits[0, -1].numpy())
            got_logits.append(g[0, -1])
            ref_tok.append(int(ref_logits[-1].argmax()))
            got_tok.append(int(got_logits[-1].argmax()))
    ref_arr, got_arr = np.stack(ref_logits), np.stack(got_logits)
    scale = float(np.abs(ref_arr).max()) or 1.0
    decode_diff = float(np.abs(ref_arr - got_arr).max())
    record = {
        "prompt_tokens": int(ids.shape[1]),
        "decode_steps": PARITY_STEPS,
        "prefill_max_abs_diff": prefill_diff,
        "decode_max_abs_diff": decode_diff,
        "logit_scale": scale,
        "tolerance": atol * max(scale, 1.0),
        "greedy_identical": ref_tok == got_tok,
    }
    if max(prefill_diff, decode_diff) > record["tolerance"] or not record["greedy_identical"]:
        raise ParityError(
            f"ONNX decoder export: logits differ from PyTorch by {max(prefill_diff, decode_diff):.2e} "
            f"(tolerance {record['tolerance']:.2e}); greedy continuation identical: {record['greedy_identical']}"
        )
    return record


def _copy_tokenizer(src: Path, dst: Path) -> None:
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)


def distill_stage(distill, teacher: Path, config, staged: Path, run_root, *, progress: bool, resume: bool) -> dict:
    """Run a generative pipeline's distillation stage (``distill``: the decoder's or the encoder-decoder's) into
    ``staged``, resumable from the run's own ``.train-NAME`` folder; the manifest's ``training`` record."""
    record = distill(
        teacher, config, staged, progress=progress, resume=resume, work=Path(run_root) / f".train-{staged.name}"
    )
    return {"training": {k: v for k, v in record.items() if k != "history"}}


def report_head(ckpt: Checkpoint, recipe: Recipe, skipped: list[str], bench) -> dict:
    """What every generative report starts with: the model, the recipe, the bench settings and the machine."""
    from edgekit.measure.environment import environment

    return {
        "generative": True,
        "model": {
            "name": ckpt.name,
            "task": ckpt.task,
            "path": str(ckpt.path),
            "model_type": ckpt.config.get("model_type"),
        },
        "recipe": {"name": recipe.name, "digest": recipe.digest(), "skipped": skipped},
        "settings": bench.model_dump(mode="json"),
        "environment": environment(bench.threads),
    }


def write_report(out, recipe: Recipe, report: dict, markdown_text: str, artifacts) -> None:
    """The recipe, report.json and report.md beside the artifacts, then the whole output committed at once."""
    from edgekit.report.build import dumps

    out.write_text("recipe.yaml", recipe.to_yaml())
    out.write_text("report.json", dumps(report))
    out.write_text("report.md", markdown_text)
    out.commit([*artifacts, "recipe.yaml", "report.md", "report.json"])


def _model_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.glob("model*") if p.is_file())


def compress_decoder(
    ckpt: Checkpoint, recipe: Recipe, output, *, progress: bool = True, overwrite: bool = False, resume: bool = False
):
    """Run the decoder ``recipe`` on ``ckpt`` into ``output`` (see the module docstring)."""
    from edgekit.generation.measure import measure_in_process
    from edgekit.measure.environment import library_versions
    from edgekit.output import OutputDir
    from edgekit.pipeline.run import CompressResult, checkpoint_artifact

    decoder_plan = plan_decoder(recipe, ckpt.config)
    steps, bench = decoder_plan.steps, decoder_plan.bench
    check_decoder_checkpoint(ckpt)
    for st in steps:
        if st.kind == "distill":
            from edgekit.generation.corpus import corpus_files

            corpus_files(st.config.data)  # type: ignore[attr-defined]
    held = heldout_tokens(ckpt.tokenizer, bench.data)
    context = int(ckpt.max_positions or 0) or None
    too_long = [p for p in bench.prompt_lens if context and p + bench.new_tokens > context]
    if too_long:
        raise RecipeError(
            f"recipe {recipe.name}: bench-generate prompt_lens {too_long} plus new_tokens {bench.new_tokens} exceed "
            f"the model's context of {context} tokens"
        )
    window = min(bench.window, context or bench.window)
    n_windows = max(1, min(bench.perplexity_tokens // window, len(held) // window))
    if len(held) < window + 1:
        raise RecipeError(f"held-out text of {bench.data!r} has {len(held)} tokens; perplexity needs {window + 1}")
    windows = held[: n_windows * window].reshape(n_windows, window)
    starts = np.linspace(0, len(held) - 64, bench.continuations).astype(int)
    prompts = np.stack([held[s : s + PARITY_PROMPT] for s in starts])
    versions = library_versions()
    root = checkpoint_artifact(ckpt)
    with OutputDir(Path(output), "compress", overwrite=overwrite) as out:
        run_root = out.hold()  # training keeps its resumable state in the output itself: it survives a failed run
        artifacts: dict[str, Artifact] = {}
        checkpoints = {REFERENCE: ckpt.path}  # checkpoint artifacts (the input, students) by name
        references: dict[str, str] = {}  # artifact -> the checkpoint it was exported from
        fp32_of: dict[str, str] = {}  # artifact -> the fp32 export it is (or was quantized from)
        prefill_of: dict[str, tuple[int, ...]] = {}  # LiteRT artifact -> its prefill signature lengths
        with tqdm(steps, desc="compress", unit="stage", disable=not progress) as bar:
            for st in bar:
                bar.set_postfix_str(f"{st.config.kind} -> {st.name}")  # type: ignore[attr-defined]
                staged = out.stage(st.name)
                parent = root if st.parent == REFERENCE else artifacts[st.parent]
                extra: dict = {}
                if st.kind == "distill":
                    from edgekit.generation.train import distill_decoder

                    extra = distill_stage(
                        distill_decoder,
                        checkpoints[st.parent],
                        st.config,
                        staged,
                        run_root,
                        progress=progress,
                        resume=resume,
                    )
                    fmt, precision, model_file = "hf-checkpoint", "fp32", "model.safetensors"
                    checkpoints[st.name] = staged
                elif st.kind == "export":
                    from edgekit_converters import genai_builder
                    from edgekit_converters.onnx_decoder import export_decoder

                    src = checkpoints[st.parent]
                    model = load_causal_lm(src)
                    why = genai_builder.supported(json.loads((src / "config.json").read_text()))
                    if why is None:  # the fused graph (GroupQueryAttention): far fewer nodes per decode step
                        genai_builder.build(src, staged, "fp32")
                        exporter = "onnxruntime-genai model builder (fused)"
                    else:
                        export_decoder(model, staged, opset=st.config.opset)  # type: ignore[attr-defined]
                        exporter = f"torch.onnx (TorchScript trace; {why})"
                    extra = {
                        "exporter": exporter,
                        "validation": parity(model, staged, prompts[0], st.config.atol),  # type: ignore[attr-defined]
                    }
                    _copy_tokenizer(src, staged)
                    fmt, precision, model_file = "onnx", "fp32", "model.onnx"
                    references[st.name] = st.parent
                    fp32_of[st.name] = st.name
                elif st.kind in ("export-tflite", "tflite-int8", "tflite-int4"):
                    from edgekit_converters import litert_decoder

                    ref_name = st.parent if st.kind == "export-tflite" else references[st.parent]
                    src = checkpoints[ref_name]
                    quant = {"export-tflite": "none", "tflite-int8": "dynamic_int8"}.get(
                        st.kind,
                        f"dynamic_int4_block{getattr(st.config, 'block_size', 32)}",
                    )
                    kv_max = min(int(ckpt.max_positions or 512), 2048)
                    prefill_of[st.name] = (
                        st.config.given_seq_lens() or litert_decoder.PREFILL_LENS  # type: ignore[attr-defined]
                        if st.kind == "export-tflite"
                        else prefill_of[st.parent]
                    )
                    litert_decoder.convert(src, staged, quant, prefill_of[st.name], kv_cache_max_len=kv_max)
                    _copy_tokenizer(src, staged)
                    fmt, model_file = "tflite", "model.tflite"
                    precision = {"none": "fp32", "dynamic_int8": "int8"}.get(quant, "int4")
                    references[st.name] = ref_name
                    fp32_of[st.name] = st.name if st.kind == "export-tflite" else fp32_of[st.parent]
                    extra = {
                        "exporter": f"litert-torch generative ({quant}; quantized at conversion from the checkpoint)"
                    }
                    if st.kind == "export-tflite":
                        extra["validation"] = parity(load_causal_lm(src), staged, prompts[0], st.config.atol)  # type: ignore[attr-defined]
                else:
                    from edgekit.generation.quantize import quantize_int4, quantize_int8
                    from edgekit_converters.base import quiet_export as quiet

                    src_dir = parent.path
                    with quiet():
                        if st.kind == "int8":
                            quantize_int8(src_dir, staged, embeddings=st.config.quantize_embeddings)  # type: ignore[attr-defined]
                            precision = "int8"
                        else:
                            c = st.config
                            quantize_int4(
                                src_dir,
                                staged,
                                algorithm=c.algorithm,  # type: ignore[attr-defined]
                                block_size=c.block_size,  # type: ignore[attr-defined]
                                accuracy_level=c.accuracy_level,  # type: ignore[attr-defined]
                                symmetric=c.symmetric,  # type: ignore[attr-defined]
                                bits=c.bits,  # type: ignore[attr-defined]
                            )
                            precision = f"int{c.bits}"  # type: ignore[attr-defined]
                    _copy_tokenizer(src_dir, staged)
                    fmt, model_file = "onnx", "model.onnx"
                    references[st.name] = references[st.parent]
                    fp32_of[st.name] = fp32_of[st.parent]
                artifacts[st.name] = write_manifest(
                    staged,
                    name=st.name,
                    format=fmt,
                    precision=precision,
                    model_file=model_file,
                    task=ckpt.task,
                    parent=parent,
                    recipe_digest=recipe.digest(),
                    stage=st.config.model_dump(mode="json"),  # type: ignore[attr-defined]
                    tool_versions=versions,
                    extra=extra,
                )
        rows = _measure_all(
            ckpt, artifacts, checkpoints, fp32_of, bench, windows, prompts, out, progress, measure_in_process
        )
        report = {
            **report_head(ckpt, recipe, decoder_plan.skipped, bench),
            "perplexity_text": {"data": bench.data, "windows": int(n_windows), "window": int(window)},
            "rows": rows,
            "promoted": next((r["name"] for r in rows if r.get("promoted")), None),
        }
        write_report(out, recipe, report, markdown(report), artifacts)
    final = {n: Artifact.load(Path(output) / n) for n in artifacts}
    return CompressResult(report=report, artifacts=final, output=Path(output))


def _measure_all(ckpt, artifacts, checkpoints, fp32_of, bench, windows, prompts, out, progress, measure):
    """One process per artifact (and per PyTorch reference); rows with perplexity, agreement and speed."""
    vocab = int(ckpt.config.get("vocab_size") or 0) or 1000
    eos_id = ckpt.config.get("eos_token_id")
    eos = [eos_id] if isinstance(eos_id, int) else list(eos_id or [])
    tmp = Path(tempfile.mkdtemp(prefix="edgekit-measure-"))
    np.save(tmp / "windows.npy", windows)
    np.save(tmp / "prompts.npy", prompts)
    targets = []
    if bench.reference:
        targets.append((REFERENCE, "torch", str(ckpt.path), "pytorch", "fp32"))
    for name in checkpoints:
        if name != REFERENCE:
            targets.append((name, "torch", str(out.tree / name), "pytorch", "fp32"))
    for name, a in artifacts.items():
        if a.format in RUNNABLE_FORMATS:
            runtime = "litert" if a.format == "tflite" else "onnxruntime"
            targets.append((name, "onnx", str(a.path), runtime, a.precision))
    if not bench.reference:  # perplexity is still measured against PyTorch fp32: the budget needs it
        targets.insert(0, (REFERENCE, "torch-ppl", str(ckpt.path), "pytorch", "fp32"))
    results = {}
    for name, kind, path, runtime, precision in tqdm(targets, desc="measure", unit="model", disable=not progress):
        spec = {
            "kind": "torch" if kind.startswith("torch") else kind,
            "path": path,
            "threads": bench.threads,
            "vocab_size": vocab,
            "new_tokens": bench.new_tokens,
            "runs": bench.runs,
            "prompt_lens": bench.prompt_lens if kind != "torch-ppl" else [],
            "batch_sizes": bench.batch_sizes,
            "prompts": str(tmp / "prompts.npy"),
            "windows": str(tmp / "windows.npy"),
            "top1_out": str(tmp / f"{name}.top1.npy"),
            "continuations": str(tmp / "prompts.npy"),
            "continuation_tokens": bench.continuation_tokens,
            "eos_token_ids": eos,
        }
        r = measure(spec, tmp / name)
        fmt = artifacts[name].format if name in artifacts else "pytorch"
        r.update(name=name, runtime=runtime, precision=precision, format=fmt)
        results[name] = r
    ref = results[REFERENCE]
    ref_top1 = np.load(tmp / f"{REFERENCE}.top1.npy")
    first = f"{bench.prompt_lens[0]}"
    rows = []
    ref_conts = ref.get("continuations", [])
    for name, r in results.items():
        top1 = np.load(tmp / f"{name}.top1.npy")
        conts = r.get("continuations", [])
        same = [a == b for a, b in zip(conts, ref_conts)]
        prefix = [_common_prefix(a, b) for a, b in zip(conts, ref_conts)]
        a = artifacts.get(name)
        row = {
            "name": name,
            "format": r["format"],
            "precision": r["precision"],
            "runtime": r["runtime"],
            "path": str(out.final(name))
            if a is not None
            else (str(ckpt.path) if name == REFERENCE else str(out.final(name))),
            "size_bytes": _model_bytes(Path(r["path"])) if a is not None or name != REFERENCE else root_size(ckpt),
            "time_to_first_token_ms": r["ttft_ms"],
            "decode_tokens_per_s": r["decode_tokens_per_s"],
            "peak_rss_mb": r["peak_rss_mb"],
            "perplexity": round(r["perplexity"], 4),
            "perplexity_fp32": round(ref["perplexity"], 4),
            "perplexity_increase": round(r["perplexity"] / ref["perplexity"] - 1, 5),
            "top1_agreement": round(float((top1 == ref_top1).mean()), 5),
            "greedy_exact_match": round(float(np.mean(same)), 4) if same else None,
            "greedy_common_prefix_tokens": round(float(np.mean(prefix)), 2) if prefix else None,
            "parity": (a.meta.get("validation") if a is not None else None),
            "engine": r.get("engine"),
            "exporter": _exporter(a, artifacts),
            "parent": (a.meta.get("parent") or {}).get("name") if a is not None else None,
            "measured": name != REFERENCE or bench.reference,
        }
        rows.append(row)
    candidates = _promote(rows, fp32_of, bench, first)
    if bench.retime_rounds and len(candidates) > 1:
        top = candidates[:RETIMED]
        _retime(rows, {n: results[n]["path"] for n in top}, bench, first, measure, tmp, vocab)
    shutil.rmtree(tmp, ignore_errors=True)
    return rows


RETIMED = 3  # how many of the fastest passing candidates are re-timed before one is promoted


def _retime(
    rows: list[dict], paths: dict[str, str], bench: GenerateBenchConfig, first: str, measure, tmp, vocab
) -> None:
    """Close candidates swap order under timing noise: re-time the models at ``paths`` alternately, each run in its own
    process, ``bench.retime_rounds`` times; the best median decode tokens/s (batch 1, the first prompt
    length) is promoted instead of the best first measurement."""
    by_name = {r["name"]: r for r in rows}
    names = list(paths)
    speeds: dict[str, list[float]] = {n: [] for n in names}
    for i in range(bench.retime_rounds):
        for name in names:
            spec = {
                "kind": "onnx",
                "path": paths[name],
                "threads": bench.threads,
                "vocab_size": vocab,
                "new_tokens": bench.new_tokens,
                "runs": bench.runs,
                "prompt_lens": [int(first)],
                "batch_sizes": [1],
                "prompts": str(tmp / "prompts.npy"),
            }
            speeds[name].append(measure(spec, tmp / f"retime-{i}-{name}")["decode_tokens_per_s"][first])
    for name, xs in speeds.items():
        by_name[name]["retimed_decode_tokens_per_s"] = round(float(np.median(xs)), 2)
        by_name[name]["promoted"] = False
    best = max(names, key=lambda n: (by_name[n]["retimed_decode_tokens_per_s"], n))
    by_name[best]["promoted"] = True


def _exporter(a: Artifact | None, artifacts: dict[str, Artifact]) -> str | None:
    """How the graph of ``a`` (or of the fp32 export it was quantized from) was made."""
    while a is not None and "exporter" not in a.meta:
        a = artifacts.get((a.meta.get("parent") or {}).get("name", ""))
    return a.meta.get("exporter") if a is not None else None


def root_size(ckpt: Checkpoint) -> int:
    return sum(p.stat().st_size for p in ckpt.path.glob("model*.safetensors"))


def _common_prefix(a: list, b: list) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _promote(rows: list[dict], fp32_of: dict, bench: GenerateBenchConfig, first: str) -> list[str]:
    """Mark the fastest artifact (decode tokens/s at batch 1, the first prompt length) that keeps the perplexity
    budget and is faster than the fp32 export it comes from (same format); the passing candidates, fastest
    first."""
    by_name = {r["name"]: r for r in rows}
    for r in rows:
        r["within_budget"] = r["perplexity_increase"] <= bench.max_perplexity_increase
        r["promoted"] = False
    candidates = []
    for r in rows:
        if r["format"] not in RUNNABLE_FORMATS or not r["within_budget"]:
            continue
        base = fp32_of.get(r["name"])
        speed = r["decode_tokens_per_s"].get(first, 0)
        if base and base != r["name"] and speed <= by_name[base]["decode_tokens_per_s"].get(first, 0):
            r["why_not"] = f"not faster than {base}"
            continue
        candidates.append((speed, r["name"]))
    if candidates:
        by_name[max(candidates)[1]]["promoted"] = True
    return [name for _, name in sorted(candidates, reverse=True)]


def markdown(report: dict) -> str:
    s = report["settings"]
    lens = [str(p) for p in s["prompt_lens"]]
    first = lens[0]
    ref = next((r for r in report["rows"] if r["name"] == REFERENCE and r["measured"]), None)
    text = report["perplexity_text"]
    lines = [
        f"# edgekit decoder report: {report['model']['name']}",
        "",
        f"- task `{report['model']['task']}`; recipe `{report['recipe']['name']}`; {s['threads']} threads, batch 1, "
        f"{s['new_tokens']} new tokens, median of {s['runs']} runs; each model measured in its own process",
        f"- perplexity on {text['windows']} held-out windows of {text['window']} tokens ({text['data']}); "
        f"budget: at most +{s['max_perplexity_increase'] * 100:.1f}% over PyTorch fp32",
        "",
        "| artifact | precision | size MB | TTFT ms @"
        + " / @".join(lens)
        + f" | decode tok/s @{first} | x PyTorch | perplexity | Δ ppl | top-1 agree | greedy match | peak RSS MB | |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["rows"]:
        speed = r["decode_tokens_per_s"].get(first)
        x = f"{speed / ref['decode_tokens_per_s'][first]:.2f}x" if ref and speed else "-"
        ttft = (
            " / ".join(f"{r['time_to_first_token_ms'][p]:.1f}" for p in lens if p in r["time_to_first_token_ms"]) or "-"
        )
        mark = (
            "**promoted**" if r.get("promoted") else ("over budget" if not r["within_budget"] else r.get("why_not", ""))
        )
        lines.append(
            f"| {r['name']} | {r['precision']} | {r['size_bytes'] / 1e6:.2f} | {ttft} | "
            f"{speed if speed is not None else '-'} | {x} | "
            f"{r['perplexity']:.3f} | {r['perplexity_increase'] * 100:+.2f}% | {r['top1_agreement'] * 100:.2f}% | "
            f"{(r['greedy_exact_match'] or 0) * 100:.0f}% | {r['peak_rss_mb']:.0f} | {mark} |"
        )
    sweep = sorted({k for r in report["rows"] for k in r["decode_tokens_per_s"] if k != first})
    if sweep:
        lines += [
            "",
            "Decode tokens/s at the other prompt lengths and batch sizes (`P@bB`):",
            "",
            "| artifact | " + " | ".join(sweep) + " |",
            "|---|" + "---:|" * len(sweep),
        ]
        for r in report["rows"]:
            lines.append(
                f"| {r['name']} | " + " | ".join(str(r["decode_tokens_per_s"].get(k, "-")) for k in sweep) + " |"
            )
    skipped = report["recipe"].get("skipped")
    if skipped:
        lines += ["", "Left out: " + "; ".join(skipped)]
    retimed = [r for r in report["rows"] if r.get("retimed_decode_tokens_per_s") is not None]
    if retimed:
        lines += [
            "",
            f"Re-timed alternately, {s.get('retime_rounds')} rounds, each run in its own process (median decode "
            "tok/s at batch 1): " + ", ".join(f"{r['name']} {r['retimed_decode_tokens_per_s']}" for r in retimed),
        ]
    lines += [
        "",
        f"Promoted: {report['promoted'] or 'none (no artifact faster than its fp32 export within budget)'}",
        "",
    ]
    return "\n".join(lines)


def text_table(report: dict) -> str:
    """The report as a Markdown table: a decoder's, or an encoder-decoder's (``kind: seq2seq``)."""
    if report.get("kind") == "seq2seq":
        from edgekit.generation.seq2seq_pipeline import markdown as seq2seq_markdown

        return seq2seq_markdown(report)
    return markdown(report)
