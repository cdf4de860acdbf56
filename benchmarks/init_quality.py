"""k-means++ quality over many seeds: kmeans_xp against scikit-learn on the same data.

    python -m benchmarks.init_quality [--shape 1000000x64x256] [--seeds 8] [--fit]

One default fit per library and seed is a single draw of a random variable whose spread (a few
percent of the inertia when the data have k well-separated clusters: each cluster that k-means++
leaves without a center costs a lot) dwarfs a 0.1 % target. This compares the two libraries over
many seeds instead. For each seed it prints the potential Σ‖x − nearest center‖² (float64) of the
centers each library's ``kmeans_plusplus`` draws, and with ``--fit`` the inertia of each
library's default ``KMeans(k, random_state=seed).fit``; then the mean ratio kmeans_xp /
scikit-learn with its standard error.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from .data import make_data, parse_shapes


def potential(X: np.ndarray, centers: np.ndarray, block_rows: int = 65536) -> float:
    """Σ‖x − nearest center‖² in float64, from differences of nearest pairs (not the GEMM form)."""
    C = np.asarray(centers, dtype=np.float64)
    c_sq = np.sum(C * C, axis=1)
    total = 0.0
    for start in range(0, X.shape[0], block_rows):
        block = X[start : start + block_rows].astype(np.float64)
        nearest = np.argmin(c_sq - 2.0 * block @ C.T, axis=1)
        diff = block - C[nearest]
        total += float(np.sum(diff * diff))
    return total


def mean_ratio(ours: list[float], theirs: list[float]) -> tuple[float, float]:
    """mean(ours) / mean(theirs) and its standard error (independent samples, delta method)."""
    a, b = np.asarray(ours), np.asarray(theirs)
    ratio = a.mean() / b.mean()
    if len(a) < 2:
        return float(ratio), float("nan")
    rel_var = a.var(ddof=1) / len(a) / a.mean() ** 2 + b.var(ddof=1) / len(b) / b.mean() ** 2
    return float(ratio), float(ratio * math.sqrt(rel_var))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="1000000x64x256", help="NxDxK (default 1000000x64x256)")
    parser.add_argument("--seeds", type=int, default=8, help="seeds per library (default 8)")
    parser.add_argument("--fit", action="store_true", help="also run each default fit")
    args = parser.parse_args(argv)
    from sklearn.cluster import KMeans as SklearnKMeans
    from sklearn.cluster import kmeans_plusplus as sklearn_kmeans_plusplus

    import kmeans_xp

    (shape,) = parse_shapes(args.shape)
    X = make_data(shape)
    k = shape.k
    columns = {"init ours": [], "init sklearn": [], "fit ours": [], "fit sklearn": []}
    print(f"shape {shape.label}, {args.seeds} seeds", flush=True)
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        ours, _ = kmeans_xp.kmeans_plusplus(X, k, random_state=seed)
        t1 = time.perf_counter()
        theirs, _ = sklearn_kmeans_plusplus(X, k, random_state=seed)
        t2 = time.perf_counter()
        columns["init ours"].append(potential(X, ours))
        columns["init sklearn"].append(potential(X, theirs))
        line = (
            f"seed {seed}: k-means++ potential ours {columns['init ours'][-1]:.6g} "
            f"({t1 - t0:.1f} s), sklearn {columns['init sklearn'][-1]:.6g} ({t2 - t1:.1f} s)"
        )
        if args.fit:
            for name, estimator in (("ours", kmeans_xp.KMeans), ("sklearn", SklearnKMeans)):
                fitted = estimator(k, random_state=seed).fit(X)
                columns[f"fit {name}"].append(potential(X, fitted.cluster_centers_))
            line += (
                f"; default fit ours {columns['fit ours'][-1]:.6g}, "
                f"sklearn {columns['fit sklearn'][-1]:.6g}"
            )
        print(line, flush=True)
    for what in ("init", "fit"):
        if columns[f"{what} ours"]:
            ratio, se = mean_ratio(columns[f"{what} ours"], columns[f"{what} sklearn"])
            print(f"{what}: mean ours / mean sklearn = {ratio:.4f} ± {se:.4f} (1 s.e.)")


if __name__ == "__main__":
    main()
