"""The ``edgekit`` command line.

Exit codes: 0 success, 1 internal error, 2 bad input or usage, 3 a check failed
(export parity, accuracy budget, regression gate). Heavy libraries are imported
inside the commands that need them, so ``edgekit --help`` is instant.
"""

from __future__ import annotations

import sys
import traceback

import click

from edgekit import __version__
from edgekit.cli import bench, bundle, compress, diff, finetune, recipes, report, run, runtimes, serve
from edgekit.cli.common import current, fail, interrupted, on_sigterm
from edgekit.errors import EdgekitError, ExitCode


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edgekit")
def cli() -> None:
    """Compress trained Transformers for edge devices.

    \b
    Typical use:
      edgekit compress minilm --recipe ptq-dynamic --output out/dyn
      edgekit bench out/dyn/onnx-int8-dynamic/model.onnx
      edgekit report out/dyn/report.json --baseline base.json --max-latency-regression 10
      edgekit recipes        # the built-in recipes
      edgekit runtimes       # runtime adapters and whether they work here

    \b
    Every command takes --quiet/-q (no progress bars or notes: results,
    warnings and errors only) and --verbose/-v (more detail on stderr).
    Commands that print results take --json: one JSON document on stdout,
    progress and notes on stderr. `-o -` writes an output file to stdout.
    Colour only on a terminal; NO_COLOR turns it off.

    Exit codes: 0 ok, 1 internal error, 2 bad input, 3 a check failed.
    """
    from edgekit.logs import quiet_libraries

    quiet_libraries()  # before any command imports torch or torchao


for _command in (
    compress.compress,
    bench.bench,
    report.report,
    bundle.bundle,
    run.run_bundle,
    serve.serve,
    diff.diff,
    finetune.finetune,
    recipes.recipes,
    runtimes.runtimes,
):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    import signal
    import threading

    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if on_main else None
    try:
        _main(argv)
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="edgekit", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            interrupted(exc.__cause__)
        fail("aborted", 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.INPUT if exc.exit_code == 2 else exc.exit_code)
    except EdgekitError as exc:
        fail(exc.message, int(exc.exit_code))
    except KeyboardInterrupt as exc:
        interrupted(exc)
    except Exception as exc:  # noqa: BLE001 - last resort: one line, exit 1
        if "EDGEKIT_DEBUG" in __import__("os").environ or current().verbose:
            traceback.print_exc()
        fail(
            f"internal error: {type(exc).__name__}: {exc} (--verbose or EDGEKIT_DEBUG=1 for the traceback)",
            ExitCode.INTERNAL,
        )
    sys.exit(0)


if __name__ == "__main__":
    main()
