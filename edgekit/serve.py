"""``edgekit serve``: a small JSON-over-HTTP endpoint for a bundle, standard library only.

    GET  /health            {"status": "ok"}
    GET  /info              the bundle, variant, runtime and limits
    POST /embed             {"texts": [...]} -> {"embeddings": [[...], ...], "dim": D}
    POST /classify          {"texts": [...]} -> {"predictions": [{"label", "score", "scores"}, ...]}
                            image bundles: {"images": [base64 of an image file, ...]} or
                            {"arrays": [HxW or HxWxC pixel lists, ...]}; the same predictions
    POST /predict           whichever of these the bundle's task is

Image requests carry the pixels, never a path: the server opens no file a
client names.

Errors are JSON ``{"error": "..."}`` with a 4xx status: 400 malformed JSON or
fields, 404 unknown path, 405 wrong method, 411 no Content-Length, 413 body or
batch over the limits, 415 not JSON, 422 a call the bundle's task does not
have. One bad request never stops the server.
"""

from __future__ import annotations

import json
import sys
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from edgekit.errors import InputError
from edgekit.inference import BundleModel, check_images, check_texts

DRAIN_LIMIT = 64 << 20  # bodies beyond this are not read: the connection is closed


class RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _texts(body: dict, max_texts: int) -> list[str]:
    texts = body.get("texts")
    if texts is None and isinstance(body.get("text"), str):
        texts = [body["text"]]
    if not isinstance(texts, list):
        raise RequestError(HTTPStatus.BAD_REQUEST, 'expected {"texts": ["...", ...]}')
    if len(texts) > max_texts:
        raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"{len(texts)} texts; at most {max_texts} per request")
    try:
        return check_texts(texts)
    except InputError as err:
        raise RequestError(HTTPStatus.BAD_REQUEST, err.message) from None


IMAGE_FIELDS = 'send {"images": [base64 of an image file, ...]} or {"arrays": [HxW or HxWxC pixel lists, ...]}'


def _images(body: dict, max_images: int) -> list[np.ndarray]:
    """Decoded images from ``images`` (base64 file contents) or ``arrays`` (nested pixel lists)."""
    import base64
    import binascii

    given = [k for k in ("images", "arrays") if k in body]
    if len(given) != 1 or not isinstance(body[given[0]], list):
        hint = "this bundle classifies images, not texts: " if "texts" in body or "text" in body else ""
        raise RequestError(HTTPStatus.BAD_REQUEST, hint + IMAGE_FIELDS)
    items = body[given[0]]
    if len(items) > max_images:
        raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"{len(items)} images; at most {max_images} per request")
    decoded = []
    for i, item in enumerate(items):
        if given[0] == "images":
            if not isinstance(item, str):
                raise RequestError(HTTPStatus.BAD_REQUEST, f"image {i}: expected a base64 string")
            try:
                decoded.append(base64.b64decode(item, validate=True))
            except (binascii.Error, ValueError):
                raise RequestError(HTTPStatus.BAD_REQUEST, f"image {i}: not valid base64") from None
        else:
            try:
                arr = np.asarray(item)
            except ValueError:  # ragged rows
                arr = np.asarray(None)
            if arr.dtype.kind not in "uif":
                raise RequestError(HTTPStatus.BAD_REQUEST, f"array {i}: expected rows of numbers, HxW or HxWxC")
            decoded.append(arr)
    try:
        return check_images(decoded)
    except InputError as err:
        raise RequestError(HTTPStatus.BAD_REQUEST, err.message) from None
    except ImportError as err:  # Pillow missing on the device: arrays still work
        raise RequestError(HTTPStatus.NOT_IMPLEMENTED, f"{err}; or send arrays") from None


def make_handler(model: BundleModel, max_body_bytes: int, max_texts: int, quiet: bool = True):
    routes = {"/embed": ("feature-extraction",), "/classify": ("text-classification", "image-classification"),
              "/predict": None}

    class Handler(BaseHTTPRequestHandler):
        server_version = "edgekit"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # noqa: D102 - one line per request unless quiet
            if not quiet:
                sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

        def _send(self, status: HTTPStatus, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: HTTPStatus, message: str, close: bool = False) -> None:
            if close:
                self.close_connection = True
            self._send(status, {"error": message})

        def do_GET(self):  # noqa: N802
            if self.path == "/health":
                self._send(HTTPStatus.OK, {"status": "ok"})
            elif self.path == "/info":
                self._send(HTTPStatus.OK, {**model.info(), "max_body_bytes": max_body_bytes, "max_texts": max_texts})
            elif self.path in routes:
                self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.path} takes POST")
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no endpoint {self.path}")

        def _body(self) -> dict:
            length = self.headers.get("Content-Length")
            if length is None:
                raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
            try:
                n = int(length)
            except ValueError:
                raise RequestError(HTTPStatus.BAD_REQUEST, "Content-Length is not a number") from None
            if n < 0:
                raise RequestError(HTTPStatus.BAD_REQUEST, "Content-Length is negative")
            if n > max_body_bytes:
                self._drain(n)
                raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body of {n} bytes; the limit is {max_body_bytes}")
            ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
            raw = self.rfile.read(n)
            if ctype != "application/json":
                raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"Content-Type {ctype}; send application/json")
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise RequestError(HTTPStatus.BAD_REQUEST, f"malformed JSON: {err}") from None
            if not isinstance(body, dict):
                raise RequestError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
            return body

        def _drain(self, n: int) -> None:
            """Read and drop an over-limit body (up to DRAIN_LIMIT) so the client gets the 413, not a reset."""
            left = min(n, DRAIN_LIMIT)
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)

        def do_POST(self):  # noqa: N802
            if self.path not in routes:
                # the body is not read: close so it is not taken for the next request
                return self._error(HTTPStatus.NOT_FOUND, f"no endpoint {self.path}", close=True)
            try:
                body = self._body()
                wanted = routes[self.path]
                if wanted is not None and model.task not in wanted:
                    raise RequestError(HTTPStatus.UNPROCESSABLE_ENTITY,
                                       f"this bundle is a {model.task} model; {self.path} is for "
                                       f"{' and '.join(wanted)}")
                inputs = (_images if model.task == "image-classification" else _texts)(body, max_texts)
                t0 = time.perf_counter()
                result = model.predict(inputs)  # embeddings, or predictions for texts or images
                if isinstance(result, np.ndarray):
                    payload = {"embeddings": result.round(7).tolist(), "dim": int(result.shape[1])}
                else:
                    payload = {"predictions": [p.as_dict() for p in result]}
                payload["ms"] = round((time.perf_counter() - t0) * 1000.0, 3)
                self._send(HTTPStatus.OK, payload)
            except RequestError as err:
                unread = err.status in (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, HTTPStatus.LENGTH_REQUIRED)
                self._error(err.status, err.message, close=unread)
            except Exception as err:  # noqa: BLE001 - the server keeps serving
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(err).__name__}: {err}")

        def do_PUT(self):  # noqa: N802
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, "use GET or POST", close=True)

        do_DELETE = do_PATCH = do_PUT

    return Handler


def make_server(model: BundleModel, host: str, port: int, *, max_body_bytes: int = 1 << 20,
                max_texts: int = 64, quiet: bool = True) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), make_handler(model, max_body_bytes, max_texts, quiet))
    server.daemon_threads = True
    return server
