"""Load test for `edgekit serve`: a 1,000-request mixed load over keep-alive connections, hostile clients mixed in.

    python benchmarks/serve_load.py --bundle BUNDLE [--requests 1000] [--concurrency 4] [--max-seconds 300]

Starts `edgekit serve BUNDLE` in a child process on a port the OS picks (127.0.0.1 only) and sends
``--requests`` requests, in a fixed shuffled order, from ``--concurrency`` client threads that each
keep one HTTP/1.1 connection alive (and open a new one only where the server said
``Connection: close``). The mix:

- well-formed requests that must get their exact status, on a connection that keeps working:
  GET /health, GET /info, POST /predict and the bundle's task endpoint (200); malformed JSON (400),
  a wrong Content-Type (415), a body over --max-body-bytes (413), an unknown path (404), a wrong
  method (405);
- hostile ones, each on its own raw socket: a GET whose body is a second request (smuggling: one
  400 and a close, never a second response), a client that sends half a body and disconnects,
  and a slowloris client (headers never finished: 408 after the header timeout).

Before the load it also opens ``--half-open`` connections that send nothing or half a request line
and hold them, to show they cost no thread and are closed by the deadlines. An "error" is an
unexpected status, or a broken connection, for a client doing things right. Latency is client
side (request sent to response read, on this machine: the server and the load generator share
its cores). RSS and thread count are the server process's, before and after the load. Writes
benchmarks/results/serve_load.json; exit 0 when there were no errors and every hostile client
got what it should, 3 otherwise.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil

from edgekit.data.calibration import load_text_data
from edgekit.measure.environment import environment

HOST = "127.0.0.1"
MAX_BODY = 65536
DEADLINE_S = 2.0  # the server's header and body timeouts in this run
IDLE_S = 5.0  # ... and its idle timeout: the held connections are closed within the run
MIX = {  # kind: share of the requests
    "health": 0.08,
    "info": 0.04,
    "predict": 0.34,
    "task": 0.30,
    "malformed_json": 0.04,
    "wrong_content_type": 0.04,
    "oversized": 0.03,
    "unknown_path": 0.04,
    "bad_method": 0.03,
    "smuggling": 0.02,
    "disconnect_mid_body": 0.02,
    "slowloris": 0.02,
}
HOSTILE = ("smuggling", "disconnect_mid_body", "slowloris")


class Client:
    """One keep-alive connection; reconnects only where the server said it would close."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=60)
        self.connections = 0

    def call(self, method: str, path: str, body: bytes | None, ctype: str = "application/json") -> tuple[int, float]:
        if self.conn.sock is None:
            self.connections += 1
        t0 = time.perf_counter()
        self.conn.request(method, path, body=body, headers={"Content-Type": ctype} if body is not None else {})
        resp = self.conn.getresponse()
        data = resp.read()
        ms = (time.perf_counter() - t0) * 1000.0
        if resp.getheader("Content-Type") != "application/json":
            return -resp.status, ms
        json.loads(data)  # every response is JSON
        return resp.status, ms


def _read_until_closed(s: socket.socket) -> tuple[bytes, bool]:
    """What the server sends until it closes (True), or until the socket's timeout (False)."""
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except TimeoutError:
        return out, False
    except OSError:  # reset: closed too
        pass
    return out, True


def _raw(port: int, data: bytes, wait: float) -> tuple[bytes, bool]:
    """Send raw bytes on a new connection; read until the server closes (True) or ``wait`` passes (False)."""
    with socket.create_connection((HOST, port), timeout=wait) as s:
        s.sendall(data)
        return _read_until_closed(s)


def hostile(kind: str, port: int) -> tuple[bool, float]:
    """One hostile client; True when the server answered as it must."""
    t0 = time.perf_counter()
    if kind == "smuggling":
        inner = b"GET /info HTTP/1.1\r\nHost: x\r\n\r\n"
        out, closed = _raw(
            port, b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(inner), inner), wait=10
        )
        ok = out.startswith(b"HTTP/1.1 400 ") and out.count(b"HTTP/1.1 ") == 1 and closed
    elif kind == "disconnect_mid_body":
        with socket.create_connection((HOST, port), timeout=10) as s:
            s.sendall(
                b"POST /predict HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
                b'{"texts": ["half a bo'
            )
        ok = True  # what counts is that nothing else breaks: the errors and the server's log say so
    else:  # slowloris: header lines trickled in until the header deadline, never the end of the headers
        with socket.create_connection((HOST, port), timeout=DEADLINE_S * 5) as s:
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
            for _ in range(3):
                time.sleep(DEADLINE_S / 4)
                s.sendall(b"X-Slow: 1\r\n")
            out, closed = _read_until_closed(s)
        ok = out.startswith(b"HTTP/1.1 408 ") and closed
    return ok, (time.perf_counter() - t0) * 1000.0


def wait_ready(proc: subprocess.Popen, timeout_s: float = 120.0) -> tuple[int, float]:
    t0 = time.perf_counter()
    line = ""
    while time.perf_counter() - t0 < timeout_s:
        line = proc.stderr.readline()
        if " at http://" in line:
            return int(line.rsplit(":", 1)[1]), time.perf_counter() - t0
        if not line and proc.poll() is not None:
            break
    raise SystemExit(f"server did not come up: {line}{proc.stderr.read() if proc.poll() is not None else ''}")


def server_stats(pid: int) -> dict:
    p = psutil.Process(pid)
    return {
        "rss_mb": round(p.memory_info().rss / 2**20, 1),
        "threads": p.num_threads(),
        "connections": len(p.net_connections(kind="tcp")) - 1,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", required=True, type=Path)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=4, help="client threads, one keep-alive connection each")
    ap.add_argument("--half-open", type=int, default=40, help="idle and half-open connections held during the load")
    ap.add_argument("--threads", type=int, default=2, help="inference threads of the server")
    ap.add_argument("--max-seconds", type=float, default=300.0, help="stop sending after this long")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "serve_load.json")
    args = ap.parse_args()

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgekit",
            "serve",
            str(args.bundle),
            "--host",
            HOST,
            "--port",
            "0",
            "--threads",
            str(args.threads),
            "--max-body-bytes",
            str(MAX_BODY),
            "--quiet",
            "--header-timeout",
            str(DEADLINE_S),
            "--body-timeout",
            str(DEADLINE_S),
            "--idle-timeout",
            str(IDLE_S),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    log: list[str] = []
    try:
        port, ready_s = wait_ready(proc)
        threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()
        info = json.loads(_raw(port, b"GET /info HTTP/1.1\r\nConnection: close\r\n\r\n", 10)[0].split(b"\r\n\r\n")[1])
        task_path = {"feature-extraction": "/embed"}.get(info["task"], "/classify")
        texts = load_text_data().heldout

        def valid_body(i: int) -> bytes:
            if info["task"] == "image-classification":
                return json.dumps({"arrays": [np.full((8, 8), i % 17).tolist()]}).encode()
            return json.dumps({"texts": [texts[i % len(texts)]]}).encode()

        requests = {  # kind: (method, path, body, content type, expected status)
            "health": lambda i: ("GET", "/health", None, "", 200),
            "info": lambda i: ("GET", "/info", None, "", 200),
            "predict": lambda i: ("POST", "/predict", valid_body(i), "application/json", 200),
            "task": lambda i: ("POST", task_path, valid_body(i), "application/json", 200),
            "malformed_json": lambda i: ("POST", "/predict", b'{"texts": ["unterminated', "application/json", 400),
            "wrong_content_type": lambda i: ("POST", "/predict", valid_body(i), "text/plain", 415),
            "oversized": lambda i: (
                "POST",
                "/predict",
                b'{"texts": ["' + b"x" * (MAX_BODY + 10) + b'"]}',
                "application/json",
                413,
            ),
            "unknown_path": lambda i: ("POST", "/v1/embeddings", valid_body(i), "application/json", 404),
            "bad_method": lambda i: ("PUT", "/predict", valid_body(i), "application/json", 405),
        }
        rng = random.Random(args.seed)
        plan = [k for k, share in MIX.items() for _ in range(round(share * args.requests))]
        plan = (plan + ["predict"] * args.requests)[: args.requests]
        rng.shuffle(plan)

        warm = Client(port)
        for i in range(10):  # warm-up, not counted
            warm.call(*requests["predict"](i)[:4])
        warm.conn.close()
        time.sleep(0.2)
        before = server_stats(proc.pid)
        held, held_at = [], time.monotonic()
        for i in range(args.half_open):  # held during the load: silent, or half a request line
            s = socket.create_connection((HOST, port))
            if i % 2:
                s.sendall(b"POST /pred")
            held.append(s)
        time.sleep(0.5)
        during = server_stats(proc.pid)

        outcomes: list[tuple[str, bool, int, float]] = []  # kind, as expected, status (-1: broken), ms
        lock = threading.Lock()
        queue = iter(enumerate(plan))
        t_end = time.perf_counter() + args.max_seconds

        def attack(kind: str) -> None:
            ok, ms = hostile(kind, port)
            with lock:
                outcomes.append((kind, ok, 0, ms))

        attackers = ThreadPoolExecutor(max_workers=8)  # hostile clients run beside the load, not in its turn

        def worker() -> int:
            client = Client(port)
            while time.perf_counter() < t_end:
                with lock:
                    item = next(queue, None)
                if item is None:
                    break
                i, kind = item
                if kind in HOSTILE:
                    attackers.submit(attack, kind)
                    continue
                method, path, body, ctype, expected = requests[kind](i)
                try:
                    status, ms = client.call(method, path, body, ctype)
                except (OSError, http.client.HTTPException):
                    client.conn.close()
                    status, ms = -1, 0.0
                with lock:
                    outcomes.append((kind, status == expected, status, ms))
            return client.connections

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            reconnects = sum(pool.map(lambda _: worker(), range(args.concurrency)))
        wall = time.perf_counter() - t0  # the well-formed load; the last slow attackers may still be at it
        attackers.shutdown(wait=True)
        time.sleep(max(0.0, held_at + IDLE_S + 1.0 - time.monotonic()))
        closed_held = 0
        for s in held:  # by now each was answered 408 (half a request line) or closed idle (silent)
            s.settimeout(0.5)
            closed_held += _read_until_closed(s)[1]
            s.close()
        after = server_stats(proc.pid)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    time.sleep(0.2)
    stderr = "".join(log)

    right = [o for o in outcomes if o[0] not in HOSTILE]
    ok_ms = np.array([ms for kind, ok, status, ms in right if ok and status == 200])
    errors = [o for o in right if not o[1]]
    by_kind = {
        k: {
            "sent": sum(1 for o in outcomes if o[0] == k),
            "as_expected": sum(1 for o in outcomes if o[0] == k and o[1]),
        }
        for k in MIX
    }
    hostile_failed = sum(v["sent"] - v["as_expected"] for k, v in by_kind.items() if k in HOSTILE)
    summary = {
        "requests": len(outcomes),
        "planned": args.requests,
        "client_connections": args.concurrency,
        "connections_opened_by_well_behaved_clients": reconnects,
        "errors": len(errors),
        "error_examples": [list(e[:3]) for e in errors[:10]],
        "errors_by_status": dict(Counter(str(e[2]) for e in errors)),
        "hostile_not_as_expected": hostile_failed,
        "by_kind": by_kind,
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(right) / wall, 1),
        "latency_ms_200": {f"p{q}": round(float(np.percentile(ok_ms, q)), 2) for q in (50, 90, 99)}
        if len(ok_ms)
        else {},
        "latency_ms_all_well_formed": {
            f"p{q}": round(float(np.percentile([o[3] for o in right], q)), 2) for q in (50, 99)
        }
        if right
        else {},
        "half_open_held": args.half_open,
        "half_open_closed_by_server": closed_held,
        "server": {
            "before_load": before,
            "with_half_open_held": during,
            "after_load": after,
            "rss_growth_mb": round(after["rss_mb"] - before["rss_mb"], 1),
        },
        "server_exit_code_on_sigterm": code,
        "server_log_tracebacks": stderr.count("Traceback"),
        "server_log_lines": len(stderr.splitlines()),
        "server_ready_s": round(ready_s, 2),
    }
    passed = (
        not errors
        and hostile_failed == 0
        and len(outcomes) == args.requests
        and code == 0
        and "Traceback" not in stderr
    )
    result = {"bundle": str(args.bundle), "environment": environment(args.threads), **summary, "passed": passed}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0 if passed else 3


if __name__ == "__main__":
    sys.exit(main())
