"""Compress an encoder-decoder (T5, mT5, BART, Marian; Whisper): recipe -> artifacts -> measured -> report.

The text2text-generation counterpart of :mod:`edgekit.generation.pipeline`, with the same promises: the
whole recipe is checked before any work, every export is parity-checked against PyTorch (the cross
keys/values, decoder logits over several steps, greedy and beam outputs), every artifact is measured in
its own process, and one is promoted only when it is faster end to end than its fp32 export and within
the metric budget. Quantization is chosen per part: the search measures the encoder and the decoder at
different schemes. All or nothing: the output is staged and swapped in at the end. What varies by task
(test data, the encoder's inputs, the metric and its direction) comes from the task
(:class:`edgekit.tasks.text2text_generation.EncoderDecoderTask`).
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

# the same tokenizer and generation-config files, distillation stage and report framing as decoders
from edgekit.generation.pipeline import _copy_tokenizer, distill_stage, report_head, write_report
from edgekit.generation.runtime import RUNNABLE_FORMATS
from edgekit.recipe.config import (
    DistillSeq2SeqConfig,
    ExportConfig,
    Int4Config,
    QuantizeConfig,
    Recipe,
    SearchConfig,
    Seq2SeqBenchConfig,
)
from edgekit_converters import litert_seq2seq

REFERENCE = "pytorch-fp32"
PARITY_INPUTS, PARITY_STEPS, PARITY_BEAMS = 4, 12, 4
# the schemes a part (encoder or decoder graph) can take
SCHEMES: dict[str, object | None] = {
    "fp32": None,
    "int8": QuantizeConfig(kind="quantize", method="dynamic"),
    "nbits8": Int4Config(kind="int4", bits=8),
    "int4": Int4Config(kind="int4"),
}
# the built-in search space: (name suffix, encoder scheme, decoder scheme), each measured
SEARCH_SPACE: tuple[tuple[str, str, str], ...] = (
    ("int8", "int8", "int8"),
    ("int8-decoder", "fp32", "int8"),
    ("int8-encoder", "int8", "fp32"),
    ("int8-nbits", "nbits8", "nbits8"),
    ("int4-decoder", "int8", "int4"),
    ("int4", "int4", "int4"),
)


@dataclass(frozen=True)
class Seq2SeqStep:
    config: object
    name: str
    parent: str
    kind: str  # "export", "quantize", "distill"
    schemes: tuple[str, str] = ("fp32", "fp32")  # (encoder, decoder) for quantize steps


@dataclass
class Seq2SeqPlan:
    steps: list[Seq2SeqStep]
    bench: Seq2SeqBenchConfig
    skipped: list[str]


def _scheme_of(cfg, where: str) -> str:
    if isinstance(cfg, QuantizeConfig) and cfg.method == "dynamic":
        return "int8"
    if isinstance(cfg, Int4Config):
        if cfg.algorithm != "rtn" or cfg.block_size != 32 or cfg.accuracy_level != 4 or not cfg.symmetric:
            raise RecipeError(f"{where}: an encoder-decoder takes int4 rtn, block_size 32, accuracy_level 4, symmetric")
        return "nbits8" if cfg.bits == 8 else "int4"
    _refuse(cfg, where)
    raise AssertionError  # unreachable: _refuse raises


def _refuse(cfg, where: str) -> None:
    what = f"{cfg.kind} {getattr(cfg, 'format', '') or getattr(cfg, 'method', '')}".strip()
    raise RecipeError(
        f"{where}: {what} does not apply to encoder-decoder models; they take export (format onnx or tflite), "
        "quantize (method dynamic), int4, search (budget max_metric_drop), distill-seq2seq and bench-seq2seq stages "
        "(e.g. -r seq2seq)"
    )


def plan_seq2seq(recipe: Recipe) -> Seq2SeqPlan:
    """Every stage of ``recipe`` checked against what encoder-decoders support, before any work starts."""
    for i, cfg in enumerate(recipe.stages):  # kinds first: a decoder's or an encoder's recipe is named as such
        ok = (
            (isinstance(cfg, ExportConfig) and cfg.format in RUNNABLE_FORMATS)
            or (isinstance(cfg, QuantizeConfig) and cfg.method == "dynamic")
            or isinstance(cfg, (Int4Config, SearchConfig, DistillSeq2SeqConfig, Seq2SeqBenchConfig))
        )
        if not ok:
            _refuse(cfg, f"recipe {recipe.name}: stages.{i} ({cfg.kind})")
    made = {REFERENCE: "checkpoint"}
    steps: list[Seq2SeqStep] = []
    previous, bench, budget = REFERENCE, None, None
    skipped: list[str] = []
    gone: set[str] = set()

    def add(step: Seq2SeqStep, makes: str, where: str) -> None:
        if step.name in made or step.name in gone:
            raise RecipeError(f"{where}: artifact name {step.name!r} is used twice")
        made[step.name] = makes
        steps.append(step)

    for i, cfg in enumerate(recipe.stages):
        where = f"recipe {recipe.name}: stages.{i} ({cfg.kind})"
        if isinstance(cfg, Seq2SeqBenchConfig):
            bench = cfg
            continue
        if isinstance(cfg, SearchConfig):
            if cfg.budget.max_metric_drop is None:
                raise RecipeError(f"{where}: an encoder-decoder search's budget is max_metric_drop")
            if cfg.candidates is not None:
                raise RecipeError(f"{where}: the encoder-decoder search space is built in; list quantize stages")
            for target in cfg.targets or [previous]:
                if target in gone:
                    continue
                if made.get(target) != "onnx-fp32":
                    raise RecipeError(f"{where}: target {target!r} is not an fp32 ONNX encoder-decoder")
                for suffix, enc, dec in SEARCH_SPACE:
                    name = f"{target.removesuffix('-fp32')}-{suffix}"
                    add(Seq2SeqStep(SCHEMES[dec] or cfg, name, target, "quantize", (enc, dec)), "onnx-q", where)
            budget = cfg.budget.max_metric_drop
            continue
        parent = cfg.input or previous
        if parent not in made and parent not in gone:
            raise RecipeError(f"{where}: no earlier artifact named {parent!r}")
        if isinstance(cfg, ExportConfig) and cfg.format == "tflite" and litert_seq2seq.supported():
            name = cfg.name or "tflite-fp32"
            why = f"LiteRT export of encoder-decoders needs {litert_seq2seq.supported()}"
            if not recipe.skip_unavailable:
                raise RecipeError(f"{where}: {why}")
            gone.add(name)
            skipped.append(f"{name}: {why}")
            continue
        if parent in gone:
            name = cfg.name or f"{parent}-{cfg.kind}"
            gone.add(name)
            skipped.append(f"{name}: its input was left out")
            continue
        if isinstance(cfg, ExportConfig):
            if made[parent] != "checkpoint":
                raise RecipeError(f"{where}: export reads a checkpoint, but its input {parent!r} is {made[parent]}")
            fmt = cfg.format
            name = cfg.name or (f"{fmt}-fp32" if parent == REFERENCE else f"{parent}-{fmt}-fp32")
            add(Seq2SeqStep(cfg, name, parent, "export" if fmt == "onnx" else "export-tflite"), f"{fmt}-fp32", where)
        elif isinstance(cfg, DistillSeq2SeqConfig):
            if made[parent] != "checkpoint":
                raise RecipeError(f"{where}: distill-seq2seq reads a checkpoint, but {parent!r} is {made[parent]}")
            add(Seq2SeqStep(cfg, cfg.name or "student", parent, "distill"), "checkpoint", where)
        elif made[parent] == "tflite-fp32":
            if not (isinstance(cfg, QuantizeConfig) and cfg.method == "dynamic"):
                raise RecipeError(
                    f"{where}: a LiteRT encoder-decoder takes quantize (method dynamic: ai-edge-quantizer's dynamic "
                    "int8); int4 and the per-part search are for the ONNX export"
                )
            name = cfg.name or f"{parent.removesuffix('-fp32')}-int8"
            add(Seq2SeqStep(cfg, name, parent, "tflite-int8", ("int8", "int8")), "tflite-q", where)
        else:
            scheme = _scheme_of(cfg, where)
            if made[parent] != "onnx-fp32":
                raise RecipeError(f"{where}: reads an fp32 ONNX encoder-decoder, but {parent!r} is {made[parent]}")
            name = cfg.name or f"{parent.removesuffix('-fp32')}-{scheme}"
            add(Seq2SeqStep(cfg, name, parent, "quantize", (scheme, scheme)), "onnx-q", where)
        name = steps[-1].name
        previous = name
    if not steps:
        raise RecipeError(f"recipe {recipe.name}: no stage makes an artifact")
    bench = bench or Seq2SeqBenchConfig(kind="bench-seq2seq")
    if budget is not None:
        bench = bench.model_copy(update={"max_metric_drop": budget})
    return Seq2SeqPlan(steps, bench, skipped)


def check_seq2seq_checkpoint(ckpt: Checkpoint) -> None:
    """An encoder-decoder edgekit can export and serve: a fast tokenizer (read on the device without transformers),
    an end-of-sequence token and, for a speech model, its feature extractor's settings."""
    if not (ckpt.path / "tokenizer.json").is_file():
        raise CheckpointError(
            f"{ckpt.path}: no tokenizer.json; an encoder-decoder needs its fast tokenizer "
            "(the device reads it without transformers)"
        )
    if ckpt.config.get("eos_token_id") is None:
        raise CheckpointError(f"{ckpt.path}: config.json has no eos_token_id")
    if ckpt.task_def.modality == "audio" and not (ckpt.path / "preprocessor_config.json").is_file():
        raise CheckpointError(
            f"{ckpt.path}: no preprocessor_config.json; a speech model needs its feature extractor's settings"
        )


def parity(model, onnx_dir: Path, sources: list, atol: float) -> dict:
    """ONNX Runtime against PyTorch on ``sources``: decoder logits over ``PARITY_STEPS`` teacher-forced steps (the
    encoder graph's cross keys/values feed every one), and the greedy and beam-4 outputs; a ParityError when the
    logits differ by more than ``atol`` (relative to their scale) or an output differs."""
    import warnings

    import torch

    from edgekit.generation.seq2seq import Seq2SeqOptions, open_seq2seq, stream
    from edgekit.generation.seq2seq_measure import _Torch

    sess = open_seq2seq(onnx_dir, threads=2)
    ref_gen = _Torch("", 0, model=model)
    diff, scale, greedy_same, beam_same = 0.0, 0.0, 0, 0
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for ids in sources:
            src = {model.main_input_name: torch.as_tensor(np.asarray([ids]))}
            dec_ids = list(sess.prompt)
            cross, mask = sess.encode(np.asarray([ids]))
            past, fed = sess.empty_past(1), dec_ids
            for _ in range(PARITY_STEPS):
                ref = model(**src, decoder_input_ids=torch.tensor([dec_ids])).logits[0, -1].numpy()
                got, past = sess.step(np.array([fed]), mask, past, cross)
                diff = max(diff, float(np.abs(got[0, -1] - ref).max()))
                scale = max(scale, float(np.abs(ref).max()))
                dec_ids.append(int(ref.argmax()))  # both are fed PyTorch's token
                fed = dec_ids[-1:]
            greedy_same += ref_gen.generate(ids, 1, PARITY_STEPS) == list(
                stream(sess, ids, Seq2SeqOptions(max_new_tokens=PARITY_STEPS))
            )
            beam_same += ref_gen.generate(ids, PARITY_BEAMS, PARITY_STEPS) == list(
                stream(sess, ids, Seq2SeqOptions(max_new_tokens=PARITY_STEPS, num_beams=PARITY_BEAMS))
            )
    record = {
        "inputs": len(sources),
        "decode_steps": PARITY_STEPS,
        "decoder_max_abs_diff": diff,
        "logit_scale": scale,
        "tolerance": atol * max(scale, 1.0),
        "greedy_identical": greedy_same == len(sources),
        "beam_identical": beam_same == len(sources),
    }
    if diff > record["tolerance"] or greedy_same < len(sources) or beam_same < len(sources):
        raise ParityError(
            f"{sess.facts.get('format', 'onnx')} encoder-decoder export: decoder logits differ from PyTorch by "
            f"{diff:.2e} (tolerance {record['tolerance']:.2e}); greedy outputs identical on {greedy_same}/"
            f"{len(sources)}, beam-{PARITY_BEAMS} outputs on {beam_same}/{len(sources)}"
        )
    return record


def _model_bytes(d: Path) -> int:
    for pattern in ("*.onnx", "*.tflite", "*.safetensors"):
        size = sum(p.stat().st_size for p in d.glob(pattern))
        if size:
            return size
    return 0


def quantize_parts(src: Path, out: Path, schemes: tuple[str, str]) -> None:
    """``src``'s encoder and decoder graphs each at its scheme into ``out`` (fp32 parts are copied)."""
    from edgekit.generation.quantize import quantize_int4, quantize_int8
    from edgekit.generation.seq2seq import DECODER, ENCODER
    from edgekit_converters.base import quiet_export

    out.mkdir(parents=True, exist_ok=True)
    with quiet_export():
        for graph, scheme in zip((ENCODER, DECODER), schemes):
            cfg = SCHEMES[scheme]
            if cfg is None:
                shutil.copy2(src / graph, out / graph)
            elif isinstance(cfg, QuantizeConfig):
                quantize_int8(src, out, embeddings=True, model_name=graph)
            else:
                assert isinstance(cfg, Int4Config)
                quantize_int4(src, out, bits=cfg.bits, block_size=cfg.block_size, model_name=graph)
    _copy_companions(src, out)


def _copy_companions(src: Path, out: Path) -> None:
    """What an artifact carries beside its graphs: the shape facts, a speech model's front end, the tokenizer."""
    from edgekit.generation.audio import AUDIO_JSON, MEL_FILTERS
    from edgekit.generation.seq2seq import SEQ2SEQ_JSON

    for name in (SEQ2SEQ_JSON, AUDIO_JSON, MEL_FILTERS):
        if (src / name).is_file():
            shutil.copy2(src / name, out / name)
    _copy_tokenizer(src, out)


def quantize_tflite(config: QuantizeConfig, src: Path, out: Path) -> None:
    """``src``'s LiteRT encoder and decoder quantized by the TFLite quantize backend (``config``: method dynamic,
    ai-edge-quantizer's dynamic int8, as for an encoder's TFLite file) into ``out``, with the shape facts, front
    end and tokenizer."""
    from edgekit.stages.quantize import tflite_backend

    out.mkdir(parents=True, exist_ok=True)
    for graph in (litert_seq2seq.ENCODER_TFLITE, litert_seq2seq.DECODER_TFLITE):
        tflite_backend.quantize(config, src / graph, out / graph, ctx=None)  # dynamic: no calibration context
    _copy_companions(src, out)


def _checkpoint_companions(src: Path, out: Path, task) -> None:
    """An export's companions from its checkpoint: the tokenizer and, for a speech model, its log-mel front end."""
    _copy_tokenizer(src, out)
    if task.modality == "audio":
        from edgekit.generation.audio import write_frontend

        write_frontend(src, out)


def _precision(schemes: tuple[str, str]) -> str:
    enc, dec = schemes
    return enc if enc == dec else f"{enc}+{dec}"


def compress_seq2seq(
    ckpt: Checkpoint, recipe: Recipe, output, *, progress: bool = True, overwrite: bool = False, resume: bool = False
):
    """Run the encoder-decoder ``recipe`` on ``ckpt`` into ``output`` (see the module docstring)."""
    from edgekit.generation.seq2seq_measure import measure_in_process
    from edgekit.generation.text2text_data import pairs
    from edgekit.generation.text2text_train import load_seq2seq
    from edgekit.measure.environment import library_versions
    from edgekit.output import OutputDir
    from edgekit.pipeline.run import CompressResult, checkpoint_artifact
    from edgekit.tasks.text2text_generation import EncoderDecoderTask
    from edgekit_converters.onnx_seq2seq import export_seq2seq

    plan = plan_seq2seq(recipe)
    steps, bench = plan.steps, plan.bench
    task = ckpt.task_def
    assert isinstance(task, EncoderDecoderTask)
    data, metric = bench.data or task.seq2seq_data, bench.metric or task.metrics[0]
    if metric not in task.metrics:
        raise RecipeError(f"recipe {recipe.name}: {task.name} is scored by {', '.join(task.metrics)}, not {metric}")
    bench = bench.model_copy(update={"data": data, "metric": metric})
    check_seq2seq_checkpoint(ckpt)
    for st in steps:
        if st.kind == "distill":
            if not task.distillable:
                raise RecipeError(f"recipe {recipe.name}: distill-seq2seq does not apply to {task.name} yet (no data)")
            pairs(st.config.data)  # type: ignore[attr-defined]
    test = task.test_rows(data)[: bench.samples]
    sources = task.sources(ckpt, test)
    versions = library_versions()
    root = checkpoint_artifact(ckpt)
    with OutputDir(Path(output), "compress", overwrite=overwrite) as out:
        run_root = out.hold()
        artifacts: dict[str, Artifact] = {}
        checkpoints = {REFERENCE: ckpt.path}
        fp32_of: dict[str, str] = {}
        with tqdm(steps, desc="compress", unit="stage", disable=not progress) as bar:
            for st in bar:
                bar.set_postfix_str(f"{st.config.kind} -> {st.name}")  # type: ignore[attr-defined]
                staged = out.stage(st.name)
                parent = root if st.parent == REFERENCE else artifacts[st.parent]
                extra: dict = {}
                if st.kind == "distill":
                    from edgekit.generation.text2text_train import distill_seq2seq

                    extra = distill_stage(
                        distill_seq2seq,
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
                    src = checkpoints[st.parent]
                    model = load_seq2seq(src)
                    export_seq2seq(model, staged, opset=st.config.opset)  # type: ignore[attr-defined]
                    _checkpoint_companions(src, staged, task)
                    extra = {
                        "exporter": "torch.onnx (TorchScript trace; encoder + cross K/V, decoder with a KV cache)",
                        "validation": parity(model, staged, sources[:PARITY_INPUTS], st.config.atol),  # type: ignore[attr-defined]
                    }
                    fmt, precision, model_file = "onnx", "fp32", "decoder.onnx"
                    fp32_of[st.name] = st.name
                elif st.kind == "export-tflite":
                    src = checkpoints[st.parent]
                    model = load_seq2seq(src)
                    lens = st.config.given_seq_lens() or litert_seq2seq.DECODER_LENGTHS  # type: ignore[attr-defined]
                    litert_seq2seq.convert(model, staged, decoder_lengths=lens)
                    _checkpoint_companions(src, staged, task)
                    extra = {
                        "exporter": "litert-torch (fixed shapes: encoder + cross K/V; decoder over all its tokens)",
                        "validation": parity(model, staged, sources[:PARITY_INPUTS], st.config.atol),  # type: ignore[attr-defined]
                    }
                    fmt, precision, model_file = "tflite", "fp32", litert_seq2seq.DECODER_TFLITE
                    fp32_of[st.name] = st.name
                elif st.kind == "tflite-int8":
                    assert isinstance(st.config, QuantizeConfig)  # the plan admits method dynamic only
                    quantize_tflite(st.config, parent.path, staged)
                    fmt, precision, model_file = "tflite", "int8", litert_seq2seq.DECODER_TFLITE
                    extra = {"schemes": {"encoder": "int8", "decoder": "int8"}}
                    fp32_of[st.name] = fp32_of[st.parent]
                else:
                    quantize_parts(parent.path, staged, st.schemes)
                    fmt, precision, model_file = "onnx", _precision(st.schemes), "decoder.onnx"
                    extra = {"schemes": {"encoder": st.schemes[0], "decoder": st.schemes[1]}}
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
            ckpt, artifacts, checkpoints, fp32_of, bench, sources, test, out, progress, measure_in_process
        )
        report = {
            **report_head(ckpt, recipe, plan.skipped, bench),
            "kind": "seq2seq",
            "test_pairs": {"data": bench.data, "scored": len(sources)},
            "rows": rows,
            "promoted": next((r["name"] for r in rows if r.get("promoted")), None),
        }
        write_report(out, recipe, report, markdown(report), artifacts)
    final = {n: Artifact.load(Path(output) / n) for n in artifacts}
    return CompressResult(report=report, artifacts=final, output=Path(output))


def _measure_all(ckpt, artifacts, checkpoints, fp32_of, bench, sources, test, out, progress, measure):
    """One process per artifact (and per PyTorch checkpoint); rows with speed, the metric and beam agreement."""
    tmp = Path(tempfile.mkdtemp(prefix="edgekit-measure-"))
    if isinstance(sources[0], np.ndarray):  # a speech model's features: one array
        np.save(tmp / "sources.npy", np.stack(sources), allow_pickle=False)
        source_file = tmp / "sources.npy"
    else:
        source_file = tmp / "sources.json"
        source_file.write_text(json.dumps(sources))
    widest = max(bench.num_beams)
    targets = [(REFERENCE, "torch", str(ckpt.path))]
    for name in checkpoints:
        if name != REFERENCE:
            targets.append((name, "torch", str(out.tree / name)))
    for name, a in artifacts.items():
        if a.format in RUNNABLE_FORMATS:
            targets.append((name, a.format, str(a.path)))
    results = {}
    for name, kind, path in tqdm(targets, desc="measure", unit="model", disable=not progress):
        spec = {
            "kind": kind,
            "path": path,
            "threads": bench.threads,
            "sources": str(source_file),
            "timed": bench.timed if (kind != "torch" or name == REFERENCE and bench.reference) else 1,
            "num_beams": bench.num_beams,
            "scored_beams": sorted({1, widest}),
            "max_new_tokens": bench.max_new_tokens,
            "decode_tokens": bench.decode_tokens,
            "runs": bench.runs,
        }
        results[name] = measure(spec, tmp / name)
    shutil.rmtree(tmp, ignore_errors=True)
    tok, task = ckpt.tokenizer, ckpt.task_def
    metric = bench.metric
    scores = {n: task.score(tok, r["outputs"][str(widest)], test) for n, r in results.items()}
    worse = -1 if task.lower_is_better else 1  # how much worse than fp32: an error rate's rise, a score's fall
    ref, ref_score = results[REFERENCE], scores[REFERENCE]
    rows = []
    for name, r in results.items():
        a = artifacts.get(name)
        same_beam = [x == y for x, y in zip(r["outputs"][str(widest)], ref["outputs"][str(widest)])]
        same_greedy = [x == y for x, y in zip(r["outputs"]["1"], ref["outputs"]["1"])]
        teacher = name in checkpoints
        rows.append(
            {
                "name": name,
                "format": a.format if a is not None else "pytorch",
                "precision": a.precision if a is not None else "fp32",
                "runtime": ({"onnx": "onnxruntime", "tflite": "litert"}.get(a.format, a.format) if a else "pytorch"),
                "path": str(out.final(name)) if name != REFERENCE else str(ckpt.path),
                "size_bytes": _model_bytes(Path(r["path"])),
                "schemes": (a.meta.get("schemes") if a is not None else None),
                "encoder_ms": r["encoder_ms"],
                "time_to_first_token_ms": r["time_to_first_token_ms"],
                "decode_tokens_per_s": r["decode_tokens_per_s"],
                "end_to_end_ms": r["end_to_end_ms"],
                "peak_rss_mb": r["peak_rss_mb"],
                **scores[name],
                "metric": metric,
                f"{metric}_fp32": ref_score[metric],
                "metric_drop": round(worse * (ref_score[metric] - scores[name][metric]), 3),
                "beam_exact_match": round(float(np.mean(same_beam)), 4),
                "greedy_exact_match": round(float(np.mean(same_greedy)), 4),
                "num_beams_scored": widest,
                "parity": a.meta.get("validation") if a is not None else None,
                "parent": (a.meta.get("parent") or {}).get("name") if a is not None else None,
                "measured": not teacher or name == REFERENCE,
            }
        )
    _promote(rows, fp32_of, bench)
    return rows


def _promote(rows: list[dict], fp32_of: dict, bench: Seq2SeqBenchConfig) -> None:
    """Mark the fastest ONNX artifact end to end at the widest beam that keeps the metric budget and is faster than
    the fp32 export it comes from (LiteRT rows are measured beside it for comparison)."""
    widest = str(max(bench.num_beams))
    by_name = {r["name"]: r for r in rows}
    best = None
    for r in rows:
        r["within_budget"] = r["metric_drop"] <= bench.max_metric_drop
        r["promoted"] = False
        if r["format"] == "tflite":
            r["why_not"] = "LiteRT: for comparison (its decoder signatures cap the generated length)"
        if r["format"] != "onnx" or not r["within_budget"]:
            continue
        base = fp32_of.get(r["name"])
        ms = r["end_to_end_ms"][widest]
        if base and base != r["name"] and ms >= by_name[base]["end_to_end_ms"][widest]:
            r["why_not"] = f"not faster than {base}"
            continue
        if best is None or ms < best["end_to_end_ms"][widest]:
            best = r
    if best is not None:
        best["promoted"] = True


def markdown(report: dict) -> str:
    s = report["settings"]
    beams = [str(b) for b in s["num_beams"]]
    widest = str(max(s["num_beams"]))
    metric = s["metric"]
    ref = next(r for r in report["rows"] if r["name"] == REFERENCE)
    lines = [
        f"# edgekit encoder-decoder report: {report['model']['name']}",
        "",
        f"- task `{report['model']['task']}`; recipe `{report['recipe']['name']}`; {s['threads']} threads, batch 1, "
        f"median of {s['runs']} runs; each model measured in its own process",
        f"- {metric} on {report['test_pairs']['scored']} test pairs of `{report['test_pairs']['data']}` at beam "
        f"{widest}; budget: at most {s['max_metric_drop']} points worse than PyTorch fp32",
        "",
        "| artifact | precision (encoder+decoder) | size MB | encoder ms | TTFT ms | decode tok/s | "
        + " | ".join(f"ms/request beam {b}" for b in beams)
        + f" | x PyTorch @beam {widest} | {metric} | Δ | beam-{widest} = PyTorch | peak RSS MB | |",
        "|---|---|---:|---:|---:|---:|" + "---:|" * len(beams) + "---:|---:|---:|---:|---:|---|",
    ]
    for r in report["rows"]:
        x = ref["end_to_end_ms"][widest] / r["end_to_end_ms"][widest] if r["measured"] else None
        mark = (
            "**promoted**" if r.get("promoted") else ("over budget" if not r["within_budget"] else r.get("why_not", ""))
        )
        lines.append(
            f"| {r['name']} | {r['precision']} | {r['size_bytes'] / 1e6:.2f} | {r['encoder_ms']:.2f} | "
            f"{r['time_to_first_token_ms']:.2f} | {r['decode_tokens_per_s']:.0f} | "
            + " | ".join(f"{r['end_to_end_ms'][b]:.1f}" for b in beams)
            + f" | {f'{x:.2f}x' if x else '-'} | {r[metric]:.2f} | {r[metric] - r[metric + '_fp32']:+.2f} | "
            f"{r['beam_exact_match'] * 100:.0f}% | {r['peak_rss_mb']:.0f} | {mark} |"
        )
    if report["recipe"].get("skipped"):
        lines += ["", "Left out: " + "; ".join(report["recipe"]["skipped"])]
    lines += [
        "",
        f"Promoted: {report['promoted'] or 'none (no artifact faster than its fp32 export within budget)'}",
        "",
    ]
    return "\n".join(lines)
