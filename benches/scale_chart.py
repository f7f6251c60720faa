#!/usr/bin/env python3
"""Draws how the analyzer's cost grows with the capture (issue #14) from the lines that
`RESULTS=FILE benches/rank_vs_groupby.sh` appends: one PNG with wall time and peak RSS
against sample rows, one line per step (GROUP BY, rank by stack, rank by site, report),
and the same numbers as a markdown table on stdout.

    python3 benches/scale_chart.py RESULTS.tsv docs/img/analyzer-scale.png

When a (rows, step) pair was measured more than once, the last line counts. Installs
PyPI's matplotlib when it is missing.
"""

import subprocess
import sys

STEPS = [
    ("groupby", "sql GROUP BY stack_id"),
    ("rank_site", "rank --by site"),
    ("report", "report"),
    ("rank_stack", "rank --by stack"),
]


def load(path):
    """{(rows, step): (wall s, cpu s, rss MiB)} from the tab-separated results file."""
    out = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 5:
                sys.exit(f"scale_chart: {path}:{n}: expected 5+ tab-separated fields")
            rows, step, wall, cpu, rss_kib = parts[:5]
            out[(int(rows), step)] = (float(wall), float(cpu), int(rss_kib) / 1024)
    return out


def pyplot():
    try:
        import matplotlib
    except ImportError:
        pip = [sys.executable, "-m", "pip", "install", "-q", "matplotlib"]
        if subprocess.call(pip) != 0:
            subprocess.check_call(pip + ["--break-system-packages"])
        import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def table(data):
    sizes = sorted({r for r, _ in data})
    print("| rows | step | wall | CPU | peak RSS | wall / GROUP BY |")
    print("|---:|---|---:|---:|---:|---:|")
    for r in sizes:
        base = data.get((r, "groupby"))
        for step, label in STEPS:
            if (r, step) not in data:
                continue
            wall, cpu, rss = data[(r, step)]
            ratio = f"{wall / base[0]:.2f}x" if base else "-"
            print(f"| {r:,} | {label} | {wall:.2f} s | {cpu:.2f} s | {rss:,.0f} MiB | {ratio} |")


def chart(data, out):
    plt = pyplot()
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for step, label in STEPS:
        pts = sorted((r, v) for (r, s), v in data.items() if s == step)
        if not pts:
            continue
        rows = [r for r, _ in pts]
        ax_t.plot(rows, [wall for _, (wall, _, _) in pts], marker="o", label=label)
        ax_m.plot(rows, [rss for _, (_, _, rss) in pts], marker="o", label=label)
    for ax, title, unit in ((ax_t, "Wall time", "seconds"), (ax_m, "Peak RSS", "MiB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("sample rows (10,000 heap profiles x 1k / 10k / 100k stacks)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    ax_m.axhline(8192, color="grey", linestyle="--", linewidth=1)
    ax_m.text(ax_m.get_xlim()[0] * 1.1, 8192 * 0.8, "8 GiB target", color="grey", fontsize=8, va="top")
    ax_t.legend(fontsize=8)
    fig.suptitle("leakscope analyzer cost by capture size (2 cores, release build)")
    fig.tight_layout()
    fig.savefig(out)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: scale_chart.py RESULTS.tsv OUT.png")
    data = load(sys.argv[1])
    if not data:
        sys.exit(f"scale_chart: {sys.argv[1]}: no results")
    table(data)
    chart(data, sys.argv[2])
    print(f"\nwrote {sys.argv[2]}", file=sys.stderr)


if __name__ == "__main__":
    main()
