"""MiniBatchKMeans against a full Lloyd fit: time and inertia, fit and partial_fit over a stream.

    python -m benchmarks.minibatch [--shape 1000000x64x256] [--batch 4096] [--seed 0]

On the harness's Gaussian mixture: kmeans_xp ``KMeans`` (default fit), ``MiniBatchKMeans.fit``,
``MiniBatchKMeans.partial_fit`` over a generator of consecutive batches (one pass), and
scikit-learn's ``MiniBatchKMeans`` where installed; each with the inertia of its centers over
all of X (float64) and its ratio to the full fit's.
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
    args = parser.parse_args(argv)
    import kmeans_xp

    (shape,) = parse_shapes(args.shape)
    X = make_data(shape)
    k, seed, batch = shape.k, args.seed, args.batch
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


if __name__ == "__main__":
    main()
