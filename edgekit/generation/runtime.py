"""Generation on the device side: an ONNX decoder with a KV cache, run by ONNX Runtime (no torch).

:class:`DecoderSession` runs the graph :mod:`edgekit_converters.onnx_decoder` writes (prefill, then one
token per step, the presents fed back as the next pasts). :func:`generate` and :func:`stream` are the
generation loop: greedy, seeded top-k / top-p sampling with a temperature, beam search, stop tokens and
stop strings. :class:`TextGenerator` adds the tokenizer (``tokenizer.json``, read by ``tokenizers``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.errors import InputError

DECODER_JSON = "decoder.json"
# the formats a generative artifact runs in on a device (ONNX Runtime, LiteRT): the ones exported and measured,
# and for decoders promoted, bundled and served (an encoder-decoder promotes ONNX: LiteRT caps its length)
RUNNABLE_FORMATS = ("onnx", "tflite")


@dataclass(frozen=True)
class GenerationOptions:
    """What a generation call may ask for; anything else is refused (exit 2)."""

    max_new_tokens: int = 32
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    num_beams: int = 1
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = field(default_factory=tuple)

    @classmethod
    def from_dict(cls, options: dict) -> GenerationOptions:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise InputError(
                f"unsupported generation option(s) {', '.join(unknown)}; supported: {', '.join(sorted(known))}"
            )
        opts = dict(options)
        if isinstance(opts.get("stop"), str):
            opts["stop"] = (opts["stop"],)
        for key in ("stop", "stop_token_ids"):
            if key in opts:
                opts[key] = tuple(opts[key])
        try:
            made = cls(**opts)
        except TypeError as err:
            raise InputError(f"bad generation options: {err}") from None
        made.check()
        return made

    def check(self) -> None:
        problems = []
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            problems.append("max_new_tokens must be an integer >= 1")
        if not self.temperature > 0:
            problems.append("temperature must be > 0")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            problems.append("top_k must be an integer >= 0")
        if not 0 < self.top_p <= 1:
            problems.append("top_p must be in (0, 1]")
        if not isinstance(self.num_beams, int) or self.num_beams < 1:
            problems.append("num_beams must be an integer >= 1")
        if self.num_beams > 1 and self.do_sample:
            problems.append("beam search with sampling is not supported: use num_beams=1 to sample")
        if not all(isinstance(s, str) and s for s in self.stop):
            problems.append("stop must be non-empty strings")
        if problems:
            raise InputError("bad generation options: " + "; ".join(problems))


class DecoderSession:
    """One ONNX decoder graph with a KV cache on ONNX Runtime (CPU unless ``providers`` say otherwise)."""

    def __init__(self, model_dir: str | Path, threads: int = 2, providers: Sequence[str] | None = None) -> None:
        import onnxruntime as ort

        model_dir = Path(model_dir)
        model = model_dir / "model.onnx"
        facts_file = model_dir / DECODER_JSON
        if not model.is_file() or not facts_file.is_file():
            raise InputError(f"{model_dir}: not an edgekit decoder (model.onnx or .tflite, and {DECODER_JSON})")
        self.facts = json.loads(facts_file.read_text())
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(model), opts, providers=list(providers or ["CPUExecutionProvider"]))
        names = [i.name for i in self.session.get_inputs()]
        self.past_names = [n for n in names if n.startswith("past_key_values.")]
        # edgekit's torch export takes position_ids; ONNX Runtime GenAI's fused graph derives them from the mask
        self.takes_positions = "position_ids" in names
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.layers = self.facts["num_layers"]
        self.context = int(self.facts["context_length"])
        self.eos = tuple(self.facts.get("eos_token_ids") or ())

    def empty_past(self, batch: int) -> list[np.ndarray]:
        shape = (batch, self.facts["num_kv_heads"], 0, self.facts["head_dim"])
        return [np.zeros(shape, np.float32) for _ in self.past_names]

    def forward(self, ids: np.ndarray, past: list[np.ndarray], past_len: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits [batch, len, vocab] of ``ids`` after ``past_len`` cached tokens, and the new cache."""
        batch, n = ids.shape
        if past_len + n > self.context:
            raise InputError(f"{past_len + n} tokens exceed the model's context of {self.context}")
        feeds = {
            "input_ids": ids.astype(np.int64, copy=False),
            "attention_mask": np.ones((batch, past_len + n), np.int64),
        }
        if self.takes_positions:
            feeds["position_ids"] = np.broadcast_to(np.arange(past_len, past_len + n, dtype=np.int64), (batch, n))
        feeds.update(zip(self.past_names, past))
        outs = self.session.run(self.output_names, feeds)
        return outs[0], outs[1:]

    def token_logprobs(self, ids: np.ndarray) -> np.ndarray:
        """log p(token t | tokens < t) for t = 1.. of each row of ``ids`` (one prefill, no cache kept)."""
        logits, _ = self.forward(ids, self.empty_past(len(ids)), 0)
        return _logprobs(logits, ids)


def litert_interpreter(path: Path, threads: int, what: str):
    """LiteRT's interpreter for ``path`` (XNNPACK, ``threads``), its tensors allocated; an InputError naming
    ``what`` without ai-edge-litert."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise InputError(f"{what} needs ai-edge-litert (pip install 'edgekit-ml[litert]')") from None
    from edgekit_runtimes.base import native_stderr_silenced

    with native_stderr_silenced():  # allocating applies the delegate, which prints "Created TensorFlow Lite XNNPACK"
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    return interpreter


def signature_runners(interpreter, prefix: str) -> dict:
    """The interpreter's ``<prefix><length>`` signature runners by length (``prefill_32``, ``decode_16``, ...)."""
    names = [n for n in interpreter.get_signature_list() if n.startswith(prefix)]
    return {int(n[len(prefix) :]): interpreter.get_signature_runner(n) for n in names}


class _InPlaceDecode:
    """A LiteRT decoder's ``decode`` signature run over its own input buffers: the KV cache stays in the
    signature's input tensors between steps, and each step copies only the cache row it wrote (position
    ``input_pos``) from the output tensors back into them. The public signature runner instead resizes and
    re-allocates its tensors and copies the whole cache in and out on every call (2 MB a token for the demo
    decoder: half of each step). ai-edge-litert's runner exposes no in-place call, so this reads its
    interpreter wrapper and subgraph index; when a release lacks them, ``open`` returns None and the runner is
    used. The session hands itself out as the ``past`` of the next step; any other ``past`` (a dict of arrays:
    empty, or a prefill's) is copied in first."""

    def __init__(self, interpreter, runner, kv_specs: dict, axis: int) -> None:
        self._base, self._wrapper, self._sub = interpreter, runner._interpreter_wrapper, int(runner._subgraph_index)
        ins = {k: int(v["index"]) for k, v in runner.get_input_details().items()}
        outs = {k: int(v["index"]) for k, v in runner.get_output_details().items()}
        self._tokens, self._pos, self._logits = ins["tokens"], ins["input_pos"], outs["logits"]
        self._kv = [(name, ins[name], outs[name]) for name in sorted(kv_specs)]
        self._axis = axis
        self._len = -1  # cache rows filled in the input buffers (-1: nothing of ours there yet)

    @classmethod
    def open(cls, interpreter, runner, kv_specs: dict, context: int) -> _InPlaceDecode | None:
        wrapper = getattr(runner, "_interpreter_wrapper", None)
        if wrapper is None or not hasattr(runner, "_subgraph_index") or not hasattr(wrapper, "tensor"):
            return None
        outs = runner.get_output_details()
        shapes = {tuple(int(d) for d in shape) for shape, _ in kv_specs.values()}
        if "logits" not in outs or any(k not in outs for k in kv_specs) or len(shapes) != 1:
            return None
        axes = [i for i, d in enumerate(next(iter(shapes))) if d == context]
        return cls(interpreter, runner, kv_specs, axes[0]) if len(axes) == 1 else None

    def _view(self, index: int) -> np.ndarray:
        return self._wrapper.tensor(self._base, index, self._sub)

    def arrays(self) -> dict:
        """The cache as a dict of arrays (copies), as the runner's outputs would be."""
        return {name: np.array(self._view(i)) for name, i, _ in self._kv}

    def step(self, ids: np.ndarray, past, pos: int) -> np.ndarray:
        if past is not self:
            for name, i, _ in self._kv:
                self._view(i)[...] = past[name]
        elif self._len != pos:
            raise InputError(f"a LiteRT decoder's cache holds {self._len} tokens, not {pos}")
        self._wrapper.SetTensor(self._tokens, np.asarray(ids, np.int32).reshape(1, 1), self._sub)
        self._wrapper.SetTensor(self._pos, np.array([pos], np.int32), self._sub)
        self._wrapper.Invoke(self._sub)
        row = (slice(None),) * self._axis + (pos,)
        for _, i, o in self._kv:
            self._view(i)[row] = self._view(o)[row]
        self._len = pos + 1
        return self._wrapper.GetTensor(self._logits, self._sub)[:, :1]


class LiteRTDecoderSession:
    """A LiteRT decoder (``model.tflite`` with ``prefill_<L>`` and ``decode`` signatures, litert-torch's
    generative layout) behind the same interface as :class:`DecoderSession`; batch 1. A prompt is prefilled
    in chunks of the signature lengths, the last chunk padded (padded cache slots lie beyond the position and
    are masked, then overwritten by the following steps)."""

    def __init__(self, model_dir: str | Path, threads: int = 2) -> None:
        model_dir = Path(model_dir)
        self.facts = json.loads((model_dir / DECODER_JSON).read_text())
        self.interpreter = litert_interpreter(model_dir / "model.tflite", threads, "a .tflite decoder")
        self.prefills = signature_runners(self.interpreter, "prefill_")
        self.decode = self.interpreter.get_signature_runner("decode")
        details = self.decode.get_input_details()
        self.kv_specs = {k: (tuple(v["shape"]), v["dtype"]) for k, v in details.items() if k.startswith("kv_cache_")}
        self.context = int(self.facts["context_length"])
        self.eos = tuple(self.facts.get("eos_token_ids") or ())
        self.layers = self.facts["num_layers"]
        self.past_names = sorted(self.kv_specs)
        from edgekit_runtimes.base import native_stderr_silenced

        with native_stderr_silenced():  # the delegate is applied, and announced, on the first run
            self.decode(tokens=np.zeros((1, 1), np.int32), input_pos=np.zeros(1, np.int32), **self.empty_past(1))
        self._inplace = _InPlaceDecode.open(self.interpreter, self.decode, self.kv_specs, self.context)

    def empty_past(self, batch: int) -> dict:
        if batch != 1:
            raise InputError("a LiteRT decoder runs batch 1")
        return {k: np.zeros(shape, dtype) for k, (shape, dtype) in self.kv_specs.items()}

    def forward(
        self, ids: np.ndarray, past: dict | _InPlaceDecode, past_len: int
    ) -> tuple[np.ndarray, dict | _InPlaceDecode]:
        batch, n = ids.shape
        if batch != 1:
            raise InputError("a LiteRT decoder runs batch 1")
        if past_len + n > self.context:
            raise InputError(f"{past_len + n} tokens exceed the model's context of {self.context}")
        if n == 1 and self._inplace is not None:
            return self._inplace.step(ids, past, past_len), self._inplace
        if isinstance(past, _InPlaceDecode):
            past = past.arrays()
        if n == 1:
            out = self.decode(tokens=ids.astype(np.int32), input_pos=np.array([past_len], np.int32), **past)
            return out["logits"][:, :1], {k: out[k] for k in self.kv_specs}
        logits, done = [], 0
        while done < n:
            left = n - done
            fits = [p for p in self.prefills if p >= left]
            size = min(fits) if fits else max(self.prefills)
            take = min(left, size)
            pos0 = past_len + done
            if pos0 + size > self.context:  # the padded tail may not run past the cache: a smaller signature
                size = max((p for p in self.prefills if pos0 + p <= self.context), default=0)
                if size == 0:
                    raise InputError(f"{past_len + n} tokens do not fit the model's prefill signatures")
                take = min(left, size)
            toks = np.zeros((1, size), np.int32)
            toks[0, :take] = ids[0, done : done + take]
            out = self.prefills[size](tokens=toks, input_pos=np.arange(pos0, pos0 + size, dtype=np.int32), **past)
            past = {k: out[k] for k in self.kv_specs}
            logits.append(out["logits"][:, :take])
            done += take
        return np.concatenate(logits, 1), past

    def token_logprobs(self, ids: np.ndarray) -> np.ndarray:
        rows = []
        for row in ids:
            logits, _ = self.forward(row[None], self.empty_past(1), 0)
            rows.append(_logprobs(logits, row[None])[0])
        return np.stack(rows)


def open_decoder(model_dir: str | Path, threads: int = 2, providers: Sequence[str] | None = None):
    """The session for a decoder artifact: ONNX Runtime for ``model.onnx``, LiteRT for ``model.tflite``."""
    model_dir = Path(model_dir)
    if (model_dir / "model.tflite").is_file():
        return LiteRTDecoderSession(model_dir, threads)
    return DecoderSession(model_dir, threads, providers)


def _logprobs(logits: np.ndarray, ids: np.ndarray) -> np.ndarray:
    z = logits[:, :-1].astype(np.float64)
    z -= z.max(-1, keepdims=True)
    logz = np.log(np.exp(z).sum(-1))
    picked = np.take_along_axis(z, ids[:, 1:, None], -1)[..., 0]
    return picked - logz


def _pick(logits: np.ndarray, opts: GenerationOptions, rng: np.random.Generator) -> int:
    if not opts.do_sample:
        return int(logits.argmax())
    z = logits.astype(np.float64) / opts.temperature
    if opts.top_k and opts.top_k < len(z):
        kth = np.partition(z, -opts.top_k)[-opts.top_k]
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max())
    p /= p.sum()
    if opts.top_p < 1.0:
        order = np.argsort(-p)
        keep = np.cumsum(p[order]) - p[order] < opts.top_p  # the smallest set whose mass reaches top_p
        mask = np.zeros_like(p, dtype=bool)
        mask[order[keep]] = True
        p = np.where(mask, p, 0.0)
        p /= p.sum()
    return int(rng.choice(len(p), p=p))


def _top(total: np.ndarray, keep: int) -> np.ndarray:
    """Indices of the ``keep`` largest of ``total`` (1-D), best first, ties in index order. A select over the
    whole array (numpy's argpartition: ~140 us for 4 beams x 4k vocabulary, a tenth of a small decoder's step)
    is avoided: the scores within a margin of the best one (widened until at least ``keep``) hold the top
    ``keep``, and those few are sorted."""
    if keep >= total.size:
        return np.argsort(-total, kind="stable")
    best = float(total.max())
    near = 4.0
    while np.isfinite(best) and near < 1e4:
        cand = np.flatnonzero(total >= best - near)  # every score above the cut: the top `keep` are among them
        if cand.size >= keep:
            if cand.size > 512:  # (a trained model's log-probs crowd ~10 nats below its best few)
                vals = total[cand]
                cand = cand[vals >= -np.partition(-vals, keep - 1)[keep - 1]]  # ties at the k-th value kept
            return cand[np.argsort(-total[cand], kind="stable")[:keep]]
        near *= 1.25
    cand = np.flatnonzero(total >= -np.partition(-total, keep - 1)[keep - 1])
    return cand[np.argsort(-total[cand], kind="stable")[:keep]]


def check_prompt(dec: DecoderSession, prompt_ids: Sequence[int], max_new_tokens: int) -> np.ndarray:
    ids = np.asarray(prompt_ids, dtype=np.int64).reshape(1, -1)
    if ids.shape[1] == 0:
        raise InputError("the prompt is empty")
    if ids.shape[1] >= dec.context:
        raise InputError(f"the prompt has {ids.shape[1]} tokens; the model's context is {dec.context}")
    return ids


def stream(dec: DecoderSession, prompt_ids: Sequence[int], opts: GenerationOptions) -> Iterator[int]:
    """New token ids one at a time (greedy or sampled); stops at an end token, the context or max_new_tokens."""
    if opts.num_beams > 1:
        yield from beam_search(dec, prompt_ids, opts)
        return
    ids = check_prompt(dec, prompt_ids, opts.max_new_tokens)
    rng = np.random.default_rng(opts.seed)
    stops = set(opts.stop_token_ids) | set(dec.eos)
    logits, past = dec.forward(ids, dec.empty_past(1), 0)
    n = ids.shape[1]
    for i in range(opts.max_new_tokens):
        token = _pick(logits[0, -1], opts, rng)
        if token in stops:
            return
        yield token
        if i + 1 == opts.max_new_tokens or n + 1 >= dec.context:
            return
        logits, past = dec.forward(np.array([[token]], np.int64), past, n)
        n += 1


def beam_search(dec: DecoderSession, prompt_ids: Sequence[int], opts: GenerationOptions) -> list[int]:
    """The highest log-probability continuation among ``num_beams`` beams (length penalty 1: mean log-prob
    per token for finished beams); returns all its tokens at once."""
    ids = check_prompt(dec, prompt_ids, opts.max_new_tokens)
    if isinstance(dec, LiteRTDecoderSession):
        raise InputError("beam search needs an ONNX decoder (a LiteRT decoder runs batch 1)")
    k = opts.num_beams
    stops = set(opts.stop_token_ids) | set(dec.eos)
    logits, past = dec.forward(ids, dec.empty_past(1), 0)
    n = ids.shape[1]
    beams: list[list[int]] = [[]]
    scores = np.zeros(1)
    done: list[tuple[float, list[int]]] = []
    for _ in range(opts.max_new_tokens):
        last = logits[:, -1].astype(np.float64)
        logp = last - last.max(-1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
        total = (scores[:, None] + logp).ravel()
        order = _top(total, 2 * k)
        keep_rows, keep_tokens, keep_scores = [], [], []
        for flat in order:
            row, token = divmod(int(flat), logp.shape[1])
            if token in stops:
                done.append((float(total[flat]) / max(len(beams[row]) + 1, 1), beams[row]))
                continue
            keep_rows.append(row)
            keep_tokens.append(token)
            keep_scores.append(float(total[flat]))
            if len(keep_rows) == k:
                break
        if not keep_rows or n + 1 >= dec.context:
            break
        beams = [beams[r] + [t] for r, t in zip(keep_rows, keep_tokens)]
        scores = np.array(keep_scores)
        rows = np.array(keep_rows)
        past = [p[rows] for p in past]
        logits, past = dec.forward(np.array(keep_tokens, np.int64)[:, None], past, n)
        n += 1
    done.extend((float(s) / max(len(b), 1), b) for s, b in zip(scores, beams))
    return max(done, key=lambda x: x[0])[1] if done else []


class GenAIEngine:
    """ONNX Runtime GenAI's C++ generation loop on a folder with ``genai_config.json`` (the builder's graph or
    edgekit's quantization of it): greedy and sampled decoding without a Python step per token."""

    def __init__(self, model_dir: Path, threads: int) -> None:
        import onnxruntime_genai as og

        self.og = og
        config = og.Config(str(model_dir))
        config.clear_providers()
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
        self.model = og.Model(config)
        self.vocab = int(json.loads((model_dir / "genai_config.json").read_text())["model"]["vocab_size"])

    def tokens(
        self, prompt_ids: Sequence[int], opts: GenerationOptions, stops: set[int], context: int
    ) -> Iterator[int]:
        params = self.og.GeneratorParams(self.model)
        search: dict = {"max_length": min(len(prompt_ids) + opts.max_new_tokens, context), "do_sample": opts.do_sample}
        if opts.do_sample:
            search.update(temperature=opts.temperature, top_p=opts.top_p, top_k=opts.top_k or self.vocab)
            if opts.seed is not None:
                search["random_seed"] = int(opts.seed)
        params.set_search_options(**search)
        gen = self.og.Generator(self.model, params)
        gen.append_tokens(np.asarray(prompt_ids, dtype=np.int32))
        while not gen.is_done():
            gen.generate_next_token()
            token = int(gen.get_next_tokens()[0])
            if token in stops:
                return
            yield token


def _genai_engine(model_dir: Path, threads: int, engine: str) -> GenAIEngine | None:
    if engine == "python" or not (model_dir / "genai_config.json").is_file():
        return None
    try:
        return GenAIEngine(model_dir, threads)
    except ImportError:
        if engine == "onnxruntime-genai":
            raise InputError("engine onnxruntime-genai: the onnxruntime-genai package is not installed") from None
        return None


def tokenizer_and_defaults(model_dir: Path):
    """(the folder's ``tokenizer.json`` read by ``tokenizers``, its ``generation_config.json`` or {})."""
    from tokenizers import Tokenizer

    tok_file = model_dir / "tokenizer.json"
    if not tok_file.is_file():
        raise InputError(f"{model_dir}: tokenizer.json is missing")
    gen_file = model_dir / "generation_config.json"
    return Tokenizer.from_file(str(tok_file)), (json.loads(gen_file.read_text()) if gen_file.is_file() else {})


def text_pieces(tokenizer, tokens: Iterator[int], opts: GenerationOptions, stats: dict) -> Iterator[str]:
    """The text of ``tokens`` in pieces as they arrive; a stop string ends it (not included), and text that may
    be the start of one is held back. ``stats`` gets ``completion_tokens`` and ``finish_reason``."""
    out: list[int] = []
    sent = ""
    hold = max((len(s) for s in opts.stop), default=1) - 1  # a stop string may be arriving: hold it back
    text = ""
    for token in tokens:
        out.append(token)
        stats["completion_tokens"] = len(out)
        if len(out) >= opts.max_new_tokens:
            stats["finish_reason"] = "length"
        text = tokenizer.decode(out)
        if text.endswith("\ufffd"):
            continue  # an incomplete UTF-8 sequence: wait for the rest
        cut = min((text.find(s) for s in opts.stop if s in text), default=-1)
        if cut >= 0:
            stats["finish_reason"] = "stop"
            if cut > len(sent):
                yield text[len(sent) : cut]
            return
        safe = len(text) - hold
        if safe > len(sent):
            yield text[len(sent) : safe]
            sent = text[:safe]
    if len(text) > len(sent):
        yield text[len(sent) :]


class TextGenerator:
    """A decoder plus its tokenizer: text in, text out (``generate``) or pieces of text (``stream``).

    ``engine``: ``auto`` runs greedy and sampled decoding in ONNX Runtime GenAI's loop when the folder has its
    ``genai_config.json`` and the package is installed, else (and for beam search) edgekit's loop over ONNX
    Runtime (:func:`stream`); ``python`` always edgekit's loop; ``onnxruntime-genai`` requires GenAI's."""

    def __init__(
        self, model_dir: str | Path, threads: int = 2, providers: Sequence[str] | None = None, engine: str = "auto"
    ) -> None:
        model_dir = Path(model_dir)
        self.decoder = open_decoder(model_dir, threads, providers)
        self.engine = _genai_engine(model_dir, threads, engine) if providers is None else None
        self.engine_name = "onnxruntime-genai" if self.engine is not None else "python"
        # a LiteRT interpreter is not thread-safe: one generation at a time (serve runs requests on threads)
        self._lock = threading.Lock() if isinstance(self.decoder, LiteRTDecoderSession) else None
        self.tokenizer, self.defaults = tokenizer_and_defaults(model_dir)

    options = GenerationOptions  # what generate takes

    @property
    def facts(self) -> dict:
        return self.decoder.facts

    def encode(self, prompt: str) -> list[int]:
        if not isinstance(prompt, str) or not prompt:
            raise InputError("the prompt must be a non-empty string")
        return self.tokenizer.encode(prompt, add_special_tokens=False).ids

    def _stream(self, prompt: str, stats: dict | None = None, **options) -> Iterator[str]:
        opts = GenerationOptions.from_dict(options)
        stats = stats if stats is not None else {}
        stats.update(completion_tokens=0, finish_reason="stop", prompt_tokens=0)
        ids = self.encode(prompt)
        check_prompt(self.decoder, ids, opts.max_new_tokens)
        stats["prompt_tokens"] = len(ids)
        if self.engine is not None and opts.num_beams == 1:
            stops = set(opts.stop_token_ids) | set(self.decoder.eos)
            tokens = self.engine.tokens(ids, opts, stops, self.decoder.context)
        else:
            tokens = stream(self.decoder, ids, opts)
        yield from text_pieces(self.tokenizer, tokens, opts, stats)

    def stream(self, prompt: str, stats: dict | None = None, **options) -> Iterator[str]:
        """Pieces of the continuation as they are generated (a stop string ends it, not included). ``stats``
        receives ``completion_tokens`` (tokens generated), ``prompt_tokens`` and ``finish_reason`` (``stop`` or
        ``length``)."""
        if self._lock is None:
            yield from self._stream(prompt, stats, **options)
            return
        with self._lock:
            yield from self._stream(prompt, stats, **options)

    def generate(self, prompt: str, **options) -> str:
        return "".join(self.stream(prompt, **options))
