"""Pictures of a network: its filters, training curves, predictions and nearest neighbours.

Each module draws one picture with matplotlib's object API (no pyplot, no
global state) and writes it as a PNG through `canvas.save_png`, atomically.
matplotlib is the `viz` extra; without it, `canvas.figure` says in one line
what to install.

- `canvas`: the figure, the PNG writer and the default output path;
- `filters`: a layer's kernels as a grid (the paper's Figure 3);
- `curves`: a run's `metrics.csv` (several runs overlaid);
- `predictions`: images with their top-5 bars (Figure 4, left);
- `neighbours`: queries and their nearest training images in fc7 (Figure 4, right).
"""
