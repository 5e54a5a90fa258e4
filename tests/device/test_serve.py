"""`edgekit serve`: JSON in and out, 4xx for bad requests, and the server keeps serving."""

import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import edgekit
from edgekit.device.serve import make_server


@pytest.fixture(scope="module")
def server(tiny_bundle):
    model = edgekit.load(tiny_bundle, threads=1)
    srv = make_server(model, "127.0.0.1", 0, max_body_bytes=4096, max_texts=8)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, model
    srv.shutdown()
    srv.server_close()


def _request(srv, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(*srv.server_address, timeout=30)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def test_health_info_and_embed(server):
    srv, model = server
    assert _request(srv, "GET", "/health") == (200, {"status": "ok"})
    status, info = _request(srv, "GET", "/info")
    assert status == 200 and info["variant"] == "onnx-int8-dynamic" and info["max_texts"] == 8
    status, out = _request(srv, "POST", "/embed", {"texts": ["hello there", "the union is strong"]})
    assert status == 200 and out["dim"] == 32
    np.testing.assert_allclose(
        np.array(out["embeddings"]), model.embed(["hello there", "the union is strong"]), atol=1e-6
    )


@pytest.mark.parametrize(
    "method,path,body,headers,status,message",
    [
        ("POST", "/embed", b"{not json", None, 400, "malformed JSON"),
        ("POST", "/embed", b"[1, 2]", None, 400, "JSON object"),
        ("POST", "/embed", {"texts": "not a list"}, None, 400, "expected"),
        ("POST", "/embed", {"texts": [1, 2]}, None, 400, "list of strings"),
        ("POST", "/embed", {"texts": []}, None, 400, "empty"),
        ("POST", "/embed", {"texts": ["x"] * 9}, None, 413, "at most 8"),
        ("POST", "/embed", {"texts": ["x" * 5000]}, None, 413, "limit is 4096"),
        ("POST", "/embed", b"texts=hi", {"Content-Type": "text/plain"}, 415, "application/json"),
        ("POST", "/classify", {"texts": ["x"]}, None, 422, "feature-extraction model"),
        ("POST", "/nowhere", {"texts": ["x"]}, None, 404, "no endpoint"),
        ("GET", "/embed", None, None, 405, "takes POST"),
        ("DELETE", "/embed", None, None, 405, "takes POST"),
    ],
)
def test_bad_requests_get_4xx_and_the_server_keeps_serving(server, method, path, body, headers, status, message):
    srv, _ = server
    got, out = _request(srv, method, path, body, headers)
    assert got == status and message in out["error"]
    assert _request(srv, "POST", "/embed", {"texts": ["still here"]})[0] == 200


def test_concurrent_requests_all_succeed(server):
    srv, model = server
    texts = [f"request number {i}" for i in range(120)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda t: _request(srv, "POST", "/predict", {"text": t}), texts))
    assert all(s == 200 for s, _ in results)
    got = np.array([out["embeddings"][0] for _, out in results])
    # one text per request, so compare with one text per call (dynamic int8 scales depend on the batch)
    np.testing.assert_allclose(got, np.concatenate([model.embed([t]) for t in texts]), atol=1e-6)


def test_classifier_endpoint(tiny_cls_bundle):
    srv = make_server(edgekit.load(tiny_cls_bundle, threads=1), "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        status, out = _request(srv, "POST", "/classify", {"texts": ["a", "b c"]})
        assert status == 200 and len(out["predictions"]) == 2
        assert out["predictions"][0]["label"].startswith("label_")
        assert _request(srv, "POST", "/embed", {"texts": ["a"]})[0] == 422
    finally:
        srv.shutdown()
        srv.server_close()


def test_keep_alive_connection_survives_client_errors(server):
    """404, 405, 400 and 415 leave the connection open (the body was read whole); the next request on it works."""
    srv, _ = server
    conn = http.client.HTTPConnection(*srv.server_address, timeout=30)
    try:
        conn.connect()
        first = conn.sock
        for method, path, body, ctype, status in [
            ("POST", "/nowhere", b"{}", "application/json", 404),
            ("PUT", "/embed", b"{}", "application/json", 405),
            ("POST", "/embed", b"{bad", "application/json", 400),
            ("POST", "/embed", b"{}", "text/plain", 415),
            ("POST", "/embed", b'{"texts": ["ok"]}', "application/json", 200),
        ]:
            conn.request(method, path, body=body, headers={"Content-Type": ctype})
            resp = conn.getresponse()
            assert resp.status == status and resp.getheader("Connection") is None
            assert resp.getheader("Content-Type") == "application/json" and json.loads(resp.read())
        assert conn.sock is first  # one connection for all five
    finally:
        conn.close()


def test_one_log_line_per_request(tiny_bundle, capsys):
    srv = make_server(edgekit.load(tiny_bundle, threads=1), "127.0.0.1", 0, quiet=False)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        _request(srv, "GET", "/health")
        _request(srv, "POST", "/embed", b"{bad")
    finally:
        srv.shutdown()
        srv.server_close()
    lines = capsys.readouterr().err.splitlines()
    assert [ln.rsplit(" ", 1)[0] for ln in lines] == ["GET /health 200", "POST /embed 400"]
    assert all(ln.endswith("ms") and float(ln.rsplit(" ", 1)[1][:-2]) >= 0 for ln in lines)


def test_busy_port_and_unknown_host_are_input_errors(server):
    from edgekit.errors import ExitCode, ServeError

    srv, model = server
    with pytest.raises(ServeError, match="Address already in use; pick another --port") as err:
        make_server(model, *srv.server_address)
    assert err.value.exit_code == ExitCode.INPUT
    with pytest.raises(ServeError, match="unknown host"):
        make_server(model, "no-such-host.invalid", 0)


def test_serve_and_run_print_the_same_numbers(server, tiny_bundle, run_cli):
    """One float policy: embeddings to 7 decimals in `serve` and `run` alike (serve once sent 17 digits)."""
    import re

    srv, _model = server
    texts = ["hello there", "the union is strong"]
    conn = http.client.HTTPConnection(*srv.server_address, timeout=30)
    try:
        conn.request("POST", "/embed", body=json.dumps({"texts": texts}), headers={"Content-Type": "application/json"})
        raw = conn.getresponse().read().decode()
    finally:
        conn.close()
    served = json.loads(raw)["embeddings"]
    r = run_cli("run", str(tiny_bundle), *texts)
    assert r.exit_code == 0, r.stderr
    ran = [x["embedding"] for x in json.loads(r.output)["results"]]
    assert served == ran
    body = raw.split('"ms"')[0]  # the latency is rounded on its own (3 decimals)
    assert not re.search(r"\d\.\d{8,}", body) and re.search(r"\d\.\d{5,7}\b", body)
