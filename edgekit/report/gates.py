"""Reading reports back, and comparing a new report with a baseline under thresholds.

A baseline is comparable only when it is of the same model and the same recipe
(by name; a changed recipe digest is a warning). Every baseline row must be in
the new report: a missing one is a failed ``artifact`` check, so a baseline that
shares nothing with the report fails instead of passing on zero checks.

The latency rule compares ratios measured within one run by default, so a
baseline made on another machine, or a CI runner under load, does not move it:
each row's speed-up over the fp32 model on its own runtime (its
``fp32_same_runtime`` row; an fp32 row that is its own is compared with the
report's PyTorch reference) must not fall by more than the threshold, read as
growth of the row's p50 relative to that fp32 p50, **and** by more than the
run-to-run noise recorded in the reports (the relative p90 - p50 spreads of the
row and its fp32, the larger of the two reports'), where noise excuses at most
``NOISE_CAP_PCT`` percent: a large regression always fails, however wide a
row's spread.

Absolute p50 gating (``Thresholds.absolute_latency``) is opt-in and needs a
baseline from the same machine class (CPU model and architecture in the
reports' environment); against another one it is refused (an InputError)
rather than reporting machine differences as regressions.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.errors import InputError
from edgekit.measure.fidelity import headline
from edgekit.report.build import SCHEMA_VERSION, _near_one, add_derived_fields, fmt_ms, validate_report

REQUIRED = ("schema_version", "model", "environment", "results")
NOISE_CAP_PCT = 50.0  # the most growth of p50 (percent of the baseline's) the recorded spread may excuse


def load_report(path: str | Path) -> dict:
    path = Path(path)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"report not found: {path}") from None
    except OSError as err:  # a directory, no permission
        raise InputError(f"{path}: cannot read the report ({err.strerror or err})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a JSON report ({err})") from None
    if not isinstance(report, dict) or any(k not in report for k in REQUIRED):
        raise InputError(f"{path}: not an edgekit report (needs {', '.join(REQUIRED)})")
    if report["schema_version"] != SCHEMA_VERSION:
        raise InputError(
            f"{path}: report schema version {report['schema_version']}, this edgekit reads {SCHEMA_VERSION}"
        )
    return add_derived_fields(validate_report(report, path))  # every row's fields and types, named on failure


@dataclass(frozen=True)
class Thresholds:
    max_latency_regression_pct: float | None = None
    max_size_growth_pct: float | None = None
    max_accuracy_drop_points: float | None = None
    absolute_latency: bool = False  # gate p50 itself (same machine class only), not speed-ups within a run


@dataclass
class Check:
    artifact: str
    gate: str  # "artifact" (the baseline row is in the new report) | "latency" | "size" | "accuracy"
    old: float
    new: float
    delta: str
    passed: bool
    detail: str = ""
    basis: str | None = None  # a ratio check: old and new are speed-ups over this row, measured in each run
    old_ms: float | None = None  # a ratio check: the row's p50 in each report
    new_ms: float | None = None

    def shown(self, which: str) -> str:
        """The baseline (``old``) or new value as a person reads it: ``1.36x vs onnx-fp32 (p50 0.141 ms)``."""
        v, ms = (self.old, self.old_ms) if which == "old" else (self.new, self.new_ms)
        if self.basis is not None:
            return f"{v:.2f}x vs {self.basis}" + (f" (p50 {fmt_ms(ms)} ms)" if ms is not None else "")
        return _FORMATS[self.gate](v)


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
        warnings.append(
            f"baseline measured on another CPU ({oe.get('cpu', {}).get('model')} vs "
            f"{ne.get('cpu', {}).get('model')}): latency deltas mix code and machine"
        )
    if oe.get("cpu", {}).get("flags") != ne.get("cpu", {}).get("flags"):
        warnings.append("baseline CPU flags differ (int8 kernels depend on VNNI/AVX-512)")
    if oe.get("threads") != ne.get("threads"):
        warnings.append(f"baseline used {oe.get('threads')} threads, this report {ne.get('threads')}")
    for lib in ("onnxruntime", "ai-edge-litert", "torch"):
        a, b = oe.get("versions", {}).get(lib), ne.get("versions", {}).get(lib)
        if a and b and a != b:
            warnings.append(f"{lib} {a} in the baseline, {b} now")
    return warnings


def comparable(new: dict, old: dict) -> list[str]:
    """Raise when ``old`` cannot be a baseline for ``new`` (another model or recipe); warnings otherwise."""
    nm, om = new["model"], old["model"]
    if nm.get("digest") != om.get("digest") or nm.get("name") != om.get("name"):
        raise InputError(
            f"reports are of different models ({om.get('name')} {str(om.get('digest'))[:12]} vs "
            f"{nm.get('name')} {str(nm.get('digest'))[:12]})"
        )
    nr, orc = new.get("recipe") or {}, old.get("recipe") or {}
    if nr.get("name") != orc.get("name"):
        raise InputError(
            f"baseline is of another recipe ({orc.get('name')} vs {nr.get('name')}): gate a report "
            "against a baseline made by the same recipe"
        )
    if nr.get("digest") != orc.get("digest"):
        return [
            (
                f"recipe {nr.get('name')} changed since the baseline (digest {str(orc.get('digest'))[:12]} vs "
                f"{str(nr.get('digest'))[:12]}): deltas mix recipe and code changes"
            )
        ]
    return []


def machine_class(report: dict) -> tuple[str | None, str | None]:
    """What absolute latencies are comparable across: the CPU model and architecture measured on."""
    cpu = report["environment"].get("cpu", {})
    return cpu.get("model"), cpu.get("machine")


def _same_machine(old: dict, new: dict) -> None:
    if machine_class(old) != machine_class(new):
        o, n = machine_class(old), machine_class(new)
        raise InputError(
            f"absolute latency gating refused: the baseline was measured on {o[0]} ({o[1]}), this report on "
            f"{n[0]} ({n[1]}), and their p50s compare the machines, not the code; drop --absolute-latency to "
            "gate each artifact's speed-up over its fp32 measured within each run, or make the baseline on "
            "this machine class"
        )


def _latency(label: str, prev: dict, row: dict, limit_pct: float) -> Check:
    o, n = prev["latency_ms"]["p50"], row["latency_ms"]["p50"]
    pct = (n - o) / o * 100.0 if o > 0 else (0.0 if n <= o else float("inf"))
    spread = max(_spread(prev), _spread(row))
    allowance = min(spread, o * NOISE_CAP_PCT / 100.0)
    failed = pct > limit_pct and (n - o) > allowance
    return Check(
        label,
        "latency",
        o,
        n,
        f"{pct:+.1f}%",
        not failed,
        f"absolute p50: limit +{limit_pct:g}%, noise allowance {allowance:.2f} ms (spread {spread:.2f} ms, "
        f"at most {NOISE_CAP_PCT:g}%)",
    )


def _shape(row: dict) -> tuple:
    return (row.get("batch_size"), row.get("seq_len"), row.get("threads"))


def latency_basis(rows: dict[tuple, dict], row: dict) -> dict | None:
    """The row whose p50 ``row``'s speed-up is measured against in its own report (``rows`` by
    :func:`_key`): its fp32 on the same runtime, or for an fp32 row that is its own, the PyTorch
    reference; None for the reference itself or when the report has neither."""
    name = row.get("fp32_same_runtime")
    if name and name != row["name"]:
        return rows.get((name, *_shape(row)))
    if row.get("is_reference") or (row.get("fidelity") or {}).get("reference"):
        return None
    return next((r for r in rows.values() if r.get("is_reference") and _shape(r) == _shape(row) and r is not row), None)


def _rel_spread(row: dict) -> float:
    p50 = row["latency_ms"]["p50"]
    return _spread(row) / p50 if p50 > 0 else 0.0


def _ratio_latency(label: str, prev: dict, prev_basis: dict, row: dict, basis: dict, limit_pct: float) -> Check:
    """``row``'s p50 relative to its basis's p50 in the new report against the same ratio in the baseline."""
    so = prev_basis["latency_ms"]["p50"] / prev["latency_ms"]["p50"]  # speed-ups: higher is better
    sn = basis["latency_ms"]["p50"] / row["latency_ms"]["p50"]
    pct = (so / sn - 1.0) * 100.0  # growth of p50 relative to the basis's
    noise = 100.0 * max(_rel_spread(prev) + _rel_spread(prev_basis), _rel_spread(row) + _rel_spread(basis))
    allowance = min(noise, NOISE_CAP_PCT)
    failed = pct > limit_pct and pct > allowance
    return Check(
        label,
        "latency",
        so,
        sn,
        f"{pct:+.1f}%",
        not failed,
        f"speed-up over {basis['name']} measured in each run: limit +{limit_pct:g}% relative p50, "
        f"noise allowance {allowance:.0f}% (the rows' p90-p50 spreads, at most {NOISE_CAP_PCT:g}%)",
        basis=basis["name"],
        old_ms=prev["latency_ms"]["p50"],
        new_ms=row["latency_ms"]["p50"],
    )


def _accuracy(label: str, task, prev: dict, row: dict, limit: float) -> Check | None:
    o, n = headline(task, prev.get("fidelity") or {}), headline(task, row.get("fidelity") or {})
    if o is None:
        return None
    if n is None:  # the baseline measured it, the new report does not: that is not a pass
        return Check(label, "accuracy", o, float("nan"), "missing", False, f"limit -{limit:g} pts")
    drop = (o - n) * 100.0
    return Check(label, "accuracy", o, n, f"{-drop:+.2f} pts", drop <= limit, f"limit -{limit:g} pts")


def _label(row: dict, names: list[str]) -> str:
    if names.count(row["name"]) == 1:
        return row["name"]
    return f"{row['name']}[b{row.get('batch_size')},s{row.get('seq_len')},t{row.get('threads')}]"


def compare(new: dict, old: dict, t: Thresholds) -> Comparison:
    """Gate ``new`` against the baseline ``old``: one check per baseline row that it is still there,
    then each threshold given on every row the two share."""
    warnings = comparable(new, old)
    if not old["results"]:
        raise InputError("the baseline has no results to compare with")
    if t.absolute_latency and t.max_latency_regression_pct is not None:
        _same_machine(old, new)
    result = Comparison(warnings=warnings + environment_warnings(old, new))
    if all(v is None for v in (t.max_latency_regression_pct, t.max_size_growth_pct, t.max_accuracy_drop_points)):
        result.warnings.append("no thresholds (flags or the recipe's gates): only the artifacts' presence is checked")
    if t.absolute_latency and t.max_latency_regression_pct is None:
        result.warnings.append("absolute latency asked for without a latency threshold: latency is not gated")
    rows = {_key(r): r for r in new["results"]}
    old_rows = {_key(r): r for r in old["results"]}
    ungated: list[str] = []
    task = new["model"].get("task")
    old_names = [r["name"] for r in old["results"]]
    for prev in old["results"]:
        row = rows.get(_key(prev))
        label = _label(prev, old_names)
        result.checks.append(
            Check(
                label,
                "artifact",
                1,
                float(row is not None),
                "present" if row else "missing",
                row is not None,
                "every baseline row is in the new report",
            )
        )
        if row is None:
            continue
        if t.max_latency_regression_pct is not None and t.absolute_latency:
            result.checks.append(_latency(label, prev, row, t.max_latency_regression_pct))
        elif t.max_latency_regression_pct is not None:
            basis = latency_basis(rows, row)
            prev_basis = old_rows.get((basis["name"], *_shape(prev))) if basis is not None else None
            if basis is None and (row.get("is_reference") or (row.get("fidelity") or {}).get("reference")):
                pass  # the PyTorch reference: every other row's speed-up is measured against it
            elif basis is None or prev_basis is None:
                ungated.append(label if basis is None else f"{label} (the baseline lacks {basis['name']})")
            else:
                result.checks.append(_ratio_latency(label, prev, prev_basis, row, basis, t.max_latency_regression_pct))
        if t.max_size_growth_pct is not None:
            o, n = prev["size_bytes"], row["size_bytes"]
            pct = (n - o) / o * 100.0 if o else 0.0
            result.checks.append(
                Check(
                    label,
                    "size",
                    o,
                    n,
                    f"{pct:+.1f}%",
                    pct <= t.max_size_growth_pct,
                    f"limit +{t.max_size_growth_pct:g}%",
                )
            )
        if t.max_accuracy_drop_points is not None:
            check = _accuracy(label, task, prev, row, t.max_accuracy_drop_points)
            if check is not None:
                result.checks.append(check)
    if ungated:
        result.warnings.append(
            "latency not gated (no fp32 model on the same runtime nor a PyTorch reference to measure a speed-up "
            f"against): {', '.join(ungated)}; --absolute-latency gates p50 itself against a baseline from this "
            "machine class"
        )
    known = {_key(r) for r in old["results"]}
    new_names = [r["name"] for r in new["results"]]
    result.warnings += [
        f"{_label(r, new_names)}: not in the baseline, not compared" for r in new["results"] if _key(r) not in known
    ]
    return result


_FORMATS = {
    "latency": lambda v: f"{fmt_ms(v)} ms",
    "size": lambda v: f"{v / 1e6:.3f} MB" if v < 1e7 else f"{v / 1e6:.1f} MB",
    "accuracy": lambda v: "-" if math.isnan(v) else _near_one(v),
    "artifact": lambda v: "yes" if v else "no",
}


def verdict(c: Comparison) -> str:
    """``PASSED: 14 checks`` or ``FAILED: 2 of 14 checks``."""
    failed = sum(not ch.passed for ch in c.checks)
    return f"FAILED: {failed} of {len(c.checks)} checks" if failed else f"PASSED: {len(c.checks)} checks"


def comparison_markdown(c: Comparison) -> str:
    head, _, rest = verdict(c).partition(":")
    lines = [
        "## Baseline comparison",
        "",
        f"**{head}**:{rest}",
        "",
        "| artifact | gate | baseline | new | delta | result | rule |",
        "|---|---|---|---|---|---|---|",
    ]
    for ch in c.checks:
        lines.append(
            f"| {ch.artifact} | {ch.gate} | {ch.shown('old')} | {ch.shown('new')} | {ch.delta} | "
            f"{'pass' if ch.passed else '**FAIL**'} | {ch.detail} |"
        )
    for w in c.warnings:
        lines.append(f"\n> warning: {w}")
    return "\n".join(lines) + "\n"
