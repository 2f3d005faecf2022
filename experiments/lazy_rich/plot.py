#!/usr/bin/env python3
"""The lazy-to-rich picture from a sweep's summary.csv (standard library only).

    python3 experiments/lazy_rich/plot.py experiments/lazy_rich/summary.csv \
        experiments/lazy_rich/lazy_rich.svg

Two log-log panels against the hidden width: the path kernel's drift
|K^p - T K^g(w0)|_F / |T K^g(w0)|_F and the coefficient variation (how much
a_i(x) depends on x), one colour per parameterization, a dot per seed and a
line through the medians, with a reference slope of 1/width.
"""
import csv
import math
import statistics
import sys
from collections import defaultdict

W, H = 900, 380
PANEL_W, PANEL_H = 340, 260
LEFT, TOP = 90, 50
GAP = 110
COLOURS = {"standard": "#d95f02", "ntk": "#1b9e77"}


def width_of(text):
    return int(text.strip("[]").split(",")[0])


def read(path):
    data = defaultdict(list)  # (measure, parameterization) -> [(width, value)]
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["status"] != "ok":
                continue
            w = width_of(row["model.hidden"])
            for measure in ("path_kernel_drift", "coefficient_variation"):
                if row[measure]:
                    data[(measure, row["model.parameterization"])].append(
                        (w, float(row[measure]))
                    )
    return data


def panel(out, x0, title, series, xs, ylabel):
    ys = [v for pts in series.values() for _, v in pts]
    lo = math.floor(math.log10(min(ys)))
    hi = math.ceil(math.log10(max(ys)))
    xlo, xhi = math.log2(min(xs)), math.log2(max(xs))

    def px(w):
        return x0 + (math.log2(w) - xlo) / (xhi - xlo) * PANEL_W

    def py(v):
        return TOP + PANEL_H - (math.log10(v) - lo) / (hi - lo) * PANEL_H

    out.append(
        f'<rect x="{x0}" y="{TOP}" width="{PANEL_W}" height="{PANEL_H}" '
        'fill="none" stroke="#444"/>'
    )
    out.append(
        f'<text x="{x0 + PANEL_W / 2}" y="{TOP - 16}" text-anchor="middle" '
        f'font-size="15">{title}</text>'
    )
    for e in range(lo, hi + 1):
        y = py(10.0**e)
        out.append(f'<line x1="{x0}" x2="{x0 + PANEL_W}" y1="{y}" y2="{y}" stroke="#ddd"/>')
        out.append(
            f'<text x="{x0 - 6}" y="{y + 4}" text-anchor="end" font-size="12">1e{e}</text>'
        )
    for w in xs:
        x = px(w)
        out.append(
            f'<text x="{x}" y="{TOP + PANEL_H + 18}" text-anchor="middle" '
            f'font-size="12">{w}</text>'
        )
    out.append(
        f'<text x="{x0 + PANEL_W / 2}" y="{TOP + PANEL_H + 40}" text-anchor="middle" '
        'font-size="13">hidden width n</text>'
    )
    out.append(
        f'<text transform="translate({x0 - 58},{TOP + PANEL_H / 2}) rotate(-90)" '
        f'text-anchor="middle" font-size="13">{ylabel}</text>'
    )
    for name, pts in sorted(series.items()):
        colour = COLOURS.get(name, "#333")
        by_w = defaultdict(list)
        for w, v in pts:
            by_w[w].append(v)
            out.append(
                f'<circle class="seed" cx="{px(w):.2f}" cy="{py(v):.2f}" r="2.5" '
                f'fill="{colour}" fill-opacity="0.5"/>'
            )
        medians = [(w, statistics.median(v)) for w, v in sorted(by_w.items())]
        path = " ".join(f"{px(w):.2f},{py(v):.2f}" for w, v in medians)
        out.append(
            f'<polyline class="median" points="{path}" fill="none" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
    # A reference slope 1/n from the ntk median at the smallest width.
    w0 = min(xs)
    v0 = statistics.median(v for w, v in series["ntk"] if w == w0)
    w1 = max(xs)
    v1 = v0 * w0 / w1
    out.append(
        f'<line class="reference" x1="{px(w0):.2f}" y1="{py(v0):.2f}" x2="{px(w1):.2f}" '
        f'y2="{py(v1):.2f}" stroke="#888" stroke-dasharray="5,4"/>'
    )


def main(src, dst):
    data = read(src)
    xs = sorted({w for pts in data.values() for w, _ in pts})
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
    ]
    for i, (measure, title, ylabel) in enumerate(
        [
            ("path_kernel_drift", "path kernel drift", "‖Kᵖ − T Kᵍ(w₀)‖ / ‖T Kᵍ(w₀)‖"),
            ("coefficient_variation", "coefficient variation", "‖A − Kᵖ diag(a*)‖ / ‖A‖"),
        ]
    ):
        series = {p: pts for (m, p), pts in data.items() if m == measure}
        panel(out, LEFT + i * (PANEL_W + GAP), title, series, xs, ylabel)
    legend_y = H - 14
    for i, (name, colour) in enumerate(COLOURS.items()):
        x = LEFT + i * 260
        out.append(f'<line x1="{x}" x2="{x + 24}" y1="{legend_y}" y2="{legend_y}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{x + 30}" y="{legend_y + 4}" font-size="13">{name} (median of seeds)</text>')
    x = LEFT + 520
    out.append(f'<line x1="{x}" x2="{x + 24}" y1="{legend_y}" y2="{legend_y}" stroke="#888" stroke-dasharray="5,4"/>')
    out.append(f'<text x="{x + 30}" y="{legend_y + 4}" font-size="13">slope 1/n</text>')
    out.append("</svg>")
    with open(dst, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
