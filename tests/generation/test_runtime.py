"""The device-side generation loop against transformers' generate, and its options."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgekit.errors import InputError


def _hf_greedy(ckpt, ids, n):
    import torch

    from edgekit.generation.pipeline import load_causal_lm

    model = load_causal_lm(ckpt)
    with torch.no_grad():
        out = model.generate(
            torch.as_tensor([ids]),
            max_new_tokens=n,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        )
    return out[0, len(ids) :].tolist()


def test_greedy_equals_transformers(tiny_decoder, tiny_decoder_onnx):
    from edgekit.generation.runtime import DecoderSession, GenerationOptions, stream

    dec = DecoderSession(tiny_decoder_onnx)
    ids = list(range(5, 25))
    dec.eos = ()  # compare the full 20 tokens, whatever comes
    ours = list(stream(dec, ids, GenerationOptions(max_new_tokens=20)))
    assert ours == _hf_greedy(tiny_decoder, ids, 20)


def test_sampling_is_seeded_and_top_k_1_is_greedy(tiny_decoder_onnx):
    from edgekit.generation.runtime import DecoderSession, GenerationOptions, stream

    dec = DecoderSession(tiny_decoder_onnx)
    dec.eos = ()
    ids = list(range(5, 25))
    greedy = list(stream(dec, ids, GenerationOptions(max_new_tokens=12)))
    a = list(stream(dec, ids, GenerationOptions(max_new_tokens=12, do_sample=True, seed=3, temperature=1.5)))
    b = list(stream(dec, ids, GenerationOptions(max_new_tokens=12, do_sample=True, seed=3, temperature=1.5)))
    c = list(stream(dec, ids, GenerationOptions(max_new_tokens=12, do_sample=True, seed=4, temperature=1.5)))
    assert a == b and a != c
    assert list(stream(dec, ids, GenerationOptions(max_new_tokens=12, do_sample=True, top_k=1, seed=9))) == greedy
    assert list(stream(dec, ids, GenerationOptions(max_new_tokens=12, do_sample=True, top_p=1e-6, seed=9))) == greedy


def test_beam_search_scores_at_least_greedy(tiny_decoder_onnx):
    from edgekit.generation.runtime import DecoderSession, GenerationOptions, beam_search, stream

    dec = DecoderSession(tiny_decoder_onnx)
    dec.eos = ()
    ids = list(range(5, 25))

    def logp(tokens):
        full = np.array([ids + tokens])
        return float(dec.token_logprobs(full)[0, len(ids) - 1 :].sum())

    greedy = list(stream(dec, ids, GenerationOptions(max_new_tokens=8)))
    beams = beam_search(dec, ids, GenerationOptions(max_new_tokens=8, num_beams=4))
    assert len(beams) == 8
    assert logp(beams) >= logp(greedy) - 1e-6


def test_text_stream_and_stop_strings(tiny_decoder_onnx):
    from edgekit.generation.runtime import TextGenerator

    gen = TextGenerator(tiny_decoder_onnx)
    gen.decoder.eos = ()
    full = gen.generate("The state of our Union is", max_new_tokens=24)
    pieces = list(gen.stream("The state of our Union is", max_new_tokens=24))
    assert "".join(pieces) == full and len(pieces) > 1
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    if stop.strip():
        cut = gen.generate("The state of our Union is", max_new_tokens=24, stop=[stop])
        assert cut == full[: full.find(stop)]


@pytest.mark.parametrize(
    "options, says",
    [
        ({"max_new_tokens": 4, "repetition_penalty": 1.2}, "unsupported generation option(s) repetition_penalty"),
        ({"max_new_tokens": 0}, "max_new_tokens must be an integer >= 1"),
        ({"top_p": 1.5}, "top_p must be in (0, 1]"),
        ({"num_beams": 2, "do_sample": True}, "beam search with sampling"),
    ],
)
def test_bad_options(tiny_decoder_onnx, options, says):
    from edgekit.generation.runtime import TextGenerator

    with pytest.raises(InputError) as err:
        TextGenerator(tiny_decoder_onnx).generate("hello", **options)
    assert says in str(err.value) and err.value.exit_code == 2


def test_prompt_longer_than_context(tiny_decoder_onnx):
    from edgekit.generation.runtime import TextGenerator

    gen = TextGenerator(tiny_decoder_onnx)
    with pytest.raises(InputError, match="the model's context is 256"):
        gen.generate("word " * 400, max_new_tokens=4)


def test_device_side_imports_no_torch(tiny_decoder_onnx):
    code = (
        "import sys; from edgekit.generation.runtime import TextGenerator; "
        f"g = TextGenerator({str(tiny_decoder_onnx)!r}); g.generate('hello', max_new_tokens=3); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_genai_engine_matches_edgekit_loop(tiny_decoder_compressed):
    """Greedy text from ONNX Runtime GenAI's loop equals edgekit's own loop on the same fused graph."""
    from edgekit.generation.runtime import TextGenerator

    out, _ = tiny_decoder_compressed
    fast = TextGenerator(out / "onnx-fp32")
    slow = TextGenerator(out / "onnx-fp32", engine="python")
    assert fast.engine_name == "onnxruntime-genai" and slow.engine_name == "python"
    for prompt in ("The state of our Union", "We will", "Tonight I ask"):
        assert fast.generate(prompt, max_new_tokens=16) == slow.generate(prompt, max_new_tokens=16)
    a = fast.generate("We will", max_new_tokens=12, do_sample=True, seed=5, top_k=20)
    assert a == fast.generate("We will", max_new_tokens=12, do_sample=True, seed=5, top_k=20)


def test_builder_refuses_what_it_cannot_build():
    from edgekit_converters.genai_builder import supported

    assert supported({"architectures": ["LlamaForCausalLM"]}) is None
    assert "does not build GPT2LMHeadModel" in supported({"architectures": ["GPT2LMHeadModel"]})


@pytest.mark.parametrize("keep", [1, 2, 8, 16])
def test_top_candidates_equal_a_full_sort(keep):
    """Beam search's top-k select (scores near the best first, a full select only as a fallback) returns what a
    stable full sort returns: on peaked log-probs (a trained model: a few tokens, then thousands ~10 nats down),
    flat ones, ties, -inf (suppressed tokens, finished beams) and an all -inf row."""
    from edgekit.generation.runtime import _top

    rng = np.random.default_rng(keep)
    cases = []
    for _ in range(20):
        peaked = rng.normal(-12, 1.5, 4 * 4096)
        peaked[rng.integers(0, peaked.size, 5)] = -rng.random(5)
        cases.append(peaked)
    cases.append(rng.normal(0, 3, 4096))  # flat
    ties = np.round(rng.normal(-3, 1, 4096), 1)
    cases.append(ties)
    suppressed = rng.normal(-5, 2, 2 * 4096)
    suppressed[rng.integers(0, suppressed.size, 3000)] = -np.inf
    cases.append(suppressed)
    cases.append(np.full(4096, -np.inf))
    cases.append(np.concatenate([rng.normal(-1, 1, 4096), rng.normal(-1e9, 1, 3 * 4096)]))  # beams not started
    for total in cases:
        for dtype in (np.float32, np.float64):
            t = total.astype(dtype)
            want = np.argsort(-t, kind="stable")[:keep]
            got = _top(t, keep)
            assert np.array_equal(t[got], t[want])  # the same scores, best first
            if np.isfinite(t[want]).all():
                assert np.array_equal(got, want)  # and ties broken by index, as the stable sort does


@pytest.mark.parametrize("artifact", ["tflite-fp32", "tflite-int8"])
def test_litert_decode_in_place_equals_the_signature_runner(tiny_decoder_compressed, artifact):
    """A LiteRT decoder's decode steps over its own input buffers (only the written cache row copied back) give
    the public signature runner's logits bit for bit: greedy continuations, decode steps after a prefill, a
    multi-token forward after decode steps (the cache read back out) and decode steps after it; a stale cache
    handle is refused."""
    from edgekit.generation.runtime import GenerationOptions, LiteRTDecoderSession, stream

    out, _ = tiny_decoder_compressed
    fast = LiteRTDecoderSession(out / artifact, threads=1)
    slow = LiteRTDecoderSession(out / artifact, threads=1)
    assert fast._inplace is not None  # the installed ai-edge-litert offers what the in-place path reads
    slow._inplace = None
    prompt = list(range(5, 25))
    opts = GenerationOptions(max_new_tokens=24)
    assert list(stream(fast, prompt, opts)) == list(stream(slow, prompt, opts))

    def steps(s):
        logits, past = s.forward(np.array([prompt]), s.empty_past(1), 0)
        n, seen = len(prompt), []
        for _ in range(12):
            logits, past = s.forward(np.array([[int(logits[0, -1].argmax())]]), past, n)
            n += 1
            seen.append(logits[:, -1].copy())
        logits, past = s.forward(np.array([[7, 8, 9]]), past, n)
        n += 3
        seen.append(logits[:, -1].copy())
        for tok in (10, 11):
            logits, past = s.forward(np.array([[tok]]), past, n)
            n += 1
            seen.append(logits[:, -1].copy())
        return np.concatenate(seen), past, n

    (a, past, n), (b, _, _) = steps(fast), steps(slow)
    assert np.array_equal(a, b)
    with pytest.raises(InputError, match="cache holds"):
        fast.forward(np.array([[3]]), past, n - 1)  # a handle whose cache has moved on
