"""report.json (a contract other tools read) and report.md (for people)."""

from __future__ import annotations

import json
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
    return {
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


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


def _fid(row: dict) -> str:
    f = row.get("fidelity") or {}
    acc = f" · acc {f['accuracy']:.2f}%" if "accuracy" in f else ""
    return _fid_core(f) + acc


def _fid_core(f: dict) -> str:
    if f.get("reference"):
        return "reference"
    if "label_agreement" in f:
        return f"agree {f['label_agreement']:.4f}, max|Δ| {f['max_abs_diff']:.3g}"
    if "selfcheck_cosine_min" in f and "cosine_mean" in f:
        return f"cos {f['cosine_mean']:.4f} (min {f['cosine_min']:.4f}), self-check {f['selfcheck_cosine_min']:.4f}"
    if "selfcheck_cosine_min" in f:
        return f"self-check cos {f['selfcheck_cosine_min']:.4f}"
    if "cosine_mean" in f:
        return f"cos {f['cosine_mean']:.4f} (min {f['cosine_min']:.4f})"
    return "-"


def table_rows(report: dict) -> list[list[str]]:
    rows = []
    for r in report["results"]:
        lat = r["latency_ms"]
        rows.append(
            [
                r["name"],
                r["format"],
                r["precision"],
                r["runtime"],
                _mb(r["size_bytes"]),
                f"{lat['p50']:.2f}",
                f"{lat['p90']:.2f}",
                f"{lat['p99']:.2f}",
                f"{r['speedup_vs_reference']:.2f}x" if r.get("speedup_vs_reference") else "-",
                f"{r['peak_rss_mb']:.0f}",
                _fid(r),
            ]
        )
    return rows


HEADERS = [
    "artifact",
    "format",
    "precision",
    "runtime",
    "size MB",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "speed-up",
    "peak RSS MB",
    "fidelity",
]


def text_table(report: dict) -> str:
    rows = table_rows(report)
    widths = (
        [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)] if rows else [len(h) for h in HEADERS]
    )
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(HEADERS), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def markdown(report: dict) -> str:
    s = report["settings"]
    env = report["environment"]
    model = report["model"]
    out = [
        f"# edgekit {report['kind']} report: {model.get('name', '?')}",
        "",
        f"- task: `{model.get('task')}`; recipe: `{(report.get('recipe') or {}).get('name', '-')}`",
        f"- measured at batch {s['batch_size']}, sequence {s['seq_len']}, {s['threads']} threads, "
        f"{s['runs']} timed runs after {s['warmup']} warm-up; "
        f"fidelity on {s.get('fidelity_samples', '-')} held-out samples",
        f"- CPU: {env['cpu']['model']} ({env['cpu']['logical_cores']} logical cores; "
        f"flags: {', '.join(env['cpu']['flags']) or '-'})",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" for _ in HEADERS) + "|",
    ]
    out += ["| " + " | ".join(r) + " |" for r in table_rows(report)]
    held = [r for r in report["results"] if r.get("promotable") is False]
    if held:
        out += ["", "Not promoted: " + "; ".join(f"`{r['name']}` {r['not_promoted_because']}" for r in held)]
    if report.get("search"):
        out += ["", *search_markdown(report["search"])]
    return "\n".join(out) + "\n"


def _trial_metric(t: dict, metric: str) -> str:
    f = t.get("fidelity") or {}
    if metric == "accuracy_drop" and "accuracy" in f:
        return f"{f['accuracy']:.2f}% ({-f['accuracy_drop']:+.2f} pts)"
    return f"{f['cosine_mean']:.4f}" if "cosine_mean" in f else "-"


def search_markdown(search: dict) -> list[str]:
    budget = ", ".join(f"{k} {v}" for k, v in search["budget"].items())
    metric = search["metric"]
    head = "accuracy (drop)" if metric == "accuracy_drop" else "mean cosine"
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
    for t in search["trials"]:
        if t["verdict"] == "error":
            out.append(
                f"| {t['trial']} | {t['target']} | {t['candidate']} | - | - | - | - | - | error: {t['reason'][:80]} |"
            )
            continue
        mark = " **(winner)**" if t.get("winner") else ""
        out.append(
            f"| {t['trial']} | {t['target']} | {t['candidate']}{mark} | {_trial_metric(t, metric)} | "
            f"{t['p50_ms']:.2f} | {t['fp32_p50_ms']:.2f} | {t['speedup_vs_fp32']:.2f}x | "
            f"{t['size_bytes'] / 1e6:.1f} | {t['verdict']}: {t['reason']} |"
        )
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
