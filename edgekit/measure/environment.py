"""What a measurement was taken on: CPU, threads and library versions."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version

LIBRARIES = (  # edgekit's own version is its __version__ (its distribution is edgekit-ml)
    "torch",
    "transformers",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "numpy",
    "tokenizers",
    "ai-edge-litert",
    "litert-torch",
    "tflite-runtime",
    "ai-edge-quantizer",
    "openvino",
    "nncf",
)
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "asimd", "asimddp", "i8mm")


def library_versions() -> dict[str, str]:
    from edgekit import __version__

    out = {"edgekit": __version__}  # also where edgekit runs unpackaged (the remote runner)
    for lib in LIBRARIES:
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            continue
    return out


def cpu_info() -> dict:
    model = platform.processor() or "unknown"
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and model in ("unknown", "", platform.machine()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {
        "model": model,
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "flags": sorted(f for f in CPU_FLAGS if f in flags),
    }


def environment(threads: int | None = None) -> dict:
    return {
        "host": platform.node(),
        "cpu": cpu_info(),
        "threads": threads,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": library_versions(),
    }
