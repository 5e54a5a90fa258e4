"""What `edgekit report` writes: Markdown, a self-contained HTML page with plots, and JUnit XML."""

from __future__ import annotations

from html import escape
from xml.etree import ElementTree as ET

from edgekit.measure.fidelity import headline
from edgekit.report.build import HEADERS, markdown, table_rows
from edgekit.report.gates import Comparison
from edgekit.report.plots import bars, lines, scatter_pareto
from edgekit.tasks import get_task


def _rows(reports: list[dict]) -> list[tuple[dict, dict]]:
    return [(rep, row) for rep in reports for row in rep["results"]]


def _fid(rep: dict, row: dict) -> float | None:
    if (row.get("fidelity") or {}).get("reference"):
        return 1.0
    return headline(rep["model"].get("task"), row.get("fidelity") or {})


def html(reports: list[dict], comparison: Comparison | None = None) -> str:
    task = reports[0]["model"].get("task")
    metric = get_task(task).headline_label if task else "mean cosine to fp32"
    sweep: dict[str, list[tuple[float, float]]] = {}
    for rep, row in _rows(reports):
        s = rep.get("settings", {})
        if row.get("batch_size") == s.get("batch_size") and row.get("threads") == s.get("threads"):
            sweep.setdefault(row["name"], []).append((row.get("seq_len", 0), row["latency_ms"]["p50"]))
    sweep = {k: v for k, v in sweep.items() if len({a for a, _ in v}) > 1}
    main_rows = [
        (rep, row)
        for rep, row in _rows(reports)
        if row.get("seq_len") == rep.get("settings", {}).get("seq_len", row.get("seq_len"))
    ]
    points = [(row["latency_ms"]["p50"], f, row["name"]) for rep, row in main_rows if (f := _fid(rep, row)) is not None]
    sizes = list({row["name"]: (row["name"], row["size_bytes"] / 1e6) for _, row in main_rows}.values())
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>edgekit report</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}.fail{color:#b00;font-weight:bold}"
        ".plot{border:1px solid #eee;margin:8px}</style></head><body>",
        f"<h1>edgekit report: {escape(str(reports[0]['model'].get('name')))}</h1>",
    ]
    for rep in reports:
        env = rep["environment"]
        parts.append(
            f"<p>{escape(rep.get('kind', ''))} · {escape(str((rep.get('recipe') or {}).get('name', '-')))}"
            f" · {escape(str(env['cpu'].get('model')))} · threads {env.get('threads')}</p>"
        )
    parts.append("<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in HEADERS) + "</tr>")
    for rep in reports:
        for r in table_rows(rep):
            parts.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>")
    parts.append("</table>")
    parts.append(scatter_pareto(points, "latency p50 (ms)", metric))
    parts.append(bars(sizes, "Size per artifact", "MB", "plot-size"))
    if sweep:
        parts.append(lines(sweep, "Latency by sequence length", "sequence length", "p50 (ms)", "plot-sweep"))
    if comparison is not None:
        parts.append(
            f"<h2>Baseline comparison: {'PASSED' if comparison.passed else 'FAILED'}</h2><table>"
            "<tr><th>artifact</th><th>gate</th><th>delta</th><th>result</th><th>rule</th></tr>"
        )
        for c in comparison.checks:
            cls = "" if c.passed else " class='fail'"
            parts.append(
                f"<tr><td>{escape(c.artifact)}</td><td>{c.gate}</td><td>{escape(c.delta)}</td>"
                f"<td{cls}>{'pass' if c.passed else 'FAIL'}</td><td>{escape(c.detail)}</td></tr>"
            )
        parts.append("</table>")
        parts += [f"<p>warning: {escape(w)}</p>" for w in comparison.warnings]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def markdown_all(reports: list[dict], comparison: Comparison | None = None) -> str:
    from edgekit.report.gates import comparison_markdown

    text = "\n".join(markdown(r) for r in reports)
    return text + ("\n" + comparison_markdown(comparison) if comparison is not None else "")


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
            ).text = f"baseline {c.old} -> new {c.new}"
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
