"""`edgekit compress minilm` with no recipe (the `fastest` default), then every artifact it made timed side by
side, each runtime in its own process, in alternating rounds.

    python benchmarks/default_compress.py [--output benchmarks/results/default_compress.json] [--keep DIR]

1. Runs `edgekit compress minilm -o OUT --json` (wall time recorded: the target is under 5 minutes here).
2. Starts one worker process per artifact (and one for PyTorch fp32 eager), each loading its model with
   edgekit's runtime adapter at 2 threads. The coordinator asks one worker at a time to run, so two runtimes
   never compete for the 2 cores, and alternates the workers in rounds so drift in machine load hits all of
   them alike. Measured:
   - padded batch 1 x sequence 128 (p50 of 100 runs in 5 rounds): speed-ups over PyTorch fp32 eager, over
     `ptq-dynamic`'s ONNX int8 (the Optimum path) and over OpenVINO's NNCF int8;
   - real traffic: each of the 200 held-out texts at its own token length, batch 1 (ONNX Runtime and
     OpenVINO run the length itself; a TFLite model pads to its smallest fitting signature, as deployed):
     p50/p90 per request; and throughput at batch 8 (texts in order, padded to the batch's longest);
   - cost growth: padded batch 1 at 32, 64, 128, 256, 512 tokens (a TFLite model only at its signatures);
   - distance to the hardware: MiniLM's multiply-accumulates at 128 tokens (counted from its config: Q, K, V,
     output and FFN matmuls, attention scores and context), achieved GMAC/s at the b1 x s128 p50, and the
     fraction of this CPU's practical int8 and fp32 peak, measured here with a micro-benchmark: one large
     matmul ([512 x 2048] x [2048 x 2048]) at 2 threads, int8 through ONNX Runtime's dynamically quantized
     MatMul (MatMulInteger, VNNI) and through LiteRT/XNNPACK dynamic-range int8, fp32 through both, best of
     each precision.
   Fidelity is each artifact's from the compress report (mean / min cosine to PyTorch fp32 on the held-out
   texts).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import matmul_onnx, matmul_tflite, minilm_macs, times_ms

ROOT = Path(__file__).resolve().parents[1]
THREADS = 2
LENGTHS = (32, 64, 128, 256, 512)
ROUNDS = 5


# --- the worker: one model in one process --------------------------------------------------------------------


def worker(conn, kind: str, path: str, fmt: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    from edgekit.checkpoint import load_checkpoint
    from edgekit.data.calibration import load_text_data
    from edgekit.data.feeds import tokenize
    from edgekit.plugins import get_runtime, runtime_for_format

    ckpt = load_checkpoint("minilm")
    tok = ckpt.tokenizer
    if kind == "torch":
        session = get_runtime("torch").from_checkpoint(ckpt, threads=THREADS)
    else:
        session = runtime_for_format(fmt).load(Path(path), threads=THREADS)
    texts = load_text_data(None, None, ckpt.task_def).heldout[:200]
    limit = session.max_seq_len or 512

    def feeds(batch, length, fixed=True):
        return tokenize(tok, batch, session.inputs, min(length, limit), fixed=fixed)

    padded = {n: feeds([texts[0] * 20], n) for n in LENGTHS if n <= limit}
    own = [feeds([t], limit, fixed=False) for t in texts]
    batches = [feeds(texts[i : i + 8], limit, fixed=False) for i in range(0, len(texts), 8)]
    for f in [*padded.values(), own[0], batches[0]]:
        session.run(f)  # warm every shape once
    conn.send({"ready": True, "max_seq_len": session.max_seq_len})
    while True:
        cmd, arg = conn.recv()
        if cmd == "stop":
            return
        if cmd == "padded":
            f = padded.get(arg)
            if f is None:
                conn.send(None)
                continue
            session.run(f)
            conn.send(times_ms(lambda f=f: session.run(f), 20))
        elif cmd == "real":
            out = []
            for f in own[arg::ROUNDS]:
                t0 = time.perf_counter()
                session.run(f)
                out.append((time.perf_counter() - t0) * 1e3)
            conn.send(out)
        elif cmd == "batch8":
            t0 = time.perf_counter()
            n = 0
            for i, f in enumerate(batches):
                if i % ROUNDS == arg:
                    session.run(f)
                    n += len(next(iter(f.values())))
            conn.send((n, time.perf_counter() - t0))


# --- the peak micro-benchmark ----------------------------------------------------------------------------------


def peak_gmacs() -> dict:
    """Practical int8 and fp32 matmul peak at THREADS threads on this CPU (see the module text)."""
    from edgekit.plugins import runtime_for_format

    m, k, n = 512, 2048, 2048
    macs = m * k * n
    rng = np.random.default_rng(0)
    w = rng.standard_normal((k, n)).astype(np.float32) / 40
    x = rng.standard_normal((m, k)).astype(np.float32)
    out: dict = {"shape": f"[{m} x {k}] x [{k} x {n}]", "threads": THREADS}
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = matmul_onnx(w, m, Path(tmp) / "mm.onnx")
        ort = runtime_for_format("onnx")
        for name, path in (("onnxruntime fp32", fp32), ("onnxruntime int8", int8)):
            s = ort.load(path, threads=THREADS)
            s.run({"x": x})
            p50 = float(np.median(times_ms(lambda s=s: s.run({"x": x}), 20)))
            out[name] = round(macs / (p50 / 1e3) / 1e9, 1)
        out["litert fp32"], out["litert int8"] = _litert_peak(w, x, tmp)
    out["fp32_gmac_s"] = max(v for k2, v in out.items() if k2.endswith("fp32") and v)
    out["int8_gmac_s"] = max(v for k2, v in out.items() if k2.endswith("int8") and v)
    return out


def _litert_peak(w: np.ndarray, x: np.ndarray, tmp: str) -> tuple[float | None, float | None]:
    """The same matmul as a LiteRT model (fp32, and dynamic-range int8 by ai-edge-quantizer)."""
    try:
        from edgekit.plugins import runtime_for_format

        fp32, int8 = matmul_tflite(w, x, Path(tmp) / "mm.tflite")
        res = []
        adapter = runtime_for_format("tflite")
        for path in (fp32, int8):
            s = adapter.load(path, threads=THREADS)
            feeds = {s.inputs[0].name: x}
            s.run(feeds)
            p50 = float(np.median(times_ms(lambda s=s, f=feeds: s.run(f), 20)))
            res.append(round(x.shape[0] * w.shape[0] * w.shape[1] / (p50 / 1e3) / 1e9, 1))
        return res[0], res[1]
    except Exception as err:  # noqa: BLE001 - the LiteRT peak is optional; say why it is missing
        print(f"LiteRT peak not measured: {err}", file=sys.stderr)
        return None, None


# --- the coordinator -----------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "default_compress.json")
    ap.add_argument("--keep", type=Path, help="write the compress output here (default: a temporary folder)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="edgekit-default-"))
    out = work / "out"
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", "compress", "minilm", "-o", str(out), "--json", "-q"],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return proc.returncode
    report = json.loads(proc.stdout)
    print(f"edgekit compress minilm (no recipe): {wall:.0f} s", flush=True)

    rows = {r["name"]: r for r in report["results"]}
    ctx = mp.get_context("spawn")
    workers = {}
    for name, r in rows.items():
        kind = "torch" if r.get("is_reference") else "artifact"
        parent, child = ctx.Pipe()
        p = ctx.Process(target=worker, args=(child, kind, r.get("path") or "", r["format"]), daemon=True)
        p.start()
        workers[name] = (p, parent)
    info = {name: conn.recv() for name, (_p, conn) in workers.items()}  # every model loaded and warmed

    padded: dict[str, dict[int, list[float]]] = {n: {s: [] for s in LENGTHS} for n in workers}
    real: dict[str, list[float]] = {n: [] for n in workers}
    batch8: dict[str, list[tuple[int, float]]] = {n: [] for n in workers}
    for rnd in range(ROUNDS):
        print(f"round {rnd + 1}/{ROUNDS}", flush=True)
        for seq in LENGTHS:
            for name, (_p, conn) in workers.items():
                conn.send(("padded", seq))
                got = conn.recv()
                if got is not None:
                    padded[name][seq] += got
        for name, (_p, conn) in workers.items():
            conn.send(("real", rnd))
            real[name] += conn.recv()
            conn.send(("batch8", rnd))
            batch8[name].append(conn.recv())
    for _p, conn in workers.values():
        conn.send(("stop", None))

    peak = peak_gmacs()
    macs128 = sum(minilm_macs(128).values())
    p50 = {n: float(np.median(padded[n][128])) for n in workers}
    ref = next(n for n, r in rows.items() if r.get("is_reference"))
    promoted = (report.get("search") or {}).get("winner") and "search-best"
    results = []
    for name, r in rows.items():
        precision = r["precision"]
        gmacs = macs128 / (p50[name] / 1e3) / 1e9
        peak_key = "int8_gmac_s" if precision == "int8" else "fp32_gmac_s"
        n_items = sum(n for n, _ in batch8[name])
        secs = sum(s for _, s in batch8[name])
        results.append(
            {
                "name": name,
                "format": r["format"],
                "runtime": r["runtime"],
                "precision": precision,
                "size_mb": round(r["size_bytes"] / 1e6, 1),
                "fidelity": {k: r.get("fidelity", {}).get(k) for k in ("cosine_mean", "cosine_min")},
                "promoted": name == promoted,
                "max_seq_len": info[name].get("max_seq_len"),
                "b1_s128_p50_ms": round(p50[name], 3),
                "speedup_vs_pytorch": round(p50[ref] / p50[name], 2),
                "real_traffic": {
                    "requests": len(real[name]),
                    "p50_ms": round(float(np.median(real[name])), 3),
                    "p90_ms": round(float(np.percentile(real[name], 90)), 3),
                    "batch8_texts_per_s": round(n_items / secs, 1),
                },
                "latency_by_length_p50_ms": {
                    str(s): round(float(np.median(v)), 3) if v else None for s, v in padded[name].items()
                },
                "macs_s128": macs128,
                "gmac_per_s": round(gmacs, 1),
                "fraction_of_peak": round(gmacs / peak[peak_key], 3),
                "peak_used": f"{peak_key} {peak[peak_key]}",
            }
        )
    by = {r["name"]: r for r in results}
    best = by.get(promoted) if promoted else None
    summary = {"compress_wall_s": round(wall, 1), "promoted": promoted}
    if best:
        for other, key in (
            (ref, "vs_pytorch"),
            ("onnx-int8-dynamic", "vs_ptq_dynamic"),
            ("openvino-int8-static", "vs_openvino_nncf_int8"),
        ):
            if other in by:
                summary[f"promoted_{key}_b1_s128"] = round(by[other]["b1_s128_p50_ms"] / best["b1_s128_p50_ms"], 2)
                summary[f"promoted_{key}_real_p50"] = round(
                    by[other]["real_traffic"]["p50_ms"] / best["real_traffic"]["p50_ms"], 2
                )
        summary["promoted_cosine_mean"] = best["fidelity"]["cosine_mean"]
        summary["promoted_fraction_of_int8_peak"] = best["fraction_of_peak"]
    record = {
        "command": "edgekit compress minilm -o OUT (no recipe: the `fastest` default)",
        "threads": THREADS,
        "rounds": ROUNDS,
        "skipped_stages": (report.get("recipe") or {}).get("skipped", []),
        "search": {k: (report.get("search") or {}).get(k) for k in ("winner", "trials_run", "elapsed_s", "stopped")},
        "peak": peak,
        "summary": summary,
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    for r in results:
        print(
            f"{r['name']:<22} {r['runtime']:<12} b1s128 {r['b1_s128_p50_ms']:7.2f} ms "
            f"({r['speedup_vs_pytorch']:5.2f}x)  real p50 {r['real_traffic']['p50_ms']:6.2f} ms  "
            f"b8 {r['real_traffic']['batch8_texts_per_s']:7.1f}/s  cos {r['fidelity']['cosine_mean']}  "
            f"{r['fraction_of_peak']:.1%} of peak"
        )
    print(json.dumps(summary, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
