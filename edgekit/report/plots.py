"""Plots as inline SVG: the HTML report needs no network, no JavaScript and no plotting library."""

from __future__ import annotations

from html import escape

W, H, PAD = 640, 360, 72
CHAR_W = 6.2  # approximate width of an 11px sans-serif character, for label placement
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _axes(title: str, xlabel: str, ylabel: str, xlo, xhi, ylo, yhi, plot_id: str) -> list[str]:
    x, y = _scale(xlo, xhi, PAD, W - 20), _scale(ylo, yhi, H - PAD, 30)
    out = [
        f'<svg id="{plot_id}" class="plot" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">',
        f'<text x="{W / 2}" y="18" text-anchor="middle" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 20}" y2="{H - PAD}" stroke="#333"/>',
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{PAD}" y2="30" stroke="#333"/>',
        f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle">{escape(xlabel)}</text>',
        f'<text x="16" y="{H / 2}" text-anchor="middle" transform="rotate(-90 16 {H / 2})">{escape(ylabel)}</text>',
    ]
    for i in range(5):
        xv, yv = xlo + (xhi - xlo) * i / 4, ylo + (yhi - ylo) * i / 4
        out.append(f'<text x="{x(xv):.1f}" y="{H - PAD + 16}" text-anchor="middle" font-size="11">{xv:.3g}</text>')
        out.append(f'<text x="{PAD - 6}" y="{y(yv) + 4:.1f}" text-anchor="end" font-size="11">{yv:.4g}</text>')
    return out


def pareto_front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Points no other point beats on both lower x (latency) and higher y (fidelity)."""
    front, best_y = [], float("-inf")
    for p in sorted(points, key=lambda p: (p[0], -p[1])):
        if p[1] > best_y + 1e-6:  # a tie in fidelity is no gain
            front.append(p)
            best_y = p[1]
    return front


def scatter_pareto(points: list[tuple[float, float, str]], xlabel: str, ylabel: str) -> str:
    if not points:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    xlo, xhi = 0.0, max(xs) * 1.1
    ylo, yhi = min(ys) - (max(ys) - min(ys) or 0.01) * 0.1, max(ys) + (max(ys) - min(ys) or 0.01) * 0.1
    x, y = _scale(xlo, xhi, PAD, W - 20), _scale(ylo, yhi, H - PAD, 30)
    out = _axes("Latency vs fidelity (Pareto front dashed)", xlabel, ylabel, xlo, xhi, ylo, yhi, "plot-pareto")
    front = pareto_front(points)
    out.append(
        '<polyline class="pareto" fill="none" stroke="#888" stroke-dasharray="5,4" points="'
        + " ".join(f"{x(px):.1f},{y(py):.1f}" for px, py, _ in front)
        + '"/>'
    )
    placed: list[tuple[float, float, float]] = []  # (x0, x1, baseline) of labels already drawn
    for i, (px, py, label) in enumerate(points):
        c = COLORS[i % len(COLORS)]
        out.append(
            f'<circle class="point" cx="{x(px):.1f}" cy="{y(py):.1f}" r="5" fill="{c}">'
            f"<title>{escape(label)}: {px:.2f} ms, {py:.4f}</title></circle>"
        )
        lx, ly, width = x(px) + 7, y(py) - 6, CHAR_W * len(label)
        if lx + width > W - 4:  # no room on the right: label to the left of the point
            lx = x(px) - 7 - width
        while any(a < lx + width and lx < b and abs(base - ly) < 12 for a, b, base in placed):
            ly += 13  # overlapping another label: move down a line
        placed.append((lx, lx + width, ly))
        out.append(f'<text x="{lx:.1f}" y="{ly:.1f}" font-size="11" fill="{c}">{escape(label)}</text>')
    return "\n".join(out + ["</svg>"])


def bars(values: list[tuple[str, float]], title: str, unit: str, plot_id: str) -> str:
    if not values:
        return ""
    top = max(v for _, v in values) * 1.1 or 1.0
    out = _axes(title, "", unit, 0, len(values), 0, top, plot_id)[:4]  # frame and title only
    y = _scale(0, top, H - PAD, 30)
    width = (W - PAD - 20) / len(values)
    for i, (label, v) in enumerate(values):
        x0 = PAD + i * width + width * 0.15
        out.append(
            f'<rect class="bar" x="{x0:.1f}" y="{y(v):.1f}" width="{width * 0.7:.1f}" '
            f'height="{H - PAD - y(v):.1f}" fill="{COLORS[i % len(COLORS)]}"><title>{escape(label)}: '
            f"{v:.2f} {unit}</title></rect>"
        )
        out.append(
            f'<text x="{x0 + width * 0.35:.1f}" y="{y(v) - 4:.1f}" text-anchor="middle" font-size="11">{v:.1f}</text>'
        )
        lx, ly = x0 + width * 0.35, H - PAD + 12
        out.append(
            f'<text x="{lx:.1f}" y="{ly}" text-anchor="end" font-size="10" '
            f'transform="rotate(-25 {lx:.1f} {ly})">{escape(label[:24])}</text>'
        )
    return "\n".join(out + ["</svg>"])


def lines(series: dict[str, list[tuple[float, float]]], title: str, xlabel: str, ylabel: str, plot_id: str) -> str:
    pts = [p for s in series.values() for p in s]
    if not pts:
        return ""
    xlo, xhi = min(p[0] for p in pts), max(p[0] for p in pts)
    ylo, yhi = 0.0, max(p[1] for p in pts) * 1.1
    x, y = _scale(xlo, xhi, PAD, W - 20), _scale(ylo, yhi, H - PAD, 30)
    out = _axes(title, xlabel, ylabel, xlo, xhi, ylo, yhi, plot_id)
    for i, (name, s) in enumerate(sorted(series.items())):
        c = COLORS[i % len(COLORS)]
        s = sorted(s)
        out.append(
            f'<polyline class="series" fill="none" stroke="{c}" stroke-width="2" points="'
            + " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in s)
            + '"/>'
        )
        out.append(
            f'<text x="{W - 24}" y="{40 + 14 * i}" text-anchor="end" font-size="11" fill="{c}">{escape(name)}</text>'
        )
    return "\n".join(out + ["</svg>"])
