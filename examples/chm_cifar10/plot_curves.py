"""Draws the test-error curves of the runs in `metrics/` as one SVG per net, with the stdlib.

Each `metrics/<net>-<era>[-...].csv` is a run's `metrics.csv` as `alexnet-keras train` wrote it;
`val_top1` is the top-1 accuracy on the 10,000 test images after each epoch.

    python examples/chm_cifar10/plot_curves.py   # writes examples/chm_cifar10/<net>-curves.svg
"""

import csv
import pathlib

HERE = pathlib.Path(__file__).parent
WIDTH, HEIGHT, LEFT, BOTTOM, TOP, RIGHT = 640, 360, 50, 40, 20, 190
# 2011 runs in blue shades, 2012 in orange shades: the era is the comparison that matters.
COLOURS = {"2011": ("#1f4e9e", "#4f86d9", "#8fb4ea"), "2012": ("#b35900", "#f28e2b", "#f7be85")}


def _curve(path):
    with open(path, newline="") as f:
        return [(int(r["epoch"]), 100 * (1 - float(r["val_top1"]))) for r in csv.DictReader(f)]


def _svg(net, runs, target, ceiling):
    """`runs`: {label: [(epoch, error %)]} -> the SVG text of one chart."""
    epochs = max(e for c in runs.values() for e, _ in c)
    errors = [y for c in runs.values() for _, y in c] + [target]
    low, high = int(min(errors)) - 1, min(int(max(errors)) + 2, ceiling)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(e):
        return LEFT + plot_w * e / epochs

    def y(v):
        return TOP + plot_h * (high - min(v, high)) / (high - low)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           'font-family="sans-serif" font-size="11">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
           f'<text x="{LEFT}" y="13">layers-{net}: CIFAR-10 test error (%) per epoch</text>',
           ]  # fmt: skip
    for v in range(low, high + 1, max(1, (high - low) // 8)):
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                   f'stroke="#ddd"/><text x="{LEFT - 6}" y="{y(v) + 4:.1f}" '
                   f'text-anchor="end">{v}</text>')  # fmt: skip
    for e in range(0, epochs + 1, max(1, epochs // 7)):
        out.append(f'<text x="{x(e):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{e}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" text-anchor="middle">epoch</text>')
    out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(target):.1f}" '
               f'y2="{y(target):.1f}" stroke="#2a2" stroke-dasharray="5,4"/>')  # fmt: skip
    used = {"2011": 0, "2012": 0}
    for row, (label, curve) in enumerate(sorted(runs.items())):
        era = "2011" if "2011" in label else "2012"
        colour = COLOURS[era][used[era] % 3]
        used[era] += 1
        points = " ".join(f"{x(e):.1f},{y(v):.1f}" for e, v in curve)
        out.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
        )
        ly = TOP + 14 * row + 6
        out.append(f'<line x1="{WIDTH - RIGHT + 12}" x2="{WIDTH - RIGHT + 32}" y1="{ly}" '
                   f'y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{WIDTH - RIGHT + 36}" '
                   f'y="{ly + 4}">{label} ({curve[-1][1]:.2f})</text>')  # fmt: skip
    ly = TOP + 14 * len(runs) + 6
    out.append(f'<line x1="{WIDTH - RIGHT + 12}" x2="{WIDTH - RIGHT + 32}" y1="{ly}" y2="{ly}" '
               f'stroke="#2a2" stroke-dasharray="5,4"/><text x="{WIDTH - RIGHT + 36}" '
               f'y="{ly + 4}">claimed: {target:g} %</text>')  # fmt: skip
    return "\n".join([*out, "</svg>", ""])


def main():
    # net -> (the header's claimed error, the chart's top: the first epochs are off the chart)
    targets = {"80sec": (26, 50), "18pct": (18, 32)}
    for net, (target, ceiling) in targets.items():
        runs = {p.stem: _curve(p) for p in sorted((HERE / "metrics").glob(f"{net}-*.csv"))}
        if runs:
            (HERE / f"{net}-curves.svg").write_text(_svg(net, runs, target, ceiling))


if __name__ == "__main__":
    main()
