"""edgekit's ONNX artifact folders in the ecosystem's own loaders: sentence-transformers and Optimum.

    python benchmarks/ecosystem_load.py [--artifact DIR] [--python ECO_PYTHON] [--output FILE]

Optimum's ONNX Runtime package (optimum-onnx) pins transformers<4.58, and edgekit runs on transformers 5,
so the loaders run in their own virtual environment (``--python``; by default one is made once under
~/.cache/edgekit/ecosystem-venv: torch 2.13.0 from this machine's wheel, transformers<4.58,
optimum-onnx[onnxruntime], sentence-transformers). Without ``--artifact`` the embedded MiniLM is compressed
with ``ptq-dynamic`` first. In the other environment, the int8 artifact folder is loaded as it is by
``SentenceTransformer(folder, backend="onnx")`` and ``ORTModelForFeatureExtraction.from_pretrained(folder)``
(its ``last_hidden_state``, mean-pooled) and both embed the shipped held-out texts; here, PyTorch fp32
embeds the same texts. Writes the cosines (default benchmarks/results/ecosystem_load.json).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
VENV = Path.home() / ".cache" / "edgekit" / "ecosystem-venv"
REQUIREMENTS = ["torch==2.13.0", "transformers<4.58", "optimum-onnx[onnxruntime]", "sentence-transformers"]
CHILD = r"""
import json, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
folder, texts_file, out = sys.argv[1], sys.argv[2], sys.argv[3]
texts = json.loads(open(texts_file, encoding="utf-8").read())
from sentence_transformers import SentenceTransformer
st = SentenceTransformer(folder, backend="onnx", device="cpu")
by_st = st.encode(texts, batch_size=16, convert_to_numpy=True)
from optimum.onnxruntime import ORTModelForFeatureExtraction
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(folder)
model = ORTModelForFeatureExtraction.from_pretrained(folder)
rows = []
for i in range(0, len(texts), 16):
    enc = tok(texts[i:i + 16], padding=True, truncation=True, max_length=256, return_tensors="pt")
    hidden = model(**enc).last_hidden_state.detach().numpy()
    mask = enc["attention_mask"].numpy()[..., None].astype(np.float32)
    rows.append((hidden * mask).sum(1) / mask.sum(1))
np.savez(out, sentence_transformers=by_st, optimum=np.concatenate(rows))
import importlib.metadata as md
names = ("sentence-transformers", "optimum-onnx", "optimum", "transformers", "onnxruntime")
print(json.dumps({p: md.version(p) for p in names}))
"""


def ecosystem_python(python: str | None) -> str:
    """The interpreter of an environment with sentence-transformers and Optimum (made once when not given)."""
    if python:
        return python
    exe = VENV / "bin" / "python"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(exe), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
    return str(exe)


def load_elsewhere(python: str, folder: Path, texts: list[str]) -> tuple[dict[str, np.ndarray], dict]:
    """Embeddings of ``texts`` by sentence-transformers and by Optimum loading ``folder``, in ``python``."""
    with tempfile.TemporaryDirectory() as tmp:
        texts_file, out = Path(tmp) / "texts.json", Path(tmp) / "out.npz"
        texts_file.write_text(json.dumps(texts), encoding="utf-8")
        proc = subprocess.run(
            [python, "-c", CHILD, str(folder), str(texts_file), str(out)], capture_output=True, text=True, timeout=900
        )
        if proc.returncode != 0:
            raise RuntimeError(f"the ecosystem loaders failed:\n{proc.stderr[-3000:]}")
        versions = json.loads(proc.stdout.strip().splitlines()[-1])
        with np.load(out) as data:
            return {k: data[k] for k in data.files}, versions


def cosines(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    return (reference * other).sum(1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(other, axis=1)


def reference_embeddings(checkpoint, texts: list[str], max_length: int = 256) -> np.ndarray:
    """PyTorch fp32 embeddings (edgekit's reference: the checkpoint's mean pooling)."""
    from edgekit.measure.evaluation import run_texts
    from edgekit_runtimes.torch_eager import TorchEagerAdapter

    session = TorchEagerAdapter().from_checkpoint(checkpoint, 2)
    return run_texts(session, checkpoint.tokenizer, texts, max_length)


def main() -> None:
    from edgekit.checkpoint import load_checkpoint
    from edgekit.data.calibration import load_text_data

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifact", type=Path, help="An ONNX artifact folder of MiniLM (default: made here).")
    ap.add_argument("--python", help="Python of an environment with sentence-transformers and optimum-onnx.")
    ap.add_argument("--texts", type=int, default=200, help="Held-out texts to embed (default 200).")
    ap.add_argument("--output", type=Path, default=HERE / "results" / "ecosystem_load.json")
    args = ap.parse_args()
    texts = load_text_data(None, None).heldout[: args.texts]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.artifact
        if folder is None:
            from edgekit.pipeline.run import compress
            from edgekit.recipe.config import load_recipe

            compress("minilm", load_recipe("ptq-dynamic"), Path(tmp) / "out", progress=True)
            folder = Path(tmp) / "out" / "onnx-int8-dynamic"
        loaded, versions = load_elsewhere(ecosystem_python(args.python), folder, texts)
        reference = reference_embeddings(load_checkpoint("minilm"), texts)
    result = {
        "artifact": str(folder if args.artifact else "ptq-dynamic onnx-int8-dynamic (made in a temporary directory)"),
        "texts": len(texts),
        "ecosystem_versions": versions,
        "cosine_to_pytorch_fp32": {
            name: {"mean": round(float(c.mean()), 4), "min": round(float(c.min()), 4)}
            for name, c in ((k, cosines(reference, v)) for k, v in loaded.items())
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
