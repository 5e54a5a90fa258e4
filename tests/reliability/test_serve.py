"""Reliability catalogue, area "serve": `edgekit serve` against broken, hostile and slow clients.

One real server (``python -m edgekit serve`` on the tiny bundle, in a child process, on a port the
OS picks) takes every HTTP case over raw sockets, so what goes over the wire is exactly what a
client sent; its stderr is checked for tracebacks in every case and at the end. The CLI cases (a
busy port, an unknown host) and the SIGTERM case start their own.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.reliability.harness import ROOT, Case, check, run_cli

AREA = "serve"
TIMEOUT_S = 1.0  # the module server's header, body and idle timeouts
MAX_BODY = 8192


class ServeProcess:
    """``edgekit serve BUNDLE --port 0 ...`` in a child process; its stderr is collected as it comes."""

    def __init__(self, bundle: Path, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("EDGEKIT_DEBUG", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgekit", "serve", str(bundle), "--port", "0", "--threads", "1", *args],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        self.port = 0
        for line in self.proc.stderr:
            self.lines.append(line)
            if " at http://" in line:
                self.port = int(line.rsplit(":", 1)[1])
                break
        assert self.port, f"the server did not start: {''.join(self.lines)}"
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True)
        self._reader.start()

    def stderr(self) -> str:
        return "".join(self.lines)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code


@pytest.fixture(scope="module")
def server(tiny_bundle):
    srv = ServeProcess(
        tiny_bundle,
        "--max-body-bytes",
        str(MAX_BODY),
        "--header-timeout",
        str(TIMEOUT_S),
        "--body-timeout",
        str(TIMEOUT_S),
        "--idle-timeout",
        str(TIMEOUT_S),
    )
    yield srv
    srv.stop()


Response = tuple[int, dict[str, str], bytes]  # status, lower-cased headers, body


def _parse(raw: bytes, heads: tuple[bool, ...] = ()) -> tuple[list[Response], bytes]:
    """The complete HTTP responses at the start of ``raw``, and what follows them. ``heads[i]``: the i-th
    answers a HEAD (its Content-Length announces a body that is not sent)."""
    out: list[Response] = []
    while b"\r\n\r\n" in raw:
        top, _, rest = raw.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1."), f"bytes that are not a response: {raw[:200]!r}"
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        n = 0 if len(out) < len(heads) and heads[len(out)] else int(headers.get("content-length", 0))
        if len(rest) < n:
            break
        out.append((int(lines[0].split()[1]), headers, rest[:n]))
        raw = rest[n:]
    return out, raw


def _read_until_closed(s: socket.socket, wait: float) -> tuple[bytes, bool]:
    """What the server sends until it closes (True) or ``wait`` seconds pass in silence (False)."""
    s.settimeout(wait)
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except TimeoutError:
        return out, False
    return out, True


def _exchange(port: int, data: bytes, n: int = 1, heads: tuple[bool, ...] = ()) -> tuple[list[Response], bool]:
    """Send raw bytes and read ``n`` responses; then whether the server closed the connection: waited for
    where the last response says ``Connection: close``, else 0.3 s of an open, silent connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        raw, got = b"", []
        while len(got) < n:
            chunk = s.recv(65536)
            if not chunk:
                got, rest = _parse(raw, heads)
                assert not rest, f"bytes that are not a response: {rest[:200]!r}"
                return got, True
            got, _ = _parse(raw := raw + chunk, heads)
        got, rest = _parse(raw, heads)
        more, closed = _read_until_closed(s, 10 if got[-1][1].get("connection") == "close" else 0.3)
    assert not rest + more, f"bytes after the responses: {(rest + more)[:200]!r}"
    return got, closed


def _one_error(server: ServeProcess, data: bytes, status: int, message: str, name: str, *, closes: bool) -> None:
    """One request in, exactly one JSON error out with ``status``; ``Connection: close`` iff the server closes."""
    [(got, headers, body)], closed = _exchange(server.port, data)
    assert headers["content-type"] == "application/json", headers
    assert message in json.loads(body)["error"], body
    if closes:
        assert headers.get("connection") == "close" and closed, headers
    else:
        assert "connection" not in headers and not closed, headers
    check(Case(name, AREA, expect_code=status), code=got, stderr=server.stderr())


def _post(path: str, body: bytes, ctype: str = "application/json") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


ERRORS = [
    (
        "serve-content-length-not-a-number",
        b"POST /embed HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n{}",
        400,
        "Content-Length is invalid",
        True,
    ),
    (
        "serve-two-content-lengths",
        b"POST /embed HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}",
        400,
        "Content-Length is invalid",
        True,
    ),
    (
        "serve-content-length-and-chunked",
        (b"POST /embed HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        400,
        "both Transfer-Encoding and Content-Length",
        True,
    ),
    (
        "serve-chunked-in-http-1.0-keep-alive",
        (b"POST /embed HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        400,
        "Transfer-Encoding in an HTTP/1.0 request",
        True,
    ),
    (
        "serve-request-line-garbage",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage\r\n\r\n",
        400,
        "Start line is invalid",
        True,
    ),
    (
        "serve-lowercase-method",
        b"post /embed HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
        400,
        "Malformed HTTP method",
        True,
    ),
    (
        "serve-headers-over-the-limit",
        b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n",
        431,
        "headers over",
        True,
    ),
    (
        "serve-unknown-transfer-encoding",
        b"POST /embed HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
        "not supported",
        True,
    ),
    ("serve-no-content-length", b"POST /embed HTTP/1.1\r\nHost: t\r\n\r\n", 411, "Content-Length is required", True),
    ("serve-not-json-content-type", _post("/embed", b"texts=hi", "text/plain"), 415, "application/json", False),
    ("serve-malformed-json", _post("/embed", b'{"texts": ["unterminated'), 400, "malformed JSON", False),
    ("serve-lone-surrogate", _post("/embed", b'{"texts": ["\\ud800"]}'), 400, "lone surrogate", False),
    ("serve-json-nested-too-deep", _post("/embed", b"[" * 3000 + b"]" * 3000), 400, "nested too deeply", False),
    ("serve-json-integer-of-5000-digits", _post("/embed", b"9" * 5000), 400, "malformed JSON", False),
    ("serve-http-2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "HTTP/2.0 is not supported", True),
    ("serve-unknown-path", _post("/admin", b"{}"), 404, "no endpoint /admin", False),
    ("serve-wrong-method", b"PATCH /embed HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405, "/embed takes POST", False),
]


@pytest.mark.parametrize("name,data,status,message,closes", ERRORS, ids=[e[0] for e in ERRORS])
def test_protocol_and_body_errors_are_json(server, name, data, status, message, closes):
    _one_error(server, data, status, message, name, closes=closes)


def test_body_over_the_limit_gets_413_not_a_reset(server):
    """A client still sending a body 25x over the limit reads the 413 (the server drains before it closes)."""
    big = b'{"texts": ["' + b"x" * (MAX_BODY * 25) + b'"]}'
    [(status, headers, body)], closed = _exchange(server.port, _post("/embed", big))
    assert headers.get("connection") == "close" and closed
    assert json.loads(body)["error"] == f"body of {len(big)} bytes; the limit is {MAX_BODY}"
    check(Case("serve-body-over-the-limit", AREA, expect_code=413), code=status, stderr=server.stderr())


def test_get_with_a_body_is_refused_and_the_body_never_read_as_a_request(server):
    """Request smuggling: the body of a GET is a whole second request; it must never be answered."""
    smuggled = b"GET /info HTTP/1.1\r\nHost: t\r\n\r\n"
    responses, closed = _exchange(
        server.port, b"GET /health HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(smuggled), smuggled)
    )
    assert len(responses) == 1 and closed, responses  # one answer, then the connection is closed (nothing after)
    status, headers, body = responses[0]
    assert headers.get("connection") == "close" and json.loads(body) == {"error": "GET takes no body"}
    check(Case("serve-get-with-a-smuggled-request-as-body", AREA, expect_code=400), code=status, stderr=server.stderr())


def test_options_says_what_is_allowed(server):
    [(status, headers, body)], _ = _exchange(server.port, b"OPTIONS /embed HTTP/1.1\r\nHost: t\r\n\r\n")
    assert headers["allow"] == "POST, OPTIONS" and json.loads(body) == {"allow": ["POST", "OPTIONS"]}
    check(Case("serve-options", AREA, expect_code=200), code=status, stderr=server.stderr())


def test_head_has_the_get_headers_and_no_body(server):
    [(_, get_headers, info)], _ = _exchange(server.port, b"GET /info HTTP/1.1\r\nHost: t\r\n\r\n")
    # the HEAD's answer is headers only: the next bytes are the next response (else the parse fails)
    [(status, headers, _), (_, _, health)], _ = _exchange(
        server.port, b"HEAD /info HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\n\r\n", n=2, heads=(True,)
    )
    assert json.loads(health) == {"status": "ok"}
    assert headers["content-length"] == get_headers["content-length"] == str(len(info))
    assert json.loads(info)["max_body_bytes"] == MAX_BODY
    check(Case("serve-head", AREA, expect_code=200), code=status, stderr=server.stderr())


def test_keep_alive_survives_a_404(server):
    """After a 404 (and a 405) the same connection answers the next request."""
    data = (
        _post("/nowhere", b'{"texts": ["x"]}')
        + b"DELETE /health HTTP/1.1\r\nHost: t\r\n\r\n"
        + _post("/embed", b'{"texts": ["still here"]}')
    )
    responses, closed = _exchange(server.port, data, n=3)
    statuses = [s for s, _, _ in responses]
    assert statuses == [404, 405, 200] and not closed, responses
    check(Case("serve-keep-alive-after-404", AREA, expect_code=200), code=statuses[-1], stderr=server.stderr())


def test_slow_headers_get_408(server):
    """Slowloris: headers trickled in never end; the server answers 408 once the header timeout passes."""
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        t0 = time.monotonic()
        s.sendall(b"POST /embed HTTP/1.1\r\nHost: t\r\n")
        for _ in range(3):
            time.sleep(TIMEOUT_S / 2)
            s.sendall(b"X-Slow: 1\r\n")
        raw, closed = _read_until_closed(s, 10)
    [(status, headers, body)], rest = _parse(raw)
    assert (
        not rest and closed and headers["connection"] == "close" and "headers not received" in json.loads(body)["error"]
    )
    assert TIMEOUT_S <= time.monotonic() - t0 < TIMEOUT_S + 6
    check(Case("serve-slowloris-headers", AREA, expect_code=408), code=status, stderr=server.stderr())


def test_slow_body_gets_408(server):
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"POST /embed HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        raw, closed = _read_until_closed(s, 10)
    [(status, _, body)], rest = _parse(raw)
    assert not rest and closed and "body not received" in json.loads(body)["error"]
    check(Case("serve-slow-body", AREA, expect_code=408), code=status, stderr=server.stderr())


def test_half_open_idle_connection_is_closed(server):
    """A connection that never sends a byte is closed after the idle timeout, without a response."""
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        t0 = time.monotonic()
        raw, closed = _read_until_closed(s, 10)
        took = time.monotonic() - t0
    assert raw == b"" and TIMEOUT_S <= took < TIMEOUT_S + 5
    check(Case("serve-half-open-idle-connection", AREA, expect_code=0), code=0 if closed else 1, stderr=server.stderr())


def test_client_disconnecting_mid_body_leaves_no_trace(server):
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(
                b'POST /embed HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n{"texts": ["abc'
            )
    [(status, _, body)], _ = _exchange(server.port, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    assert json.loads(body) == {"status": "ok"}
    check(Case("serve-client-disconnects-mid-body", AREA, expect_code=200), code=status, stderr=server.stderr())


def test_busy_port_is_one_line_exit_2(tiny_bundle):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_cli("serve", str(tiny_bundle), "--port", str(taken.getsockname()[1]), timeout=120)
    assert "Address already in use" in result.stderr
    check(Case("serve-busy-port", AREA, expect_code=2), result)


def test_unresolvable_host_is_one_line_exit_2(tiny_bundle):
    result = run_cli("serve", str(tiny_bundle), "--host", "no-such-host.invalid", "--port", "0", timeout=120)
    assert "unknown host" in result.stderr
    check(Case("serve-unresolvable-host", AREA, expect_code=2), result)


def _refused_within(port: int, seconds: float) -> bool:
    """Whether new connections to ``port`` are refused before ``seconds`` pass (the server stopped listening)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.1)
    return False


def test_sigterm_answers_the_request_in_flight_and_exits_0(tiny_bundle):
    """SIGTERM mid-request: no new connections, the request in flight is answered (Connection: close), exit 0."""
    srv = ServeProcess(tiny_bundle)
    try:
        body = json.dumps({"texts": ["in flight"]}).encode()
        with socket.create_connection(("127.0.0.1", srv.port)) as s:
            s.sendall(_post("/embed", body)[:-5])
            time.sleep(1.0)  # the server has read the headers: this request is in flight
            srv.proc.send_signal(signal.SIGTERM)
            assert _refused_within(srv.port, 10)
            s.sendall(body[-5:])
            raw, closed = _read_until_closed(s, 10)
        [(status, headers, out)], rest = _parse(raw)
        assert (
            not rest and status == 200 and closed and headers["connection"] == "close" and json.loads(out)["dim"] == 32
        )
        code = srv.proc.wait(timeout=30)  # the one SIGTERM sent above stops it (a second one during exit would kill)
        srv._reader.join(timeout=5)
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
    assert srv.stderr().rstrip().endswith("edgekit serve: stopped")
    check(Case("serve-sigterm-graceful", AREA, expect_code=0), code=code, stderr=srv.stderr())


def test_server_log_has_no_traceback_and_one_line_per_request(server):
    """Last: the module server's whole stderr; every request line is METHOD PATH STATUS LATENCY."""
    time.sleep(0.2)
    log = server.stderr()
    assert "Traceback" not in log
    requests = [ln.split() for ln in log.splitlines()[1:]]
    assert requests and all(len(r) == 4 and r[2].isdigit() and r[3].endswith("ms") for r in requests), log
