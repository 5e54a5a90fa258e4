"""``edgekit bench BUNDLE``: time a bundle's variants on real text, here or on a device.

The same function runs on the build machine and, through the remote runner,
on a device, so both give one report schema. Timing text and fidelity texts
are the bundle's own reference texts; fidelity is each variant's worst cosine
to the outputs recorded when it was bundled and its cosine to the recorded
fp32 PyTorch outputs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from edgekit.device.bundle import open_bundle
from edgekit.measure.environment import environment
from edgekit.measure.harness import BenchSettings, Target, measure
from edgekit.report.build import build_report


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
    fidelity, encoder = {}, None
    for name in names:  # verify each variant reproduces its recorded outputs before timing it
        model = load(bundle, runtime=runtime, variant=name, threads=settings.threads, check=False)
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
                targets = [_target(bundle, name, runtime, t) for name in names]
                rows += measure(targets, point, tokenizer=encoder, texts=bundle.reference_texts, progress=progress)
    for row in rows:
        row["fidelity"] = dict(fidelity[row["name"]])
    return build_report(
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


def _target(bundle, name: str, runtime: str | None, threads: int) -> Target:
    from edgekit.device.runtime_api import load
    from edgekit.plugins import runtime_for_format

    v = bundle.variant(name)
    return Target(
        name=name,
        format=v.format,
        precision=v.precision,
        runtime=runtime or runtime_for_format(v.format).name,
        path=str(bundle.path / v.file),
        size_bytes=v.size_bytes,
        load=lambda: load(bundle, runtime=runtime, variant=name, threads=threads, check=False).session,
    )
