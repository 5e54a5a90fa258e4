"""`edgekit run --generate` and `edgekit serve` on a decoder artifact: verified files, SSE, OpenAI completions."""

from __future__ import annotations

import io
import json
import shutil
import threading
import urllib.request

import pytest


def _call(app, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else b""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "CONTENT_LENGTH": str(len(data)),
        "wsgi.input": io.BytesIO(data),
    }
    status = {}

    def start(s, headers):
        status.update(code=int(s.split()[0]), headers=dict(headers))

    chunks = b"".join(app(environ, start))
    return status["code"], status["headers"], chunks.decode()


@pytest.fixture(scope="module")
def app(tiny_decoder_compressed):
    from edgekit.generation.serve import load_generator, make_app

    out, _ = tiny_decoder_compressed
    gen, manifest = load_generator(out / "onnx-int8")
    return make_app(gen, manifest)


def test_generate_and_stream(app):
    code, _, body = _call(app, "POST", "/generate", {"prompt": "We the people", "max_new_tokens": 6})
    full = json.loads(body)
    assert code == 200 and full["completion_tokens"] <= 6 and full["finish_reason"] in ("stop", "length")
    code, headers, body = _call(
        app, "POST", "/generate", {"prompt": "We the people", "max_new_tokens": 6, "stream": True}
    )
    assert code == 200 and headers["Content-Type"] == "text/event-stream"
    events = [line[6:] for line in body.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert "".join(json.loads(e)["text"] for e in events[:-1]) == full["text"]


def test_openai_completions(app):
    code, _, body = _call(
        app, "POST", "/v1/completions", {"model": "m", "prompt": "We", "max_tokens": 5, "temperature": 0}
    )
    r = json.loads(body)
    assert code == 200 and r["object"] == "text_completion" and r["usage"]["completion_tokens"] <= 5
    code, _, greedy = _call(app, "POST", "/generate", {"prompt": "We", "max_new_tokens": 5})
    assert r["choices"][0]["text"] == json.loads(greedy)["text"]
    a = _call(app, "POST", "/v1/completions", {"prompt": "We", "max_tokens": 8, "temperature": 0.9, "seed": 7})[2]
    b = _call(app, "POST", "/v1/completions", {"prompt": "We", "max_tokens": 8, "temperature": 0.9, "seed": 7})[2]
    assert json.loads(a)["choices"][0]["text"] == json.loads(b)["choices"][0]["text"]


@pytest.mark.parametrize(
    "path, body, says",
    [
        ("/v1/completions", {"prompt": "We", "n": 2}, "n=2 is not supported"),
        ("/v1/completions", {"prompt": "We", "logprobs": 3}, "logprobs=3 is not supported"),
        (
            "/generate",
            {"prompt": "We", "repetition_penalty": 1.1},
            "unsupported generation option(s) repetition_penalty",
        ),
        ("/generate", {"prompt": "word " * 400}, "the model's context is 256"),
        ("/generate", {"prompt": ""}, "prompt must be a non-empty string"),
    ],
)
def test_bad_requests(app, path, body, says):
    code, _, text = _call(app, "POST", path, body)
    assert code == 400 and says in json.loads(text)["error"]


def test_sse_over_http(app):
    """Server-sent events arrive over a real socket (waitress), piece by piece."""
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=1)
    port = server.effective_port
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    try:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/generate",
            data=json.dumps({"prompt": "We", "max_new_tokens": 5, "stream": True}).encode(),
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.headers["Content-Type"] == "text/event-stream"
            lines = [ln.decode().strip() for ln in resp if ln.strip()]
        assert lines[-1] == "data: [DONE]" and len(lines) >= 2
    finally:
        server.close()


def test_run_generate_cli(tiny_decoder_compressed, run_cli):
    out, _ = tiny_decoder_compressed
    result = run_cli("run", str(out / "onnx-int4-rtn"), "--generate", "We the people", "--max-new-tokens", "4")
    assert result.exit_code == 0, result.stderr
    r = json.loads(result.output)
    assert r["precision"] == "int4" and r["completion_tokens"] <= 4
    beams = run_cli("run", str(out / "onnx-int4-rtn"), "--generate", "We", "--options", '{"num_beams": 3}')
    assert beams.exit_code == 0, beams.stderr


def test_changed_artifact_is_refused(tiny_decoder_compressed, tmp_path, run_cli):
    out, _ = tiny_decoder_compressed
    copy = tmp_path / "a"
    shutil.copytree(out / "onnx-int8", copy)
    tok = json.loads((copy / "tokenizer.json").read_text())
    tok["added_tokens"] = []
    (copy / "tokenizer.json").write_text(json.dumps(tok))
    result = run_cli("run", str(copy), "--generate", "We")
    assert result.exit_code == 2 and "tokenizer.json was modified after it was made" in result.stderr


def test_decoder_bundle(tiny_decoder_compressed, tmp_path, run_cli):
    """`bundle` picks the promoted artifact, records greedy continuations; `run --check` reproduces them and a
    changed byte is refused."""
    out, report = tiny_decoder_compressed
    b = tmp_path / "bundle"
    result = run_cli("bundle", str(out), "-o", str(b), "-a", "onnx-int8", "-a", "tflite-int8", "--json")
    assert result.exit_code == 0, result.stderr
    desc = json.loads((b / "bundle.json").read_text())
    assert [v["name"] for v in desc["variants"]] and desc["task"] == "text-generation"
    assert all(set(v) >= {"decode_tokens_per_s", "perplexity", "engine"} for v in desc["variants"])
    for name in ("onnx-int8", "tflite-int8"):  # the variants' order follows measured speed: check each
        check = run_cli("run", str(b), "--check", "--variant", name)
        assert check.exit_code == 0, check.stderr
        assert json.loads(check.output) == {"variant": name, "check": {"reproduced": 3, "of": 3}}
    gen = run_cli("run", str(b), "--generate", "We", "--variant", "onnx-int8", "--max-new-tokens", "3")
    assert gen.exit_code == 0 and json.loads(gen.output)["artifact"] == "onnx-int8"
    lite = run_cli("run", str(b), "--generate", "We", "--variant", "tflite-int8", "--max-new-tokens", "3")
    assert lite.exit_code == 0 and json.loads(lite.output)["artifact"] == "tflite-int8", lite.stderr
    desc["reference"]["greedy"][desc["variants"][0]["name"]][0] = "something else"
    (b / "bundle.json").write_text(json.dumps(desc))
    tampered = run_cli("run", str(b), "--check")
    assert tampered.exit_code == 2 and "bundle.json was modified" in tampered.stderr
