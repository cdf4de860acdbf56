"""``python -m benchmarks.predict``: ``predict``, ``score`` and ``transform`` of a fitted model,
against scikit-learn's, on the harness's data.

For each shape (``--shapes``, as ``python -m benchmarks cpu`` takes them): the harness's float32
mixture and initial centers, one Lloyd iteration from them for each library (so both hold
centers of the same quality), then the median of ``--repeats`` calls of ``predict(X)``,
``score(X)`` and ``transform(X)`` over all of X. ``--torch`` adds kmeans_xp's calls on X as a
torch CPU tensor (the same model). ``--kmeans-xp PATH`` measures the package at PATH (another
checkout), for before/after comparisons.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time

from .data import initial_centers, make_data, parse_shapes


def _median_ms(method, X, repeats: int) -> float:
    """Median milliseconds of ``method(X)`` over ``repeats`` calls, after one warm-up call
    (caches, thread pools)."""
    method(X)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        method(X)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kmeans-xp", help="import kmeans_xp from this folder")
    parser.add_argument("--shapes", default="100000x32x64,1000000x64x256,200000x128x1024")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-sklearn", action="store_true", help="time kmeans_xp only")
    parser.add_argument("--torch", action="store_true", help="also on a torch CPU tensor")
    args = parser.parse_args(argv)
    if args.kmeans_xp:
        sys.path.insert(0, args.kmeans_xp)
    kmeans_xp = importlib.import_module("kmeans_xp")
    print(f"kmeans_xp from {kmeans_xp.__file__}")
    print("| shape | library | predict ms | score ms | transform ms |")
    print("|---|---|---:|---:|---:|")
    for shape in parse_shapes(args.shapes):
        X = make_data(shape)
        C0 = initial_centers(X, shape.k)
        ours = kmeans_xp.KMeans(shape.k, init=C0, max_iter=1).fit(X)
        runs = [("kmeans_xp", ours, X)]
        if args.torch:
            import torch

            runs.append(("kmeans_xp, torch CPU tensor", ours, torch.from_numpy(X)))
        if not args.no_sklearn:
            from sklearn.cluster import KMeans as SklearnKMeans

            theirs = SklearnKMeans(shape.k, init=C0, n_init=1, max_iter=1).fit(X)
            runs.append(("scikit-learn", theirs, X))
        for name, model, data in runs:
            predict_ms = _median_ms(model.predict, data, args.repeats)
            score_ms = _median_ms(model.score, data, args.repeats)
            transform_ms = _median_ms(model.transform, data, args.repeats)
            print(
                f"| {shape.label} | {name} | {predict_ms:.1f} | {score_ms:.1f} | "
                f"{transform_ms:.1f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
