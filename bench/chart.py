#!/usr/bin/env python3
"""Draws bench/results.json (written by rstcp-bench) as a PNG: one panel per
figure, rstcp beside the kernel (offloads on and off) and smoltcp, bars at
the median with the min-max spread, and the ratio rstcp/this under the name (rstcp: 0.5× = half of this)
of every other bar.

    python3 bench/chart.py bench/results.json bench/chart.png
"""
import json
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"rstcp": "#d9641e", "kernel": "#3a6ea5", "kernel, offloads off": "#8fb3d9", "smoltcp": "#6a9a4a", "tun": "#777777"}


def main(src, dst):
    with open(src) as f:
        data = json.load(f)
    # The TUN ceilings (no kernel counterpart) share one panel.
    figures = [f for f in data["figures"] if "tun" not in f["values"]]
    tun = [f for f in data["figures"] if "tun" in f["values"]]
    if tun:
        figures.append({
            "title": "raw TUN ceiling (ICMP echo through the device)",
            "unit": tun[0]["unit"],
            "higher_is_better": True,
            "values": {f["title"].rsplit(", ", 1)[-1]: f["values"]["tun"] for f in tun},
        })
    cols = 4
    rows = (len(figures) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(15, 3.9 * rows), dpi=72)
    axes = list(axes.flat)
    for ax, f in zip(axes, figures):
        labels = [s for s in data["setups"] if s in f["values"]] or list(f["values"])
        tun_panel = not any(s in f["values"] for s in data["setups"])
        meds = [statistics.median(f["values"][s]) for s in labels]
        lo = [m - min(f["values"][s]) for m, s in zip(meds, labels)]
        hi = [max(f["values"][s]) - m for m, s in zip(meds, labels)]
        xs = range(len(labels))
        ax.bar(xs, meds, yerr=[lo, hi], capsize=4, color=[COLORS.get("tun" if tun_panel else s, "#999999") for s in labels])
        names = [s.replace(", ", ",\n") for s in labels]
        if "rstcp" in f["values"]:
            # The ratio rstcp / this bar, under each other bar's name.
            r = statistics.median(f["values"]["rstcp"])
            names = [n if s == "rstcp" or not m else f"{n}\n(rstcp: {r / m:.2f}×)"
                     for n, s, m in zip(names, labels, meds)]
        ax.set_xticks(list(xs))
        ax.set_xticklabels(names, fontsize=7.5)
        better = "higher is better" if f["higher_is_better"] else "lower is better"
        ax.set_title(f"{f['title']}\n[{f['unit']}, {better}]", fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        ax.margins(y=0.05)
    for ax in axes[len(figures):]:
        ax.axis("off")
    fig.suptitle(
        f"rstcp beside the Linux kernel (veth between namespaces) and smoltcp (TUN): median and min-max of "
        f"{data['runs']} runs, {data['seconds_per_figure']} s each; {data['idle_connections']} idle connections",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(dst)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: chart.py RESULTS.json CHART.png")
    main(sys.argv[1], sys.argv[2])
