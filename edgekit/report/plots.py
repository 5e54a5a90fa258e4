"""Plots as inline SVG: the HTML report needs no network, no JavaScript and no plotting library.

Every plot keeps its legend in a column right of the plotting area (it never covers a point or a
line), labels its axes with round numbers (a log axis, labelled 0.1, 0.2, 0.5, 1, 2, 5, ..., when
the values span more than ``LOG_RANGE`` times), and takes the page's colour per artifact name, so an
artifact has one colour in every plot. A point's exact values are in its tooltip (``<title>``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape

W = 840  # the SVG's width; the plotting area ends LEGEND_W before it
LEGEND_W = 230
PAD_L, PAD_T, PAD_B = 70, 40, 56  # left (tick labels, y label), top (title), bottom (tick labels, x label)
H = 380
CHAR_W = 6.6  # approximate width of a 12px sans-serif character
LOG_RANGE = 10.0  # a latency axis spanning more than this ratio is logarithmic
COLORS = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
]
SHAPES = ["circle", "square", "triangle", "diamond", "triangle-down", "plus"]  # one per run
DASHES = ["", "6,4", "2,3", "8,3,2,3", "1,5"]  # one per run


def palette(names: Iterable[str]) -> dict[str, str]:
    """One colour per artifact name, in the order the names first appear (cycling after ten)."""
    out: dict[str, str] = {}
    for n in names:
        if n not in out:
            out[n] = COLORS[len(out) % len(COLORS)]
    return out


# --- axes --------------------------------------------------------------------------------------------


def nice_step(span: float, n: int = 5) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about ``n`` intervals over ``span``."""
    raw = span / max(n, 1)
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))


def _decimals(step: float) -> int:
    """Decimals that show every multiple of ``step`` exactly (0.25 needs two, 0.5 one, 5 none)."""
    d = 0
    while d < 12 and abs(round(step * 10**d) - step * 10**d) > 1e-6 * step * 10**d:
        d += 1
    return d


def fmt_tick(v: float, decimals: int | None = None) -> str:
    """A tick label without exponents: 0.002, 0.5, 2, 1000."""
    if decimals is not None:
        return f"{v:.{decimals}f}"
    if v == 0:
        return "0"
    if abs(v) >= 1:
        return f"{v:.0f}" if abs(v - round(v)) < 1e-9 else f"{v:g}"
    d = _decimals(abs(v))
    return f"{v:.{d}f}"


@dataclass
class Axis:
    lo: float
    hi: float
    log: bool
    ticks: list[float]
    labels: list[str]

    def at(self, v: float, a: float, b: float) -> float:
        """The pixel of ``v`` on an axis drawn from pixel ``a`` (at lo) to ``b`` (at hi)."""
        if self.log:
            lo, hi, v = math.log10(self.lo), math.log10(self.hi), math.log10(max(v, self.lo * 1e-3))
        else:
            lo, hi = self.lo, self.hi
        return a + (v - lo) / ((hi - lo) or 1.0) * (b - a)


def linear_axis(lo: float, hi: float, *, zero: bool = False, cap: float | None = None, n: int = 5) -> Axis:
    """Round ticks covering ``[lo, hi]`` (from 0 with ``zero``; never above ``cap``)."""
    if zero:
        lo = min(0.0, lo)
    if hi - lo <= 0:
        if cap is not None and hi >= cap:
            lo, hi = hi - 0.01, hi
        else:
            lo, hi = lo - 0.5 * (abs(lo) or 1), hi + 0.5 * (abs(hi) or 1)
        if zero:
            lo = min(0.0, lo)
    step = nice_step(hi - lo, n)
    tlo = math.floor(lo / step + 1e-9) * step
    thi = math.ceil(hi / step - 1e-9) * step
    if cap is not None and thi > cap:
        thi = cap
    count = round((thi - tlo) / step)
    ticks = [round(tlo + i * step, 12) for i in range(count + 1)]
    d = _decimals(step)
    return Axis(tlo, thi, False, ticks, [fmt_tick(t, d) for t in ticks])


def log_axis(lo: float, hi: float) -> Axis:
    """Ticks at 1, 2, 5 times powers of ten (only the powers when the values span more than 3.5 decades)."""
    lo_e, hi_e = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mantissas = (1,) if math.log10(hi / lo) > 3.5 else (1, 2, 5)
    cands = [m * 10.0**e for e in range(lo_e - 1, hi_e + 1) for m in mantissas]
    below = [c for c in cands if c <= lo * (1 + 1e-9)]
    above = [c for c in cands if c >= hi * (1 - 1e-9)]
    tlo, thi = max(below), min(above)
    ticks = [round(c, 12) for c in cands if tlo * (1 - 1e-9) <= c <= thi * (1 + 1e-9)]
    return Axis(tlo, thi, True, ticks, [fmt_tick(t) for t in ticks])


def value_axis(values: list[float], *, zero: bool = True, log: bool | None = None) -> Axis:
    """A latency-like axis: logarithmic when the positive values span more than ``LOG_RANGE`` times."""
    pos = [v for v in values if v > 0]
    if not pos:
        return linear_axis(0.0, 1.0, zero=True)
    if log is None:
        log = max(pos) / min(pos) > LOG_RANGE
    if log:
        return log_axis(min(pos), max(pos))
    return linear_axis(min(values), max(values), zero=zero)


def fraction_axis(values: list[float]) -> Axis:
    """A cosine / agreement axis: a little room below the lowest value, never above 1."""
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08
    return linear_axis(lo - pad, hi + pad if hi + pad < 1 else 1.0, cap=1.0 if hi <= 1 else None)


def discrete_axis(values: list[float]) -> Axis:
    """An axis with a tick at each value measured (sequence lengths, batch sizes); log when they span 4x."""
    vals = sorted(set(values))
    log = len(vals) > 1 and vals[0] > 0 and vals[-1] / vals[0] >= 4
    lo, hi = vals[0], vals[-1]
    if lo == hi:
        lo, hi = (lo / 2, hi * 2) if log or lo > 0 else (lo - 1, hi + 1)
    if log:
        lo, hi = lo / 1.15, hi * 1.15
    else:
        pad = (hi - lo) * 0.05
        lo, hi = lo - pad, hi + pad
    return Axis(lo, hi, log, vals, [fmt_tick(v) for v in vals])


# --- frame, markers, legend -------------------------------------------------------------------------


@dataclass
class Frame:
    """The plotting area of one SVG: pixel edges and the two axes."""

    x: Axis
    y: Axis
    height: int = H
    bottom_pad: int = PAD_B

    @property
    def left(self) -> float:  # room for the longest y tick label and the rotated y label
        return max(PAD_L, 34 + CHAR_W * max((len(label) for label in self.y.labels), default=0))

    @property
    def right(self) -> float:
        return W - LEGEND_W

    @property
    def top(self) -> float:
        return PAD_T

    @property
    def bottom(self) -> float:
        return self.height - self.bottom_pad

    def px(self, v: float) -> float:
        return self.x.at(v, self.left, self.right)

    def py(self, v: float) -> float:
        return self.y.at(v, self.bottom, self.top)


def _open(plot_id: str, title: str, height: int) -> list[str]:
    return [
        f'<svg id="{plot_id}" class="plot" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" '
        f'viewBox="0 0 {W} {height}" role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="12">',
        f'<text x="{PAD_L}" y="22" font-weight="bold" font-size="14">{escape(title)}</text>',
    ]


def _frame(f: Frame, xlabel: str, ylabel: str, *, x_ticks: bool = True) -> list[str]:
    out = []
    for t, label in zip(f.y.ticks, f.y.labels):
        y = f.py(t)
        out.append(f'<line x1="{f.left}" y1="{y:.1f}" x2="{f.right}" y2="{y:.1f}" stroke="#e6e6e6"/>')
        out.append(f'<text class="ytick" x="{f.left - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    if x_ticks:
        for t, label in zip(f.x.ticks, f.x.labels):
            x = f.px(t)
            out.append(f'<line x1="{x:.1f}" y1="{f.top}" x2="{x:.1f}" y2="{f.bottom}" stroke="#f0f0f0"/>')
            out.append(f'<text class="xtick" x="{x:.1f}" y="{f.bottom + 16}" text-anchor="middle">{label}</text>')
    out += [
        f'<line x1="{f.left}" y1="{f.bottom}" x2="{f.right}" y2="{f.bottom}" stroke="#333"/>',
        f'<line x1="{f.left}" y1="{f.bottom}" x2="{f.left}" y2="{f.top}" stroke="#333"/>',
        f'<text x="{(f.left + f.right) / 2}" y="{f.height - 14}" text-anchor="middle">{escape(xlabel)}'
        + (" (log scale)" if f.x.log and xlabel else "")
        + "</text>",
        f'<text x="16" y="{(f.top + f.bottom) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {(f.top + f.bottom) / 2})">{escape(ylabel)}'
        + (" (log scale)" if f.y.log else "")
        + "</text>",
    ]
    return out


def marker(shape: str, cx: float, cy: float, color: str, *, r: float = 5.5, cls: str = "", tip: str = "") -> str:
    """One marker: a hollow-ish shape (fill at 35%), so markers drawn over each other stay visible."""
    style = f'fill="{color}" fill-opacity="0.35" stroke="{color}" stroke-width="2"'
    c = f' class="{cls}"' if cls else ""
    title = f"<title>{escape(tip)}</title>" if tip else ""
    if shape == "square":
        body = f'<rect{c} x="{cx - r:.1f}" y="{cy - r:.1f}" width="{2 * r:.1f}" height="{2 * r:.1f}" {style}>'
        return body + title + "</rect>"
    if shape in ("triangle", "triangle-down", "diamond", "plus"):
        if shape == "triangle":
            pts = [(cx, cy - r * 1.2), (cx + r * 1.1, cy + r * 0.8), (cx - r * 1.1, cy + r * 0.8)]
        elif shape == "triangle-down":
            pts = [(cx, cy + r * 1.2), (cx + r * 1.1, cy - r * 0.8), (cx - r * 1.1, cy - r * 0.8)]
        elif shape == "diamond":
            pts = [(cx, cy - r * 1.3), (cx + r * 1.1, cy), (cx, cy + r * 1.3), (cx - r * 1.1, cy)]
        else:
            a, b = r * 1.2, r * 0.4
            pts = [
                (cx - b, cy - a), (cx + b, cy - a), (cx + b, cy - b), (cx + a, cy - b), (cx + a, cy + b),
                (cx + b, cy + b), (cx + b, cy + a), (cx - b, cy + a), (cx - b, cy + b), (cx - a, cy + b),
                (cx - a, cy - b), (cx - b, cy - b),
            ]  # fmt: skip
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        return f'<polygon{c} points="{points}" {style}>{title}</polygon>'
    return f'<circle{c} cx="{cx:.1f}" cy="{cy:.1f}" r="{r}" {style}>{title}</circle>'


@dataclass
class LegendEntry:
    label: str
    color: str = "#555"
    shape: str | None = None  # a marker
    dash: str | None = None  # a line ("" solid)
    heading: bool = False


def _legend(entries: list[LegendEntry], top: float) -> list[str]:
    x0 = W - LEGEND_W + 16
    out, y = [], top + 4
    max_chars = int((LEGEND_W - 44) / CHAR_W)
    for e in entries:
        label = e.label if len(e.label) <= max_chars else e.label[: max_chars - 1] + "…"
        if e.heading:
            out.append(f'<text x="{x0}" y="{y + 4}" font-weight="bold">{escape(label)}</text>')
            y += 18
            continue
        if e.dash is not None:
            dash = f' stroke-dasharray="{e.dash}"' if e.dash else ""
            out.append(
                f'<line x1="{x0}" y1="{y}" x2="{x0 + 22}" y2="{y}" stroke="{e.color}" stroke-width="2.5"{dash}/>'
            )
        if e.shape is not None:
            out.append(marker(e.shape, x0 + 11, y, e.color, r=5))
        if e.shape is None and e.dash is None:  # a solid swatch
            out.append(f'<rect x="{x0 + 3}" y="{y - 6}" width="14" height="12" fill="{e.color}"/>')
        out.append(f'<text class="legend" x="{x0 + 30}" y="{y + 4}">{escape(label)}</text>')
        y += 18
    return out


def legend_height(entries: list[LegendEntry]) -> int:
    return 18 * len(entries) + 16


def _height(entries: list[LegendEntry], base: int = H) -> int:
    return max(base, PAD_T + legend_height(entries) + 8)


# --- the plots ---------------------------------------------------------------------------------------


@dataclass
class Point:
    x: float
    y: float
    name: str  # the artifact: its colour
    run: int = 0  # which report: its marker shape
    tip: str = ""


def pareto_front(points: list) -> list:
    """Points no other point beats on both lower x (latency) and higher y (fidelity); each point is a
    tuple (x, y, ...) or a :class:`Point`."""

    def xy(p) -> tuple[float, float]:
        return (p.x, p.y) if isinstance(p, Point) else (p[0], p[1])

    front, best_y = [], float("-inf")
    for p in sorted(points, key=lambda p: (xy(p)[0], -xy(p)[1])):
        if xy(p)[1] > best_y + 1e-9:  # a tie in fidelity is no gain
            front.append(p)
            best_y = xy(p)[1]
    return front


def _run_entries(runs: list[str], *, lines: bool = False) -> list[LegendEntry]:
    if len(runs) < 2:
        return []
    out = [LegendEntry("run", heading=True)]
    for i, r in enumerate(runs):
        if lines:
            out.append(LegendEntry(r, "#555", dash=DASHES[i % len(DASHES)]))
        else:
            out.append(LegendEntry(r, "#555", shape=SHAPES[i % len(SHAPES)]))
    return out


def scatter_pareto(
    points: list[Point],
    xlabel: str,
    ylabel: str,
    colors: dict[str, str],
    runs: list[str] | None = None,
    title: str = "Latency vs fidelity",
) -> str:
    """Latency (x, log when it spans >10x) against fidelity (y, never above 1), the Pareto front dashed;
    colour is the artifact, marker shape the run."""
    if not points:
        return ""
    runs = runs or []
    names = list(dict.fromkeys(p.name for p in points))
    entries = [LegendEntry("artifact", heading=True)]
    entries += [LegendEntry(n, colors[n], shape="circle") for n in names]
    entries += _run_entries(runs)
    entries += [LegendEntry("Pareto front", "#888", dash="5,4")]
    height = _height(entries)
    f = Frame(value_axis([p.x for p in points]), fraction_axis([p.y for p in points]), height)
    out = _open("plot-pareto", title, height) + _frame(f, xlabel, ylabel)
    front = pareto_front(points)
    out.append(
        '<polyline class="pareto" fill="none" stroke="#888" stroke-dasharray="5,4" points="'
        + " ".join(f"{f.px(p.x):.1f},{f.py(p.y):.1f}" for p in front)
        + '"/>'
    )
    placed: list[tuple[float, float]] = []
    for p in points:
        cx, cy = f.px(p.x), f.py(p.y)
        while any(abs(cx - a) < 4 and abs(cy - b) < 4 for a, b in placed):
            cx += 7  # a marker on top of another: set beside it (the tooltip keeps the exact values)
        placed.append((cx, cy))
        shape = SHAPES[p.run % len(SHAPES)]
        run = f"{runs[p.run]} " if len(runs) > 1 else ""
        tip = p.tip or f"{run}{p.name}: {p.x:.3g} ms, {p.y:.6g}"
        out.append(marker(shape, cx, cy, colors[p.name], cls="point", tip=tip))
    out += _legend(entries, f.top)
    return "\n".join(out + ["</svg>"])


def bars(values: list[tuple[str, float, str]], title: str, unit: str, plot_id: str) -> str:
    """Vertical bars (label, value, colour) from zero, each labelled with its value."""
    if not values:
        return ""
    longest = max(len(label[:28]) for label, _, _ in values)
    pad = int(24 + CHAR_W * longest * 0.5)  # labels under the bars, rotated 30 degrees
    top = max(v for _, v, _ in values) * 1.08
    f = Frame(linear_axis(0, len(values)), linear_axis(0, top, zero=True), 300 + pad, pad)
    out = _open(plot_id, title, f.height) + _frame(f, "", unit, x_ticks=False)
    width = (f.right - f.left) / len(values)
    decimals = 1 if max(v for _, v, _ in values) >= 10 else 2 if max(v for _, v, _ in values) >= 1 else 3
    for i, (label, v, color) in enumerate(values):
        x0 = f.left + i * width + width * 0.15
        y = f.py(v)
        out.append(
            f'<rect class="bar" x="{x0:.1f}" y="{y:.1f}" width="{width * 0.7:.1f}" height="{f.bottom - y:.1f}" '
            f'fill="{color}"><title>{escape(label)}: {v:.4g} {escape(unit)}</title></rect>'
        )
        out.append(f'<text x="{x0 + width * 0.35:.1f}" y="{y - 4:.1f}" text-anchor="middle">{v:.{decimals}f}</text>')
        lx, ly = x0 + width * 0.35, f.bottom + 14
        out.append(
            f'<text x="{lx:.1f}" y="{ly}" text-anchor="end" font-size="11" '
            f'transform="rotate(-30 {lx:.1f} {ly})">{escape(label[:28])}</text>'
        )
    return "\n".join(out + ["</svg>"])


@dataclass
class Interval:
    label: str  # the row's label, left of the axis
    lo: float  # the dot (p50)
    hi: float  # the whisker's end (p90)
    color: str
    run: int = 0


def dot_plot(items: list[Interval], title: str, xlabel: str, runs: list[str], plot_id: str = "plot-latency") -> str:
    """One row per item: a dot at ``lo`` and a whisker to ``hi``, labels left (they never collide);
    the value axis is logarithmic when it spans more than ``LOG_RANGE`` times."""
    if not items:
        return ""
    label_w = min(260, max(80, int(CHAR_W * max(len(i.label) for i in items)) + 12))
    row_h = 22
    height = PAD_T + row_h * len(items) + PAD_B + 4
    entries = _run_entries(runs)
    height = max(height, PAD_T + legend_height(entries) + 8)
    axis = value_axis([v for i in items for v in (i.lo, i.hi)])
    f = Frame(axis, linear_axis(0, 1), height)
    left = PAD_L + label_w - 60
    px = lambda v: axis.at(v, left, f.right)  # noqa: E731
    out = _open(plot_id, title, height)
    top, bottom = PAD_T, PAD_T + row_h * len(items)
    for t, label in zip(axis.ticks, axis.labels):
        x = px(t)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#e6e6e6"/>')
        out.append(f'<text class="xtick" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{label}</text>')
    out.append(f'<line x1="{left}" y1="{bottom}" x2="{f.right}" y2="{bottom}" stroke="#333"/>')
    out.append(
        f'<text x="{(left + f.right) / 2}" y="{bottom + 36}" text-anchor="middle">{escape(xlabel)}'
        + (" (log scale)" if axis.log else "")
        + "</text>"
    )
    for k, it in enumerate(items):
        y = top + row_h * k + row_h / 2
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{escape(it.label)}</text>')
        x0, x1, stroke = px(it.lo), px(it.hi), f'stroke="{it.color}" stroke-width="2"'
        out.append(f'<line x1="{x0:.1f}" y1="{y}" x2="{x1:.1f}" y2="{y}" {stroke}/>')
        out.append(f'<line x1="{x1:.1f}" y1="{y - 4}" x2="{x1:.1f}" y2="{y + 4}" {stroke}/>')
        tip = f"{it.label}: p50 {it.lo:.4g} ms, p90 {it.hi:.4g} ms"
        out.append(marker(SHAPES[it.run % len(SHAPES)], px(it.lo), y, it.color, cls="dot", tip=tip))
    out += _legend(entries, PAD_T)
    return "\n".join(out + ["</svg>"])


@dataclass
class Series:
    name: str  # the artifact: its colour
    run: int  # which report: its dash
    points: list[tuple[float, float]]


def lines(
    series: list[Series],
    title: str,
    xlabel: str,
    ylabel: str,
    plot_id: str,
    colors: dict[str, str],
    runs: list[str] | None = None,
) -> str:
    """One line per (run, artifact) over the measured x values (a tick at each), markers at the points;
    y from zero, or logarithmic when it spans more than ``LOG_RANGE`` times."""
    pts = [p for s in series for p in s.points]
    if not pts:
        return ""
    runs = runs or []
    names = list(dict.fromkeys(s.name for s in series))
    entries = [LegendEntry("artifact", heading=True)]
    entries += [LegendEntry(n, colors[n], dash="") for n in names]
    entries += _run_entries(runs, lines=True)
    height = _height(entries)
    f = Frame(discrete_axis([p[0] for p in pts]), value_axis([p[1] for p in pts]), height)
    out = _open(plot_id, title, height) + _frame(f, xlabel, ylabel)
    for s in series:
        color, dash = colors[s.name], DASHES[s.run % len(DASHES)]
        d = f' stroke-dasharray="{dash}"' if dash else ""
        ordered = sorted(s.points)
        run = f"{runs[s.run]} " if len(runs) > 1 else ""
        out.append(
            f'<polyline class="series" fill="none" stroke="{color}" stroke-width="2.5"{d} points="'
            + " ".join(f"{f.px(a):.1f},{f.py(b):.1f}" for a, b in ordered)
            + f'"><title>{escape(run + s.name)}</title></polyline>'
        )
        for a, b in ordered:
            tip = f"{run}{s.name}: {a:g} → {b:.4g} ms"
            out.append(marker(SHAPES[s.run % len(SHAPES)], f.px(a), f.py(b), color, r=3.5, tip=tip))
    out += _legend(entries, f.top)
    return "\n".join(out + ["</svg>"])
