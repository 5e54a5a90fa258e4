"""#15: does a decoder graph with fewer nodes than ONNX Runtime GenAI's builder decode faster on this CPU?

    python benchmarks/decoder_fusions.py [--rounds 30] [--output benchmarks/results/decoder_fusions.json]

1. The fused ops ONNX Runtime declares for decoder MLPs and QKV (``MatMulNBitsMlp``, ``MatMulNBitsQkv``,
   ``SwiGLU``): does a CPU session take them?
2. The MLP as one CPU ``QMoE`` node with a single expert (gate/up interleaved, SwiGLU, down projection;
   block-wise 8 and 4 bits, blocks of 32, accuracy level 4) against the builder's five nodes (two
   ``MatMulNBits``, ``QuickGelu``, ``Mul``, ``MatMulNBits``): four MLPs of the demo decoder's size (hidden
   256, FFN 768) with their residual adds, batch 1, 2 threads, random weights, both sessions in one process
   timed alternately (3,000 runs a round); the outputs compared.
3. The builder's int8 graph of the trained demo decoder (``edgekit finetune sotu-llama --data sotu``, cached)
   against the same graph with its ``SkipSimplifiedLayerNormalization`` nodes unfused into ``Add`` +
   ``SimplifiedLayerNormalization``: decode tokens/s in ONNX Runtime GenAI's loop (32-token prompt, 128 new
   tokens, median of 5 generations), each in its own process, alternating rounds (each goes first in half of
   them); and the eight norms of one decode step alone, fused and unfused, timed alternately in one process.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import alternate_us

HERE = Path(__file__).resolve().parent
THREADS = 2
HIDDEN, FFN, LAYERS, BLOCK = 256, 768, 4, 32


def _session(nodes, inits, inputs, outputs):
    import onnxruntime as ort
    from onnx import helper

    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    )
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.log_severity_level = 4
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def cpu_kernels() -> dict[str, str]:
    """Which fused decoder ops a CPU session builds (``ok``) or refuses (the error's first words)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.integers(0, 255, (FFN, HIDDEN // BLOCK, BLOCK), dtype=np.uint8), "w")
    sc = numpy_helper.from_array(np.ones(FFN * HIDDEN // BLOCK, np.float32), "s")
    ns = numpy_helper.from_array(np.ones(HIDDEN, np.float32), "n")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, HIDDEN])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    common = {"K": HIDDEN, "bits": 8, "block_size": BLOCK, "accuracy_level": 4, "domain": "com.microsoft"}
    cases = {
        "MatMulNBitsMlp": (["x", "", "n", "w", "s", "", "w", "s"], {"N": FFN, "activation": "silu", **common}),
        "MatMulNBitsQkv": (["x", "", "n", "w", "s", "", "w", "s", "", "w", "s"], {"Nq": FFN, "Nkv": FFN, **common}),
        "SwiGLU": (["x"], {"domain": "com.microsoft"}),
    }
    out = {}
    for op, (ins, attrs) in cases.items():
        outs = ["y", "k", "v"] if op == "MatMulNBitsQkv" else ["y"]
        try:
            _session([helper.make_node(op, ins, outs, **attrs)], [w, sc, ns], [x], [y])
            out[op] = "ok"
        except Exception as err:  # noqa: BLE001 - the refusal is the finding
            out[op] = " ".join(str(err).split(":")[-1].split()[:8])
    return out


def qmoe_vs_chain(bits: int, rounds: int = 3, runs: int = 3000) -> dict:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(bits)

    def weight(n, k):
        blob = rng.integers(0, 256, size=(n, k // BLOCK, BLOCK * bits // 8), dtype=np.uint8)
        return blob, (rng.random((n, k // BLOCK), dtype=np.float32) * 0.002).astype(np.float32)

    layers = [{"g": weight(FFN, HIDDEN), "u": weight(FFN, HIDDEN), "d": weight(HIDDEN, FFN)} for _ in range(LAYERS)]
    q = {"bits": bits, "block_size": BLOCK, "accuracy_level": 4, "domain": "com.microsoft"}

    def chain():
        nodes, inits, x = [], [], "x"
        for i, lw in enumerate(layers):
            for key, (n, k, src) in {"g": (FFN, HIDDEN, x), "u": (FFN, HIDDEN, x), "d": (HIDDEN, FFN, f"m{i}")}.items():
                if key == "d":
                    nodes.append(helper.make_node("QuickGelu", [f"g{i}"], [f"a{i}"], domain="com.microsoft", alpha=1.0))
                    nodes.append(helper.make_node("Mul", [f"a{i}", f"u{i}"], [f"m{i}"]))
                inits += [
                    numpy_helper.from_array(lw[key][0], f"{key}{i}B"),
                    numpy_helper.from_array(lw[key][1].ravel(), f"{key}{i}S"),
                ]
                nodes.append(
                    helper.make_node("MatMulNBits", [src, f"{key}{i}B", f"{key}{i}S"], [f"{key}{i}"], K=k, N=n, **q)
                )
            nodes.append(helper.make_node("Add", [x, f"d{i}"], [f"x{i}"]))
            x = f"x{i}"
        return nodes, inits, x

    def fused():
        nodes, inits, x = [], [numpy_helper.from_array(np.zeros((1, 1), np.float32), "router")], "x"
        for i, lw in enumerate(layers):
            fc1 = np.stack([lw["g"][0], lw["u"][0]], 1).reshape(1, 2 * FFN, -1)  # gate/up rows interleaved
            fc1s = np.stack([lw["g"][1], lw["u"][1]], 1).reshape(1, 2 * FFN, -1)
            inits += [
                numpy_helper.from_array(fc1, f"f1_{i}"),
                numpy_helper.from_array(fc1s, f"f1s_{i}"),
                numpy_helper.from_array(lw["d"][0].reshape(1, HIDDEN, -1), f"f2_{i}"),
                numpy_helper.from_array(lw["d"][1].reshape(1, HIDDEN, -1), f"f2s_{i}"),
            ]
            nodes.append(
                helper.make_node(
                    "QMoE",
                    [x, "router", f"f1_{i}", f"f1s_{i}", "", f"f2_{i}", f"f2s_{i}"],
                    [f"y{i}"],
                    k=1,
                    activation_type="swiglu",
                    swiglu_fusion=1,
                    expert_weight_bits=bits,
                    normalize_routing_weights=1,
                    activation_alpha=1.0,
                    activation_beta=0.0,
                    weights_prepacked=0,
                    block_size=BLOCK,
                    accuracy_level=4,
                    domain="com.microsoft",
                )
            )
            nodes.append(helper.make_node("Add", [x, f"y{i}"], [f"x{i}"]))
            x = f"x{i}"
        return nodes, inits, x

    sessions = {}
    for name, build in (("five_nodes", chain), ("qmoe", fused)):
        nodes, inits, out = build()
        sessions[name] = _session(
            nodes,
            inits,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, HIDDEN])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
        )
    feed = {"x": rng.standard_normal((1, HIDDEN)).astype(np.float32)}
    a, b = (sessions[n].run(None, feed)[0] for n in ("five_nodes", "qmoe"))
    return alternate_us(sessions, feed, rounds, runs, warmup=runs // 10) | {
        "relative_difference": float(np.abs(a - b).max() / np.abs(a - feed["x"]).max())
    }


def norms_alone(rounds: int = 4, runs: int = 5000) -> dict:
    """Eight chained norms of one token (a decode step's eight), fused against Add + SimplifiedLayerNormalization,
    both sessions in one process timed alternately."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    gamma = numpy_helper.from_array(rng.random(HIDDEN).astype(np.float32), "g")
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 1, HIDDEN]) for n in ("x", "s")]
    graphs: dict[str, list] = {"fused": [], "unfused": []}
    x = "x"
    for i in range(8):
        graphs["fused"].append(
            helper.make_node(
                "SkipSimplifiedLayerNormalization",
                [x, "s", "g"],
                [f"y{i}", "", "", f"r{i}"],
                domain="com.microsoft",
                epsilon=1e-6,
            )
        )
        graphs["unfused"] += [
            helper.make_node("Add", [x, "s"], [f"r{i}"]),
            helper.make_node("SimplifiedLayerNormalization", [f"r{i}", "g"], [f"y{i}"], axis=-1, epsilon=1e-6),
        ]
        x = f"y{i}"
    out = [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)]
    sessions = {n: _session(nodes, [gamma], ins, out) for n, nodes in graphs.items()}
    feed = {n: rng.standard_normal((1, 1, HIDDEN)).astype(np.float32) for n in ("x", "s")}
    return alternate_us(sessions, feed, rounds, runs, warmup=runs // 10)


def unfuse_norms(src: Path, dst: Path) -> int:
    """A copy of a builder folder, each SkipSimplifiedLayerNormalization as Add + SimplifiedLayerNormalization."""
    import onnx
    from onnx import helper

    shutil.copytree(src, dst)
    (dst / "model.onnx").unlink()
    (dst / "model.onnx.data").unlink()
    m = onnx.load(src / "model.onnx")
    nodes, count = [], 0
    for n in m.graph.node:
        if n.op_type != "SkipSimplifiedLayerNormalization":
            nodes.append(n)
            continue
        eps = next((a.f for a in n.attribute if a.name == "epsilon"), 1e-6)
        total = n.output[3] if len(n.output) > 3 and n.output[3] else f"{n.name}_sum"
        nodes.append(helper.make_node("Add", list(n.input[:2]), [total]))
        nodes.append(
            helper.make_node("SimplifiedLayerNormalization", [total, n.input[2]], [n.output[0]], axis=-1, epsilon=eps)
        )
        count += 1
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    onnx.save(
        m, dst / "model.onnx", save_as_external_data=True, location="model.onnx.data", all_tensors_to_one_file=True
    )
    return count


def decode_tokens_per_s(folder: str) -> float:
    """ONNX Runtime GenAI's loop on ``folder``: 32-token prompt, 128 new tokens, median of 5 generations."""
    import onnxruntime_genai as og

    config = og.Config(folder)
    config.clear_providers()
    config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": THREADS}}}}))
    model = og.Model(config)
    prompt = np.arange(10, 42, dtype=np.int32)

    def run(n: int) -> float:
        p = og.GeneratorParams(model)
        p.set_search_options(max_length=32 + n, min_length=32 + n, do_sample=False)
        g = og.Generator(model, p)
        g.append_tokens(prompt)
        g.generate_next_token()
        t0 = time.perf_counter()
        for _ in range(n - 1):
            g.generate_next_token()
        return (n - 1) / (time.perf_counter() - t0)

    run(16)
    return round(float(np.median([run(128) for _ in range(5)])), 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--output", type=Path, default=HERE / "results" / "decoder_fusions.json")
    ap.add_argument("--decode", help=argparse.SUPPRESS)  # a worker: one folder's decode tokens/s
    args = ap.parse_args()
    if args.decode:
        print(decode_tokens_per_s(args.decode))
        return 0
    result: dict = {"command": "python benchmarks/decoder_fusions.py " + " ".join(sys.argv[1:]), "threads": THREADS}
    result["cpu_kernels"] = cpu_kernels()
    result["mlp_qmoe_vs_five_nodes"] = {f"{b}bit": qmoe_vs_chain(b) for b in (8, 4)}
    result["eight_norms_alone"] = norms_alone()
    print(json.dumps(result, indent=2))
    subprocess.run([sys.executable, "-m", "edgekit", "finetune", "sotu-llama", "--data", "sotu", "-q"], check=True)
    teacher = Path.home() / ".cache" / "edgekit" / "teachers" / "sotu-llama-sotu"
    from edgekit_converters.genai_builder import build

    with tempfile.TemporaryDirectory(prefix="edgekit-fusions-") as tmp:
        builder = Path(tmp) / "builder-int8"
        builder.mkdir()
        build(teacher, builder, "int8", {"block_size": BLOCK, "accuracy_level": 4})
        unfused = Path(tmp) / "builder-int8-unfused-norms"
        n = unfuse_norms(builder, unfused)
        runs: dict[str, list[float]] = {"builder_int8": [], "unfused_norms": []}
        pair = [("builder_int8", builder), ("unfused_norms", unfused)]
        for r in range(args.rounds):
            for name, folder in pair if r % 2 == 0 else pair[::-1]:  # each goes first in half the rounds
                out = subprocess.run(
                    [sys.executable, __file__, "--decode", str(folder)], check=True, capture_output=True, text=True
                )
                runs[name].append(float(out.stdout.split()[-1]))
        ratios = [round(u / b, 3) for b, u in zip(runs["builder_int8"], runs["unfused_norms"], strict=True)]
        within = sum(abs(r - 1) <= 0.02 for r in ratios)
        result["norms_unfused"] = {
            "nodes_unfused": n,
            "decode_tokens_per_s": runs,
            "median": {k: float(np.median(v)) for k, v in runs.items()},
            "paired_ratio": ratios,
            "paired_median": float(np.median(ratios)),
            "rounds_faster_slower_within_2pct": [sum(r > 1.02 for r in ratios), sum(r < 0.98 for r in ratios), within],
        }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["norms_unfused"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
