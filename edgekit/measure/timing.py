"""Timing and memory measurement, shared by every runtime adapter."""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Latency:
    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    runs: int

    def as_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in self.__dict__.items()}


def summarize(times_ms: np.ndarray) -> Latency:
    p50, p90, p99 = np.percentile(times_ms, [50, 90, 99])
    return Latency(float(p50), float(p90), float(p99), float(times_ms.mean()), float(times_ms.std()), len(times_ms))


def timed(run, runs: int) -> np.ndarray:
    """Wall time of ``runs`` calls of ``run()`` in milliseconds, with the garbage collector paused. Only the
    young generation is collected first: a full collection of a process holding torch and transformers costs
    about 0.25 s, paid before every slice of :func:`interleaved` (which collects fully once), and no collection
    can pause the timed calls anyway."""
    gc.collect(0)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    times = np.empty(runs)
    try:
        for i in range(runs):
            t0 = time.perf_counter()
            run()
            times[i] = (time.perf_counter() - t0) * 1000.0
    finally:
        if gc_was_enabled:
            gc.enable()
    return times


def interleaved(runners: list, warmup: int, runs: int, rounds: int = 5, settle_s: float = 0.05) -> list[Latency]:
    """Time several models side by side: each round gives every model an equal
    slice of its runs, so drift in machine load hits all of them alike.

    ``settle_s`` pauses between slices so one runtime's spinning worker threads
    do not eat into the next one's time.
    """
    gc.collect()
    for run in runners:
        for _ in range(warmup):
            run()
    rounds = max(1, min(rounds, runs))
    per_round = [runs // rounds + (1 if i < runs % rounds else 0) for i in range(rounds)]
    collected: list[list[np.ndarray]] = [[] for _ in runners]
    for n in per_round:
        for i, run in enumerate(runners):
            time.sleep(settle_s)
            collected[i].append(timed(run, n))
    return [summarize(np.concatenate(c)) for c in collected]


def _rss_reader():
    """This process's resident set size in bytes: psutil, or /proc where psutil is not installed (devices)."""
    try:
        import psutil

        proc = psutil.Process()
        return lambda: proc.memory_info().rss
    except ImportError:
        import os

        page = os.sysconf("SC_PAGE_SIZE")

        def from_proc() -> int:
            with open("/proc/self/statm", encoding="ascii") as f:
                return int(f.read().split()[1]) * page

        return from_proc


def release_freed() -> None:
    """Collect garbage and hand the heap's free pages back to the OS (glibc's ``malloc_trim``), so the
    resident memory measured next is what is live: memory freed earlier is neither counted nor reused unseen."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl): nothing to trim
            pass


class PeakRSS:
    """Samples this process's resident memory in a background thread.

    After the block: ``peak_mb``, the process's peak; ``delta_mb``, what the block added
    at its peak over the memory live when it began (freed memory is released first).
    """

    def __init__(self, interval_s: float = 0.005) -> None:
        self._interval = interval_s
        self._rss = _rss_reader()
        self._stop = threading.Event()
        self.peak_bytes = 0
        self.start_bytes = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._rss())
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakRSS:
        release_freed()
        self.start_bytes = self.peak_bytes = self._rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._rss())

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20

    @property
    def delta_mb(self) -> float:
        return (self.peak_bytes - self.start_bytes) / 2**20
