"""What the commands share: the one-line error exit, SIGTERM handling, the output options every command
takes (``--quiet``/``--verbose``, ``--json``, ``-o -``) and the bundle runtime options.

Exit codes: 0 success, 1 internal error, 2 bad input or usage, 3 a check failed; 130 interrupted
(Ctrl-C), 143 terminated (SIGTERM).

Streams: a command's result (a table, or with ``--json`` one JSON document) goes to stdout; progress
bars, notes ("wrote ..."), warnings and errors go to stderr, so ``edgekit X --json | jq`` always
reads one document. Colour is used only when the stream is a terminal and ``NO_COLOR`` is unset.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

STDOUT = "-"  # `-o -`: write to stdout instead of a file


def use_colour(stream=None) -> bool:
    """Whether to colour what goes to ``stream`` (stderr by default): only a terminal, never with ``NO_COLOR``
    set to anything non-empty (https://no-color.org) or ``TERM=dumb``."""
    stream = sys.stderr if stream is None else stream
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def _paint(text: str, stream, **style: Any) -> str:
    return click.style(text, **style) if use_colour(stream) else text


def fail(message: str, code: int) -> None:
    click.echo(f"edgekit: {_paint('error:', sys.stderr, fg='red', bold=True)} {message}", err=True)
    sys.exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a CI cancel, `timeout`): unwinds like Ctrl-C, so the same clean-up runs."""


def on_sigterm(_signum, _frame) -> None:
    raise Terminated()


def interrupted(exc: BaseException | None) -> None:
    if isinstance(exc, Terminated):
        fail("terminated (SIGTERM)", 143)
    fail("interrupted", 130)


# --- verbosity, --json and `-o -` --------------------------------------------------------------------

QUIET, NORMAL, VERBOSE = 0, 1, 2


@dataclass(frozen=True)
class Console:
    """How a command talks to its user. ``level``: 0 ``--quiet`` (results and errors only), 1 the default
    (progress bars and notes on stderr), 2 ``--verbose`` (also details, and the traceback of an internal
    error). ``json``: the command prints one JSON document on stdout and nothing else there."""

    level: int = NORMAL
    json: bool = False

    @property
    def progress(self) -> bool:
        """Whether to show progress bars (on stderr)."""
        return self.level >= NORMAL

    @property
    def verbose(self) -> bool:
        return self.level >= VERBOSE

    def result(self, text: str) -> None:
        """A human-readable result (stdout); nothing with ``--json``, whose document is the result."""
        if not self.json:
            click.echo(text)

    def note(self, text: str) -> None:
        """What the user may want to know (what was written, picked or skipped): stdout with the human
        result, stderr beside a JSON document; not with ``--quiet``."""
        if self.level >= NORMAL:
            click.echo(text, err=self.json)

    def info(self, text: str) -> None:
        """Progress-like information: stderr, not with ``--quiet``."""
        if self.level >= NORMAL:
            click.echo(text, err=True)

    def detail(self, text: str) -> None:
        """Only with ``--verbose``: stderr."""
        if self.level >= VERBOSE:
            click.echo(text, err=True)

    def warn(self, text: str) -> None:
        """A warning: stderr, always (``--quiet`` too)."""
        click.echo(f"edgekit: {_paint('warning:', sys.stderr, fg='yellow', bold=True)} {text}", err=True)

    @contextlib.contextmanager
    def results_only(self) -> Iterator[None]:
        """With ``--json``: while inside, whatever else writes to stdout (a library's print, a native
        library's own writes to file descriptor 1) goes to stderr, so stdout holds the one document."""
        if not self.json:
            yield
            return
        sys.stdout.flush()
        try:
            fd = sys.stdout.fileno()
            saved: int | None = os.dup(fd)
            os.dup2(sys.stderr.fileno(), fd)
        except (AttributeError, OSError, ValueError):  # no real descriptor (captured in tests, embedded)
            fd, saved = -1, None
        try:
            with contextlib.redirect_stdout(sys.stderr):
                yield
        finally:
            if saved is not None:
                with contextlib.suppress(OSError, ValueError):
                    sys.stdout.flush()
                os.dup2(saved, fd)
                os.close(saved)

    def emit_json(self, obj: Any, text: str | None = None) -> None:
        """Print ``obj`` (or the already serialised ``text``) as the command's one JSON document on stdout."""
        click.echo((text if text is not None else json.dumps(obj, indent=2)).rstrip("\n"))


_current = Console()


def current() -> Console:
    """The console of the command running now (the default one outside a command)."""
    return _current


def output_options(json_help: str | None = None):
    """The options every command takes: ``--quiet/-q`` and ``--verbose/-v`` (and ``--json`` when
    ``json_help`` is given). The command receives them as one ``console`` argument (a :class:`Console`)."""

    def decorate(f):
        @functools.wraps(f)
        def wrapper(*args, quiet: bool, verbose: bool, **kwargs):
            global _current
            as_json = bool(kwargs.pop("as_json", False))
            if quiet and verbose:
                raise click.UsageError("--quiet and --verbose contradict each other; give one")
            _current = Console(QUIET if quiet else VERBOSE if verbose else NORMAL, as_json)
            if verbose:
                _verbose_logging()
            return f(*args, console=_current, **kwargs)

        if json_help is not None:
            wrapper = click.option("--json", "as_json", is_flag=True, help=json_help)(wrapper)
        wrapper = click.option(
            "--verbose", "-v", is_flag=True, help="More detail on stderr, and the traceback of an internal error."
        )(wrapper)
        return click.option(
            "--quiet",
            "-q",
            is_flag=True,
            help="No progress bars or notes on stderr: only results, warnings and errors.",
        )(wrapper)

    return decorate


def describe_run(console: Console, report: dict) -> None:
    """``--verbose``: where and on what a report was measured, and each row's file and runtime details."""
    if not console.verbose:
        return
    env, settings = report.get("environment") or {}, report.get("settings") or {}
    cpu = env.get("cpu") or {}
    console.detail(
        f"measured on {report.get('target', 'local')}: {cpu.get('model', '?')} ({cpu.get('logical_cores', '?')} "
        f"logical cores), runs {settings.get('runs')}, warm-up {settings.get('warmup')}"
    )
    for key in ("inputs", "calibration", "heldout"):
        if settings.get(key):
            console.detail(f"{key}: {settings[key]}")
    for row in report.get("results", []):
        details = row.get("runtime_details") or {}
        extra = ", ".join(f"{k} {v}" for k, v in details.items())
        console.detail(f"{row['name']}: {row.get('path', '')} on {row['runtime']}" + (f" ({extra})" if extra else ""))


def _verbose_logging() -> None:
    """``--verbose``: edgekit's own log records (INFO and up) on stderr."""
    import logging

    logger = logging.getLogger("edgekit")
    if not any(getattr(h, "_edgekit_verbose", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("edgekit: %(name)s: %(message)s"))
        handler._edgekit_verbose = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def is_stdout(path: object) -> bool:
    """Whether an output path given on the command line is ``-`` (stdout)."""
    return path is not None and str(path) == STDOUT


def refuse_stdout(path: object, option: str, what: str) -> None:
    """``-o -`` for an output that is a directory: bad input, saying what to do instead."""
    if is_stdout(path):
        raise click.BadParameter(
            f"{what} is a directory, which stdout cannot hold; name a directory", param_hint=option
        )


def claim_output(path: Path | None, overwrite: bool) -> None:
    """Check an output file may be written (refused now, not after the work); ``-`` (stdout) always may."""
    if path is not None and not is_stdout(path):
        from edgekit.output import claim_file

        claim_file(path, overwrite)


def write_output(path: Path, text: str, *, overwrite: bool, console: Console) -> None:
    """Write ``text`` to the output file ``path`` (under edgekit's overwrite rules), or to stdout for ``-``."""
    if is_stdout(path):
        click.echo(text.rstrip("\n"))
        return
    from edgekit.output import write_file

    write_file(path, text, overwrite=overwrite)
    console.note(f"wrote {path}")


def runtime_options(f):
    f = click.option("--threads", "-t", type=click.IntRange(min=1), help="Threads (default: up to 4).")(f)
    f = click.option("--variant", help="Which model of the bundle (default: the first whose runtime is installed).")(f)
    return click.option("--runtime", help="Runtime adapter (see `edgekit runtimes`).")(f)
