"""``python -m benchmarks.predict``: ``predict``, ``score`` and ``transform`` of a fitted model,
against scikit-learn's, on the harness's data.

For each shape (``--shapes``, as ``python -m benchmarks cpu`` takes them): the harness's float32
mixture and initial centers, one Lloyd iteration from them for each library (so both hold
centers of the same quality), then the median of ``--repeats`` calls of ``predict(X)``,
``score(X)`` and ``transform(X)`` over all of X. ``--kmeans-xp PATH`` measures the package at
PATH (another checkout), for before/after comparisons.
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
        models = {"kmeans_xp": kmeans_xp.KMeans(shape.k, init=C0, max_iter=1).fit(X)}
        if not args.no_sklearn:
            from sklearn.cluster import KMeans as SklearnKMeans

            models["scikit-learn"] = SklearnKMeans(shape.k, init=C0, n_init=1, max_iter=1).fit(X)
        for name, model in models.items():
            predict_ms = _median_ms(model.predict, X, args.repeats)
            score_ms = _median_ms(model.score, X, args.repeats)
            transform_ms = _median_ms(model.transform, X, args.repeats)
            print(
                f"| {shape.label} | {name} | {predict_ms:.1f} | {score_ms:.1f} | "
                f"{transform_ms:.1f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
