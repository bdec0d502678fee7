"""Hand-written SVG charts for docs/benchmarks.md (Python standard library only).

Three kinds, all with axes, grid lines, labelled ticks, a title and a legend:

  bar_chart(path, title, bars, ...)             one bar per server, min-max whiskers
  grouped_bar_chart(path, title, groups, series) bars per server within each group (percentiles)
  line_chart(path, title, series, ...)          one line per server against N, min-max whiskers

Values may be None (not measured): the bar or point is left out. `log=True` gives a base-10
value axis, for figures that span decades (latencies of different servers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence
from xml.sax.saxutils import escape

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#56B4E9", "#E69F00", "#CC79A7", "#009E73", "#D55E00", "#F0E442", "#000000"]

WIDTH = 760
HEIGHT = 380
FONT = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""


def si(v: float) -> str:
    """1234567 -> 1.23M, 12345 -> 12.3k, 950 -> 950, 0.25 -> 0.25."""
    if v is None:
        return "n/a"
    a = abs(v)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return _trim(v / div) + suffix
    return _trim(v)


def _trim(v: float) -> str:
    a = abs(v)
    if a >= 100 or a == 0:
        s = f"{v:.0f}"
    elif a >= 10:
        s = f"{v:.1f}"
    elif a >= 1:
        s = f"{v:.2f}"
    else:
        s = f"{v:.3g}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def microseconds(v: float) -> str:
    """A latency given in microseconds: 86 µs, 1.5 ms, 1.74 s."""
    if v is None:
        return "n/a"
    a = abs(v)
    if a >= 1e6:
        return _trim(v / 1e6) + " s"
    if a >= 1e3:
        return _trim(v / 1e3) + " ms"
    return _trim(v) + " µs"


def bytes_(v: float) -> str:
    if v is None:
        return "n/a"
    a = abs(v)
    if a >= 1 << 30:
        return _trim(v / (1 << 30)) + " GiB"
    if a >= 1 << 20:
        return _trim(v / (1 << 20)) + " MiB"
    return f"{v:,.0f} B" if a >= 100 else _trim(v) + " B"


# ---------------------------------------------------------------------------------------------
# Scales


@dataclass
class Scale:
    lo: float
    hi: float
    log: bool
    ticks: list = field(default_factory=list)

    def frac(self, v: float) -> float:
        """Position of v in [0, 1] along the axis."""
        if self.log:
            v = max(v, self.lo)
            return (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        return (v - self.lo) / (self.hi - self.lo) if self.hi > self.lo else 0.0


def _nice_step(span: float, count: int) -> float:
    raw = span / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def linear_scale(values: Sequence[float], count: int = 5, zero: bool = True) -> Scale:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    hi = max(vals) if vals else 1.0
    lo = 0.0 if zero or not vals else min(vals)
    if hi <= lo:
        hi = lo + 1.0
    step = _nice_step(hi - lo, count)
    lo = math.floor(lo / step) * step
    hi = math.ceil(hi / step) * step
    if hi == max(vals, default=hi):  # leave room above the tallest bar for its label
        hi += step
    ticks = []
    t = lo
    while t <= hi + step / 1e6:
        ticks.append(round(t, 10))
        t += step
    return Scale(lo, hi, False, ticks)


def log_scale(values: Sequence[float], headroom: float = 0.15) -> Scale:
    vals = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    if not vals:
        return Scale(1, 10, True, [1, 10])
    lo = 10 ** math.floor(math.log10(min(vals)))
    hi = 10 ** math.ceil(math.log10(max(vals)) + headroom)  # headroom (decades) for labels
    if hi <= lo:
        hi = lo * 10
    decades = round(math.log10(hi / lo))
    ticks = []
    d = lo
    while d <= hi * 1.0001:
        ticks.append(d)
        if decades <= 2:
            for m in (2, 5):
                if d * m < hi:
                    ticks.append(d * m)
        d *= 10
    return Scale(lo, hi, True, sorted(ticks))


# ---------------------------------------------------------------------------------------------
# SVG building blocks


class Svg:
    def __init__(self, width: int = WIDTH, height: int = HEIGHT):
        self.width, self.height = width, height
        self.parts: list[str] = []

    def add(self, s: str) -> None:
        self.parts.append(s)

    def text(self, x, y, s, size=12, anchor="start", weight="normal", fill="#222", rotate=None, baseline=None):
        extra = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate is not None else ""
        if baseline:
            extra += f' dominant-baseline="{baseline}"'
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                 f'font-weight="{weight}" fill="{fill}"{extra}>{escape(str(s))}</text>')

    def line(self, x1, y1, x2, y2, stroke="#222", width=1.0, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}" '
                 f'stroke-width="{width}"{d}/>')

    def rect(self, x, y, w, h, fill, stroke=None, title=None):
        s = f' stroke="{stroke}" stroke-width="0.8"' if stroke else ""
        inner = f"<title>{escape(title)}</title>" if title else ""
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
                 f'fill="{fill}"{s}>{inner}</rect>')

    def render(self) -> str:
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
                f'viewBox="0 0 {self.width} {self.height}" {FONT}>\n'
                f'<rect width="{self.width}" height="{self.height}" fill="#ffffff"/>\n')
        return head + "\n".join(self.parts) + "\n</svg>\n"

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.render())


@dataclass
class Plot:
    """The plotting area inside the margins."""
    left: float
    top: float
    right: float
    bottom: float

    @property
    def w(self):
        return self.right - self.left

    @property
    def h(self):
        return self.bottom - self.top


def _value_axis(svg: Svg, plot: Plot, scale: Scale, fmt: Callable, label: str) -> None:
    for t in scale.ticks:
        y = plot.bottom - scale.frac(t) * plot.h
        if y < plot.top - 0.5 or y > plot.bottom + 0.5:
            continue
        svg.line(plot.left, y, plot.right, y, stroke="#e2e2e2")
        svg.line(plot.left - 4, y, plot.left, y)
        svg.text(plot.left - 7, y + 4, fmt(t), size=11, anchor="end")
    svg.line(plot.left, plot.top, plot.left, plot.bottom)
    svg.line(plot.left, plot.bottom, plot.right, plot.bottom)
    if label:
        svg.text(16, plot.top + plot.h / 2, label, size=12, anchor="middle", rotate=-90)


def _title(svg: Svg, title: str, subtitle: Optional[str]) -> None:
    svg.text(svg.width / 2, 22, title, size=15, anchor="middle", weight="bold")
    if subtitle:
        svg.text(svg.width / 2, 39, subtitle, size=11, anchor="middle", fill="#555")


def _legend(svg: Svg, items: Sequence[tuple[str, str]], plot: Plot, kind: str = "box") -> None:
    """Legend in one row under the plot's x-axis labels."""
    if not items:
        return
    widths = [28 + 7.2 * len(name) for name, _ in items]
    total = sum(widths) + 14 * (len(items) - 1)
    x = plot.left + (plot.w - total) / 2
    y = svg.height - 14
    for (name, color), w in zip(items, widths):
        if kind == "line":
            svg.line(x, y - 4, x + 20, y - 4, stroke=color, width=2.5)
            svg.add(f'<circle cx="{x + 10:.1f}" cy="{y - 4:.1f}" r="3.5" fill="{color}"/>')
        else:
            svg.rect(x + 4, y - 10, 12, 12, color)
        svg.text(x + 25, y, name, size=12)
        x += w + 14


def _whisker(svg: Svg, x: float, y_lo: float, y_hi: float, half: float = 4) -> None:
    if abs(y_lo - y_hi) < 0.5:
        return
    svg.line(x, y_lo, x, y_hi, stroke="#111", width=1.1)
    svg.line(x - half, y_lo, x + half, y_lo, stroke="#111", width=1.1)
    svg.line(x - half, y_hi, x + half, y_hi, stroke="#111", width=1.1)


# ---------------------------------------------------------------------------------------------
# Charts


@dataclass
class Series:
    name: str
    color: str
    values: list  # one per group (bars) or per x (lines); None = not measured
    lows: Optional[list] = None
    highs: Optional[list] = None


def _text_width(s: str, size: float) -> float:
    return len(s) * size * 0.58


def grouped_bar_chart(path: str, title: str, groups: Sequence[str], series: Sequence[Series], *,
                      ylabel: str = "", fmt: Callable = si, log: bool = False,
                      subtitle: Optional[str] = None, value_labels: bool = True,
                      legend: bool = True) -> None:
    svg = Svg(width=max(WIDTH, 120 + 48 * len(groups) * max(len(series), 1)))
    _title(svg, title, subtitle)
    plot = Plot(left=78, top=58 if subtitle else 46, right=svg.width - 20, bottom=svg.height - 62)
    everything = []
    for s in series:
        everything += [v for v in s.values if v is not None]
        everything += [v for v in (s.highs or []) if v is not None]
    scale = log_scale(everything, headroom=0.3) if log else linear_scale(everything)
    _value_axis(svg, plot, scale, fmt, ylabel)

    n_groups, n_series = max(len(groups), 1), max(len(series), 1)
    group_w = plot.w / n_groups
    bar_w = min(64.0, group_w * 0.8 / n_series)
    for gi, g in enumerate(groups):
        cx = plot.left + group_w * (gi + 0.5)
        svg.text(cx, plot.bottom + 18, g, size=12, anchor="middle")
        x0 = cx - bar_w * n_series / 2
        for si_, s in enumerate(series):
            v = s.values[gi] if gi < len(s.values) else None
            x = x0 + si_ * bar_w
            if v is None:
                svg.text(x + bar_w / 2, plot.bottom - 4, "–", size=11, anchor="middle", fill="#888")
                continue
            y = plot.bottom - scale.frac(v) * plot.h
            svg.rect(x + 1, y, bar_w - 2, plot.bottom - y, s.color, title=f"{s.name} {g}: {fmt(v)}")
            top = y
            lo = s.lows[gi] if s.lows and gi < len(s.lows) else None
            hi = s.highs[gi] if s.highs and gi < len(s.highs) else None
            if lo is not None and hi is not None:
                y_lo = plot.bottom - scale.frac(lo) * plot.h
                y_hi = plot.bottom - scale.frac(hi) * plot.h
                _whisker(svg, x + bar_w / 2, y_lo, y_hi, half=min(4, bar_w / 4))
                top = min(top, y_hi)
            if value_labels:
                size = 11 if bar_w >= 44 else 10
                label = fmt(v)
                # Labels wider than their bar would run into the neighbour's: raise every other one.
                lift = (size + 2) if (si_ % 2 and _text_width(label, size) > bar_w - 2) else 0
                svg.text(x + bar_w / 2, top - 4 - lift, label, size=size, anchor="middle")
    if legend and n_series > 1:
        _legend(svg, [(s.name, s.color) for s in series], plot)
    svg.save(path)


def bar_chart(path: str, title: str, names: Sequence[str], colors: Sequence[str], values: Sequence,
              lows: Optional[Sequence] = None, highs: Optional[Sequence] = None, *, ylabel: str = "",
              fmt: Callable = si, log: bool = False, subtitle: Optional[str] = None) -> None:
    """One bar per name (server), each in its own colour; the names label the x-axis."""
    svg = Svg()
    _title(svg, title, subtitle)
    plot = Plot(left=78, top=58 if subtitle else 46, right=svg.width - 20, bottom=svg.height - 40)
    everything = [v for v in values if v is not None] + [v for v in (highs or []) if v is not None]
    scale = log_scale(everything) if log else linear_scale(everything)
    _value_axis(svg, plot, scale, fmt, ylabel)
    n = max(len(names), 1)
    slot = plot.w / n
    bar_w = min(110.0, slot * 0.6)
    for i, (name, color) in enumerate(zip(names, colors)):
        cx = plot.left + slot * (i + 0.5)
        svg.text(cx, plot.bottom + 18, name, size=12, anchor="middle")
        v = values[i]
        if v is None:
            svg.text(cx, plot.bottom - 6, "not measured", size=11, anchor="middle", fill="#888")
            continue
        y = plot.bottom - scale.frac(v) * plot.h
        svg.rect(cx - bar_w / 2, y, bar_w, plot.bottom - y, color, title=f"{name}: {fmt(v)}")
        top = y
        if lows and highs and lows[i] is not None and highs[i] is not None:
            y_lo = plot.bottom - scale.frac(lows[i]) * plot.h
            y_hi = plot.bottom - scale.frac(highs[i]) * plot.h
            _whisker(svg, cx, y_lo, y_hi, half=8)
            top = min(top, y_hi)
        svg.text(cx, top - 5, fmt(v), size=12, anchor="middle", weight="bold")
    svg.save(path)


def line_chart(path: str, title: str, xs: Sequence[float], series: Sequence[Series], *, xlabel: str = "",
               ylabel: str = "", fmt: Callable = si, xfmt: Callable = si, log: bool = False,
               subtitle: Optional[str] = None, hline: Optional[tuple] = None) -> None:
    """Lines against numeric x values (connections), the x-axis linear with a tick per x.
    hline = (value, label): a dashed reference line (a target)."""
    svg = Svg()
    _title(svg, title, subtitle)
    plot = Plot(left=78, top=58 if subtitle else 46, right=svg.width - 72, bottom=svg.height - 70)
    everything = []
    for s in series:
        everything += [v for v in s.values if v is not None]
        everything += [v for v in (s.highs or []) if v is not None]
    if hline:
        everything.append(hline[0])
    scale = log_scale(everything) if log else linear_scale(everything)
    _value_axis(svg, plot, scale, fmt, ylabel)
    if hline:
        y = plot.bottom - scale.frac(hline[0]) * plot.h
        svg.line(plot.left, y, plot.right, y, stroke="#c00", width=1.2, dash="6 4")
        svg.text(plot.left + 6, y - 5, hline[1], size=11, fill="#c00")

    x_lo, x_hi = 0.0, max(xs) if xs else 1.0
    pad = (x_hi - x_lo) * 0.04

    def px(x):
        return plot.left + (x - x_lo + pad) / (x_hi - x_lo + 2 * pad) * plot.w

    for x in xs:
        svg.line(px(x), plot.bottom, px(x), plot.bottom + 4)
        svg.line(px(x), plot.top, px(x), plot.bottom, stroke="#f0f0f0")
        svg.text(px(x), plot.bottom + 17, xfmt(x), size=11, anchor="middle")
    if xlabel:
        svg.text(plot.left + plot.w / 2, plot.bottom + 34, xlabel, size=12, anchor="middle")

    end_labels = []  # (y, text, colour, x) of each series' last point
    for s in series:
        pts = [(px(x), plot.bottom - scale.frac(v) * plot.h, v, i)
               for i, (x, v) in enumerate(zip(xs, s.values)) if v is not None]
        if not pts:
            continue
        if len(pts) > 1:
            d = " ".join(f"{'M' if k == 0 else 'L'}{x:.1f},{y:.1f}" for k, (x, y, _, _) in enumerate(pts))
            svg.add(f'<path d="{d}" fill="none" stroke="{s.color}" stroke-width="2.5"/>')
        for x, y, v, i in pts:
            lo = s.lows[i] if s.lows else None
            hi = s.highs[i] if s.highs else None
            if lo is not None and hi is not None:
                _whisker(svg, x, plot.bottom - scale.frac(lo) * plot.h, plot.bottom - scale.frac(hi) * plot.h, 3)
            svg.add(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{s.color}" stroke="#fff" stroke-width="1">'
                    f'<title>{escape(s.name)} at {xfmt(xs[i])}: {escape(fmt(v))}</title></circle>')
        x, y, v, _ = pts[-1]
        end_labels.append([y, fmt(v), s.color, x])
    # Each series' last value to the right of its point, spread apart so that none overlap.
    end_labels.sort(key=lambda e: e[0])
    for k in range(1, len(end_labels)):
        end_labels[k][0] = max(end_labels[k][0], end_labels[k - 1][0] + 13)
    limit = plot.bottom - 4  # and none below the x-axis
    for e in reversed(end_labels):
        e[0] = min(e[0], limit)
        limit = e[0] - 13
    for y, text, color, x in end_labels:
        svg.text(x + 9, y + 4, text, size=11, fill=color, weight="bold")
    _legend(svg, [(s.name, s.color) for s in series], plot, kind="line")
    svg.save(path)


if __name__ == "__main__":  # a demo: python3 bench/charts.py /tmp/demo
    import os
    import sys

    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/charts-demo"
    os.makedirs(out, exist_ok=True)
    names = ["ours-1t", "ours-2t", "ws", "socketio"]
    bar_chart(f"{out}/bar.svg", "Fanout, 10,000 subscribers", names, PALETTE[:4],
              [2.36e6, 2.9e6, 114e3, None], [2.2e6, 2.7e6, 100e3, None], [2.4e6, 3.0e6, 120e3, None],
              ylabel="deliveries/s", subtitle="median of 3 runs, whiskers min-max")
    grouped_bar_chart(f"{out}/grouped.svg", "Latency", ["p50", "p90", "p99", "p99.9", "max"],
                      [Series("ours-1t", PALETTE[0], [86, 100, 294, 739, 9378]),
                       Series("ws", PALETTE[2], [950e3, 1.5e6, 1.7e6, 1.75e6, 1.76e6])],
                      ylabel="latency", fmt=microseconds, log=True)
    line_chart(f"{out}/line.svg", "Growth", [1000, 5000, 10000, 19000],
               [Series("ours-1t", PALETTE[0], [2.1e6, 2.3e6, 2.36e6, 2.2e6], [2e6] * 4, [2.4e6] * 4),
                Series("ws", PALETTE[2], [130e3, 120e3, 114e3, None])],
               xlabel="connections", ylabel="deliveries/s")
    print("wrote", out)
