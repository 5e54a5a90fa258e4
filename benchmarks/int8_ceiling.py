"""#18's "7x PyTorch" target against this CPU's int8 ceiling: how fast would MiniLM at b1 x s128 run if each of
its matmuls ran at the best int8 rate any installed runtime reaches here for that matmul's shape, and all other
work (softmax, layer norms, GELU, quantizing activations, embeddings) took no time at all?

    python benchmarks/int8_ceiling.py [--rounds 5] [--artifact DIR ...] [--output benchmarks/results/int8_ceiling.json]

Each measurement runs in its own fresh process at 2 threads, one at a time, in alternating rounds (the order
rotates each round), so drift in the shared machine's load hits all of them alike:
- PyTorch fp32 eager MiniLM (edgekit's torch runtime), padded batch 1 x sequence 128, p50 of 30 runs;
- each ``--artifact`` (an edgekit artifact folder of MiniLM) through its runtime adapter, the same input;
- matmul rates, p50 of 20 runs each, at one large shape ([512 x 2048] x [2048 x 2048]) and MiniLM's own three
  at 128 tokens (Q/K/V/output [128 x 384] x [384 x 384], FFN up [128 x 384] x [384 x 1536], FFN down
  [128 x 1536] x [1536 x 384]), through every int8 engine installed: LiteRT/XNNPACK dynamic-range int8
  (ai-edge-quantizer), ONNX Runtime dynamic int8 (MatMulInteger), OpenVINO int8 (NNCF post-training: int8
  activations and weights, oneDNN) and PyTorch's own dynamic int8 Linear (``torch.ao`` quantize_dynamic); fp32
  through PyTorch and LiteRT for reference.

Per round: ``matmul_floor_ms`` = MiniLM's MACs of each shape at the best int8 rate for that shape (attention
scores and context at the large shape's rate), summed; ``ceiling_x_pytorch`` = PyTorch ms / that floor, the
speed-up over PyTorch of a model that did nothing but matmuls at the peak. A target above it is out of this
machine's reach in that round.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import matmul_onnx, matmul_tflite, minilm_macs, times_ms

HERE = Path(__file__).resolve().parent
THREADS = 2
# (m, k, n): one large matmul, and MiniLM's own at 128 tokens (hidden 384, FFN 1536)
SHAPES = {
    "large": (512, 2048, 2048),
    "qkvo": (128, 384, 384),
    "ffn_up": (128, 384, 1536),
    "ffn_down": (128, 1536, 384),
}
ENGINES = ("litert-int8", "ort-int8", "openvino-int8", "torch-int8", "torch-fp32", "litert-fp32")


def _p50_ms(fn, n: int) -> float:
    fn()
    fn()
    return float(np.median(times_ms(fn, n)))


def _data(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    m, k, n = shape
    rng = np.random.default_rng(0)
    return rng.standard_normal((k, n)).astype(np.float32) / 40, rng.standard_normal((m, k)).astype(np.float32)


# --- set-up: every model file, made once --------------------------------------------------------------------


def build(work: Path) -> None:
    import nncf
    import openvino as ov

    for name, shape in SHAPES.items():
        w, x = _data(shape)
        fp32, _ = matmul_onnx(w, shape[0], work / f"{name}.onnx")
        matmul_tflite(w, x, work / f"{name}.tflite")
        ovm = ov.convert_model(str(fp32))
        qm = nncf.quantize(ovm, nncf.Dataset([x]), preset=nncf.QuantizationPreset.PERFORMANCE)
        ov.save_model(qm, str(work / f"{name}-int8.xml"))


# --- one measurement in this process ------------------------------------------------------------------------


def gemm_gmacs(engine: str, work: Path) -> dict[str, float]:
    """GMAC/s of every shape in SHAPES through one engine, in this process."""
    out = {}
    for name, shape in SHAPES.items():
        w, x = _data(shape)
        if engine.startswith("torch"):
            import torch

            torch.set_num_threads(THREADS)
            lin = torch.nn.Linear(shape[1], shape[2], bias=False)
            lin.weight.data = torch.from_numpy(w.T.copy())
            if engine == "torch-int8":
                lin = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, torch.qint8)
            xt = torch.from_numpy(x)
            with torch.inference_mode():
                ms = _p50_ms(lambda lin=lin, xt=xt: lin(xt), 20)
        elif engine == "openvino-int8":
            import openvino as ov

            cfg = {"INFERENCE_NUM_THREADS": THREADS, "PERFORMANCE_HINT": "LATENCY"}
            req = ov.Core().compile_model(str(work / f"{name}-int8.xml"), "CPU", cfg).create_infer_request()
            ms = _p50_ms(lambda req=req, x=x: req.infer([x]), 20)
        else:
            from edgekit.plugins import runtime_for_format

            fmt, prec = engine.split("-")
            fmt = {"ort": "onnx", "litert": "tflite"}[fmt]
            suffix = "-int8" if prec == "int8" else ""
            s = runtime_for_format(fmt).load(work / f"{name}{suffix}.{fmt}", threads=THREADS)
            feeds = {s.inputs[0].name: x}
            ms = _p50_ms(lambda s=s, feeds=feeds: s.run(feeds), 20)
        out[name] = round(shape[0] * shape[1] * shape[2] / (ms / 1e3) / 1e9, 1)
    return out


def minilm_ms(artifact: str | None) -> float:
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    from edgekit.checkpoint import load_checkpoint
    from edgekit.data.calibration import load_text_data
    from edgekit.data.feeds import tokenize
    from edgekit.plugins import get_runtime, runtime_for_format

    ckpt = load_checkpoint("minilm")
    if artifact is None:
        session = get_runtime("torch").from_checkpoint(ckpt, threads=THREADS)
    else:
        m = json.loads((Path(artifact) / "manifest.json").read_text())
        session = runtime_for_format(m["format"]).load(Path(artifact) / m["model_file"], threads=THREADS)
    text = load_text_data(None, None, ckpt.task_def).heldout[0]
    feeds = tokenize(ckpt.tokenizer, [text * 20], session.inputs, 128, fixed=True)
    return round(_p50_ms(lambda: session.run(feeds), 30), 3)


# --- the coordinator ------------------------------------------------------------------------------------------


def artifact_info(folder: str) -> dict:
    """What an artifact folder is, from its manifest: enough to tell which run made it."""
    m = json.loads((Path(folder) / "manifest.json").read_text())
    keep = ("name", "format", "precision", "digest", "created")
    return {k: m.get(k) for k in keep} | {"edgekit": m.get("tool_versions", {}).get("edgekit")}


def _job(args: list[str]):
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--artifact", nargs="*", default=[], help="MiniLM artifact folders to time beside PyTorch")
    ap.add_argument("--output", type=Path, default=HERE / "results" / "int8_ceiling.json")
    ap.add_argument("--job", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.job:  # a worker: one measurement, its JSON on the last line
        kind, *rest = args.job
        print(json.dumps(minilm_ms(rest[0] if rest else None) if kind == "minilm" else gemm_gmacs(kind, args.work)))
        return 0
    from edgekit.checkpoint import load_checkpoint

    c = load_checkpoint("minilm").config
    assert (c["hidden_size"], c["intermediate_size"]) == (384, 1536), "SHAPES hold MiniLM-L6's own matmuls"
    macs = minilm_macs(128)  # attention (scores and context) is counted at the large matmul's rate
    total = sum(macs.values())
    with tempfile.TemporaryDirectory(prefix="edgekit-ceiling-") as tmp:
        work = Path(tmp)
        t0 = time.time()
        build(work)
        print(f"models built in {time.time() - t0:.0f} s", file=sys.stderr)
        jobs: list[tuple[str, list[str]]] = [("pytorch_fp32_ms", ["--job", "minilm"])]
        jobs += [(f"{Path(a).name}_ms", ["--job", "minilm", str(Path(a).resolve())]) for a in args.artifact]
        jobs += [(e, ["--job", e, "--work", str(work)]) for e in ENGINES]
        rounds: list[dict] = []
        for r in range(args.rounds):
            order = jobs[r % len(jobs) :] + jobs[: r % len(jobs)]
            got = {key: _job(a) for key, a in order}
            row: dict = {k: v for k, v in got.items() if k.endswith("_ms")}
            row["gmac_s"] = {e: got[e] for e in ENGINES}
            best = {sh: max(got[e][sh] for e in ENGINES if e.endswith("int8")) for sh in SHAPES}
            row["best_int8_gmac_s"] = best
            torch_ms = row["pytorch_fp32_ms"]
            row["pytorch_gmac_s"] = round(total / (torch_ms / 1e3) / 1e9, 1)
            # every matmul at the best int8 rate for its own shape, everything else free
            floor_ms = sum(m / (best["large" if sh == "attention" else sh] * 1e9) for sh, m in macs.items()) * 1e3
            row["matmul_floor_ms"] = round(floor_ms, 3)
            row["ceiling_x_pytorch"] = round(torch_ms / floor_ms, 2)
            row["ceiling_x_pytorch_at_large_rate"] = round(best["large"] * torch_ms / 1e3 / (total / 1e9), 2)
            for a in args.artifact:
                ms = row[f"{Path(a).name}_ms"]
                row[f"{Path(a).name}_x_pytorch"] = round(torch_ms / ms, 2)
                row[f"{Path(a).name}_x_floor"] = round(floor_ms / ms, 3)
            rounds.append(row)
            print(json.dumps(row), file=sys.stderr)
    flat = [k for k, v in rounds[0].items() if isinstance(v, (int, float))]
    result = {
        "command": "python benchmarks/int8_ceiling.py " + " ".join(sys.argv[1:]),
        "threads": THREADS,
        "minilm_macs_b1_s128": macs | {"total": total},
        "artifacts": {Path(a).name: artifact_info(a) for a in args.artifact},
        "shapes": {k: f"[{m} x {kk}] x [{kk} x {n}]" for k, (m, kk, n) in SHAPES.items()},
        "rounds": rounds,
        "median": {k: round(float(np.median([r[k] for r in rounds])), 3) for k in flat},
        "median_best_int8_gmac_s": {sh: float(np.median([r["best_int8_gmac_s"][sh] for r in rounds])) for sh in SHAPES},
        "max_ceiling_x_pytorch": max(r["ceiling_x_pytorch"] for r in rounds),
        "rounds_with_ceiling_at_least_7x": sum(r["ceiling_x_pytorch"] >= 7 for r in rounds),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("median", "median_best_int8_gmac_s", "max_ceiling_x_pytorch")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
