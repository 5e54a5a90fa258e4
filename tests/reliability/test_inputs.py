"""Reliability catalogue, area "inputs": what the user hands edgekit is judged, never trusted or run.

Binary recipe files, unsupported architectures (T5, GPT-2), broken checkpoints and model files, token
ids past the vocabulary, sequence lengths past the position table, reports with wrong types, ``diff``
of a model with itself and with an unrelated one, and ``--resume`` on a planted pickle, on damaged
state and on state made with other settings: each is exit 2 with one line, nothing executed, nothing
of the user's changed. Two cases succeed: a compress prints nothing on stderr, and an interrupted
distillation resumed with ``--resume`` ends with the same student as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.helpers import FAST_BENCH
from tests.reliability.harness import ROOT, Case, Result, check, listing, run_cli, snapshot

AREA = "inputs"
FAST = {
    "version": 1,
    "name": "fast",
    "stages": [{"kind": "export", "format": "onnx"}, {"kind": "quantize", "method": "dynamic"}, FAST_BENCH],
}


def _yaml(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _refused(tmp_path: Path, name: str, *args: str, kept: tuple[Path, ...] = (), says: str = "") -> Result:
    """``edgekit ARGS``: exit 2, one line (containing ``says``), ``kept`` unchanged, nothing new in tmp_path."""
    case = Case(name, AREA, 2, kept=snapshot(*kept), watch={tmp_path: listing(tmp_path)})
    result = run_cli(*map(str, args))
    check(case, result)
    assert says in result.stderr, result.stderr
    return result


class _Planted:
    """Unpickling this creates ``path``: what a planted pickle could do instead."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


# --- recipes ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["random-bytes", "png"])
def test_binary_recipe_file(kind, tiny_ckpt, tmp_path):
    recipe = tmp_path / ("r.bin" if kind == "random-bytes" else "r.png")
    recipe.write_bytes(
        np.random.default_rng(0).bytes(300)
        if kind == "random-bytes"
        else b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(40)
    )
    _refused(
        tmp_path,
        f"recipe-binary-{kind}",
        "compress",
        tiny_ckpt,
        "-r",
        recipe,
        "-o",
        tmp_path / "out",
        "-q",
        kept=(recipe,),
        says="not a YAML text file",
    )


@pytest.mark.parametrize("kind", ["list", "unknown-key"])
def test_malformed_recipe_yaml(kind, tiny_ckpt, tmp_path):
    data = ["export", "quantize"] if kind == "list" else {**FAST, "speed": "max"}
    recipe = _yaml(tmp_path / "r.yaml", data)
    _refused(
        tmp_path,
        f"recipe-yaml-{kind}",
        "compress",
        tiny_ckpt,
        "-r",
        recipe,
        "-o",
        tmp_path / "out",
        "-q",
        kept=(recipe,),
        says="mapping" if kind == "list" else "speed: unknown key",
    )


def test_recipe_bench_seq_len_beyond_the_position_table(tiny_ckpt, tmp_path):
    """The tiny BERT has 128 positions: a bench stage at 512 tokens is refused before any work (nothing written)."""
    recipe = _yaml(tmp_path / "r.yaml", {**FAST, "stages": [*FAST["stages"][:2], {**FAST_BENCH, "seq_len": 512}]})
    _refused(
        tmp_path,
        "recipe-bench-seq-len-beyond-positions",
        "compress",
        tiny_ckpt,
        "-r",
        recipe,
        "-o",
        tmp_path / "out",
        "-q",
        kept=(recipe, tiny_ckpt),
        says="at most 128 tokens",
    )


# --- checkpoints ------------------------------------------------------------------------------------------------


def _t5(d: Path) -> Path:
    from transformers import T5Config, T5ForConditionalGeneration

    T5ForConditionalGeneration(
        T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=2)
    ).save_pretrained(d)
    return d


def _gpt2(d: Path) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(
        GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=2, n_positions=64, bos_token_id=0, eos_token_id=0)
    ).save_pretrained(d)
    return d


def _pegasus(d: Path) -> Path:
    from transformers import PegasusConfig, PegasusForConditionalGeneration

    PegasusForConditionalGeneration(
        PegasusConfig(
            vocab_size=64,
            d_model=32,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=32,
            decoder_ffn_dim=32,
        )
    ).save_pretrained(d)
    return d


@pytest.mark.parametrize("arch", ["pegasus", "t5", "gpt2"])
def test_unsupported_architecture(arch, tmp_path):
    """An encoder-decoder of an untested family is refused by name before any weight is read; a decoder or an
    encoder-decoder given an encoder recipe is refused when the recipe is planned (they take their own stages)."""
    ckpt = {"t5": _t5, "gpt2": _gpt2, "pegasus": _pegasus}[arch](tmp_path / arch)
    says = {
        "pegasus": "PegasusForConditionalGeneration (pegasus) is an encoder-decoder (sequence-to-sequence) model "
        "of a family edgekit has not tested",
        "t5": "does not apply to encoder-decoder models",
        "gpt2": "does not apply to decoder language models",
    }[arch]
    result = _refused(
        tmp_path,
        f"checkpoint-unsupported-{arch}",
        "compress",
        ckpt,
        "-r",
        "ptq-dynamic",
        "-o",
        tmp_path / "out",
        "-q",
        kept=(ckpt,),
        says=says,
    )
    if arch == "pegasus":
        assert "not supported yet: edgekit compresses encoder models" in result.stderr


@pytest.mark.parametrize("damage", ["truncated-safetensors", "config-not-json"])
def test_broken_checkpoint(damage, tiny_ckpt, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_ckpt, ckpt)
    if damage == "truncated-safetensors":
        weights = ckpt / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    else:
        (ckpt / "config.json").write_text('{"model_type": "bert", "hidden_size": 32,')
    _refused(
        tmp_path,
        f"checkpoint-{damage}",
        "compress",
        ckpt,
        "-r",
        "ptq-dynamic",
        "-o",
        tmp_path / "out",
        "-q",
        kept=(ckpt,),
        says="truncated" if damage == "truncated-safetensors" else "not valid JSON",
    )


# --- model files and inputs for bench ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["empty", "random-bytes"])
def test_bench_broken_onnx(kind, tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"" if kind == "empty" else np.random.default_rng(1).bytes(4096))
    _refused(
        tmp_path,
        f"bench-onnx-{kind}",
        "bench",
        model,
        "--runs",
        "1",
        "--warmup",
        "0",
        "-q",
        kept=(model,),
        says="not a valid ONNX model",
    )


def test_bench_truncated_tflite(tiny_tflite, tmp_path):
    model = tmp_path / "model.tflite"
    data = (tiny_tflite / "tflite-fp32" / "model.tflite").read_bytes()
    model.write_bytes(data[: len(data) // 2])
    _refused(tmp_path, "bench-tflite-truncated", "bench", model, "--runs", "1", "--warmup", "0", "-q", kept=(model,))


def _ids_past_the_vocabulary(path: Path, specs) -> Path:
    """An .npz shaped and typed as ``specs`` declare, whose input_ids run past the tiny vocabulary (600)."""
    feeds = {}
    for s in specs:
        shape = [d if isinstance(d, int) and d > 0 else 16 for d in s.shape]
        feeds[s.name] = np.full(shape, 5000 if s.name == "input_ids" else 1 if "mask" in s.name else 0, s.dtype)
    np.savez(path, **feeds)
    return path


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_bench_inputs_ids_outside_the_vocabulary(fmt, tiny_compressed, tiny_tflite, tmp_path):
    """ONNX: the graph's embedding table shows the range, checked before anything runs; TFLite: the runtime's
    out-of-bounds error is the user's input, not an internal error."""
    from edgekit.plugins import get_runtime

    model = (
        tiny_compressed / "onnx-fp32" / "model.onnx" if fmt == "onnx" else tiny_tflite / "tflite-fp32" / "model.tflite"
    )
    specs = get_runtime("onnxruntime" if fmt == "onnx" else "litert").load(model, threads=1).inputs
    inputs = _ids_past_the_vocabulary(tmp_path / "ids.npz", specs)
    _refused(
        tmp_path,
        f"bench-{fmt}-inputs-ids-outside-vocabulary",
        "bench",
        model,
        "--inputs",
        inputs,
        "--runs",
        "1",
        "--warmup",
        "0",
        "-q",
        kept=(inputs,),
        says="ids.npz",
    )


def test_bench_inputs_npz_with_a_pickled_array(tiny_compressed, tmp_path):
    """An .npz whose array is a pickle (an object array): never unpickled, so what it holds never runs."""
    pwned = tmp_path / "pwned"
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, input_ids=np.array([_Planted(pwned)], dtype=object))
    _refused(
        tmp_path,
        "bench-inputs-npz-pickled-object-array",
        "bench",
        tiny_compressed / "onnx-fp32",
        "--inputs",
        inputs,
        "--runs",
        "1",
        "--warmup",
        "0",
        "-q",
        kept=(inputs,),
        says="inputs.npz",
    )
    assert not pwned.exists()


def test_bench_foreign_tokenizer(tiny_ckpt, tiny_compressed, tmp_path):
    """A tokenizer with more tokens than the model embeds is not the model's: refused before timing."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_ckpt))
    tok.add_tokens([f"extra{i}" for i in range(50)])
    tok.save_pretrained(str(tmp_path / "tok"))
    _refused(
        tmp_path,
        "bench-foreign-tokenizer",
        "bench",
        tiny_compressed / "onnx-int8-dynamic",
        "--tokenizer",
        tmp_path / "tok",
        "--runs",
        "1",
        "--warmup",
        "0",
        "-q",
        says="not this model's tokenizer",
    )


def test_bench_seq_len_beyond_the_position_table(tiny_ckpt, tiny_compressed, tmp_path):
    _refused(
        tmp_path,
        "bench-seq-len-beyond-positions",
        "bench",
        tiny_compressed / "onnx-fp32-opt",
        "--tokenizer",
        tiny_ckpt,
        "--seq-len",
        "64,512",
        "--runs",
        "1",
        "--warmup",
        "0",
        "-q",
        says="use at most 128",
    )


# --- reports ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["p50-null", "model-string", "row-not-object"])
def test_report_with_wrong_types(damage, tiny_compressed, tmp_path):
    report = json.loads((tiny_compressed / "report.json").read_text())
    if damage == "p50-null":
        report["results"][1]["latency_ms"]["p50"] = None
    elif damage == "model-string":
        report["model"] = "all-MiniLM-L6-v2"
    else:
        report["results"][0] = 7
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(report))
    field = {"p50-null": "results[1].latency_ms.p50", "model-string": "model:", "row-not-object": "results[0]"}
    _refused(tmp_path, f"report-{damage}", "report", path, kept=(path,), says=f"bad.json: {field[damage]}")


# --- diff -------------------------------------------------------------------------------------------------------


def test_diff_a_model_against_itself(tiny_compressed, tmp_path):
    """Every tensor identical: exit 0, shown as identical (and strict JSON: no Infinity)."""
    model = tiny_compressed / "onnx-fp32"
    case = Case("diff-model-against-itself", AREA, 0, kept=snapshot(model), watch={tmp_path: {"d.json"}})
    result = run_cli("diff", str(model), str(model), "--json", str(tmp_path / "d.json"))
    check(case, result)
    rows = json.loads((tmp_path / "d.json").read_text(), parse_constant=lambda c: pytest.fail(f"JSON has {c}"))
    assert rows["layers"] and all(r["identical"] and r["snr_db"] is None for r in rows["layers"])
    assert f"all {len(rows['layers'])} compared tensors are identical" in result.stdout


def test_diff_inputs_ids_outside_the_vocabulary(tiny_compressed, tmp_path):
    from edgekit.plugins import get_runtime

    model = tiny_compressed / "onnx-fp32" / "model.onnx"
    inputs = _ids_past_the_vocabulary(tmp_path / "ids.npz", get_runtime("onnxruntime").load(model, threads=1).inputs)
    _refused(
        tmp_path,
        "diff-inputs-ids-outside-vocabulary",
        "diff",
        model,
        tiny_compressed / "onnx-int8-dynamic",
        "--inputs",
        inputs,
        kept=(inputs,),
        says="outside the vocabulary",
    )


def test_diff_unrelated_models(tiny_compressed, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "toy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    toy = tmp_path / "toy.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(toy))
    _refused(
        tmp_path,
        "diff-unrelated-models",
        "diff",
        tiny_compressed / "onnx-fp32",
        toy,
        kept=(toy,),
        says="share no tensors",
    )


# --- library noise ----------------------------------------------------------------------------------------------


def test_compress_prints_nothing_on_stderr(tiny_ckpt, tmp_path):
    """No torchao 'Failed to load' or torch pytree notices: a run that succeeds says nothing on stderr."""
    recipe = _yaml(tmp_path / "fast.yaml", FAST)
    case = Case(
        "compress-quiet-stderr-empty", AREA, 0, kept=snapshot(recipe, tiny_ckpt), watch={tmp_path: {"fast.yaml", "out"}}
    )
    result = run_cli("compress", str(tiny_ckpt), "-r", str(recipe), "-o", str(tmp_path / "out"), "-q")
    check(case, result)
    assert result.stderr == ""


# --- --resume ---------------------------------------------------------------------------------------------------


def _distill_recipe(path: Path, task_dir: Path, lr: float = 1e-3) -> Path:
    return _yaml(
        path,
        {
            "version": 1,
            "name": "resume-check",
            "stages": [
                {
                    "kind": "distill",
                    "name": "student",
                    "data": str(task_dir),
                    "layers": 1,
                    "train": {"epochs": 4, "lr": lr, "batch_size": 32, "max_len": 32, "save_every": 2},
                },
                {**FAST_BENCH, "reference": False, "runs": 2, "fidelity_samples": 8},
            ],
        },
    )


def _compress(ckpt: Path, recipe: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "edgekit", "compress", str(ckpt), "-r", str(recipe), "-o", str(out), "-q", *extra]


@pytest.fixture(scope="module")
def interrupted(tiny_cls_ckpt, task_dir, tmp_path_factory) -> tuple[Path, Path]:
    """(output, recipe) of a distillation SIGKILLed after it saved its first resume state."""
    from edgekit.training.loop import RESUME_FILE

    root = tmp_path_factory.mktemp("interrupted")
    recipe, out = _distill_recipe(root / "r.yaml", task_dir), root / "run" / "out"
    state = out / ".train-student" / RESUME_FILE
    proc = subprocess.Popen(
        _compress(tiny_cls_ckpt, recipe, out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while not state.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert state.is_file() and not (out / "student").exists(), "the run was not interrupted mid-training"
    return out, recipe


def _copy_run(interrupted, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(interrupted[0], out, symlinks=True)
    return out


@pytest.mark.parametrize("name", ["resume.pt", "resume.safetensors"])
def test_resume_never_unpickles_a_planted_file(name, interrupted, tiny_cls_ckpt, tmp_path):
    """A pickle under the old state name (resume.pt) or the new one: refused by name, and nothing it holds runs."""
    out = _copy_run(interrupted, tmp_path)
    pwned = tmp_path / "pwned"
    (out / ".train-student" / name).write_bytes(pickle.dumps(_Planted(pwned)))
    says = "old pickle format" if name == "resume.pt" else "damaged or not edgekit's"
    result = _refused(
        tmp_path,
        f"resume-planted-pickle-{name}",
        *_compress(tiny_cls_ckpt, interrupted[1], out, "--resume")[3:],
        kept=(out,),
        says=says,
    )
    assert f".train-student/{name}" in result.stderr and not pwned.exists()


def test_resume_with_changed_settings(interrupted, tiny_cls_ckpt, task_dir, tmp_path):
    out = _copy_run(interrupted, tmp_path)
    other = _distill_recipe(tmp_path / "other.yaml", task_dir, lr=2e-3)
    _refused(
        tmp_path,
        "resume-changed-settings",
        *_compress(tiny_cls_ckpt, other, out, "--resume")[3:],
        kept=(out, other),
        says="made by another run or other settings; delete it or drop --resume",
    )


def test_resume_continues_to_the_uninterrupted_result(interrupted, tiny_cls_ckpt, tmp_path):
    """The resumed student is the uninterrupted run's, tensor for tensor."""
    import torch
    from safetensors.torch import load_file

    out = _copy_run(interrupted, tmp_path)
    case = Case("resume-continues-identical", AREA, 0, watch={tmp_path: {"out", "clean"}})
    check(case, run_cli(*_compress(tiny_cls_ckpt, interrupted[1], out, "--resume")[3:]))
    proc = subprocess.run(
        _compress(tiny_cls_ckpt, interrupted[1], tmp_path / "clean"),
        capture_output=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    a, b = (load_file(str(d / "student" / "model.safetensors")) for d in (out, tmp_path / "clean"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (out / ".train-student").exists()  # finished: nothing left to resume
