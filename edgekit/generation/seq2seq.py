"""Encoder-decoder generation on the device side (ONNX Runtime, no torch).

:class:`Seq2SeqSession` runs the two graphs :mod:`edgekit_converters.onnx_seq2seq` writes: the encoder
once per input (it returns every decoder layer's cross-attention keys and values), then the decoder one
token per step over its self-attention cache. :func:`stream` decodes greedily or by seeded sampling;
:func:`beam_search` is transformers' beam search (the same candidates, length penalty, early-stopping
heuristic and no-repeat n-gram ban), so an fp32 export returns PyTorch's beams. :class:`Text2TextGenerator`
adds the tokenizer (``tokenizer.json``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.errors import InputError
from edgekit.generation.runtime import (
    GenerationOptions,
    _pick,
    _top,
    litert_interpreter,
    signature_runners,
    text_pieces,
    tokenizer_and_defaults,
)

SEQ2SEQ_JSON = "seq2seq.json"
ENCODER, DECODER = "encoder.onnx", "decoder.onnx"
ENCODER_TFLITE, DECODER_TFLITE = "encoder.tflite", "decoder.tflite"


@dataclass(frozen=True)
class Seq2SeqOptions(GenerationOptions):
    """A decoder's options plus beam search's: ``length_penalty`` (finished beams score sum log-prob /
    length ** penalty), ``no_repeat_ngram_size`` (an n-gram never repeats), ``early_stopping`` (True: stop
    when ``num_beams`` beams finished; False: transformers' heuristic; "never": only when no beam can improve)."""

    length_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    early_stopping: bool | str = False

    def check(self) -> None:
        super().check()
        problems = []
        if not isinstance(self.no_repeat_ngram_size, int) or self.no_repeat_ngram_size < 0:
            problems.append("no_repeat_ngram_size must be an integer >= 0")
        if self.early_stopping not in (True, False, "never"):
            problems.append('early_stopping must be true, false or "never"')
        if not isinstance(self.length_penalty, (int, float)):
            problems.append("length_penalty must be a number")
        if problems:
            raise InputError("bad generation options: " + "; ".join(problems))


class Seq2SeqSession:
    """An edgekit encoder-decoder artifact (encoder.onnx, decoder.onnx, seq2seq.json) on ONNX Runtime."""

    def __init__(self, model_dir: str | Path, threads: int = 2, providers: Sequence[str] | None = None) -> None:
        import onnxruntime as ort

        model_dir = Path(model_dir)
        self._read_facts(model_dir, (ENCODER, DECODER))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        prov = list(providers or ["CPUExecutionProvider"])
        self.encoder = ort.InferenceSession(str(model_dir / ENCODER), opts, providers=prov)
        self.decoder = ort.InferenceSession(str(model_dir / DECODER), opts, providers=prov)
        names = [i.name for i in self.decoder.get_inputs()]
        self.past_names = [n for n in names if n.startswith("past_key_values.")]
        self.cross_names = [n for n in names if n.startswith("cross.")]
        self.cross_outputs = [o.name for o in self.encoder.get_outputs()]
        self.output_names = [o.name for o in self.decoder.get_outputs()]
        self.masked = "encoder_attention_mask" in names  # text sources are masked; speech features are not

    def _read_facts(self, model_dir: Path, graphs: tuple[str, str]) -> None:
        missing = [n for n in (*graphs, SEQ2SEQ_JSON) if not (model_dir / n).is_file()]
        if missing:
            raise InputError(f"{model_dir}: not an edgekit encoder-decoder (missing {', '.join(missing)})")
        self.facts = json.loads((model_dir / SEQ2SEQ_JSON).read_text())
        self.prompt = [int(t) for t in self.facts.get("decoder_prompt") or [self.facts["decoder_start_token_id"]]]
        self.start = self.prompt[0]
        self.eos = tuple(self.facts.get("eos_token_ids") or ())
        self.context = int(self.facts["context_length"])  # the longest source
        self.target_limit = int(self.facts["context_length"])  # the most decoder tokens, the prompt's included
        self.features = self.facts.get("input") == "input_features"
        self.suppress = np.asarray(self.facts.get("suppress_tokens") or [], np.int64)
        self.begin_suppress = np.asarray(self.facts.get("begin_suppress_tokens") or [], np.int64)

    def encode(self, source, mask: np.ndarray | None = None) -> tuple[list[np.ndarray], np.ndarray | None]:
        """(cross keys/values of every decoder layer, the source mask) for source token ids [batch, source] or, for
        a speech model, log-mel features [batch, mel bins, frames] (no mask)."""
        if self.features:
            x = np.asarray(source, dtype=np.float32)
            return self.encoder.run(self.cross_outputs, {"input_features": x}), None
        ids = np.asarray(source, dtype=np.int64)
        mask = np.ones_like(ids) if mask is None else np.asarray(mask, dtype=np.int64)
        return self.encoder.run(self.cross_outputs, {"input_ids": ids, "attention_mask": mask}), mask

    def empty_past(self, batch: int) -> list[np.ndarray]:
        shape = (batch, self.facts["num_heads"], 0, self.facts["head_dim"])
        return [np.zeros(shape, np.float32) for _ in self.past_names]

    def step(
        self, ids: np.ndarray, mask: np.ndarray | None, past: list[np.ndarray], cross: list[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits [batch, len, vocab] of the decoder tokens ``ids`` after the cached ones, and the new cache."""
        feeds: dict[str, np.ndarray | None] = {"input_ids": np.asarray(ids, dtype=np.int64)}
        if self.masked:
            feeds["encoder_attention_mask"] = mask
        feeds.update(zip(self.past_names, past))
        feeds.update(zip(self.cross_names, cross))
        outs = self.decoder.run(self.output_names, feeds)
        return outs[0], outs[1:]

    def suppressed(self, scores: np.ndarray, first: bool) -> np.ndarray:
        """``scores`` [..., vocab] with the generation config's suppressed tokens at -inf (``begin_suppress_tokens``
        only at the first generated position), as transformers' suppress-tokens logits processors do."""
        if self.suppress.size:
            scores[..., self.suppress] = -np.inf
        if first and self.begin_suppress.size:
            scores[..., self.begin_suppress] = -np.inf
        return scores


class LiteRTSeq2SeqSession(Seq2SeqSession):
    """An encoder-decoder on LiteRT (encoder.tflite, decoder.tflite, seq2seq.json; see
    :mod:`edgekit_converters.litert_seq2seq`): static shapes, batch 1 per call, no self-attention cache. The
    "cache" this session hands the generation loops is the decoder's tokens so far [batch, t]; each step runs
    the decoder over all of them in the smallest ``decode_<L>`` signature that holds them (rows one by one)."""

    def __init__(self, model_dir: str | Path, threads: int = 2, providers: Sequence[str] | None = None) -> None:
        model_dir = Path(model_dir)
        self._read_facts(model_dir, (ENCODER_TFLITE, DECODER_TFLITE))
        what = "a .tflite encoder-decoder"
        enc = litert_interpreter(model_dir / ENCODER_TFLITE, threads, what)
        dec = litert_interpreter(model_dir / DECODER_TFLITE, threads, what)
        self.encoder = enc.get_signature_runner("encode")
        self.decoders = signature_runners(dec, "decode_")
        self._interpreters = (enc, dec)
        self.source_length = int(self.facts["source_length"])
        if not self.features:
            self.context = min(self.context, self.source_length)
        self.target_limit = max(self.decoders)
        self.masked = not self.features
        self.past_names = ["tokens"]
        self.cross_count = 2 * int(self.facts["num_layers"])

    def encode(self, source, mask: np.ndarray | None = None) -> tuple[list[np.ndarray], np.ndarray | None]:
        rows: list[dict] = []
        if self.features:
            x = np.asarray(source, dtype=np.float32)
            rows = [self.encoder(source=x[r : r + 1]) for r in range(x.shape[0])]
            padded_mask = None
        else:
            ids = np.asarray(source, dtype=np.int64)
            batch, n = ids.shape
            if n > self.source_length:
                raise InputError(f"the input has {n} tokens; the model takes at most {self.source_length}")
            padded = np.zeros((batch, self.source_length), np.int32)
            padded[:, :n] = ids
            padded_mask = np.zeros((batch, self.source_length), np.int32)
            padded_mask[:, :n] = 1 if mask is None else np.asarray(mask)
            rows = [self.encoder(source=padded[r : r + 1], attention_mask=padded_mask[r : r + 1]) for r in range(batch)]
        cross = [np.concatenate([row[f"output_{i}"] for row in rows]) for i in range(self.cross_count)]
        return cross, padded_mask

    def empty_past(self, batch: int) -> list[np.ndarray]:
        return [np.zeros((batch, 0), np.int64)]

    def step(
        self, ids: np.ndarray, mask: np.ndarray | None, past: list[np.ndarray], cross: list[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        tokens = np.concatenate([past[0], np.asarray(ids, dtype=np.int64)], 1)
        batch, total = tokens.shape
        n = ids.shape[1]
        fits = [length for length in self.decoders if length >= total]
        if not fits:
            raise InputError(
                f"{total} decoder tokens exceed the model's longest decoder signature ({self.target_limit})"
            )
        length = min(fits)
        logits = []
        for r in range(batch):
            feed = np.zeros((1, length), np.int32)
            feed[0, :total] = tokens[r]
            extra = [] if mask is None else [mask[r : r + 1]]
            args = [feed, *extra, *(c[r : r + 1] for c in cross)]
            out = self.decoders[length](**{f"args_{i}": a for i, a in enumerate(args)})
            logits.append(out["output_0"][0, total - n : total])
        return np.stack(logits), [tokens]


def open_seq2seq(model_dir: str | Path, threads: int = 2, providers: Sequence[str] | None = None) -> Seq2SeqSession:
    """The session for an encoder-decoder artifact: LiteRT for ``encoder.tflite``, ONNX Runtime otherwise."""
    if (Path(model_dir) / ENCODER_TFLITE).is_file():
        return LiteRTSeq2SeqSession(model_dir, threads)
    return Seq2SeqSession(model_dir, threads, providers)


def check_length(sess: Seq2SeqSession, opts: GenerationOptions) -> None:
    """The decoder prompt and ``max_new_tokens`` must fit the decoder (its position table, or a LiteRT
    decoder's longest signature)."""
    if len(sess.prompt) + opts.max_new_tokens > sess.target_limit:
        raise InputError(
            f"max_new_tokens {opts.max_new_tokens} is more than this model generates "
            f"(at most {sess.target_limit - len(sess.prompt)})"
        )


def check_source(sess: Seq2SeqSession, source) -> np.ndarray:
    """One input as the encoder takes it: token ids [1, source] or (speech) features [1, mel bins, frames]."""
    if sess.features:
        x = np.asarray(source, dtype=np.float32)
        x = x[None] if x.ndim == 2 else x
        want = tuple(sess.facts["feature_shape"])
        if x.ndim != 3 or x.shape[0] != 1 or x.shape[1:] != want:
            raise InputError(f"the features have shape {list(x.shape)}; the model takes [1, {want[0]}, {want[1]}]")
        return x
    arr = np.asarray(source, dtype=np.int64).reshape(1, -1)
    if arr.shape[1] == 0:
        raise InputError("the input is empty")
    if arr.shape[1] > sess.context:
        raise InputError(f"the input has {arr.shape[1]} tokens; the model takes at most {sess.context}")
    return arr


def stream(sess: Seq2SeqSession, source, opts: GenerationOptions) -> Iterator[int]:
    """Output token ids one at a time (greedy or sampled); beam search yields its best beam at the end."""
    if opts.num_beams > 1:
        yield from beam_search(sess, source, opts)
        return
    x = check_source(sess, source)
    check_length(sess, opts)
    rng = np.random.default_rng(opts.seed)
    stops = set(opts.stop_token_ids) | set(sess.eos)
    cross, mask = sess.encode(x)
    past = sess.empty_past(1)
    last = np.array([sess.prompt])
    for i in range(opts.max_new_tokens):
        logits, past = sess.step(last, mask, past, cross)
        token = _pick(sess.suppressed(logits[0, -1], i == 0), opts, rng)
        if token in stops:
            return
        yield token
        last = np.array([[token]])


def _banned(seq: list[int], n: int) -> set[int]:
    """Tokens that would repeat an n-gram of ``seq`` (transformers' NoRepeatNGramLogitsProcessor)."""
    if n <= 0 or len(seq) + 1 < n:
        return set()
    tail = tuple(seq[len(seq) - n + 1 :]) if n > 1 else ()
    return {seq[i + n - 1] for i in range(len(seq) - n + 1) if tuple(seq[i : i + n - 1]) == tail}


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)  # a copy: the caller's logits stay as they were
    x -= x.max(-1, keepdims=True)
    x -= np.log(np.exp(x).sum(-1, keepdims=True))
    return x


def beam_search(sess: Seq2SeqSession, source, opts: GenerationOptions) -> list[int]:
    """transformers' beam search (``generate(num_beams=k)``) for one input: the top ``2k`` continuations of all
    beams each step, the best ``k`` that did not end continuing; ends in the top ``k`` are finished with score
    log-prob / length ** length_penalty; stops when no running beam can beat the finished ones (the
    ``early_stopping`` rule). Returns the best finished beam's tokens (without the prompt and the end token)."""
    x = check_source(sess, source)
    check_length(sess, opts)
    k = opts.num_beams
    lp = float(getattr(opts, "length_penalty", 1.0))
    ngram = int(getattr(opts, "no_repeat_ngram_size", 0))
    early = getattr(opts, "early_stopping", False)
    stops = set(opts.stop_token_ids) | set(sess.eos)
    stop_ids = np.asarray(sorted(stops), np.int64)
    keep = max(2, 1 + len(stops)) * k
    prompt = len(sess.prompt)
    max_length = prompt + opts.max_new_tokens  # the decoder prompt, then the new tokens
    cross1, mask1 = sess.encode(x)
    # the k beams start as one: the first step runs it alone (transformers runs k copies, all but one scored
    # -1e9, so its candidates are the same), then its cache is copied into the k beams the first step picks
    past = sess.empty_past(1)
    running: list[list[int]] = [list(sess.prompt)]
    scores = np.zeros(1, np.float32)
    finished: list[tuple[float, list[int]]] = []
    improvable = True
    cur_len = prompt
    last = np.asarray([sess.prompt], np.int64)
    cross, mask = cross1, mask1
    while True:
        logits, past = sess.step(last, mask, past, cross)
        if cur_len == prompt:
            cross = [np.repeat(c, k, 0) for c in cross1]
            mask = None if mask1 is None else np.repeat(mask1, k, 0)
        logp = sess.suppressed(_log_softmax(logits[:, -1]), cur_len == prompt)
        if ngram:
            for row, seq in enumerate(running):
                for t in _banned(seq, ngram):
                    logp[row, t] = -np.inf
        logp += scores[:, None]
        total = logp.ravel()
        top = _top(total, keep)  # the best `keep`, best first
        vocab = logp.shape[1]
        top_scores = total[top]
        top_rows, top_tokens = top // vocab, top % vocab
        hits = (top_tokens[:, None] == stop_ids).any(1) | (cur_len + 1 >= max_length)
        # finished: ends among the top k, scored with the length penalty, while they can still improve
        full = len(finished) == k and early is True
        if improvable and not full:
            for j in range(k):
                if hits[j] and np.isfinite(top_scores[j]):
                    seq = running[top_rows[j]] + [int(top_tokens[j])]
                    finished.append((float(top_scores[j]) / ((cur_len + 1 - prompt) ** lp), seq))
            finished = sorted(finished, key=lambda x: -x[0])[:k]
        # running: the best k of the top continuations that did not end
        masked = np.where(hits, top_scores - np.float32(1e9), top_scores)
        nxt = np.argsort(-masked, kind="stable")[:k]
        rows = top_rows[nxt]
        running = [running[r] + [int(top_tokens[j])] for r, j in zip(rows, nxt)]
        scores = masked[nxt].astype(np.float32)
        past = [p[rows] for p in past]
        last = top_tokens[nxt].astype(np.int64)[:, None]
        cur_len += 1
        if improvable and len(finished) == k:
            length = (max_length - prompt) if (early == "never" and lp > 0) else (cur_len - prompt)
            best_running = float(scores.max()) / (length**lp)
            improvable = best_running > min(s for s, _ in finished)
        if not improvable or (len(finished) == k and early is True) or hits.all():
            break
    if not finished:
        return running[0][prompt:]
    best = finished[0][1][prompt:]
    return best[:-1] if best and best[-1] in stops else best


class Text2TextGenerator:
    """An encoder-decoder plus its tokenizer: text in, text out (``generate``) or pieces of it (``stream``)."""

    def __init__(self, model_dir: str | Path, threads: int = 2, providers: Sequence[str] | None = None) -> None:
        model_dir = Path(model_dir)
        self.session = open_seq2seq(model_dir, threads, providers)
        self.engine_name = "python"
        self._lock = threading.Lock()  # one generation at a time per session (serve runs requests on threads)
        self.tokenizer, self.defaults = tokenizer_and_defaults(model_dir)

    options = Seq2SeqOptions  # what generate takes

    @property
    def facts(self) -> dict:
        return self.session.facts

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str) or not text:
            raise InputError("the input must be a non-empty string")
        return self.tokenizer.encode(text).ids  # with the model's special tokens (T5: ends with </s>)

    def stream(self, text: str, stats: dict | None = None, **options) -> Iterator[str]:
        """Pieces of the output as they are generated (beam search: all at once at the end)."""
        opts = Seq2SeqOptions.from_dict(options)
        stats = stats if stats is not None else {}
        stats.update(completion_tokens=0, finish_reason="stop", prompt_tokens=0)
        ids = self.encode(text)
        check_source(self.session, ids)
        stats["prompt_tokens"] = len(ids)
        with self._lock:
            yield from text_pieces(self.tokenizer, stream(self.session, ids, opts), opts, stats)

    def generate(self, text: str, **options) -> str:
        return "".join(self.stream(text, **options))

    def generate_ids(self, source_ids: Sequence[int], **options) -> list[int]:
        return list(stream(self.session, source_ids, Seq2SeqOptions.from_dict(options)))
