"""Measure one decoder in its own process: time to first token, decode tokens/s, peak memory,
perplexity, next-token top-1 and greedy continuations.

``python -m edgekit.generation.measure SPEC.json OUT.json`` runs one measurement: an edgekit ONNX
decoder on ONNX Runtime (``kind: onnx``, no torch imported), PyTorch eager ``generate`` with its KV
cache on a checkpoint (``kind: torch``) or an ONNX Runtime GenAI model folder (``kind: ortgenai``). Each
runs alone in its process, so runtimes never compete for threads and peak memory is the model's own.
The pipeline and ``benchmarks/decoder.py`` start these processes and compare what they write.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edgekit.errors import InternalError


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss it does not carry the parent's peak
    across fork and exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _median(xs: list[float]) -> float:
    return float(np.median(np.asarray(xs)))


class _Onnx:
    """An edgekit decoder artifact as the device runs it: ONNX Runtime GenAI's loop when the folder has its
    genai_config.json and the package is installed (``engine``), else edgekit's loop over ONNX Runtime."""

    def __init__(self, path: str, threads: int, engine: str = "auto") -> None:
        from edgekit.generation.runtime import open_decoder

        self.dec = open_decoder(path, threads)
        self.genai = None
        if engine != "python" and (Path(path) / "genai_config.json").is_file():
            try:
                self.genai = _OrtGenAI(path, threads)
            except ImportError:
                if engine == "onnxruntime-genai":
                    raise
        self.engine = "onnxruntime-genai" if self.genai is not None else "python"
        self.max_batch = 1 if (Path(path) / "model.tflite").is_file() else None

    def prefill(self, ids: np.ndarray):
        logits, past = self.dec.forward(ids, self.dec.empty_past(len(ids)), 0)
        return logits[:, -1].argmax(-1), past

    def decode(self, ids: np.ndarray, n: int, force: bool = True) -> tuple[float, float, list[list[int]]]:
        """(prefill seconds, seconds for the n - 1 decode steps, tokens) of greedy generation; ``force``: exactly
        ``n`` tokens (an end-of-text token does not stop it; timing), else it may stop at one (continuations)."""
        if self.genai is not None:
            return self.genai.decode(ids, n, force)
        t0 = time.perf_counter()
        tok, past = self.prefill(ids)
        t1 = time.perf_counter()
        out = [tok]
        pos = ids.shape[1]
        for _ in range(n - 1):
            logits, past = self.dec.forward(tok[:, None].astype(np.int64), past, pos)
            tok = logits[:, -1].argmax(-1)
            out.append(tok)
            pos += 1
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, np.stack(out, 1).tolist()

    def logits(self, windows: np.ndarray) -> np.ndarray:
        if self.max_batch == 1:
            return np.concatenate([self.dec.forward(w[None], self.dec.empty_past(1), 0)[0] for w in windows])
        logits, _ = self.dec.forward(windows, self.dec.empty_past(len(windows)), 0)
        return logits


class _Torch:
    def __init__(self, path: str, threads: int) -> None:
        import torch
        import transformers

        torch.set_num_threads(threads)
        self.torch = torch
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, trust_remote_code=False, dtype=torch.float32
        ).eval()
        self.model.generation_config.pad_token_id = self.model.generation_config.eos_token_id

    def decode(self, ids: np.ndarray, n: int, force: bool = True) -> tuple[float, float, list[list[int]]]:
        """PyTorch eager ``generate`` (greedy, KV cache): prefill timed by a one-token generate."""
        torch = self.torch
        x = torch.as_tensor(ids)
        mask = torch.ones_like(x)
        kw: dict = {"do_sample": False, "attention_mask": mask}
        if force:
            kw["eos_token_id"] = None
        with torch.inference_mode():
            t0 = time.perf_counter()
            self.model.generate(x, max_new_tokens=1, min_new_tokens=1, **kw)
            t1 = time.perf_counter()
            out = self.model.generate(x, max_new_tokens=n, min_new_tokens=n if force else 0, **kw)
            t2 = time.perf_counter()
        ttft = t1 - t0
        return ttft, max(t2 - t1 - ttft, 1e-9), out[:, ids.shape[1] :].tolist()

    def logits(self, windows: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.model(input_ids=self.torch.as_tensor(windows)).logits.float().numpy()


class _OrtGenAI:
    """ONNX Runtime GenAI (the model builder's folder): its own C++ generation loop."""

    def __init__(self, path: str, threads: int) -> None:
        import onnxruntime_genai as og

        self.og = og
        config = og.Config(path)
        config.clear_providers()
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
        self.model = og.Model(config)

    def decode(self, ids: np.ndarray, n: int, force: bool = True) -> tuple[float, float, list[list[int]]]:
        og = self.og
        params = og.GeneratorParams(self.model)
        length = ids.shape[1] + n
        params.set_search_options(
            do_sample=False, max_length=length, min_length=length if force else 0, batch_size=len(ids)
        )
        gen = og.Generator(self.model, params)
        t0 = time.perf_counter()
        gen.append_tokens(ids.astype(np.int32))
        gen.generate_next_token()
        t1 = time.perf_counter()
        toks = [gen.get_next_tokens().tolist()]
        for _ in range(n - 1):
            if gen.is_done():
                break
            gen.generate_next_token()
            toks.append(gen.get_next_tokens().tolist())
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, np.asarray(toks).T.tolist()

    def logits(self, windows: np.ndarray) -> np.ndarray:
        raise NotImplementedError


RUNNERS = {"onnx": _Onnx, "torch": _Torch, "ortgenai": _OrtGenAI}


def nll(logits: np.ndarray, windows: np.ndarray) -> tuple[float, int, np.ndarray]:
    """(summed next-token negative log-likelihood, tokens scored, argmax per position)."""
    z = logits[:, :-1].astype(np.float64)
    top1 = z.argmax(-1)
    z -= z.max(-1, keepdims=True)
    logz = np.log(np.exp(z).sum(-1))
    picked = np.take_along_axis(z, windows[:, 1:, None], -1)[..., 0]
    return float((logz - picked).sum()), int(picked.size), top1


def run_spec(spec: dict) -> dict:
    kwargs = {"engine": spec["engine"]} if spec.get("engine") else {}
    runner = RUNNERS[spec["kind"]](spec["path"], int(spec["threads"]), **kwargs)
    rng = np.random.default_rng(0)
    vocab = int(spec["vocab_size"])
    result: dict = {
        "kind": spec["kind"],
        "path": spec["path"],
        "engine": getattr(runner, "engine", spec["kind"]),
        "ttft_ms": {},
        "decode_tokens_per_s": {},
    }
    n, runs = int(spec["new_tokens"]), int(spec["runs"])
    prompts_src = np.load(spec["prompts"]) if spec.get("prompts") else None
    for b in spec["batch_sizes"]:
        if getattr(runner, "max_batch", None) and b > runner.max_batch:
            continue  # a LiteRT decoder runs batch 1
        for p in spec["prompt_lens"]:
            if prompts_src is not None and p <= prompts_src.shape[1]:
                ids = np.tile(prompts_src[:1, :p], (b, 1)).astype(np.int64)
            else:
                ids = rng.integers(0, vocab, size=(b, p), dtype=np.int64)
            runner.decode(ids, min(n, 4))  # warm-up at this shape
            ttft, dec = [], []
            for _ in range(runs):
                t_first, t_rest, _ = runner.decode(ids, n)
                ttft.append(t_first * 1000)
                dec.append(b * (n - 1) / t_rest)
            key = str(p) if b == 1 else f"{p}@b{b}"
            result["ttft_ms"][key] = round(_median(ttft), 3)
            result["decode_tokens_per_s"][key] = round(_median(dec), 2)
    if spec.get("windows"):
        windows = np.load(spec["windows"])
        total, count, tops = 0.0, 0, []
        for i in range(0, len(windows), 4):
            w = windows[i : i + 4]
            s, c, t = nll(runner.logits(w), w)
            total, count = total + s, count + c
            tops.append(t)
        result["perplexity"] = float(np.exp(total / count))
        result["scored_tokens"] = count
        np.save(spec["top1_out"], np.concatenate(tops).astype(np.int32))
    if spec.get("continuations"):
        prompts = np.load(spec["continuations"])
        eos = set(spec.get("eos_token_ids") or ())
        conts = []
        for row in prompts:
            toks = runner.decode(row[None].astype(np.int64), int(spec["continuation_tokens"]), force=False)[2][0]
            cut = next((i for i, t in enumerate(toks) if t in eos), len(toks))  # up to the end of text
            conts.append(toks[:cut])
        result["continuations"] = conts
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def measure_in_process(
    spec: dict,
    work: Path,
    timeout: float = 3600,
    module: str = "edgekit.generation.measure",
    cpus: set[int] | None = None,
) -> dict:
    """Run ``module``'s ``run_spec`` (by default this module's) on ``spec`` in a fresh Python process; its result.
    ``cpus``: the process runs on these CPUs only, where the system lets a process choose (Linux)."""
    import os

    work.mkdir(parents=True, exist_ok=True)
    spec_file, out_file = work / "spec.json", work / "result.json"
    spec_file.write_text(json.dumps(spec))

    def pin() -> None:
        try:
            os.sched_setaffinity(0, cpus or ())
        except (AttributeError, OSError):  # no affinity here: the threads setting still holds
            pass

    proc = subprocess.run(
        [sys.executable, "-m", module, str(spec_file), str(out_file)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=pin if cpus else None,
    )
    if proc.returncode != 0 or not out_file.is_file():
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        raise InternalError(f"measuring {spec['path']} failed: {' | '.join(tail)}")
    return json.loads(out_file.read_text())


def main(argv: list[str], run=None) -> None:
    """``SPEC.json OUT.json``: ``run`` (default :func:`run_spec`) on the spec, its result written as JSON."""
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    spec = json.loads(Path(argv[0]).read_text())
    Path(argv[1]).write_text(json.dumps((run or run_spec)(spec)))


if __name__ == "__main__":
    main(sys.argv[1:])
