"""Benchmark rows: every model measured side by side, in one process, the same way."""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from tqdm import tqdm

from edgekit.data.feeds import check_feeds, synthesize, tokenize
from edgekit.data.images import is_image_processor
from edgekit.errors import InputError
from edgekit.measure.evaluation import run_texts
from edgekit.measure.fidelity import compare
from edgekit.measure.timing import PeakRSS, interleaved
from edgekit.plugins import runtime_adapters
from edgekit.tasks import get_task


@dataclass
class Target:
    """One thing to measure: how to load it and what to call it in the report."""

    name: str
    format: str
    precision: str
    runtime: str
    path: str
    size_bytes: int
    load: Callable[[], object]  # -> Session
    is_reference: bool = False
    tokenizer: object = None  # its own tokenizer, when its vocabulary differs from the reference's


@dataclass(frozen=True)
class BenchSettings:
    batch_size: int = 1
    seq_len: int = 128
    threads: int = 2
    warmup: int = 10
    runs: int = 50
    fidelity_samples: int = 300

    def sweep(self, batch_sizes=None, seq_lens=None, threads=None) -> dict[str, list[int]]:
        """The points a sweep measures, as reports record them: each list given, else this setting alone."""
        return {
            "batch_sizes": list(batch_sizes or [self.batch_size]),
            "seq_lens": list(seq_lens or [self.seq_len]),
            "threads": list(threads or [self.threads]),
        }


def timing_text(tokenizer, texts: Sequence[str], seq_len: int) -> str:
    """Join held-out sentences until they fill ``seq_len`` tokens, so timing runs real full-length input.
    (An image model is timed on its first held-out image.)"""
    if is_image_processor(tokenizer) or not isinstance(texts[0], str):  # images; text pairs: the longest
        return texts[0] if is_image_processor(tokenizer) else max(texts, key=lambda t: sum(map(len, t)))
    joined, i = "", 0
    while i < len(texts) and len(tokenizer(joined)["input_ids"]) < seq_len:
        joined = f"{joined} {texts[i]}".strip()
        i += 1
    return joined


def _task_metrics(task, outputs, gold, items, tokenizer, seq_len: int) -> dict:
    if gold is None or outputs is None or task is None:
        return {}
    return get_task(task).evaluate(outputs, gold, items, tokenizer, seq_len)


def _import_runtime(name: str) -> None:
    """Import a runtime's libraries before a model is measured: a model's memory does not include its runtime's."""
    adapter = runtime_adapters().get(name)
    if adapter is not None and adapter.available():  # one that is not fails in its own load, with its own message
        for module in adapter.requires:
            importlib.import_module(module)


def _load_all(
    bar, settings: BenchSettings, task, tokenizer, texts, feeds_override, labels=None, overrides=None
) -> list[tuple]:
    """Load each target, run it on the held-out texts, record its memory and fidelity."""
    reference_out = None
    loaded = []
    for target in bar:
        bar.set_postfix_str(target.name)
        _import_runtime(target.runtime)
        tok = target.tokenizer or tokenizer
        with PeakRSS() as mem:
            session = target.load()
            seq_len = min(settings.seq_len, session.max_seq_len or settings.seq_len)
            if feeds_override is not None:
                feeds = check_feeds(feeds_override, session.inputs)
            elif tok is not None:
                text = timing_text(tok, texts, seq_len)
                feeds = tokenize(tok, [text] * settings.batch_size, session.inputs, seq_len, fixed=True)
            else:
                feeds = synthesize(session.inputs, settings.batch_size, seq_len, overrides=overrides)
            if feeds_override is None and tok is None:
                run_synthesized(session, feeds, target.path)
            else:
                session.run(feeds)
            outputs = run_texts(session, tok, texts, seq_len) if tok is not None and texts else None
        if target.is_reference:
            reference_out = outputs
            fidelity = {"reference": True}
        elif outputs is not None and reference_out is not None:
            fidelity = compare(task, reference_out, outputs)
        else:
            fidelity = {}
        fidelity.update(_task_metrics(task, outputs, labels, texts, tok, seq_len))
        loaded.append((target, session, feeds, mem, fidelity))
    return loaded


def run_synthesized(session, feeds: dict, model: str) -> None:
    """Run ``session`` once on inputs synthesized from its specs; when the runtime rejects them, an exit-2
    error that names the inputs as synthesized and how to state them (a sample rate that must be 16000, an
    image height fixed at 48, a state tensor's shape cannot be guessed from a graph)."""
    try:
        session.run(feeds)
    except Exception as err:  # noqa: BLE001 - any runtime's rejection of the synthesized inputs
        raise InputError(synthesis_hint(model, err, feeds)) from None


def synthesis_hint(model: str, err: Exception | str, feeds: dict | None = None) -> str:
    first = " ".join(str(err).split())[:300]
    fed = f" (fed {', '.join(f'{k} {list(v.shape)} {v.dtype}' for k, v in feeds.items())})" if feeds else ""
    return (
        f"{model}: the runtime rejected inputs synthesized from the model's specs{fed}: {first}; state "
        "them: --shape NAME=1,3,48,320, --value NAME=16000, or --inputs FILE.npz"
    )


REFRESH_S = 0.5  # how often the timing bar is redrawn (from a thread: never inside a timed call)


def timing_progress(runners: list[Callable[..., object]], settings: BenchSettings, progress: bool):
    """``runners`` to time with ``settings``, counted, with a progress bar (see :func:`counted_calls`)."""
    desc = f"timing {len(runners)} model(s), b{settings.batch_size} s{settings.seq_len} t{settings.threads}"
    return counted_calls(runners, settings.warmup + settings.runs, desc, progress)


@contextmanager
def counted_calls(runners: list[Callable[..., object]], calls_each: int, desc: str, progress: bool):
    """``runners`` to time, counted, with a progress bar (calls done of ``calls_each`` per model, and the ETA)
    on stderr while they run. The timed calls only add one to a counter; the bar is redrawn from a thread
    every :data:`REFRESH_S` seconds, so no drawing falls inside a timed call."""
    if not progress:
        yield runners
        return
    done = [0]

    def counted(run: Callable[..., object]) -> Callable[[], object]:
        def call():
            done[0] += 1
            return run()

        return call

    total = calls_each * len(runners)
    stop = threading.Event()
    with tqdm(total=total, desc=desc, unit="run", leave=False, file=sys.stderr, dynamic_ncols=True) as bar:

        def redraw() -> None:
            while not stop.wait(REFRESH_S):
                bar.n = done[0]
                bar.refresh()

        painter = threading.Thread(target=redraw, name="edgekit-timing-bar", daemon=True)
        painter.start()
        try:
            yield [counted(r) for r in runners]
        finally:
            stop.set()
            painter.join()
            bar.n = done[0]
            bar.refresh()


def measure(
    targets: Sequence[Target],
    settings: BenchSettings,
    *,
    task: str | None = None,
    tokenizer=None,
    texts: Sequence = (),
    progress: bool = True,
    feeds_override: dict | None = None,
    labels=None,
    overrides=None,
) -> list[dict]:
    """Measure every target side by side. The reference (if any) comes first;
    the others' fidelity is measured against its outputs on ``texts``.

    Phase 1 loads each target in turn; its ``peak_rss_mb`` is the memory its load,
    warm-up and fidelity pass add at their peak over what was live just before (its
    runtime's libraries imported first, freed memory released), and
    ``process_peak_rss_mb`` the whole process's peak. Phase 2 times all of them
    interleaved in rounds. With ``progress``, each phase shows a bar with its ETA on stderr.
    """
    ordered = sorted(targets, key=lambda t: not t.is_reference)
    texts = list(texts[: settings.fidelity_samples])
    with tqdm(ordered, desc="load + fidelity", unit="model", disable=not progress, leave=False) as bar:
        loaded = _load_all(bar, settings, task, tokenizer, texts, feeds_override, labels, overrides)
    runners = [lambda s=s, f=f: s.run(f) for _, s, f, _, _ in loaded]
    with timing_progress(runners, settings, progress) as counted:
        latencies = interleaved(counted, settings.warmup, settings.runs)
    rows = []
    for (target, _session, feeds, mem, fidelity), latency in zip(loaded, latencies):
        rows.append(
            {
                "name": target.name,
                "format": target.format,
                "precision": target.precision,
                "runtime": target.runtime,
                "path": target.path,
                "size_bytes": target.size_bytes,
                "batch_size": settings.batch_size,
                "seq_len": settings.seq_len,
                "threads": settings.threads,
                "input_shapes": {k: list(v.shape) for k, v in feeds.items()},
                "latency_ms": latency.as_dict(),
                "throughput_per_s": round(settings.batch_size * 1000.0 / latency.mean, 3),
                "peak_rss_mb": round(mem.delta_mb, 1),  # the model's own: its load, warm-up and fidelity pass
                "process_peak_rss_mb": round(mem.peak_mb, 1),  # the whole process, every library and model in it
                "fidelity": fidelity,
                "is_reference": target.is_reference,
                "runtime_details": _session.details(),
            }
        )
    key = get_task(task).eval_key if task else "accuracy"  # the task's metric; its drop is "accuracy_drop"
    ref_acc = next((r["fidelity"].get(key) for r in rows if r["is_reference"]), None)
    for r in rows:
        if ref_acc is not None and key in r["fidelity"]:
            r["fidelity"]["accuracy_drop"] = round(ref_acc - r["fidelity"][key], 3)
    ref_p50 = next((r["latency_ms"]["p50"] for r in rows if r["is_reference"]), None)
    for r in rows:
        r["speedup_vs_reference"] = round(ref_p50 / r["latency_ms"]["p50"], 3) if ref_p50 else None
    return rows
