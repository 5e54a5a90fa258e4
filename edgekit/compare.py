"""Reading reports back, and comparing a new report with a baseline under thresholds.

The latency rule: a row regresses only when its p50 grows by more than the
threshold **and** by more than the run-to-run spread recorded in the two
reports (the larger of the two rows' p90 - p50). Noise alone never fails a gate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.errors import InputError
from edgekit.fidelity import headline
from edgekit.report import SCHEMA_VERSION

REQUIRED = ("schema_version", "model", "environment", "results")
ROW_REQUIRED = ("name", "size_bytes", "latency_ms", "fidelity")


def load_report(path: str | Path) -> dict:
    path = Path(path)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"report not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a JSON report ({err})") from None
    if not isinstance(report, dict) or any(k not in report for k in REQUIRED):
        raise InputError(f"{path}: not an edgekit report (needs {', '.join(REQUIRED)})")
    if report["schema_version"] != SCHEMA_VERSION:
        raise InputError(f"{path}: report schema version {report['schema_version']}, this edgekit reads "
                         f"{SCHEMA_VERSION}")
    for i, row in enumerate(report["results"]):
        missing = [k for k in ROW_REQUIRED if k not in row]
        if missing or "p50" not in row.get("latency_ms", {}):
            raise InputError(f"{path}: results[{i}] lacks {', '.join(missing) or 'latency_ms.p50'}")
    return report


@dataclass(frozen=True)
class Thresholds:
    max_latency_regression_pct: float | None = None
    max_size_growth_pct: float | None = None
    max_accuracy_drop_points: float | None = None


@dataclass
class Check:
    artifact: str
    gate: str  # "latency" | "size" | "accuracy"
    old: float
    new: float
    delta: str
    passed: bool
    detail: str = ""


@dataclass
class Comparison:
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def _key(row: dict) -> tuple:
    """Rows match by artifact name and, for sweeps, by the point measured."""
    return (row["name"], row.get("batch_size"), row.get("seq_len"), row.get("threads"))


def _spread(row: dict) -> float:
    lat = row["latency_ms"]
    return max(0.0, lat.get("p90", lat["p50"]) - lat["p50"])


def environment_warnings(old: dict, new: dict) -> list[str]:
    warnings = []
    oe, ne = old["environment"], new["environment"]
    if oe.get("cpu", {}).get("model") != ne.get("cpu", {}).get("model"):
        warnings.append(f"baseline measured on another CPU ({oe.get('cpu', {}).get('model')} vs "
                        f"{ne.get('cpu', {}).get('model')}): latency deltas mix code and machine")
    if oe.get("cpu", {}).get("flags") != ne.get("cpu", {}).get("flags"):
        warnings.append("baseline CPU flags differ (int8 kernels depend on VNNI/AVX-512)")
    if oe.get("threads") != ne.get("threads"):
        warnings.append(f"baseline used {oe.get('threads')} threads, this report {ne.get('threads')}")
    for lib in ("onnxruntime", "ai-edge-litert", "torch"):
        a, b = oe.get("versions", {}).get(lib), ne.get("versions", {}).get(lib)
        if a and b and a != b:
            warnings.append(f"{lib} {a} in the baseline, {b} now")
    return warnings


def compare(new: dict, old: dict, t: Thresholds) -> Comparison:
    if new["model"].get("digest") != old["model"].get("digest") or new["model"].get("name") != old["model"].get("name"):
        raise InputError(f"reports are of different models ({old['model'].get('name')} "
                         f"{str(old['model'].get('digest'))[:12]} vs {new['model'].get('name')} "
                         f"{str(new['model'].get('digest'))[:12]})")
    result = Comparison(warnings=environment_warnings(old, new))
    base = {_key(r): r for r in old["results"]}
    task = new["model"].get("task")
    names = [r["name"] for r in new["results"]]
    for row in new["results"]:
        prev = base.get(_key(row))
        label = row["name"] if names.count(row["name"]) == 1 else (
            f"{row['name']}[b{row.get('batch_size')},s{row.get('seq_len')},t{row.get('threads')}]")
        if prev is None:
            result.warnings.append(f"{label}: not in the baseline, not compared")
            continue
        if t.max_latency_regression_pct is not None:
            o, n = prev["latency_ms"]["p50"], row["latency_ms"]["p50"]
            pct = (n - o) / o * 100.0
            spread = max(_spread(prev), _spread(row))
            failed = pct > t.max_latency_regression_pct and (n - o) > spread
            result.checks.append(Check(label, "latency", o, n, f"{pct:+.1f}%", not failed,
                                       f"limit +{t.max_latency_regression_pct:g}%, spread {spread:.2f} ms"))
        if t.max_size_growth_pct is not None:
            o, n = prev["size_bytes"], row["size_bytes"]
            pct = (n - o) / o * 100.0 if o else 0.0
            result.checks.append(Check(label, "size", o, n, f"{pct:+.1f}%", pct <= t.max_size_growth_pct,
                                       f"limit +{t.max_size_growth_pct:g}%"))
        if t.max_accuracy_drop_points is not None:
            o, n = headline(task, prev.get("fidelity") or {}), headline(task, row.get("fidelity") or {})
            if o is None or n is None:
                continue
            drop = (o - n) * 100.0
            result.checks.append(Check(label, "accuracy", o, n, f"{-drop:+.2f} pts",
                                       drop <= t.max_accuracy_drop_points,
                                       f"limit -{t.max_accuracy_drop_points:g} pts"))
    return result


_FORMATS = {"latency": lambda v: f"{v:.2f} ms", "size": lambda v: f"{v / 1e6:.2f} MB",
            "accuracy": lambda v: f"{v:.4f}"}


def comparison_markdown(c: Comparison) -> str:
    lines = ["## Baseline comparison", "", f"**{'PASSED' if c.passed else 'FAILED'}**", "",
             "| artifact | gate | baseline | new | delta | result | rule |", "|---|---|---|---|---|---|---|"]
    for ch in c.checks:
        fmt = _FORMATS[ch.gate]
        lines.append(f"| {ch.artifact} | {ch.gate} | {fmt(ch.old)} | {fmt(ch.new)} | {ch.delta} | "
                     f"{'pass' if ch.passed else '**FAIL**'} | {ch.detail} |")
    for w in c.warnings:
        lines.append(f"\n> warning: {w}")
    return "\n".join(lines) + "\n"
