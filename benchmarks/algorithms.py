"""``python -m benchmarks.algorithms``: default fits (k-means++, default tol) with each
``algorithm``, on clustered or unclustered data, for ``algorithm="auto"``'s choice.

For each shape (``--shapes``, as ``python -m benchmarks cpu`` takes them) the data are either
the harness's float32 mixture of k clusters (``--data mixture``) or standard normal float32
rows without clusters (``--data normal``), where centers stay close for the points' spread and
Hamerly's bounds prune little. Each algorithm (``--algorithms``) fits ``--seeds`` seeds; the
table gives the median seconds and the iterations of each seed. ``--kmeans-xp PATH`` measures
the package at PATH (another checkout), for before/after comparisons.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
import warnings

import numpy as np

from .data import make_data, parse_shapes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kmeans-xp", help="import kmeans_xp from this folder")
    parser.add_argument("--shapes", default="20000x768x50,50000x256x100,100000x64x256")
    parser.add_argument("--data", choices=("mixture", "normal"), default="normal")
    parser.add_argument("--algorithms", default="auto,lloyd")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.kmeans_xp:
        sys.path.insert(0, args.kmeans_xp)
    kmeans_xp = importlib.import_module("kmeans_xp")
    algorithms = args.algorithms.split(",")
    print(f"kmeans_xp from {kmeans_xp.__file__}; data: {args.data}")
    print("| shape | " + " | ".join(f"{a}: s (iterations)" for a in algorithms) + " |")
    print("|---|" + "---:|" * len(algorithms))
    for shape in parse_shapes(args.shapes):
        if args.data == "mixture":
            X = make_data(shape)
        else:
            X = np.random.default_rng(0).standard_normal((shape.n, shape.d), dtype=np.float32)
        cells = []
        for algorithm in algorithms:
            seconds, iterations = [], []
            for seed in range(args.seeds):
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # ConvergenceWarning on tiny test shapes
                    model = kmeans_xp.KMeans(shape.k, random_state=seed, algorithm=algorithm)
                    model.fit(X)
                seconds.append(time.perf_counter() - start)
                iterations.append(model.n_iter_)
            cells.append(f"{statistics.median(seconds):.3f} ({', '.join(map(str, iterations))})")
        print(f"| {shape.label} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
