"""`edgekit report`: render report.json files and gate them against a baseline."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli.common import claim_output, output_options, write_output
from edgekit.errors import GateFailed


@click.command()
@click.argument("reports", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--baseline", type=click.Path(path_type=Path), help="A report.json to compare against (rows matched by name)."
)
@click.option(
    "--max-latency-regression",
    type=float,
    metavar="PCT",
    help="Fail when a row's p50 relative to the fp32 model on its runtime (measured in the same run) grows by "
    "more than PCT percent and by more than the run-to-run spread (at most 50%); with --absolute-latency, "
    "its p50 itself.",
)
@click.option(
    "--absolute-latency",
    is_flag=True,
    help="Gate p50 itself instead of speed-ups measured within each run; refused unless the baseline was "
    "measured on the same machine class (CPU model and architecture).",
)
@click.option("--max-size-growth", type=float, metavar="PCT", help="Fail when a file grows by more than PCT percent.")
@click.option(
    "--max-accuracy-drop",
    type=float,
    metavar="POINTS",
    help="Fail when accuracy / fidelity drops by more than POINTS (percentage points).",
)
@click.option("--markdown", "md_out", type=click.Path(path_type=Path), help="Write Markdown here (`-`: stdout).")
@click.option(
    "--html", "html_out", type=click.Path(path_type=Path), help="Write a self-contained HTML page here (`-`: stdout)."
)
@click.option(
    "--junit", "junit_out", type=click.Path(path_type=Path), help="Write JUnit XML (one case per gate; `-`: stdout)."
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace earlier edgekit outputs at --markdown/--html/--junit (never a file edgekit did not write).",
)
@output_options(json_help="Print one JSON document: the reports read and, with --baseline, every gate check.")
def report(
    console,
    reports,
    baseline,
    max_latency_regression,
    max_size_growth,
    max_accuracy_drop,
    absolute_latency,
    md_out,
    html_out,
    junit_out,
    overwrite,
):
    """Render report.json files and gate them against a baseline.

    Thresholds not given as flags come from the `gates:` section of the recipe
    that made REPORT (compress reports record it).

    \b
    Latency rule: by default it compares ratios measured within one run,
    which a baseline from another machine or a loaded CI runner does not
    move: each row's speed-up over the fp32 model on its own runtime (an
    fp32 row that is its own: over the PyTorch reference). A row fails only
    when its p50 relative to that fp32 p50 grows by more than
    --max-latency-regression percent AND by more than the run-to-run spread
    recorded in the reports (relative p90 - p50 of the rows), which excuses
    at most 50%. --absolute-latency gates p50 itself instead, and only
    against a baseline from the same CPU model and architecture. Every
    baseline artifact must be in the new report (a missing row fails).
    A failed gate exits with code 3; a malformed report, another schema
    version, a baseline of a different model or of another recipe, or
    --absolute-latency against a baseline from another machine class exits
    with code 2. An existing output file is replaced only with --overwrite,
    and only if edgekit wrote it.
    """
    from edgekit.output import stamped_text
    from edgekit.report.gates import Thresholds, compare, comparison_markdown, load_report
    from edgekit.report.render import html, junit, markdown_all

    if junit_out and baseline is None:
        raise click.UsageError("--junit needs --baseline (the gates are its test cases)")
    outputs = [p for p in (md_out, html_out, junit_out) if p is not None]
    if len({Path(p).absolute() for p in outputs}) < len(outputs):
        raise click.UsageError("--markdown, --html and --junit need different paths")
    if sum(str(p) == "-" for p in outputs) + console.json > 1:
        raise click.UsageError("only one of --markdown/--html/--junit/--json can write to stdout")
    for path in outputs:  # every output is checked before any is written
        claim_output(path, overwrite)
    loaded = [load_report(p) for p in reports]
    comparison = None
    if baseline is not None:
        gates = (loaded[0].get("recipe") or {}).get("gates") or {}  # the recipe's gates, unless a flag says otherwise
        pick = lambda flag, key: flag if flag is not None else gates.get(key)  # noqa: E731
        comparison = compare(
            loaded[0],
            load_report(baseline),
            Thresholds(
                pick(max_latency_regression, "max_latency_regression"),
                pick(max_size_growth, "max_size_growth"),
                pick(max_accuracy_drop, "max_accuracy_drop"),
                absolute_latency=absolute_latency,
            ),
        )
    labels = _run_labels(reports) if len(reports) > 1 else None
    writers = {
        md_out: lambda: markdown_all(loaded, comparison, labels),
        html_out: lambda: html(loaded, comparison, labels),
        junit_out: lambda: junit(comparison),
    }
    for path, render in writers.items():
        if path is not None:
            write_output(path, stamped_text(render()), overwrite=overwrite, console=console)
    if console.json:
        from dataclasses import asdict

        console.emit_json(
            {
                "reports": [str(p) for p in reports],
                "baseline": str(baseline) if baseline is not None else None,
                "passed": comparison.passed if comparison is not None else None,
                "warnings": list(comparison.warnings) if comparison is not None else [],
                "checks": [_plain(asdict(c)) for c in comparison.checks] if comparison is not None else [],
            }
        )
    elif "-" not in map(str, outputs):
        console.result(comparison_markdown(comparison) if comparison else markdown_all(loaded, labels=labels))
    if comparison is not None and not comparison.passed:
        failed = [f"{c.artifact} {c.gate} {c.delta}" for c in comparison.checks if not c.passed]
        raise GateFailed(f"{len(failed)} gate(s) failed: {'; '.join(failed)}")


def _run_labels(paths) -> list[str]:
    """What each run is called in tables and legends: its folder for a report.json, else the file's stem; the
    paths as given when those repeat."""
    names = [Path(p).parent.name if Path(p).name == "report.json" else Path(p).stem for p in paths]
    return names if len(set(names)) == len(names) and all(names) else [str(p) for p in paths]


def _plain(check: dict) -> dict:
    """A check as strict JSON: a value a report lacks (NaN) is null."""
    return {k: None if isinstance(v, float) and v != v else v for k, v in check.items()}
