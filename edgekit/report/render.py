"""What `edgekit report` writes: Markdown, a self-contained HTML page with plots, and JUnit XML."""

from __future__ import annotations

from html import escape
from xml.etree import ElementTree as ET

from edgekit.measure.fidelity import headline
from edgekit.report.build import (
    SHAPE_KEYS,
    markdown,
    markdown_several,
    measured_at,
    run_labels,
    search_markdown,
    table,
    table_notes,
    varying,
)
from edgekit.report.gates import Comparison, verdict
from edgekit.report.plots import Interval, Point, Series, bars, dot_plot, lines, palette, scatter_pareto

DIM_NAMES = {"batch_size": "batch", "seq_len": "sequence length", "threads": "threads"}
DIM_SHORT = {"batch_size": "b", "seq_len": "s", "threads": "t"}


def _fid(rep: dict, row: dict) -> float | None:
    if (row.get("fidelity") or {}).get("reference"):
        return 1.0
    return headline(rep["model"].get("task"), row.get("fidelity") or {})


def _shape(row: dict) -> tuple:
    return tuple(row.get(k) for k in SHAPE_KEYS)


def main_point(report: dict) -> tuple:
    """The (batch, sequence, threads) a report's fidelity and single-point plots are read at: its
    settings' point when rows were measured there, else its first row's."""
    s = report.get("settings", {})
    point = tuple(s.get(k) for k in SHAPE_KEYS)
    shapes = [_shape(r) for r in report["results"]]
    return point if point in shapes or not shapes else shapes[0]


def _dim_words(key: str, value: object) -> str:
    if key == "threads":
        return f"{value} thread" + ("" if value == 1 else "s")
    return f"{DIM_NAMES[key]} {value}"


def _point_words(point: tuple) -> str:
    b, s, t = point
    return f"batch {b}, sequence {s}, {t} thread{'s' if t != 1 else ''}"


def _environment_rows(reports: list[dict]) -> list[tuple[str, list[str]]]:
    """What each report was measured on and with, one fact a row, one column per report."""

    def cpu(rep: dict, key: str) -> str:
        v = rep["environment"].get("cpu", {}).get(key)
        return ", ".join(v) if isinstance(v, list) else str(v if v is not None else "-")

    def setting(rep: dict, key: str) -> str:
        v = rep.get("settings", {}).get(key)
        return "-" if v is None else str(v)

    facts = [
        ("kind", lambda r: str(r.get("kind", "-"))),
        ("model", lambda r: str(r["model"].get("name") or "-")),
        ("task", lambda r: str(r["model"].get("task") or "-")),
        ("recipe", lambda r: str((r.get("recipe") or {}).get("name") or "- (edgekit bench)")),
        ("created", lambda r: str(r.get("created", "-"))),
        ("measured on", lambda r: str(r.get("target", "local"))),
        ("measured at", measured_at),
        ("timing", lambda r: f"{setting(r, 'runs')} runs after {setting(r, 'warmup')} warm-up"),
        ("calibration", lambda r: setting(r, "calibration")),
        ("held-out texts", lambda r: setting(r, "heldout")),
        ("inputs", lambda r: setting(r, "inputs")),
        (
            "CPU",
            lambda r: f"{cpu(r, 'model')} ({cpu(r, 'machine')}, {cpu(r, 'logical_cores')} logical cores)",
        ),
        ("CPU flags", lambda r: cpu(r, "flags")),
        ("threads", lambda r: str(r["environment"].get("threads", "-"))),
        (
            "OS, Python",
            lambda r: f"{r['environment'].get('os', '-')}, Python {r['environment'].get('python', '-')}",
        ),
        (
            "versions",
            lambda r: ", ".join(f"{k} {v}" for k, v in r["environment"].get("versions", {}).items()),
        ),
    ]
    out = [(name, [get(r) for r in reports]) for name, get in facts]
    out = [(name, vals) for name, vals in out if any(v not in ("-", "None") for v in vals)]
    return out


STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1180px;color:#222}"
    "table{border-collapse:collapse;margin:8px 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left;white-space:nowrap}"
    "td.rule,table.env td{white-space:normal}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "th{background:#f4f4f4}.fail{color:#b00;font-weight:bold}.pass{color:#176b28}"
    "td.differs{background:#fff4cc}tr.failed td{background:#fde8e8}tr.run-start td{border-top:2px solid #888}"
    ".verdict{padding:10px 14px;border-radius:4px;margin:12px 0;font-size:15px}"
    ".verdict.failed{background:#fde8e8;border:1px solid #e0a0a0}"
    ".verdict.passed{background:#e8f6ea;border:1px solid #9fd0a8}"
    ".notes{font-size:13px;color:#444}.plot{display:block;border:1px solid #eee;margin:12px 0}"
)


def _gate_summary(c: Comparison) -> list[str]:
    cls = "passed" if c.passed else "failed"
    out = [f"<div class='verdict {cls}'><b>Baseline gate {escape(verdict(c))}</b>"]
    failed = [ch for ch in c.checks if not ch.passed]
    if failed:
        out.append("<ul>")
        out += [
            f"<li>{escape(ch.artifact)} · {ch.gate}: {escape(ch.shown('old'))} → {escape(ch.shown('new'))} "
            f"({escape(ch.delta)}; {escape(ch.detail)})</li>"
            for ch in failed
        ]
        out.append("</ul>")
    out.append("</div>")
    return out


def _gate_table(c: Comparison) -> list[str]:
    out = [
        "<h2 id='gates'>Baseline comparison</h2>",
        "<table><tr><th>artifact</th><th>gate</th><th>baseline</th><th>new</th><th>delta</th><th>result</th>"
        "<th>rule</th></tr>",
    ]
    for ch in c.checks:
        cls = "pass" if ch.passed else "fail"
        tr = "<tr>" if ch.passed else "<tr class='failed'>"
        out.append(
            f"{tr}<td>{escape(ch.artifact)}</td><td>{ch.gate}</td><td class='num'>{escape(ch.shown('old'))}</td>"
            f"<td class='num'>{escape(ch.shown('new'))}</td><td class='num'>{escape(ch.delta)}</td>"
            f"<td class='{cls}'>{'pass' if ch.passed else 'FAIL'}</td><td class='rule'>{escape(ch.detail)}</td></tr>"
        )
    out.append("</table>")
    out += [f"<p class='notes'>warning: {escape(w)}</p>" for w in c.warnings]
    return out


def _plots(reports: list[dict], labels: list[str]) -> list[str]:
    rows = [(i, rep, row) for i, rep in enumerate(reports) for row in rep["results"]]
    colors = palette(row["name"] for _, _, row in rows)
    several = len(reports) > 1
    runs = labels if several else []
    dims = varying(reports)
    out = []

    # latency per row: a dot at p50, a whisker to p90
    def dims_of(row: dict) -> str:
        return " ".join(f"{DIM_SHORT[k]}{row.get(k)}" for k in dims)

    order = {name: k for k, name in enumerate(colors)}
    items = [
        Interval(
            row["name"] + (f" · {dims_of(row)}" if dims else "") + (f" · {labels[i]}" if several else ""),
            row["latency_ms"]["p50"],
            max(row["latency_ms"]["p90"], row["latency_ms"]["p50"]),
            colors[row["name"]],
            i,
        )
        for i, _, row in sorted(rows, key=lambda t: (order[t[2]["name"]], _shape(t[2]), t[0]))
    ]  # grouped by artifact, then the point measured, then the run: a run's rows for one artifact side by side
    points = {main_point(rep) for rep in reports}
    at = f" at {_point_words(next(iter(points)))}" if len(points) == 1 and not dims else ""
    out.append(dot_plot(items, f"Latency per artifact{at}: p50 (marker) to p90 (whisker end)", "latency (ms)", runs))

    # latency vs fidelity at each report's main point
    task = reports[0]["model"].get("task")
    if task:
        from edgekit.tasks import get_task

        metric = get_task(task).headline_label
    else:
        metric = "mean cosine to fp32"
    scatter = []
    for i, rep, row in rows:
        fid = _fid(rep, row)
        if _shape(row) == main_point(rep) and fid is not None:
            scatter.append(Point(row["latency_ms"]["p50"], fid, row["name"], i))
    at = f" at {_point_words(next(iter(points)))}" if len(points) == 1 else ""
    title = f"Latency vs {metric}{at} (Pareto front dashed)"
    out.append(scatter_pareto(scatter, "latency p50 (ms)", metric, colors, runs, title))

    # size: one bar per artifact, or per run where runs' files differ
    sizes: dict[str, set[int]] = {}
    for _, _, row in rows:
        sizes.setdefault(row["name"], set()).add(row["size_bytes"])
    values = []
    seen: set[tuple[int, str]] = set()
    for i, _, row in rows:
        split = len(sizes[row["name"]]) > 1
        key = (i if split else -1, row["name"])
        if key not in seen:
            seen.add(key)
            label = f"{labels[i]} {row['name']}" if split else row["name"]
            values.append((label, row["size_bytes"] / 1e6, colors[row["name"]]))
    out.append(bars(values, "Model file size per artifact", "MB", "plot-size"))

    # sweeps: p50 over the swept dimension, one plot per value of the others (named in its title)
    if dims:
        x = "seq_len" if "seq_len" in dims else dims[0]
        others = [k for k in SHAPE_KEYS if k != x]
        panels = sorted(
            {tuple(row.get(k) for k in others) for _, _, row in rows},
            key=lambda p: tuple((v is None, v or 0) for v in p),
        )
        n = 0
        for panel in panels:
            series: dict[tuple[int, str], list[tuple[float, float]]] = {}
            for i, _, row in rows:
                if tuple(row.get(k) for k in others) == panel:
                    series.setdefault((i, row["name"]), []).append((row.get(x), row["latency_ms"]["p50"]))
            series = {k: v for k, v in series.items() if len({a for a, _ in v}) > 1}  # a line needs two points
            if not series:
                continue
            fixed = ", ".join(_dim_words(k, v) for k, v in zip(others, panel))
            out.append(
                lines(
                    [Series(name, i, pts) for (i, name), pts in series.items()],
                    f"p50 latency by {DIM_NAMES[x]} at {fixed}",
                    DIM_NAMES[x],
                    "p50 (ms)",
                    "plot-sweep" if n == 0 else f"plot-sweep-{n + 1}",
                    colors,
                    runs,
                )
            )
            n += 1
    return [p for p in out if p]


def html(
    reports: list[dict],
    comparison: Comparison | None = None,
    labels: list[str] | None = None,
    notice: str | None = None,
) -> str:
    """One self-contained page: the gate's verdict (or ``notice``, e.g. that no baseline existed yet) first,
    what each report was measured on, one results table (a run column for several reports, a column per swept
    dimension), plots, the gate table."""
    labels = labels or run_labels(reports)
    names = list(dict.fromkeys(str(r["model"].get("name")) for r in reports))
    title = f"edgekit report: {', '.join(names)}" + (f" ({len(reports)} runs)" if len(reports) > 1 else "")
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]
    if notice:
        parts.append(f"<p class='notice'><b>{escape(notice)}</b></p>")
    if comparison is not None:
        parts += _gate_summary(comparison)

    parts.append("<h2>Runs</h2>" if len(reports) > 1 else "<h2>Environment and settings</h2>")
    parts.append("<table class='env'>")
    if len(reports) > 1:
        parts.append("<tr><th></th>" + "".join(f"<th>{escape(lab)}</th>" for lab in labels) + "</tr>")
    for fact, vals in _environment_rows(reports):
        cls = " class='differs'" if len(set(vals)) > 1 else ""
        parts.append(f"<tr><th>{escape(fact)}</th>" + "".join(f"<td{cls}>{escape(v)}</td>" for v in vals) + "</tr>")
    parts.append("</table>")
    if len(reports) > 1 and any(len(set(v)) > 1 for f, v in _environment_rows(reports) if f not in ("created",)):
        parts.append("<p class='notes'>Highlighted: what differs between the runs.</p>")

    parts.append("<h2>Results</h2>")
    cols, cells = table(reports, labels)
    parts.append("<table class='results'><tr>" + "".join(f"<th>{escape(c.header)}</th>" for c in cols) + "</tr>")
    starts = {sum(len(rep["results"]) for rep in reports[:k]) for k in range(1, len(reports))}
    for n, r in enumerate(cells):
        tr = "<tr class='run-start'>" if n in starts else "<tr>"
        tds = (f"<td class='num'>{escape(v)}</td>" if c.numeric else f"<td>{escape(v)}</td>" for c, v in zip(cols, r))
        parts.append(tr + "".join(tds) + "</tr>")
    parts.append("</table>")
    notes = table_notes(reports)
    for i, rep in enumerate(reports):
        pre = f"{labels[i]} " if len(reports) > 1 else ""
        notes += [
            f"not promoted: {pre}{r['name']} {r['not_promoted_because']}"
            for r in rep["results"]
            if r.get("promotable") is False
        ]
    parts.append("<ul class='notes'>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")

    parts.append("<h2>Plots</h2>")
    parts += _plots(reports, labels)
    if comparison is not None:
        parts += _gate_table(comparison)
    for i, rep in enumerate(reports):
        if rep.get("search"):
            pre = f" ({labels[i]})" if len(reports) > 1 else ""
            text = "\n".join(search_markdown(rep["search"]))
            parts.append(f"<h2>Search{escape(pre)}</h2><pre>{escape(text)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def markdown_all(reports: list[dict], comparison: Comparison | None = None, labels: list[str] | None = None) -> str:
    from edgekit.report.gates import comparison_markdown

    text = markdown(reports[0]) if len(reports) == 1 else markdown_several(reports, labels)
    return text + ("\n" + comparison_markdown(comparison) if comparison is not None else "")


def junit_empty(why: str) -> str:
    """JUnit XML with no gate run (no baseline yet): one skipped case that says why."""
    suite = ET.Element("testsuite", name="edgekit-gates", tests="1", failures="0", skipped="1")
    case = ET.SubElement(suite, "testcase", classname="edgekit.baseline", name="baseline")
    ET.SubElement(case, "skipped", message=why)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def junit(comparison: Comparison) -> str:
    suite = ET.Element(
        "testsuite",
        name="edgekit-gates",
        tests=str(len(comparison.checks)),
        failures=str(sum(not c.passed for c in comparison.checks)),
    )
    for c in comparison.checks:
        case = ET.SubElement(suite, "testcase", classname=f"edgekit.{c.gate}", name=f"{c.artifact}.{c.gate}")
        if not c.passed:
            ET.SubElement(
                case, "failure", message=f"{c.gate} {c.delta} ({c.detail})"
            ).text = f"baseline {c.shown('old')} -> new {c.shown('new')}"
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
