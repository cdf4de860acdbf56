"""Silhouette score: kmeans_xp against scikit-learn, time and peak memory, in a fresh process each.

    python -m benchmarks.silhouette [--n 20000] [--d 16] [--k 8]

Each implementation runs in its own subprocess (so peak resident memory is its own), on the same
float32 Gaussian data; prints the score, seconds and peak RSS growth of each, and threadpoolctl's
view of the BLAS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _one(which: str, n: int, d: int, k: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    labels = rng.integers(0, k, n)
    X = (rng.normal(size=(n, d)) + labels[:, None]).astype(np.float32)
    X @ X[:8].T  # load the BLAS before measuring
    if which == "kmeans_xp":
        from kmeans_xp import silhouette_score
    else:
        from sklearn.metrics import silhouette_score
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    score = silhouette_score(X, labels)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    blas = []
    try:
        from threadpoolctl import threadpool_info

        blas = [
            (i["internal_api"], i.get("architecture"), i["num_threads"]) for i in threadpool_info()
        ]
    except ImportError:
        pass
    return {"which": which, "score": float(score), "seconds": seconds,
            "peak_mib": (peak - base) / 1024, "blas": blas}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--which", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.which:
        print(json.dumps(_one(args.which, args.n, args.d, args.k)))
        return
    for which in ("kmeans_xp", "sklearn"):
        cmd = [sys.executable, "-m", "benchmarks.silhouette", "--which", which,
               "--n", str(args.n), "--d", str(args.d), "--k", str(args.k)]  # fmt: skip
        r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        print(
            f"{which:10s} n={args.n} d={args.d} k={args.k}: silhouette {r['score']:.8f}, "
            f"{r['seconds']:.2f} s, peak RSS +{r['peak_mib']:.0f} MiB  BLAS {r['blas']}"
        )


if __name__ == "__main__":
    main()
