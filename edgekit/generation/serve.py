"""Run and serve a decoder artifact (no torch): verified loading, `/generate` with server-sent events, and an
OpenAI-compatible `/v1/completions`.

    GET  /health            {"status": "ok"}
    GET  /info              the artifact, its precision and context
    POST /generate          {"prompt": "...", "max_new_tokens": 32, ...generation options}
                            -> {"text": "...", "completion_tokens": N, "finish_reason": "stop"|"length", "ms": ...};
                            with "stream": true: text/event-stream, one `data: {"text": piece}` event per piece,
                            then `data: [DONE]`
    POST /v1/completions    the OpenAI completions request (prompt, max_tokens, temperature, top_p, seed, stop,
                            stream); temperature 0 is greedy; fields edgekit does not implement are refused (400)

Every file the generator reads is listed in the artifact's manifest.json with its sha256, checked before
loading; a file missing, changed or outside the directory is refused (exit 2).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from edgekit.errors import ArtifactError, InputError
from edgekit.generation.runtime import TextGenerator

NEEDED = ("model.onnx", "decoder.json", "tokenizer.json")
# what each generative task's artifact must list (the encoder-decoder's two graphs and their shape facts)
NEEDED_BY_TASK = {
    "text-generation": NEEDED,
    "text2text-generation": ("encoder.onnx", "decoder.onnx", "seq2seq.json", "tokenizer.json"),
    # a speech model adds its numpy front end's settings and mel filters
    "automatic-speech-recognition": (
        "encoder.onnx",
        "decoder.onnx",
        "seq2seq.json",
        "tokenizer.json",
        "audio.json",
        "mel_filters.npy",
    ),
}


def verified_artifact(path: Path) -> dict:
    """The manifest of the decoder artifact at ``path`` after checking every file it lists (sha256, inside)."""
    import hashlib

    path = Path(path)
    manifest_file = path / "manifest.json"
    if not manifest_file.is_file():
        raise ArtifactError(f"{path}: not an edgekit artifact (no manifest.json)")
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        files = dict(manifest["files"])
    except (ValueError, KeyError, TypeError) as err:
        raise ArtifactError(f"{manifest_file}: malformed manifest ({err})") from None
    root = path.resolve()
    for rel, digest in files.items():
        f = (path / rel).resolve()
        if root not in f.parents or not f.is_file() or (path / rel).is_symlink():
            raise ArtifactError(f"{path}: {rel} is missing or outside the artifact")
        h = hashlib.sha256(f.read_bytes()).hexdigest()
        if h != digest:
            raise ArtifactError(f"{path}: {rel} was modified after it was made (sha256 differs from manifest.json)")
    task = manifest.get("task")
    needed = NEEDED_BY_TASK.get(task, NEEDED)
    if task not in NEEDED_BY_TASK or [n for n in needed if n not in files and _litert_form(n) not in files]:
        raise ArtifactError(
            f"{path}: not a generative artifact (a decoder needs {', '.join(NEEDED)} and task text-generation; "
            f"an encoder-decoder {', '.join(NEEDED_BY_TASK['text2text-generation'])} and task text2text-generation "
            "(LiteRT: .tflite for .onnx); a speech recogniser also audio.json and mel_filters.npy)"
        )
    return manifest


def _litert_form(name: str) -> str:
    """The LiteRT file that stands for an ONNX graph in an artifact (``model.onnx`` -> ``model.tflite``)."""
    return name[: -len(".onnx")] + ".tflite" if name.endswith(".onnx") else name


def open_generator(path: Path, threads: int = 2, engine: str = "auto"):
    """The generator for a generative artifact folder: a speech recogniser's (``audio.json``), an encoder-decoder's
    (``seq2seq.json``) or a decoder's."""
    if (Path(path) / "audio.json").is_file():
        from edgekit.generation.speech import SpeechRecognizer

        return SpeechRecognizer(path, threads=threads)
    if (Path(path) / "seq2seq.json").is_file():
        from edgekit.generation.seq2seq import Text2TextGenerator

        return Text2TextGenerator(path, threads=threads)
    return TextGenerator(path, threads=threads, engine=engine)


def is_decoder(path: Path) -> bool:
    """A decoder artifact or a decoder bundle (what ``run --generate`` and ``serve`` take)."""
    from edgekit.generation.bundle import is_decoder_bundle

    p = Path(path)
    return (p / "decoder.json").is_file() or (p / "seq2seq.json").is_file() or is_decoder_bundle(p)


def load_generator(
    path: Path, threads: int = 2, variant: str | None = None, digest: str | None = None, engine: str = "auto"
) -> tuple[TextGenerator, dict]:
    """A verified generative artifact (decoder or encoder-decoder), or a bundle's variant (default: its first),
    ready to generate."""
    from edgekit.generation.bundle import is_decoder_bundle, open_decoder_bundle

    path = Path(path)
    if is_decoder_bundle(path):
        path, _ = open_decoder_bundle(path, variant, digest)
    elif variant is not None or digest is not None:
        raise InputError(f"{path}: --variant and --digest take a bundle, not an artifact folder")
    manifest = verified_artifact(path)
    return open_generator(path, threads=threads, engine=engine), manifest


# OpenAI completions fields: accepted as they are, mapped, or accepted only at the value that means "off"
_OPENAI_OFF = {
    "n": 1,
    "best_of": 1,
    "echo": False,
    "logprobs": None,
    "suffix": None,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logit_bias": None,
    "user": None,
    "model": None,
    "stream_options": None,
}


def openai_options(body: dict) -> tuple[str, dict, bool]:
    """(prompt, generation options, stream) of an OpenAI completions request; unsupported use is InputError."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise InputError("prompt must be one non-empty string")
    known = {"prompt", "max_tokens", "temperature", "top_p", "seed", "stop", "stream", *_OPENAI_OFF}
    unknown = sorted(set(body) - known)
    if unknown:
        raise InputError(f"unsupported field(s) {', '.join(unknown)}")
    for key, off in _OPENAI_OFF.items():
        if key in body and body[key] not in (off, None) and key not in ("model", "user", "stream_options"):
            raise InputError(f"{key}={body[key]!r} is not supported (only {off!r})")
    temperature = body.get("temperature", 1.0)
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise InputError("temperature must be a number >= 0")
    opts: dict = {"max_new_tokens": body.get("max_tokens", 16)}
    if temperature > 0:
        opts.update(do_sample=True, temperature=float(temperature), top_p=float(body.get("top_p", 1.0)))
        if body.get("seed") is not None:
            opts["seed"] = body["seed"]
    stop = body.get("stop")
    if stop:
        opts["stop"] = [stop] if isinstance(stop, str) else stop
    return prompt, opts, bool(body.get("stream", False))


def make_app(gen: TextGenerator, manifest: dict):
    """The WSGI app serving ``gen``."""
    from edgekit.tasks import get_task

    refused = getattr(get_task(manifest.get("task") or "text-generation"), "not_served", "")
    if refused:
        raise InputError(f"{manifest.get('name')}: {refused}")
    name = manifest.get("name", "decoder")

    def respond(start, status: str, obj: dict):
        data = json.dumps(obj).encode()
        start(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    def sse(start, events: Iterator[dict]):
        start("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])

        def body():
            for e in events:
                yield f"data: {json.dumps(e)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return body()

    def app(environ, start):
        method, route = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        if method == "GET" and route == "/health":
            return respond(start, "200 OK", {"status": "ok"})
        if method == "GET" and route == "/info":
            facts = gen.facts
            return respond(
                start,
                "200 OK",
                {
                    "artifact": name,
                    "task": manifest.get("task"),
                    "precision": manifest.get("precision"),
                    "context_length": facts["context_length"],
                    "routes": ["/generate", "/v1/completions"],
                },
            )
        if route not in ("/generate", "/v1/completions"):
            return respond(start, "404 Not Found", {"error": f"no route {route}"})
        if method != "POST":
            return respond(start, "405 Method Not Allowed", {"error": f"{route} takes POST"})
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(size) or b"null")
            if not isinstance(body, dict):
                raise InputError("the request body must be a JSON object")
            if route == "/generate":
                body = dict(body)
                stream = bool(body.pop("stream", False))
                prompt = body.pop("prompt", None)
                opts = body
            else:
                prompt, opts, stream = openai_options(body)
            gen.options.from_dict(opts)
            if not isinstance(prompt, str) or not prompt:
                raise InputError("prompt must be a non-empty string")
            gen.encode(prompt)  # bad prompts fail before a stream starts
            stats: dict = {}
            pieces = gen.stream(prompt, stats, **opts)
            first = next(pieces, None)  # errors (prompt longer than the context) surface as a 400, not mid-stream
        except (InputError, ValueError) as err:
            return respond(start, "400 Bad Request", {"error": str(err)})
        t0 = time.perf_counter()
        created, cid = int(time.time()), f"cmpl-{uuid.uuid4().hex[:24]}"

        def all_pieces():
            if first is not None:
                yield first
            yield from pieces

        if stream:
            if route == "/generate":
                return sse(start, ({"text": p} for p in all_pieces()))
            return sse(
                start,
                (
                    {
                        "id": cid,
                        "object": "text_completion",
                        "created": created,
                        "model": name,
                        "choices": [{"text": p, "index": 0, "finish_reason": None, "logprobs": None}],
                    }
                    for p in all_pieces()
                ),
            )
        text = "".join(all_pieces())
        n, reason = stats["completion_tokens"], stats["finish_reason"]
        ms = round((time.perf_counter() - t0) * 1000, 3)
        if route == "/generate":
            return respond(start, "200 OK", {"text": text, "completion_tokens": n, "finish_reason": reason, "ms": ms})
        prompt_tokens = stats["prompt_tokens"]
        return respond(
            start,
            "200 OK",
            {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "model": name,
                "choices": [{"text": text, "index": 0, "finish_reason": reason, "logprobs": None}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n},
            },
        )

    return app
