"""``edgekit serve``: a small JSON-over-HTTP endpoint for a bundle, on the waitress HTTP server.

    GET  /health            {"status": "ok"}
    GET  /info              the bundle, variant, runtime and limits
    POST /embed             {"texts": [...]} -> {"embeddings": [[...], ...], "dim": D}
    POST /classify          {"texts": [...]} -> {"predictions": [{"label", "score", "scores"}, ...]}
                            image bundles: {"images": [base64 of an image file, ...]} or
                            {"arrays": [HxW or HxWxC pixel lists, ...]}; the same predictions
    POST /<task endpoint>   every other task's own route ({"<its request field>": [...]}; see edgekit.tasks)
    POST /predict           whichever of these the bundle's task is

Image requests carry the pixels, never a path: the server opens no file a
client names.

Every response is JSON. Errors are ``{"error": "..."}``: 400 malformed
request line, headers, Content-Length or JSON, a GET with a body; 404 unknown
path; 405 wrong method (with ``Allow``); 408 headers or body not received in
time; 411 no Content-Length; 413 body or batch over the limits; 415 not JSON;
422 a call the bundle's task does not have; 431 headers over the limit; 500 a
bug (its one-line reason goes to the log, not to the client). Whenever the
server closes a connection after a response, the response says
``Connection: close``; a request body is always read whole (waitress's parser)
or the connection is closed, so a body is never taken for the next request.

waitress parses HTTP/1.1 and runs the app on a bounded pool of threads; this
module adds the JSON app, JSON protocol errors, header/body/idle deadlines,
one log line per request and a graceful stop (stop accepting, answer what is
in flight, close). It imports no torch.

Numbers: one policy with ``edgekit run`` (both print what the task's ``as_json`` gives): embeddings
rounded to 7 decimals, probabilities and scores to 6, latencies (``ms``) to 3.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass
from http import HTTPStatus

import numpy as np

from edgekit.device.runtime_api import BundleModel, check_images
from edgekit.errors import InputError, RuntimeUnavailableError, ServeError
from edgekit.tasks import Task, all_tasks

try:
    from waitress import wasyncore
    from waitress.channel import HTTPChannel
    from waitress.parser import HTTPRequestParser, ParsingError
    from waitress.server import create_server
    from waitress.task import ErrorTask, WSGITask
    from waitress.utilities import BadRequest, RequestEntityTooLarge
except ModuleNotFoundError as _err:  # a runtime-only install without the server's one dependency
    raise RuntimeUnavailableError(
        f"edgekit serve needs waitress ({_err}): pip install 'edgekit-ml[onnxruntime]' "
        "(or [litert], [gpu]), or pip install waitress"
    ) from None

EMBEDDING_DECIMALS = 7  # as the embeddings task's as_json rounds them (what `edgekit run` prints)
TICK_S = 0.2  # how often the loop looks at deadlines and at a stop request
LINGER_S, LINGER_BYTES = 2.0, 16 << 20  # after the server ends a connection: what it still reads and drops
MAX_HEADER_BYTES = 16 << 10  # request line plus headers; more gets 431


@dataclass(frozen=True)
class Limits:
    """What one client may take: sizes, counts, time. ``edgekit serve`` exposes each as an option."""

    max_body_bytes: int = 1 << 20
    max_texts: int = 64
    concurrency: int = 4  # requests worked on at once (threads); the model itself runs one batch at a time
    max_connections: int = 64  # open connections; more wait in the listen backlog
    header_timeout: float = 10.0  # from a request's first byte to the end of its headers
    body_timeout: float = 30.0  # from the end of the headers to the end of the body
    idle_timeout: float = 60.0  # a keep-alive connection with no request in progress
    grace: float = 10.0  # on stop: how long requests in flight get to finish


class RequestError(Exception):
    def __init__(
        self, status: HTTPStatus, message: str, *, close: bool = False, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.close, self.headers = status, message, close, headers


_say_lock = threading.Lock()


def _say(line: str) -> None:
    """One line to stderr, whole, even with many threads; a closed stderr is not an error."""
    with _say_lock:
        try:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def _printable(text: str, limit: int = 200) -> str:
    """A client-chosen string made safe for a log line: no control characters, bounded length."""
    out = "".join(
        c if " " < c < "\x7f" else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" for c in text[:limit]
    )
    return out + ("..." if len(text) > limit else "")


class _OneLine(logging.Handler):
    """waitress's own warnings (connection limit reached, ...) as one line each, never a traceback."""

    def emit(self, record: logging.LogRecord) -> None:
        _say("edgekit serve: " + (record.getMessage().splitlines() or [record.levelname])[0])


def _quiet_waitress_logging() -> None:
    log = logging.getLogger("waitress")
    if not any(isinstance(h, _OneLine) for h in log.handlers):
        log.addHandler(_OneLine(logging.WARNING))
    log.setLevel(logging.WARNING)
    log.propagate = False
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "queue depth is N": normal under load


def _texts(body: dict, max_texts: int, task: Task) -> list:
    """The request's items (texts, or what the task takes) from its ``task.request_field``, checked."""
    field = task.request_field
    texts = body.get(field)
    if texts is None and field == "texts" and isinstance(body.get("text"), str):
        texts = [body["text"]]
    if not isinstance(texts, list):
        example = '["...", ...]' if field == "texts" else "[...]"
        raise RequestError(HTTPStatus.BAD_REQUEST, f'expected {{"{field}": {example}}}')
    if len(texts) > max_texts:
        raise RequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"{len(texts)} {field}; at most {max_texts} per request"
        )
    try:
        texts = task.check_items([task.item_from_json(t) for t in texts])
    except InputError as err:
        raise RequestError(HTTPStatus.BAD_REQUEST, err.message) from None
    for i, item in enumerate(texts):
        try:
            for text in item if isinstance(item, tuple) else (item,):
                text.encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"text {i} is not valid Unicode (a lone surrogate)") from None
    return texts


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
        raise RequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"{len(items)} images; at most {max_images} per request"
        )
    decoded: list[bytes | np.ndarray] = []
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
            except ValueError:  # ragged rows, or nested deeper than numpy's 64 dimensions
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


ROUTES = {
    "/health": ("GET", "HEAD"),
    "/info": ("GET", "HEAD"),
    **{t.endpoint: ("POST",) for t in all_tasks()},  # each task's own route (/embed, /classify, /answer, ...)
    "/predict": ("POST",),
}


class App:
    """The WSGI application: routing, JSON in and out, one log line per request."""

    def __init__(self, model: BundleModel, limits: Limits, quiet: bool) -> None:
        self.model, self.limits, self.quiet = model, limits, quiet
        self.draining = False  # set on stop: responses say Connection: close

    def __call__(self, environ: dict, start_response):
        t0 = time.perf_counter()
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        close = self.draining
        headers: tuple[tuple[str, str], ...] = ()
        try:
            status, payload, headers = self._route(environ, method, path)
        except RequestError as err:
            status, payload, headers, close = err.status, {"error": err.message}, err.headers, close or err.close
        except Exception as err:  # noqa: BLE001 - a bug answers 500 and the server keeps serving
            _say(
                f"edgekit serve: internal error on {method} {_printable(path)}: {type(err).__name__}: "
                f"{_printable(str(err), 500)}"
            )
            status, payload = (
                HTTPStatus.INTERNAL_SERVER_ERROR,
                {"error": "internal error; the server log has the reason"},
            )
        if close:
            environ["edgekit.close"]()
        body = json.dumps(payload).encode()
        start_response(
            f"{status.value} {status.phrase}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers],
        )
        if not self.quiet:
            _say(f"{method} {_printable(path)} {status.value} {(time.perf_counter() - t0) * 1000.0:.1f}ms")
        return [] if method == "HEAD" else [body]

    def _route(self, environ: dict, method: str, path: str) -> tuple[HTTPStatus, dict, tuple]:
        allowed = ROUTES.get(path)
        if path == "*" and method == "OPTIONS":
            every = ["GET", "HEAD", "POST", "OPTIONS"]
            return HTTPStatus.OK, {"allow": every}, (("Allow", ", ".join(every)),)
        if allowed is None:
            raise RequestError(HTTPStatus.NOT_FOUND, f"no endpoint {path}; see GET /info")
        allow = (("Allow", ", ".join((*allowed, "OPTIONS"))),)
        if method == "OPTIONS":
            return HTTPStatus.OK, {"allow": [*allowed, "OPTIONS"]}, allow
        if method not in allowed:
            raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes {allowed[0]}", headers=allow)
        if method in ("GET", "HEAD"):
            if int(environ.get("CONTENT_LENGTH") or 0):  # content a proxy might not have counted: close
                raise RequestError(HTTPStatus.BAD_REQUEST, f"{method} takes no body", close=True)
            if path == "/health":
                return HTTPStatus.OK, {"status": "ok"}, ()
            return HTTPStatus.OK, {**self.model.info(), **asdict(self.limits)}, ()
        return HTTPStatus.OK, self._predict(path, self._body(environ)), ()

    def _body(self, environ: dict) -> dict:
        """The JSON object sent; waitress has read the body whole and checked its length against the limit."""
        length = environ.get("CONTENT_LENGTH")
        if not length:
            # without a length, bytes a client sent after the headers cannot be told from a next request: close
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required", close=True)
        raw = environ["wsgi.input"].read(int(length))
        ctype = (environ.get("CONTENT_TYPE") or "application/json").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise RequestError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"Content-Type {_printable(ctype, 80)}; send application/json"
            )
        try:
            body = json.loads(raw)
        except RecursionError:
            raise RequestError(HTTPStatus.BAD_REQUEST, "malformed JSON: nested too deeply") from None
        except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, an integer of too many digits
            raise RequestError(HTTPStatus.BAD_REQUEST, f"malformed JSON: {err}") from None
        if not isinstance(body, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        return body

    def _predict(self, path: str, body: dict) -> dict:
        wanted = [t.name for t in all_tasks() if t.endpoint == path]  # empty for /predict: every task
        if wanted and self.model.task_def.endpoint != path:
            raise RequestError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                f"this bundle is a {self.model.task} model; {path} is for {' and '.join(wanted)}",
            )
        image = self.model.task_def.is_image
        task = self.model.task_def
        inputs = _images(body, self.limits.max_texts) if image else _texts(body, self.limits.max_texts, task)
        t0 = time.perf_counter()
        result = self.model.predict(inputs)  # embeddings, predictions, answers, entities...
        key = task.response_key  # what the task calls its list of results
        if isinstance(result, np.ndarray):
            # the float policy `edgekit run` shares (the tasks' as_json): embeddings to 7 decimals, scores to 6
            payload = {
                key: [[round(float(x), EMBEDDING_DECIMALS) for x in row] for row in result],
                "dim": int(result.shape[1]),
            }
        else:
            payload = {key: task.as_json(result)}
        payload["ms"] = round((time.perf_counter() - t0) * 1000.0, 3)
        return payload


class RequestTimeout(BadRequest):
    code = 408
    reason = "Request Timeout"


class _Parser(HTTPRequestParser):
    """waitress's parser, stricter where a front proxy and this server could disagree on a body's end."""

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        if self.chunked and "CONTENT_LENGTH" in self.headers:
            raise ParsingError("both Transfer-Encoding and Content-Length; send one")
        if "TRANSFER_ENCODING" in self.headers:  # waitress reads it only in HTTP/1.1 (and removes it there)
            raise ParsingError(f"Transfer-Encoding in an HTTP/{self.version} request")
        if self.version not in ("1.0", "1.1", ""):  # "": HTTP/0.9, answered as 1.0
            raise ParsingError(f"HTTP/{self.version} is not supported; use HTTP/1.1")


def _close_after(task: ErrorTask | WSGITask) -> None:
    """End the connection after this response, and say so (``Connection: close``, also to HTTP/1.0 keep-alive)."""
    task.request.headers["CONNECTION"] = "close"
    task.set_close_on_finish()


class _Task(WSGITask):
    def get_environment(self) -> dict:
        environ = super().get_environment()
        environ["edgekit.close"] = lambda: _close_after(self)  # the app's way to end the connection
        return environ


class _ErrorTask(ErrorTask):
    """A protocol error (bad request line, header, length; too large; too slow) as JSON, then close."""

    def execute(self) -> None:
        t0 = time.perf_counter()
        err, request = self.request.error, self.request
        srv: Server = self.channel.server.edgekit
        message = err.body
        if isinstance(err, RequestEntityTooLarge):
            limit = srv.limits.max_body_bytes
            message = (
                f"body of {request.content_length} bytes; the limit is {limit}"
                if request.content_length
                else f"body over the limit of {limit} bytes"
            )
        elif err.code == 431:
            message = f"request line and headers over {MAX_HEADER_BYTES} bytes"
        elif err.code == 500:
            message = "internal error; the server log has the reason"
        body = json.dumps({"error": message}).encode()
        self.status = f"{err.code} {err.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        _close_after(self)
        self.content_length = len(body)
        head = getattr(request, "command", None) == "HEAD"
        self.write(b"" if head else body)
        if not srv.quiet:
            known = err.code != 431  # waitress fills in "GET /" when the headers are too large to parse
            method, path = (getattr(request, a, None) or "-" if known else "-" for a in ("command", "path"))
            _say(f"{_printable(method, 20)} {_printable(path)} {err.code} {(time.perf_counter() - t0) * 1000:.1f}ms")


class _Channel(HTTPChannel):
    """One connection; notes when its current request began and when its headers ended, for the deadlines.

    When the server ends a connection it does not close the socket at once: it shuts its sending side and
    reads and drops what the client still sends (an oversized body, the rest of too-large headers) for up to
    LINGER_S, so the client reads the error response instead of a reset.
    """

    task_class = _Task
    error_task_class = _ErrorTask
    parser_class = _Parser
    began = 0.0  # monotonic time of the current partial request's first byte
    headers_at: float | None = None  # ... and of the end of its headers
    linger_until: float | None = None
    lingered = 0  # bytes read and dropped while lingering

    def handle_close(self) -> None:
        if self.linger_until is None and self.will_close and self.connected:
            try:
                self.socket.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            else:
                self.linger_until = time.monotonic() + LINGER_S
                return
        super().handle_close()

    def readable(self) -> bool:
        return True if self.linger_until is not None else super().readable()

    def writable(self) -> bool:
        return False if self.linger_until is not None else super().writable()

    def handle_read(self) -> None:
        if self.linger_until is None:
            return super().handle_read()
        try:
            self.lingered += len(self.recv(1 << 16))  # recv closes the channel at the client's end of stream
        except OSError:
            super().handle_close()
            return
        if self.lingered > LINGER_BYTES and self.connected:
            super().handle_close()

    def received(self, data: bytes) -> bool:
        before = self.request
        out = super().received(data)
        now = time.monotonic()
        if self.request is not None and self.request is not before:
            self.began, self.headers_at = now, None
        if self.request is not None and self.request.headers_finished and self.headers_at is None:
            self.headers_at = now
        return out


class Server:
    """waitress on one listening socket, with JSON errors, request deadlines and a graceful stop."""

    def __init__(self, app: App, sock: socket.socket, limits: Limits, quiet: bool) -> None:
        self.app, self.limits, self.quiet = app, limits, quiet
        self.server_address = sock.getsockname()[:2]
        self._map: dict = {}
        self._stopping = False
        self._done = threading.Event()
        self._done.set()
        _quiet_waitress_logging()
        self._srv = create_server(
            app,
            map=self._map,
            sockets=[sock],
            threads=limits.concurrency,
            ident="edgekit",
            connection_limit=limits.max_connections + 2,  # waitress counts its listening socket and wake-up pipe
            max_request_body_size=limits.max_body_bytes + 1,  # waitress refuses a body >= this
            max_request_header_size=MAX_HEADER_BYTES,
            channel_timeout=86400,  # idle deadlines are ours: _sweep
            log_socket_errors=False,
            expose_tracebacks=False,
            asyncore_use_poll=True,
        )
        self._srv.channel_class = _Channel
        self._srv.edgekit = self

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` (SIGTERM, SIGINT) or :meth:`shutdown`, then drain and return."""
        self._done.clear()
        try:
            while not self._stopping:
                wasyncore.loop(timeout=TICK_S, map=self._map, use_poll=True, count=1)
                self._sweep()
            self._drain()
        finally:
            self._done.set()

    def stop(self) -> None:
        """Ask the loop to stop; safe in a signal handler (it only sets a flag)."""
        self._stopping = True

    def shutdown(self) -> None:
        """Stop and wait until the requests in flight are answered (from another thread)."""
        self.stop()
        self._done.wait()

    def server_close(self) -> None:
        wasyncore.close_all(self._map)
        self._srv.task_dispatcher.shutdown(timeout=1)

    def _channels(self) -> list[_Channel]:
        return list(self._srv.active_channels.values())

    def _sweep(self) -> None:
        """Close idle connections; answer 408 where headers or a body are too slow to arrive."""
        now, wall = time.monotonic(), time.time()
        lim = self.limits
        for ch in self._channels():
            if ch.linger_until is not None and now > ch.linger_until:
                HTTPChannel.handle_close(ch)
            if ch.will_close or ch.close_when_flushed:
                continue
            if ch.requests:  # being served: the clocks run only while the server waits for the client
                ch.began = now
                ch.headers_at = None if ch.headers_at is None else now
            elif ch.request is None:
                if wall - ch.last_activity > lim.idle_timeout and not ch.total_outbufs_len:
                    ch.will_close = True
            elif ch.headers_at is None and now - ch.began > lim.header_timeout:
                self._time_out(ch, f"headers not received within {lim.header_timeout:g} s")
            elif ch.headers_at is not None and now - ch.headers_at > lim.body_timeout:
                self._time_out(ch, f"body not received within {lim.body_timeout:g} s")

    def _time_out(self, ch: _Channel, message: str) -> None:
        late = _Parser(self._srv.adj)
        late.error, late.completed, late.version = RequestTimeout(message), True, "1.1"
        with ch.requests_lock:
            partial, ch.request = ch.request, None
            late.command, late.path = getattr(partial, "command", "-"), getattr(partial, "path", "-")
            partial.close()
            ch.requests.append(late)
        self._srv.add_task(ch)

    def _drain(self) -> None:
        """Stop accepting, let requests in flight finish (up to ``grace``), close every connection."""
        self.app.draining = True
        wasyncore.dispatcher.close(self._srv)  # the listening socket only; waitress's close() also ends the pipe
        deadline = time.monotonic() + self.limits.grace
        while time.monotonic() < deadline:
            for ch in self._channels():
                if not ch.requests and ch.request is None and not ch.total_outbufs_len:
                    ch.will_close = True
            if not self._channels():
                break
            wasyncore.loop(timeout=TICK_S, map=self._map, use_poll=True, count=1)
            self._sweep()
        unanswered = sum(len(ch.requests) for ch in self._channels())
        if unanswered:
            _say(f"edgekit serve: stopped after {self.limits.grace:g} s with {unanswered} request(s) unanswered")


def _listen(host: str, port: int) -> socket.socket:
    """A bound TCP socket for ``host:port`` (the first address the name resolves to), or a one-line error."""
    where = f"{host}:{port}"
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as err:
        raise ServeError(f"cannot listen on {where}: unknown host ({getattr(err, 'strerror', None) or err})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as err:
        sock.close()
        hint = "; pick another --port, or --port 0 for any free one" if err.errno == errno.EADDRINUSE else ""
        raise ServeError(f"cannot listen on {where}: {err.strerror or err}{hint}") from None
    return sock


def make_server(model: BundleModel, host: str, port: int, *, quiet: bool = True, **limits) -> Server:
    """A server for ``model`` on ``host:port`` (0: any free port; see ``server_address``), not yet serving.

    ``limits`` are :class:`Limits` fields. Run it with ``serve_forever()``; ``stop()`` (from a signal
    handler) or ``shutdown()`` (from another thread) ends it gracefully; ``server_close()`` frees it.
    """
    lim = Limits(**limits)
    return Server(App(model, lim, quiet), _listen(host, port), lim, quiet)
