"""Measure one encoder-decoder in its own process: encoder ms, time to first token, decode tokens/s,
end-to-end ms per request at each beam width, peak memory, and the outputs scored by the parent.

``python -m edgekit.generation.seq2seq_measure SPEC.json OUT.json`` runs one measurement: an edgekit
artifact on ONNX Runtime (``kind: onnx``, no torch imported) or PyTorch eager ``generate`` with its
KV cache on a checkpoint (``kind: torch``). Both decode from the same decoder prompt with the same options
(length penalty 1, transformers' early-stopping heuristic, no n-gram ban, the generation config's
suppressed tokens), so their beams are comparable token for token. Sources are token ids (a JSON list) or,
for a speech model, log-mel features (one ``.npy`` array, read without pickle).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from edgekit.generation.measure import peak_rss_mb


def _median(xs: list[float]) -> float:
    return float(np.median(np.asarray(xs)))


class _Onnx:
    def __init__(self, path: str, threads: int) -> None:
        from edgekit.generation.seq2seq import open_seq2seq

        self.sess = open_seq2seq(path, threads)

    def encode_s(self, ids) -> float:
        t = time.perf_counter()
        self.sess.encode(np.asarray([ids]))
        return time.perf_counter() - t

    def forced(self, ids, n: int) -> tuple[float, float]:
        """(seconds to the first token, including the encoder; seconds for the n - 1 next tokens), greedy."""
        s = self.sess
        t0 = time.perf_counter()
        cross, mask = s.encode(np.asarray([ids]))
        logits, past = s.step(np.array([s.prompt]), mask, s.empty_past(1), cross)
        tok = int(logits[0, -1].argmax())
        t1 = time.perf_counter()
        for _ in range(n - 1):
            logits, past = s.step(np.array([[tok]]), mask, past, cross)
            tok = int(logits[0, -1].argmax())
        return t1 - t0, time.perf_counter() - t1

    def generate(self, ids, beams: int, max_new: int) -> list[int]:
        from edgekit.generation.seq2seq import Seq2SeqOptions, stream

        return list(stream(self.sess, ids, Seq2SeqOptions(max_new_tokens=max_new, num_beams=beams)))


class _Torch:
    """PyTorch eager ``generate`` (transformers' generation loop, from the decoder prompt) on a checkpoint (or
    on ``model``, already loaded)."""

    def __init__(self, path: str, threads: int, model=None) -> None:
        import torch
        from transformers import GenerationConfig

        from edgekit.generation.text2text_train import load_seq2seq
        from edgekit_converters.onnx_seq2seq import seq2seq_facts

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.model = model if model is not None else load_seq2seq(Path(path))
        c = self.model.config
        facts = seq2seq_facts(c, self.model.generation_config)
        self.eos = c.eos_token_id
        self.prompt = facts["decoder_prompt"]
        self.base = dict(
            decoder_start_token_id=self.prompt[0],
            suppress_tokens=facts["suppress_tokens"] or None,
            begin_suppress_tokens=facts["begin_suppress_tokens"] or None,
            eos_token_id=c.eos_token_id,
            pad_token_id=c.pad_token_id,
            bos_token_id=None,
            forced_bos_token_id=None,
            forced_eos_token_id=None,
            do_sample=False,
            length_penalty=1.0,
            early_stopping=False,
            no_repeat_ngram_size=0,
            min_length=0,
        )
        self.config = GenerationConfig

    def _source(self, ids) -> dict:
        return {self.model.main_input_name: self.torch.as_tensor(np.asarray([ids]))}

    def _gen(self, ids, **kw):
        from transformers import GenerationMixin

        with self.torch.no_grad():
            # the generation loop itself: Whisper's generate() override would add long-form audio handling and
            # language detection around the same loop
            return GenerationMixin.generate(
                self.model,
                **self._source(ids),
                decoder_input_ids=self.torch.tensor([self.prompt]),
                generation_config=self.config(**self.base, **kw),
            )

    def encode_s(self, ids) -> float:
        t = time.perf_counter()
        with self.torch.no_grad():
            self.model.get_encoder()(**self._source(ids))
        return time.perf_counter() - t

    def forced(self, ids, n: int) -> tuple[float, float]:
        t0 = time.perf_counter()
        self._gen(ids, max_new_tokens=1, num_beams=1)
        t1 = time.perf_counter()
        self._gen(ids, max_new_tokens=n, min_new_tokens=n, num_beams=1)
        t2 = time.perf_counter()
        return t1 - t0, max(t2 - t1 - (t1 - t0), 1e-9)

    def generate(self, ids, beams: int, max_new: int) -> list[int]:
        out = self._gen(ids, max_new_tokens=max_new, num_beams=beams)[0].tolist()[len(self.prompt) :]
        pad = self.base["pad_token_id"]
        while out and out[-1] == pad and pad != self.eos:
            out.pop()
        return out[:-1] if out and out[-1] == self.eos else out


RUNNERS = {"onnx": _Onnx, "tflite": _Onnx, "torch": _Torch}  # _Onnx runs any artifact open_seq2seq opens


def run_spec(spec: dict) -> dict:
    runner = RUNNERS[spec["kind"]](spec["path"], int(spec["threads"]))
    src = Path(spec["sources"])
    sources = list(np.load(src, allow_pickle=False)) if src.suffix == ".npy" else json.loads(src.read_text())
    timed = sources[: int(spec["timed"])]
    runs, n, max_new = int(spec["runs"]), int(spec["decode_tokens"]), int(spec["max_new_tokens"])
    result: dict = {"kind": spec["kind"], "path": spec["path"], "end_to_end_ms": {}, "outputs": {}}
    probe = timed[0]
    runner.forced(probe, 2)  # warm-up
    enc, ttft, dec = [], [], []
    for _ in range(runs):
        enc.append(runner.encode_s(probe) * 1000)
        first, rest = runner.forced(probe, n)
        ttft.append(first * 1000)
        dec.append((n - 1) / rest)
    result.update(
        encoder_ms=round(_median(enc), 3),
        time_to_first_token_ms=round(_median(ttft), 3),
        decode_tokens_per_s=round(_median(dec), 2),
        source_tokens=len(probe),
    )
    for beams in spec["num_beams"]:
        runner.generate(probe, beams, max_new)  # warm-up at this width
        per_run = []
        for _ in range(runs):
            t = time.perf_counter()
            for ids in timed:
                runner.generate(ids, beams, max_new)
            per_run.append((time.perf_counter() - t) * 1000 / len(timed))
        result["end_to_end_ms"][str(beams)] = round(_median(per_run), 3)
    for beams in spec.get("scored_beams", []):
        result["outputs"][str(beams)] = [runner.generate(ids, beams, max_new) for ids in sources]
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def measure_in_process(spec: dict, work: Path, timeout: float = 3600) -> dict:
    """Run :func:`run_spec` on ``spec`` in a fresh Python process; its result."""
    from edgekit.generation import measure

    return measure.measure_in_process(spec, work, timeout, module="edgekit.generation.seq2seq_measure")


if __name__ == "__main__":
    from edgekit.generation.measure import main

    main(sys.argv[1:], run_spec)
