"""Load test for `edgekit serve`: many requests from a local load generator, bad ones mixed in.

    python benchmarks/serve_load.py --bundle BUNDLE [--requests 1000] [--concurrency 4]

Starts `edgekit serve BUNDLE` in a child process on a free port, sends
``--requests`` POST /predict requests (one held-out sentence each) from
``--concurrency`` client threads, and after every 100th sends a malformed JSON
body and an oversized body, which must get 400 and 413 while the server keeps
serving. Writes benchmarks/results/serve_load.json with the client-side
latency percentiles (request sent to response read, on this machine; the
server and the load generator share its 2 cores).
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edgekit.calibration import load_text_data
from edgekit.environment import environment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port: int, body: bytes, content_type: str = "application/json") -> tuple[int, float]:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": content_type})
        resp = conn.getresponse()
        payload = json.loads(resp.read())
        if resp.status == 200 and "embeddings" not in payload and "predictions" not in payload:
            return 599, 0.0
        return resp.status, (time.perf_counter() - t0) * 1000.0
    finally:
        conn.close()


def wait_ready(port: int, proc: subprocess.Popen, timeout_s: float = 120.0) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return time.perf_counter() - t0
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not come up")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", required=True, type=Path)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2, help="inference threads of the server")
    ap.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "serve_load.json")
    args = ap.parse_args()

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", "serve", str(args.bundle), "--port", str(port),
                             "--threads", str(args.threads), "--max-body-bytes", "65536"],
                            stderr=subprocess.PIPE, text=True)
    try:
        ready_s = wait_ready(port, proc)
        texts = load_text_data().heldout
        bodies = [json.dumps({"texts": [texts[i % len(texts)]]}).encode() for i in range(args.requests)]
        for b in bodies[:10]:  # warm-up, not counted
            call(port, b)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            results = list(pool.map(lambda b: call(port, b), bodies))
        wall = time.perf_counter() - t0
        bad = []
        for _ in range(args.requests // 100):
            bad.append(("malformed", call(port, b'{"texts": ["unterminated')[0]))
            bad.append(("oversized", call(port, json.dumps({"texts": ["x" * 70000]}).encode())[0]))
        alive = call(port, bodies[0])[0]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ok = [ms for status, ms in results if status == 200]
    errors = len(results) - len(ok)
    lat = np.array(ok)
    summary = {
        "requests": len(results), "errors": errors, "concurrency": args.concurrency,
        "server_threads": args.threads, "wall_s": round(wall, 2), "requests_per_s": round(len(results) / wall, 1),
        "latency_ms": {f"p{q}": round(float(np.percentile(lat, q)), 2) for q in (50, 90, 99)} if len(lat) else {},
        "bad_requests": {"malformed_400": sum(1 for k, s in bad if k == "malformed" and s == 400),
                         "oversized_413": sum(1 for k, s in bad if k == "oversized" and s == 413),
                         "sent": len(bad)},
        "served_after_bad_requests": alive == 200,
        "server_ready_s": round(ready_s, 2),
    }
    passed = errors == 0 and summary["bad_requests"]["malformed_400"] + summary["bad_requests"]["oversized_413"] \
        == len(bad) and alive == 200
    result = {"bundle": str(args.bundle), "environment": environment(args.threads), **summary, "passed": passed}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0 if passed else 3


if __name__ == "__main__":
    sys.exit(main())
