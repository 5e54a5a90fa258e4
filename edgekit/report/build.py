"""report.json (a contract other tools read) and report.md (for people)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import cast

from edgekit.errors import InputError

SCHEMA_VERSION = 1


def build_report(
    *,
    model: dict,
    recipe: dict | None,
    environment: dict,
    results: list[dict],
    settings: dict,
    kind: str,
    target: str = "local",
) -> dict:
    report = {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,  # "compress" or "bench"
        "target": target,  # "local", or the device it was measured on (ssh://user@host:port)
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "recipe": recipe,
        "settings": settings,
        "environment": environment,
        "results": results,
    }
    return add_derived_fields(report)


@cache
def _schema():
    """The report's structure as pydantic models: the fields edgekit renders and compares, with their types
    (strict: a string is not a number); anything else may be there too. Built on first use: the remote
    runner writes reports on devices without pydantic."""
    from pydantic import BaseModel, ConfigDict, Field

    class Part(BaseModel):
        model_config = ConfigDict(strict=True, extra="allow")

    class Latency(Part):
        p50: float = Field(ge=0)
        p90: float = Field(ge=0)
        p99: float = Field(ge=0)

    class Row(Part):
        name: str
        format: str
        precision: str
        runtime: str
        size_bytes: int = Field(ge=0)
        latency_ms: Latency
        peak_rss_mb: float
        fidelity: dict | None
        speedup_vs_reference: float | None = None
        speedup_vs_fp32_same_runtime: float | None = None
        fp32_same_runtime: str | None = None
        process_peak_rss_mb: float | None = None
        batch_size: int | None = None
        seq_len: int | None = None
        threads: int | None = None

    class Model(Part):
        name: str | None = None
        path: str | None = None
        task: str | None = None
        digest: str | None = None

    class Cpu(Part):
        model: str
        logical_cores: int | None
        flags: list[str]

    class Environment(Part):
        cpu: Cpu
        threads: int | None = None
        versions: dict[str, str]

    class Settings(Part):
        batch_size: int
        seq_len: int
        threads: int
        warmup: int
        runs: int

    class Recipe(Part):
        name: str | None = None
        digest: str | None = None
        gates: dict | None = None

    class Report(Part):
        schema_version: int
        kind: str
        model: Model
        recipe: Recipe | None = None
        settings: Settings
        environment: Environment
        results: list[Row]
        search: dict | None = None

    return Report


def _field(loc: list) -> str:
    """A pydantic error location as a path into the JSON: ``results[0].latency_ms.p50``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def validate_report(report: object, path: str | Path) -> dict:
    """``report`` (read from ``path``) when every field edgekit uses has its type; else an
    :class:`InputError` naming the file and the first wrong field."""
    from pydantic import ValidationError

    try:
        _schema().model_validate(report)
    except ValidationError as err:
        first = err.errors()[0]
        loc = list(first["loc"])
        if first["type"] == "missing":
            problem = f"{_field(loc[:-1]) or 'the report'} lacks {loc[-1]}"
        else:
            problem = (
                f"{_field(loc) or 'the report'}: {first['msg'].split(' or instance of ')[0].lower()}, got "
                f"{json.dumps(first.get('input'), default=str)[:60]}"
            )
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise InputError(f"{path}: {problem}{more}; not a report as edgekit writes it") from None
    return cast(dict, report)  # validated: a mapping of the report's fields


# --- derived row fields -------------------------------------------------------------------------

SHAPE_KEYS = ("batch_size", "seq_len", "threads")


def _shape(row: dict) -> tuple:
    return tuple(row.get(k) for k in SHAPE_KEYS)


def _parent_name(row: dict) -> str | None:
    p = row.get("parent")
    if isinstance(p, dict):
        p = p.get("name")
    return p if isinstance(p, str) else None


def fp32_same_runtime(rows: list[dict]) -> list[dict | None]:
    """For each row, the fp32 row its ``speedup_vs_fp32_same_runtime`` is measured against: the plain
    fp32 model on the same runtime, at the same batch size, sequence length and threads (what just
    exporting gives).

    With lineage in the rows (a ``parent`` name) it is the earliest fp32 ancestor reached without
    leaving the row's format and runtime (an int8 made from an optimized fp32 made from the export is
    compared with the export; a distilled student's int8 with the student's export); without it, the
    first fp32 row of the same format on the same runtime (pipeline order puts an export before what is
    made from it), else the first fp32 row on the same runtime. None when the report has no such row.
    An fp32 row may be its own (the PyTorch reference always is): a speed-up of 1."""
    by_key = {(r["name"], r["runtime"], _shape(r)): r for r in rows}
    lineage = any(_parent_name(r) for r in rows)  # then an fp32 row without a parent is where a chain starts
    out: list[dict | None] = []
    for row in rows:
        kind = (row["runtime"], row["format"])
        basis: dict | None = None
        cur: dict | None = row
        seen: set[int] = set()
        while cur is not None and id(cur) not in seen and (cur["runtime"], cur["format"]) == kind:
            seen.add(id(cur))
            if cur["precision"] == "fp32":
                basis = cur
            parent = _parent_name(cur)
            cur = by_key.get((parent, row["runtime"], _shape(row))) if parent else None
        own = row["precision"] == "fp32" and (lineage or row.get("is_reference"))
        if basis is None or (_parent_name(row) is None and not own):
            same = [r for r in rows if r["runtime"] == row["runtime"] and _shape(r) == _shape(row)]
            fp32 = [r for r in same if r["precision"] == "fp32"]
            basis = next((r for r in fp32 if r["format"] == row["format"]), None) or basis or next(iter(fp32), None)
        out.append(basis)
    return out


def add_derived_fields(report: dict) -> dict:
    """Fill the row fields computed from the other rows, where a row lacks them (a report written by an
    older edgekit): ``fp32_same_runtime`` (that row's name) and ``speedup_vs_fp32_same_runtime``
    (its p50 over this row's). Returns ``report``, changed in place."""
    rows = report.get("results") or []
    for row, basis in zip(rows, fp32_same_runtime(rows)):
        if "speedup_vs_fp32_same_runtime" in row:
            continue
        p50 = (row.get("latency_ms") or {}).get("p50")
        base = (basis.get("latency_ms") or {}).get("p50") if basis is not None else None
        speedup = None
        if isinstance(p50, (int, float)) and isinstance(base, (int, float)) and p50 > 0 and base > 0:
            speedup = round(base / p50, 3)
        row["fp32_same_runtime"] = basis["name"] if basis is not None else None
        row["speedup_vs_fp32_same_runtime"] = speedup
    return report


# --- tables ------------------------------------------------------------------------------------------


def _mb(n: float) -> str:
    mb = n / 1e6
    return f"{mb:.3f}" if mb < 1 else f"{mb:.1f}"


def fmt_ms(v: float) -> str:
    """A latency with three significant digits or more: 0.141, 1.90, 23.45, 1234.5."""
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 1000 else f"{v:.0f}"


def _x(v: float | None) -> str:
    return f"{v:.2f}x" if v else "-"


def _near_one(v: float) -> str:
    """A cosine or agreement with enough digits to tell it from 1 (0.99998 is not 1.0000)."""
    digits = 4
    while digits < 7 and v < 1 and round(v, digits) >= 1:
        digits += 1
    return f"{v:.{digits}f}" if round(v, digits) < 1 else f"{v:.4f}"


def _task(task: str | None):
    """The registered task of a report, or None (none named, or a task unknown here: a report from elsewhere)."""
    if not task:
        return None
    from edgekit.errors import InputError
    from edgekit.tasks import get_task

    try:
        return get_task(task)
    except InputError:
        return None


def _fid(row: dict, task: str | None = None) -> str:
    f = row.get("fidelity") or {}
    t = _task(task)
    key = t.eval_key if t else "accuracy"
    if not isinstance(f.get(key), (int, float)):
        return _fid_core(f, task)
    label = "acc" if key == "accuracy" else t.eval_label if t else key
    return _fid_core(f, task) + f" · {label} {f[key]:.2f}" + ("%" if key == "accuracy" else "")


def _fid_core(f: dict, task: str | None = None) -> str:
    if f.get("reference"):
        return "reference"
    t = _task(task)
    own = t is not None and t.headline_key not in ("cosine_mean", "label_agreement")
    if own and isinstance(f.get(t.headline_key), (int, float)):  # a task whose headline is its own
        cos = f", cos {_near_one(f['cosine_mean'])}" if "cosine_mean" in f else ""
        return f"{t.headline_label} {_near_one(f[t.headline_key])}{cos}"
    if "label_agreement" in f:
        return f"agree {_near_one(f['label_agreement'])}, max|Δ| {f['max_abs_diff']:.3g}"
    if "selfcheck_cosine_min" in f and "cosine_mean" in f:
        return (
            f"cos {_near_one(f['cosine_mean'])} (min {_near_one(f['cosine_min'])}), "
            f"self-check {_near_one(f['selfcheck_cosine_min'])}"
        )
    if "selfcheck_cosine_min" in f:
        return f"self-check cos {_near_one(f['selfcheck_cosine_min'])}"
    if "cosine_mean" in f:
        return f"cos {_near_one(f['cosine_mean'])} (min {_near_one(f['cosine_min'])})"
    return "-"


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[str, dict, dict], str]  # (run label, report, row) -> the cell's text
    numeric: bool = False  # right-aligned


_RSS = lambda key: lambda _l, _p, r: "-" if r.get(key) is None else f"{r[key]:.0f}"  # noqa: E731

_COLUMNS = {
    "run": Column("run", lambda label, _p, _r: label),
    "artifact": Column("artifact", lambda _l, _p, r: r["name"]),
    "format": Column("format", lambda _l, _p, r: r["format"]),
    "precision": Column("precision", lambda _l, _p, r: r["precision"]),
    "runtime": Column("runtime", lambda _l, _p, r: r["runtime"]),
    "batch_size": Column("batch", lambda _l, _p, r: str(r.get("batch_size", "-")), True),
    "seq_len": Column("seq", lambda _l, _p, r: str(r.get("seq_len", "-")), True),
    "threads": Column("threads", lambda _l, _p, r: str(r.get("threads", "-")), True),
    "size": Column("size MB", lambda _l, _p, r: _mb(r["size_bytes"]), True),
    "p50": Column("p50 ms", lambda _l, _p, r: fmt_ms(r["latency_ms"]["p50"]), True),
    "p90": Column("p90 ms", lambda _l, _p, r: fmt_ms(r["latency_ms"]["p90"]), True),
    "p99": Column("p99 ms", lambda _l, _p, r: fmt_ms(r["latency_ms"]["p99"]), True),
    "vs_torch": Column("vs PyTorch", lambda _l, _p, r: _x(r.get("speedup_vs_reference")), True),
    "vs_fp32": Column("vs fp32", lambda _l, _p, r: _x(r.get("speedup_vs_fp32_same_runtime")), True),
    "model_mb": Column("model MB", _RSS("peak_rss_mb"), True),
    "process_mb": Column("process MB", _RSS("process_peak_rss_mb"), True),
    "fidelity": Column("fidelity", lambda _l, p, r: _fid(r, p["model"].get("task"))),
}


def varying(reports: list[dict]) -> list[str]:
    """Which of batch size, sequence length and threads take more than one value in ``reports``' rows."""
    rows = [r for rep in reports for r in rep["results"]]
    return [k for k in SHAPE_KEYS if len({r.get(k) for r in rows}) > 1]


def run_labels(reports: list[dict]) -> list[str]:
    """``#1``, ``#2``, ...: the short name each report goes by in tables and plots of several reports."""
    return [f"#{i}" for i in range(1, len(reports) + 1)]


def table(reports: list[dict], labels: list[str] | None = None) -> tuple[list[Column], list[list[str]]]:
    """The results table of ``reports`` rendered together: a run column when there are several, and a
    batch, sequence or threads column whenever that takes more than one value (a sweep's rows differ
    in it); a speed-up or process-memory column no row has a value for is left out. Returns the
    columns and the rows' cells."""
    for rep in reports:
        add_derived_fields(rep)
    labels = labels or run_labels(reports)
    keys = (["run"] if len(reports) > 1 else []) + ["artifact", "format", "precision", "runtime"]
    keys += varying(reports)
    keys += ["size", "p50", "p90", "p99", "vs_torch", "vs_fp32", "model_mb", "process_mb", "fidelity"]
    cols = [_COLUMNS[k] for k in keys]
    cells = [[c.cell(label, rep, row) for c in cols] for label, rep in zip(labels, reports) for row in rep["results"]]
    optional = {_COLUMNS[k].header for k in ("vs_torch", "vs_fp32", "process_mb")}
    keep = [i for i, c in enumerate(cols) if c.header not in optional or any(r[i] != "-" for r in cells)]
    return [cols[i] for i in keep], [[r[i] for i in keep] for r in cells]


def table_rows(report: dict) -> list[list[str]]:
    return table([report])[1]


def table_notes(reports: list[dict]) -> list[str]:
    """What the derived columns are measured against, named."""
    rows = [r for rep in reports for r in rep["results"]]
    bases = sorted({(r["runtime"], r["fp32_same_runtime"]) for r in rows if r.get("fp32_same_runtime")})
    notes = []
    if any(r.get("speedup_vs_reference") for r in rows):
        notes.append(
            "vs PyTorch: p50 speed-up over the fp32 PyTorch model (eager) at the same batch, sequence, threads"
        )
    if bases:
        named = ", ".join(f"{name} on {rt}" for rt, name in bases)
        notes.append(
            f"vs fp32: p50 speed-up over the fp32 model on the same runtime at the same batch, sequence, threads "
            f"({named})"
        )
    notes.append(
        "model MB: the memory loading, warming up and checking that model added to the process "
        "(the runtime's own allocation for it); process MB: the whole process's peak RSS"
    )
    return notes


def text_table(report: dict) -> str:
    """The results table as terminal text."""
    cols, rows = table([report])
    widths = [max(len(c.header), *(len(r[i]) for r in rows)) if rows else len(c.header) for i, c in enumerate(cols)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            (cell.rjust(w) if c.numeric else cell.ljust(w)) for cell, w, c in zip(cells, widths, cols)
        ).rstrip()

    return "\n".join([line([c.header for c in cols]), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _values(rows: list[dict], key: str) -> str:
    vals = sorted({int(r[key]) for r in rows if r.get(key) is not None})
    return ", ".join(str(v) for v in vals) if vals else "-"


def measured_at(report: dict) -> str:
    """The points the report's rows were measured at, from the rows themselves: ``batch 1, 4 × sequence
    32, 128 × 1 thread`` for a sweep, ``batch 1, sequence 32, 2 threads`` for one point."""
    rows = report["results"]
    s = report.get("settings", {})
    b, q, t = (_values(rows, k) for k in SHAPE_KEYS)
    if not rows:
        b, q, t = (str(s.get(k, "-")) for k in SHAPE_KEYS)
    sep = " × " if varying([report]) else ", "
    threads = f"{t} threads" if t != "1" else "1 thread"
    return f"batch {b}{sep}sequence {q}{sep}{threads}"


def _fidelity_samples(report: dict) -> int | None:
    n = [(r.get("fidelity") or {}).get("samples") for r in report["results"]]
    counts = [v for v in n if isinstance(v, int)]
    return max(counts) if counts else None


def summary_lines(report: dict) -> list[str]:
    """What a report is of and what it was measured on, one fact a line (Markdown list items)."""
    s, env, model = report.get("settings", {}), report["environment"], report["model"]
    what = [f"model `{model.get('name') or '?'}`"]
    if model.get("task"):
        what.append(f"task `{model['task']}`")
    recipe = (report.get("recipe") or {}).get("name")
    what.append(f"recipe `{recipe}`" if recipe else "no recipe (`edgekit bench`)")
    samples = _fidelity_samples(report)
    timing = f"measured at {measured_at(report)}: {s.get('runs', '-')} timed runs after {s.get('warmup', '-')} warm-up"
    if samples:
        timing += f"; fidelity on {samples} held-out samples"
    cpu = env["cpu"]
    out = [
        "; ".join(what),
        timing,
        ("" if report.get("target", "local") == "local" else f"on {report['target']}, ")
        + f"CPU: {cpu.get('model')} ({cpu.get('machine', '?')}, "
        f"{cpu.get('logical_cores')} logical cores; flags: {', '.join(cpu.get('flags') or []) or '-'})"
        + (f", {env['os']}, Python {env.get('python', '?')}" if env.get("os") else ""),
        "versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
    ]
    skipped = (report.get("recipe") or {}).get("skipped")
    if skipped:
        out.append("left out (not installed here): " + "; ".join(skipped))
    if report.get("created"):
        out.append(f"created {report['created']}")
    return out


def _md_table(cols: list[Column], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(c.header for c in cols) + " |",
        "|" + "|".join("---:" if c.numeric else "---" for c in cols) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _held(reports: list[dict], labels: list[str] | None) -> list[str]:
    out = []
    for i, rep in enumerate(reports):
        pre = f"{labels[i]} " if labels else ""
        held = [r for r in rep["results"] if r.get("promotable") is False]
        out += [f"{pre}`{r['name']}` {r.get('not_promoted_because', '')}" for r in held]
    return out


def markdown(report: dict) -> str:
    model = report["model"]
    cols, rows = table([report])
    out = [f"# edgekit {report['kind']} report: {model.get('name') or '?'}", ""]
    out += [f"- {line}" for line in summary_lines(report)]
    out += ["", *_md_table(cols, rows), ""]
    out += [f"- {n}" for n in table_notes([report])]
    held = _held([report], None)
    if held:
        out += ["", "Not promoted: " + "; ".join(held)]
    if report.get("search"):
        out += ["", *search_markdown(report["search"])]
    return "\n".join(out) + "\n"


def markdown_several(reports: list[dict], labels: list[str] | None = None) -> str:
    """Several reports in one Markdown page: what each run was, then one table with a run column."""
    labels = labels or run_labels(reports)
    names = sorted({str(r["model"].get("name")) for r in reports})
    out = [f"# edgekit report: {len(reports)} runs of {', '.join(names)}", ""]
    for label, rep in zip(labels, reports):
        out += [f"## Run {label}: {rep['kind']}", ""]
        out += [f"- {line}" for line in summary_lines(rep)]
        out.append("")
    cols, rows = table(reports, labels)
    out += ["## Results", "", *_md_table(cols, rows), ""]
    out += [f"- {n}" for n in table_notes(reports)]
    held = _held(reports, labels)
    if held:
        out += ["", "Not promoted: " + "; ".join(held)]
    for label, rep in zip(labels, reports):
        if rep.get("search"):
            out += ["", f"### Run {label}", "", *search_markdown(rep["search"])]
    return "\n".join(out) + "\n"


def _trial_metric(t: dict, metric: str, key: str = "accuracy") -> str:
    f = t.get("fidelity") or {}
    if metric == "accuracy_drop" and key in f and "accuracy_drop" in f:
        unit = "%" if key == "accuracy" else ""
        return f"{f[key]:.2f}{unit} ({-f['accuracy_drop']:+.2f} pts)"
    return f"{f[metric]:.4f}" if isinstance(f.get(metric), (int, float)) else "-"


def search_markdown(search: dict) -> list[str]:
    budget = ", ".join(f"{k} {v}" for k, v in search["budget"].items())
    metric = search["metric"]
    shown = {"cosine_mean": "mean cosine"}.get(metric, metric.replace("_", " "))
    head = f"{search.get('eval_key', 'accuracy')} (drop)" if metric == "accuracy_drop" else shown
    out = [
        f"## Search: {search['winner'] or 'no candidate met the budget'}",
        "",
        f"Budget: {budget}; measured on {search['samples']} held-out samples on each artifact's runtime; "
        f"{search['trials_run']} trials in {search['elapsed_s']} s"
        + (f", stopped at {search['stopped']}" if search.get("stopped") else "")
        + ".",
        "",
        f"| # | from | candidate | {head} | p50 ms | fp32 p50 ms | speed-up | size MB | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    key = search.get("eval_key", "accuracy")
    for t in search["trials"]:
        if t["verdict"] == "error":
            out.append(
                f"| {t['trial']} | {t['target']} | {t['candidate']} | - | - | - | - | - | error: {t['reason'][:80]} |"
            )
            continue
        mark = " **(winner)**" if t.get("winner") else ""
        out.append(
            f"| {t['trial']} | {t['target']} | {t['candidate']}{mark} | {_trial_metric(t, metric, key)} | "
            f"{t['p50_ms']:.2f} | {t['fp32_p50_ms']:.2f} | {t['speedup_vs_fp32']:.2f}x | "
            f"{t['size_bytes'] / 1e6:.1f} | {t['verdict']}: {t['reason']} |"
        )
    final = [t for t in search["trials"] if t.get("final_p50_ms") is not None]
    if final:
        out += [
            "",
            "Finalists re-timed alternately, each in its own process (p50 ms): "
            + ", ".join(f"{t['target']}/{t['candidate']} {t['final_p50_ms']:.2f}" for t in final)
            + ".",
        ]
    best = search.get("best_candidate")
    if best:
        out += ["", f"Best candidate: `{best['target']}/{best['candidate']}` ({best['reason']})."]
    diag = search.get("diagnostics") or {}
    if diag.get("layers"):
        from edgekit.measure.layer_diff import short_name, worst

        out += [
            "",
            f"Layers losing the most (SNR against `{diag['against']}`; `edgekit diff` prints all):",
            "",
            "| tensor | op | SNR dB | cosine |",
            "|---|---|---|---|",
        ]
        out += [
            f"| `{short_name(r['tensor'])}` | {r['op']} | {r['snr_db']:.1f} | {r['cosine']:.5f} |"
            for r in worst(diag["layers"])
        ]
    return out


def dumps(report: dict) -> str:
    return json.dumps(report, indent=2) + "\n"
