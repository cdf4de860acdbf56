"""MiniBatchKMeans against a full Lloyd fit: time and inertia, fit and partial_fit over a stream.

    python -m benchmarks.minibatch [--shape 1000000x64x256] [--batch 4096] [--seed 0]
    python -m benchmarks.minibatch --seeds 8

On the harness's Gaussian mixture: kmeans_xp ``KMeans`` (default fit), ``MiniBatchKMeans.fit``,
``MiniBatchKMeans.partial_fit`` over a generator of consecutive batches (one pass), and
scikit-learn's ``MiniBatchKMeans`` where installed; each with the inertia of its centers over
all of X (float64) and its ratio to the full fit's. ``--seeds N`` instead compares the two
libraries' ``MiniBatchKMeans.fit`` over seeds 0 … N−1: the inertia of each, their ratio per
seed, and the mean ratio with its standard error (is one systematically better?).
"""

from __future__ import annotations

import argparse
import time

from .data import make_data, parse_shapes
from .init_quality import potential


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="1000000x64x256", help="NxDxK (default 1000000x64x256)")
    parser.add_argument("--batch", type=int, default=4096, help="rows per batch (default 4096)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, help="compare the fits of both libraries over seeds")
    args = parser.parse_args(argv)
    import kmeans_xp

    (shape,) = parse_shapes(args.shape)
    X = make_data(shape)
    k, seed, batch = shape.k, args.seed, args.batch
    if args.seeds:
        compare_seeds(X, k, batch, args.seeds)
        return
    print(f"shape {shape.label}, batch {batch}, seed {seed}", flush=True)

    def stream():
        model = kmeans_xp.MiniBatchKMeans(k, batch_size=batch, random_state=seed)
        for start in range(0, X.shape[0], batch):
            model.partial_fit(X[start : start + batch])
        return model

    runs = [
        ("kmeans_xp KMeans (full Lloyd)", lambda: kmeans_xp.KMeans(k, random_state=seed).fit(X)),
        (
            "kmeans_xp MiniBatchKMeans.fit",
            lambda: kmeans_xp.MiniBatchKMeans(k, batch_size=batch, random_state=seed).fit(X),
        ),
        ("kmeans_xp partial_fit, one pass", stream),
    ]
    try:
        from sklearn.cluster import MiniBatchKMeans as SklearnMiniBatch

        runs.append(
            (
                "scikit-learn MiniBatchKMeans.fit",
                lambda: SklearnMiniBatch(k, batch_size=batch, random_state=seed).fit(X),
            )
        )
    except ImportError:
        print("scikit-learn not installed: its MiniBatchKMeans is skipped")
    reference = None
    for name, run in runs:
        start = time.perf_counter()
        model = run()
        seconds = time.perf_counter() - start
        inertia = potential(X, model.cluster_centers_)
        reference = reference or inertia
        ratio = inertia / reference
        print(f"{name:<34} {seconds:8.2f} s  inertia {inertia:.6g}  ({ratio:.4f} of the full fit)")


def compare_seeds(X, k: int, batch: int, n_seeds: int) -> None:
    """Ours against scikit-learn's ``MiniBatchKMeans.fit``, paired by seed."""
    import statistics

    from sklearn.cluster import MiniBatchKMeans as SklearnMiniBatch

    import kmeans_xp

    ratios = []
    for seed in range(n_seeds):
        ours = kmeans_xp.MiniBatchKMeans(k, batch_size=batch, random_state=seed).fit(X)
        theirs = SklearnMiniBatch(k, batch_size=batch, random_state=seed, n_init=1).fit(X)
        a, b = potential(X, ours.cluster_centers_), potential(X, theirs.cluster_centers_)
        ratios.append(a / b)
        print(f"seed {seed}: kmeans_xp {a:.6g}, scikit-learn {b:.6g}, ratio {a / b:.4f}")
    mean = statistics.fmean(ratios)
    error = statistics.stdev(ratios) / len(ratios) ** 0.5 if len(ratios) > 1 else float("nan")
    better = sum(r < 1 for r in ratios)
    print(
        f"mean ratio {mean:.4f} ± {error:.4f} (standard error), median "
        f"{statistics.median(ratios):.4f}; kmeans_xp lower in {better} of {len(ratios)} seeds"
    )


if __name__ == "__main__":
    main()
