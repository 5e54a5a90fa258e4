"""``edgekit bench BUNDLE``: time a bundle's variants on real text, here or on a device.

The same function runs on the build machine and, through the remote runner,
on a device, so both give one report schema. Timing text and fidelity texts
are the bundle's own reference texts; fidelity is each variant's worst cosine
to the outputs recorded when it was bundled and its cosine to the recorded
fp32 PyTorch outputs.

Every variant whose runtime is installed is benchmarked; the others are
skipped, and the report's ``skipped`` list says which and why (what to
install). Only when no variant can run, or a variant asked for by name
cannot, is that an error, naming everything that is missing at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from edgekit.device.bundle import Bundle, open_bundle
from edgekit.errors import RuntimeUnavailableError
from edgekit.measure.environment import environment
from edgekit.measure.harness import BenchSettings, Target, measure
from edgekit.report.build import build_report


def pip_name(module: str) -> str:
    """The package that provides the importable ``module`` (``ai_edge_litert`` -> ``ai-edge-litert``)."""
    return module.replace("_", "-")


@dataclass
class Plan:
    """Which runtime runs each variant here, and which variants cannot run (with why and what is missing)."""

    runnable: dict[str, str] = field(default_factory=dict)  # variant name -> runtime adapter name
    # {"name", "format", "reason", "missing": [the packages of the first runtime that would run it]}
    skipped: list[dict] = field(default_factory=list)

    def missing_packages(self) -> list[str]:
        """Every package a skipped variant needs, in order, once (the first choice where there are several)."""
        out: list[str] = []
        for s in self.skipped:
            for p in s["missing"]:
                if p not in out:
                    out.append(p)
        return out

    def refusal(self, where: str) -> str:
        """One line saying that nothing (or not everything asked for) can run, listing every missing package."""
        what = "; ".join(f"{s['name']} ({s['format']}): {s['reason']}" for s in self.skipped)
        pkgs = self.missing_packages()
        return f"{where}: {what}" + (f"; install them all at once: pip install {' '.join(pkgs)}" if pkgs else "")


def plan_variants(bundle: Bundle, names: list[str], runtime: str | None) -> Plan:
    """Which of the variants ``names`` can run here, on ``runtime`` if named, else on the first installed
    adapter for the variant's format (as ``edgekit run`` picks). A named runtime that is not installed,
    or unknown, is an error: nothing could run on it."""
    from edgekit.plugins import get_runtime, runtime_adapters

    plan = Plan()
    if runtime is not None:
        adapter = get_runtime(runtime)  # unknown or not installed: RuntimeUnavailableError, exit 2
    adapters = runtime_adapters()
    for name in names:
        v = bundle.variant(name)
        if runtime is not None:
            if v.format in adapter.formats:
                plan.runnable[name] = runtime
            else:
                plan.skipped.append(
                    {
                        "name": name,
                        "format": v.format,
                        "reason": f"runtime {runtime!r} does not run {v.format} models",
                        "missing": [],
                    }
                )
            continue
        candidates = [(n, cls) for n, cls in adapters.items() if v.format in cls.formats and not cls.explicit_only]
        usable = next((n for n, cls in candidates if cls.available()), None)
        if usable is not None:
            plan.runnable[name] = usable
            continue
        if not candidates:
            reason = f"no runtime adapter runs {v.format} models"
            plan.skipped.append({"name": name, "format": v.format, "reason": reason, "missing": []})
            continue
        options = [(n, [pip_name(m) for m in cls.missing()]) for n, cls in candidates]
        needs = " or ".join(f"{' '.join(pkgs)} (runtime {n})" for n, pkgs in options)
        plan.skipped.append(
            {
                "name": name,
                "format": v.format,
                "reason": f"no {v.format} runtime installed here; needs {needs}",
                "missing": options[0][1],
            }
        )
    return plan


def bench_bundle(
    path: str | Path,
    settings: BenchSettings,
    *,
    variants: list[str] | None = None,
    runtime: str | None = None,
    batch_sizes: list[int] | None = None,
    seq_lens: list[int] | None = None,
    threads: list[int] | None = None,
    progress: bool = True,
) -> dict:
    from edgekit.device.runtime_api import load

    bundle = open_bundle(path)
    names = variants or [v.name for v in bundle.variants]
    plan = plan_variants(bundle, names, runtime)
    if not plan.runnable or (variants and plan.skipped):  # nothing to time, or a variant asked for cannot run
        raise RuntimeUnavailableError(plan.refusal(f"cannot benchmark {bundle.path} here"))
    names = [n for n in names if n in plan.runnable]
    fidelity, encoder = {}, None
    for name in names:  # verify each variant reproduces its recorded outputs before timing it
        model = load(bundle, runtime=plan.runnable[name], variant=name, threads=settings.threads, check=False)
        result = model.check()
        if not result["passed"]:
            from edgekit.errors import ParityError

            raise ParityError(f"{name} on {model.runtime}: {result['verdict']}")
        fidelity[name] = {
            "selfcheck_cosine_min": result["cosine_to_recorded_min"],
            **result.get("fidelity_to_fp32", {}),
        }
        encoder = encoder or model.encoder  # the tokenizer only: the session is let go before timing
        model.close()
        del model
    sweep = settings.sweep(batch_sizes, seq_lens, threads)
    rows = []
    for t in sweep["threads"]:
        for b in sweep["batch_sizes"]:
            for s in sweep["seq_lens"]:
                point = replace(settings, batch_size=b, seq_len=s, threads=t)
                targets = [_target(bundle, name, plan.runnable[name], t) for name in names]
                rows += measure(targets, point, tokenizer=encoder, texts=bundle.reference_texts, progress=progress)
    for row in rows:
        row["fidelity"] = dict(fidelity[row["name"]])
    report = build_report(
        model={
            "name": bundle.name,
            "path": str(bundle.path),
            "task": bundle.task,
            "digest": bundle.meta.get("source", {}).get("model_digest"),
        },
        recipe=None,
        environment=environment(settings.threads),
        results=rows,
        settings={**settings.__dict__, "sweep": sweep, "inputs": "bundle reference texts, tokenized"},
        kind="bench",
    )
    report["skipped"] = plan.skipped  # variants whose runtime is not installed here, with what they need
    return report


def _target(bundle, name: str, runtime: str, threads: int) -> Target:
    from edgekit.device.runtime_api import load

    v = bundle.variant(name)
    return Target(
        name=name,
        format=v.format,
        precision=v.precision,
        runtime=runtime,
        path=str(bundle.path / v.file),
        size_bytes=v.size_bytes,
        load=lambda: load(bundle, runtime=runtime, variant=name, threads=threads, check=False).session,
    )
