"""`edgekit report`: render report.json files and gate them against a baseline."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgekit.cli.common import claim_output, output_options, write_output
from edgekit.errors import GateFailed, InputError


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
    "--update-baseline",
    is_flag=True,
    help="Write REPORT as the --baseline file: created when there is none yet (the first run: nothing is gated, "
    "and the summary says so), refreshed when every gate passed (a failed gate leaves it as it was). Only a "
    "baseline edgekit wrote is ever replaced.",
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
    update_baseline,
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

    \b
    First run and refreshes: `--baseline B --update-baseline` writes REPORT
    to B when B does not exist yet (nothing to gate against: the summary
    says a baseline was created; commit it or cache it), and replaces B with
    REPORT after every gate passed. Without --update-baseline, a missing
    baseline exits with code 2.
    """
    from edgekit.output import stamped_text
    from edgekit.report.gates import Thresholds, compare, comparison_markdown, load_report
    from edgekit.report.render import html, junit, junit_empty, markdown_all

    if update_baseline and baseline is None:
        raise click.UsageError("--update-baseline needs --baseline (the file to write)")
    if update_baseline and len(reports) > 1:
        raise click.UsageError("--update-baseline takes one report (the one that becomes the baseline)")
    first_run = update_baseline and not Path(baseline).exists() and not Path(baseline).is_symlink()
    if junit_out and baseline is None:
        raise click.UsageError("--junit needs --baseline (the gates are its test cases)")
    outputs = [p for p in (md_out, html_out, junit_out) if p is not None]
    if len({Path(p).absolute() for p in outputs}) < len(outputs):
        raise click.UsageError("--markdown, --html and --junit need different paths")
    if sum(str(p) == "-" for p in outputs) + console.json > 1:
        raise click.UsageError("only one of --markdown/--html/--junit/--json can write to stdout")
    for path in outputs:  # every output is checked before any is written
        claim_output(path, overwrite)
    if update_baseline and not first_run:
        from edgekit.output import is_edgekit_file

        if not is_edgekit_file(Path(baseline)):  # refused before anything is written
            raise InputError(
                f"{baseline} was not written by edgekit, so --update-baseline will not replace it; "
                "gate without --update-baseline, or name a new file"
            )
    if baseline is not None and not update_baseline and not Path(baseline).exists():
        raise InputError(f"no baseline at {baseline}; create it with --update-baseline (the first run)")
    loaded = [load_report(p) for p in reports]
    comparison = None
    notice = None
    if first_run:
        notice = (
            f"No baseline at {baseline} yet: nothing was gated. This run's report is the new baseline "
            "(commit it, or keep it in a cache, for the next runs to be gated against)."
        )
    elif baseline is not None:
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
    lead = f"> **{notice}**\n\n" if notice else ""
    writers = {
        md_out: lambda: lead + markdown_all(loaded, comparison, labels),
        html_out: lambda: html(loaded, comparison, labels, notice=notice),
        junit_out: lambda: junit(comparison) if comparison is not None else junit_empty(notice or ""),
    }
    for path, render in writers.items():
        if path is not None:
            write_output(path, stamped_text(render()), overwrite=overwrite, console=console)
    passed = comparison is None or comparison.passed
    if update_baseline and passed:
        from edgekit.output import stamped, write_file

        raw = json.loads(Path(reports[0]).read_text(encoding="utf-8"))
        write_file(Path(baseline), json.dumps(stamped(raw), indent=2) + "\n", overwrite=True)
        console.note(f"{'created' if first_run else 'refreshed'} the baseline {baseline}")
    if console.json:
        from dataclasses import asdict

        console.emit_json(
            {
                "reports": [str(p) for p in reports],
                "baseline": str(baseline) if baseline is not None else None,
                "passed": comparison.passed if comparison is not None else None,
                "baseline_created": first_run,
                "baseline_updated": bool(update_baseline and passed),
                "warnings": list(comparison.warnings) if comparison is not None else [],
                "checks": [_plain(asdict(c)) for c in comparison.checks] if comparison is not None else [],
            }
        )
    elif "-" not in map(str, outputs):
        console.result(comparison_markdown(comparison) if comparison else lead + markdown_all(loaded, labels=labels))
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
