"""Search stage: try quantization candidates, keep the fastest one within the accuracy budget.

Each trial quantizes one fp32 target with one candidate config, then measures
it on the target's own runtime: the budget metric on held-out data (fidelity
to fp32 PyTorch, or task accuracy on a labelled set) and p50 latency timed
interleaved with its fp32 parent. Verdicts:

* ``pass``: within budget, within limits and faster than its fp32 parent;
* ``outside budget``: fidelity or accuracy below the budget;
* ``slower than fp32``: never promoted, whatever its accuracy;
* ``over limit``: file size or peak memory over the budget's limits;
* ``error``: the quantizer or runtime failed (the message is kept).

The passing candidates are re-timed, each in its own process, alternately, and the fastest is written
as this stage's artifact. When nothing passes, :class:`SearchFailed` carries
every trial so the pipeline can still write the full report, then exit with
the gate-failed code.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edgekit import formats
from edgekit.data.feeds import tokenize
from edgekit.errors import EdgekitError, GateFailed, RecipeError
from edgekit.measure.evaluation import EvalSet, run_texts
from edgekit.measure.harness import counted_calls
from edgekit.measure.isolated import time_isolated
from edgekit.measure.timing import PeakRSS, interleaved
from edgekit.plugins import runtime_for_format
from edgekit.recipe.config import QuantizeConfig, SearchConfig
from edgekit.stages import StageResult, handler_for, register
from edgekit.stages.search_space import fallback_candidates, searchable, sensitivity_ranker, space

FINALISTS = 3
EVAL_SEQ_LEN = 256  # fidelity is measured on whole texts (padded per batch), not cut to the timing shape


class SearchFailed(GateFailed):
    """No candidate met the budget; ``record`` holds every trial and the best failing one."""

    def __init__(self, message: str, record: dict) -> None:
        super().__init__(message)
        self.record = record


def _eval_len(ctx) -> int:
    if ctx.checkpoint is None:  # a model file: its own inputs, not texts cut to a length
        return EVAL_SEQ_LEN
    return min(EVAL_SEQ_LEN, int(ctx.checkpoint.config.get("max_position_embeddings") or EVAL_SEQ_LEN))


class FeedsEvalSet:
    """A model file's evaluation set: the inputs its parity is checked on (synthesized from its specs, the
    given arrays, or held-out texts through the given tokenizer), and the fp32 file's outputs on them. Every
    output is compared as it is (cosine per row, see :func:`edgekit.measure.fidelity.compare`)."""

    reference_accuracy = None

    def __init__(self, ctx, config: SearchConfig) -> None:
        if config.budget.max_accuracy_drop is not None:
            raise RecipeError(
                "search budget max_accuracy_drop needs a task scored on labelled data; a model file is searched "
                "under min_fidelity (its outputs against the fp32 file's)"
            )
        self.feeds = ctx.parity_feeds(ctx.reference_session())
        self.reference = self.outputs(ctx.reference_session())
        self.max_len = None

    @property
    def samples(self) -> int:
        return len(self.reference)  # one per compared row

    def outputs(self, session) -> np.ndarray:
        from edgekit.pipeline.model_file import outputs_as_rows

        return np.concatenate([outputs_as_rows(session.run(f)) for f in self.feeds], axis=0)

    def metrics(self, outputs: np.ndarray) -> dict:
        from edgekit.measure.fidelity import compare

        return {**compare(None, self.reference, outputs), "fidelity_key": "cosine_mean"}


def _eval_set(ctx, config: SearchConfig, max_len: int) -> EvalSet | FeedsEvalSet:
    if ctx.checkpoint is None:
        return FeedsEvalSet(ctx, config)
    texts = ctx.data.heldout[: config.samples]
    ref = run_texts(ctx.reference_session(), ctx.checkpoint.tokenizer, texts, max_len)
    labels = ctx.data.heldout_labels
    task = ctx.checkpoint.task_def
    if config.budget.max_accuracy_drop is not None:
        if not task.evaluated:
            raise RecipeError(
                f"search budget max_accuracy_drop needs a task scored on labelled data, not {task.name}; "
                "use min_fidelity"
            )
        if labels is None:
            raise RecipeError(
                "search budget max_accuracy_drop needs a labelled evaluation set "
                "(--eval FILE.jsonl with text and label)"
            )
    if labels is not None and task.evaluated:
        gold = task.gold(labels[: len(texts)], ctx.checkpoint.config)
        return EvalSet(ctx.checkpoint.task, texts, ref, gold, max_len, ctx.checkpoint.tokenizer)
    return EvalSet(ctx.checkpoint.task, texts, ref, max_len=max_len, tokenizer=ctx.checkpoint.tokenizer)


def task_budget_key(ctx) -> str:
    return "cosine_mean" if ctx.checkpoint is None else ctx.checkpoint.task_def.budget_key


def _budget_verdict(
    config: SearchConfig, metrics: dict, size_mb: float, rss_mb: float | None, p50: float, fp32_p50: float
) -> tuple[str, str]:
    b = config.budget
    key = metrics.get("fidelity_key", "cosine_mean")  # the task's fidelity measure (Task.budget_key)
    if b.min_fidelity is not None and metrics[key] < b.min_fidelity:
        return "outside budget", f"fidelity ({key}) {metrics[key]:.4f} < {b.min_fidelity}"
    if b.max_accuracy_drop is not None and metrics["accuracy_drop"] > b.max_accuracy_drop:
        return "outside budget", f"accuracy drop {metrics['accuracy_drop']:.2f} > {b.max_accuracy_drop} points"
    if p50 >= fp32_p50:
        return "slower than fp32", f"p50 {p50:.2f} ms >= fp32 {fp32_p50:.2f} ms on the same runtime and shape"
    if b.max_size_mb is not None and size_mb > b.max_size_mb:
        return "over limit", f"file {size_mb:.1f} MB > {b.max_size_mb} MB"
    if b.max_peak_rss_mb is not None and rss_mb is not None and rss_mb > b.max_peak_rss_mb:
        return "over limit", f"peak RSS {rss_mb:.0f} MB > {b.max_peak_rss_mb} MB"
    return "pass", "within budget and faster than fp32"


def _score(config: SearchConfig, metrics: dict) -> float:
    """Higher is better on the budget's metric (to name the best failing candidate)."""
    if config.budget.max_accuracy_drop is not None:
        return -metrics.get("accuracy_drop", float("inf"))
    return metrics.get(metrics.get("fidelity_key", "cosine_mean"), -1.0)


class _Target:
    """An fp32 artifact being searched from: its session, timing feeds and candidate queue."""

    def __init__(self, artifact, ctx, candidates: list[QuantizeConfig]) -> None:
        self.artifact = artifact
        self.adapter = runtime_for_format(artifact.format)
        self.session = self.adapter.load(artifact.model_path, threads=ctx.threads)
        if ctx.checkpoint is None:  # a model file: timed on the inputs its bench uses
            self.feeds = ctx.timing_feeds(self.session)
        else:
            seq = min(ctx.seq_len, self.session.max_seq_len or ctx.seq_len)
            from edgekit.measure.harness import timing_text

            text = timing_text(ctx.checkpoint.tokenizer, ctx.data.heldout, seq)
            self.feeds = tokenize(ctx.checkpoint.tokenizer, [text], self.session.inputs, seq, fixed=True)
        self.queue = list(candidates)
        self.fallback_done = False


def _candidates(config: SearchConfig, fmt: str) -> list[QuantizeConfig]:
    if config.candidates is None:
        return space(fmt)
    from edgekit.stages.quantize import methods

    return [c for c in config.candidates if c.method in methods(fmt)]


def _trial(
    cand: QuantizeConfig, target: _Target, ctx, workdir: Path, evalset: EvalSet | FeedsEvalSet, config: SearchConfig
) -> dict:
    name = cand.name or cand.method
    row = {
        "target": target.artifact.name,
        "format": target.artifact.format,
        "candidate": name,
        "config": cand.model_dump(mode="json", exclude_none=True, exclude={"kind", "name", "input"}),
    }
    out = workdir / f"{target.artifact.name}--{name}"
    out.mkdir(parents=True)
    try:
        quantize = handler_for(cand)
        update: dict[str, Any] = {"min_cosine": 0.0}
        if cand.max_fidelity_drop == "budget":  # accuracy-controlled quantization held to this search's budget
            if config.budget.min_fidelity is None:
                raise RecipeError("an accuracy-controlled candidate needs the budget's min_fidelity")
            update["max_fidelity_drop"] = round(1.0 - config.budget.min_fidelity, 6)
            row["config"]["max_fidelity_drop"] = update["max_fidelity_drop"]
        result = quantize(cand.model_copy(update=update), target.artifact, ctx, out)
        session = result.session
        outputs = evalset.outputs(session)
        metrics = evalset.metrics(outputs)
        rss = None
        if config.budget.max_peak_rss_mb is not None:
            with PeakRSS() as mem:
                target.adapter.load(out / result.model_file, threads=ctx.threads).run(target.feeds)
            rss = mem.delta_mb  # the model's own memory, not the process's
        pair = [lambda: session.run(target.feeds), lambda: target.session.run(target.feeds)]
        with counted_calls(pair, 3 + config.runs, f"timing {name} against fp32", ctx.progress) as counted:
            lat, base = interleaved(counted, warmup=3, runs=config.runs, rounds=3, settle_s=0.02)
    except Exception as err:  # noqa: BLE001 - a failed candidate (edgekit or library error) is a trial result
        msg = " ".join(str(err).split())[:300]
        return {**row, "verdict": "error", "reason": f"{type(err).__name__}: {msg}", "_result": None}
    size = formats.model_size(out / result.model_file)
    verdict, reason = _budget_verdict(config, metrics, size / 1e6, rss, lat.p50, base.p50)
    return {
        **row,
        "precision": result.precision,
        "fidelity": metrics,
        "p50_ms": round(lat.p50, 4),
        "p90_ms": round(lat.p90, 4),
        "fp32_p50_ms": round(base.p50, 4),
        "speedup_vs_fp32": round(base.p50 / lat.p50, 3),
        "size_bytes": size,
        "peak_rss_mb": None if rss is None else round(rss, 1),
        "verdict": verdict,
        "reason": reason,
        "_result": result,
        "_dir": out,
    }


def _line(i: int, n: int, t: dict, config: SearchConfig) -> str:
    if t["verdict"] == "error":
        return f"trial {i}/{n} {t['target']} {t['candidate']}: error ({t['reason'][:120]})"
    f = t["fidelity"]
    metric = (
        f"acc drop {f['accuracy_drop']:+.2f} pts"
        if config.budget.max_accuracy_drop is not None
        else f"cos {f['cosine_mean']:.4f}"
    )
    return (
        f"trial {i}/{n} {t['target']} {t['candidate']}: {metric}, p50 {t['p50_ms']:.2f} ms "
        f"(fp32 {t['fp32_p50_ms']:.2f}), {t['size_bytes'] / 1e6:.1f} MB -> {t['verdict']}"
    )


def _add_fallbacks(target: _Target, trial: dict, config: SearchConfig, ctx) -> None:
    """After the first dynamic trial of a format whose backend ranks layers (ONNX): rank its layers by SNR
    lost, queue float fallbacks first."""
    ranker = sensitivity_ranker(target.artifact.format)
    if target.fallback_done or ranker is None or trial["verdict"] == "error":
        return
    if trial["config"].get("method") != "dynamic" or not config.sensitivity_fallback:
        return
    target.fallback_done = True
    from edgekit.measure.layer_diff import layer_diff

    feeds = ctx.parity_feeds(target.session)[:2]
    rows = layer_diff(target.artifact.model_path, trial["_dir"] / trial["_result"].model_file, feeds, ctx.threads)
    trial["diagnostics"] = _worst_rows(rows)
    ranked = ranker(rows, target.artifact.model_path)
    target.queue[0:0] = fallback_candidates(ranked, config.sensitivity_fallback)


def _worst_rows(rows: list[dict], n: int = 5) -> list[dict]:
    from edgekit.measure.layer_diff import worst

    return [{k: r[k] for k in ("tensor", "op", "snr_db", "rel_mse", "cosine")} for r in worst(rows, n)]


def _finalists(passing: list[dict], config: SearchConfig, ctx, workdir: Path) -> dict:
    """Re-time the fastest few passing candidates, each in its own process, alternately (runtimes sharing one
    process compete for its cores: a LiteRT candidate timed at 6.1 ms beside its fp32 parent took 9.7 ms beside
    ONNX Runtime's and OpenVINO's finalists); the fastest wins."""
    top = sorted(passing, key=lambda t: t["p50_ms"])[:FINALISTS]
    if len(top) > 1:
        if ctx.progress:
            tqdm.write(f"search: timing {len(top)} finalists, each in its own process", file=sys.stderr)
        models = [(t["format"], t["_dir"] / t["_result"].model_file, t["_feeds"]) for t in top]
        lats = time_isolated(models, workdir / "finalists", ctx.threads, warmup=3, runs=config.runs, rounds=3)
        for t, lat in zip(top, lats):
            t["final_p50_ms"] = round(lat.p50, 4)
            t["final_timing"] = "own process"
        return min(top, key=lambda t: t["final_p50_ms"])
    return top[0]


def _public(t: dict) -> dict:
    return {k: v for k, v in t.items() if not k.startswith("_")}


@register(
    SearchConfig,
    lambda c, fmt: "search-best",
    takes=searchable(),
    precision=lambda c: "int8 or fp16",
    reads="targets",
)
def run_search(config: SearchConfig, parent, ctx, out_dir: Path) -> StageResult:
    names = config.targets or [parent.name]
    missing = [n for n in names if n not in ctx.artifacts]
    if missing:
        raise RecipeError(f"stage search: no earlier artifact named {', '.join(missing)}")
    artifacts = [ctx.artifacts[n] for n in names]
    takes = searchable()
    bad = [a.name for a in artifacts if a.format not in takes or a.precision != "fp32"]
    if bad:
        raise RecipeError(
            f"stage search starts from fp32 {formats.describe(takes)} artifacts; {', '.join(bad)} is not one"
        )
    targets = [_Target(a, ctx, _candidates(config, a.format)) for a in artifacts]
    # every text is cut at the same length for the reference and all candidates: the shortest any target takes
    max_len = min([_eval_len(ctx), *(t.session.max_seq_len for t in targets if t.session.max_seq_len)])
    evalset = _eval_set(ctx, config, max_len)
    t0 = time.perf_counter()
    trials: list[dict] = []
    stopped: str | None = None
    workdir = Path(tempfile.mkdtemp(prefix=".search-", dir=out_dir.parent))
    try:
        with tqdm(total=config.max_trials, desc="search", unit="trial", disable=not ctx.progress) as bar:
            while any(t.queue for t in targets):
                for target in targets:  # round robin over the targets
                    if not target.queue:
                        continue
                    if len(trials) >= config.max_trials:
                        stopped = f"max_trials ({config.max_trials})"
                        break
                    if time.perf_counter() - t0 > config.time_limit_s:
                        stopped = f"time_limit_s ({config.time_limit_s:.0f} s)"
                        break
                    trial = _trial(target.queue.pop(0), target, ctx, workdir, evalset, config)
                    trial["_feeds"] = target.feeds
                    trial["trial"] = len(trials) + 1
                    trials.append(trial)
                    _add_fallbacks(target, trial, config, ctx)
                    bar.update(1)
                    if ctx.progress:
                        tqdm.write(_line(len(trials), config.max_trials, trial, config), file=sys.stderr)
                if stopped:
                    break
        passing = [t for t in trials if t["verdict"] == "pass"]
        measured = [t for t in trials if t["verdict"] != "error"]
        record: dict[str, Any] = {
            "budget": config.budget.model_dump(exclude_none=True),
            "metric": "accuracy_drop" if config.budget.max_accuracy_drop is not None else task_budget_key(ctx),
            "samples": evalset.samples,
            "max_len": evalset.max_len,
            "reference_accuracy": evalset.reference_accuracy,
            # the task metric reference_accuracy and drops are in
            "eval_key": None if ctx.checkpoint is None else ctx.checkpoint.task_def.eval_key,
            "trials_run": len(trials),
            "stopped": stopped,
            "elapsed_s": round(time.perf_counter() - t0, 1),
        }
        if not passing:
            best = max(measured, key=lambda t: _score(config, t["fidelity"])) if measured else None
            record.update(
                trials=[_public(t) for t in trials], winner=None, best_candidate=_public(best) if best else None
            )
            what = f"best: {best['target']} {best['candidate']} ({best['reason']})" if best else "every trial failed"
            raise SearchFailed(f"search: no candidate of {len(trials)} met the budget; {what}", record)
        winner = _finalists(passing, config, ctx, workdir)
        for t in trials:
            t["winner"] = t is winner
        from edgekit.measure.layer_diff import layer_diff

        try:
            rows = layer_diff(
                ctx.artifacts[winner["target"]].model_path,
                winner["_dir"] / winner["_result"].model_file,
                ctx.parity_feeds(winner["_result"].session)[:2],
                ctx.threads,
            )
            diagnostics = {"against": winner["target"], "layers": rows}
        except EdgekitError as err:
            diagnostics = {"against": winner["target"], "error": err.message}
        record.update(
            trials=[_public(t) for t in trials],
            winner=f"{winner['target']}/{winner['candidate']}",
            diagnostics=diagnostics,
        )
        result = winner["_result"]
        for f in winner["_dir"].iterdir():
            shutil.move(str(f), out_dir / f.name)
        session = runtime_for_format(winner["format"]).load(out_dir / result.model_file, threads=ctx.threads)
        return StageResult(
            format=winner["format"],
            precision=result.precision,
            model_file=result.model_file,
            validation={**winner["fidelity"], "budget": record["budget"]},
            extra={"search": record, "chosen": winner["config"], "search_parent": winner["target"], **result.extra},
            session=session,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
