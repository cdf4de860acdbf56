"""Dask scaling: ms per Lloyd iteration against n and against the number of workers.

    python -m benchmarks.dask_scaling [--ns 250000,1000000,4000000] [--workers 1,2]
                                      [--d 32] [--k 64] [--png PATH]

For each worker count it starts a ``dask.distributed.LocalCluster`` (worker processes, one
thread each, loopback), generates a float32 Gaussian mixture on the workers (row chunks of
250 000), persists it, and times kmeans_xp's Dask fit from fixed initial centers: ms/iteration =
(time of 6 iterations − time of 1) / 5, tol=0. dask-ml's ``KMeans`` runs the same way where it
is installed, and kmeans_xp on the in-memory NumPy array gives the single-process reference.
Prints a table and, with matplotlib, writes a PNG of ms/iteration against n.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

CHUNK_ROWS = 250_000


def _mixture(n: int, d: int, k: int):
    import dask.array as da

    rng = np.random.default_rng(0)
    means = rng.normal(scale=4.0, size=(k, d)).astype(np.float32)
    gen = da.random.default_rng(0)
    labels = gen.integers(0, k, size=n, chunks=CHUNK_ROWS)
    noise = gen.standard_normal((n, d), chunks=(CHUNK_ROWS, d), dtype=np.float32)
    centers = labels.map_blocks(lambda lab: means[lab], new_axis=1, chunks=(labels.chunks[0], (d,)))
    return (noise + centers).astype(np.float32)


def _per_iteration(fit) -> float:
    """ms per iteration: (6 iterations − 1 iteration) / 5, best of two runs each."""
    times = {}
    for iters in (1, 6):
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            fit(iters)
            best = min(best, time.perf_counter() - start)
        times[iters] = best
    return 1000 * (times[6] - times[1]) / 5


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", default="250000,1000000,4000000")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--png", default=None, help="write the plot here")
    args = parser.parse_args(argv)
    import distributed

    import kmeans_xp

    ns = [int(v) for v in args.ns.split(",")]
    workers = [int(v) for v in args.workers.split(",")]
    try:
        import dask_ml.cluster as dask_ml_cluster
    except ImportError:
        dask_ml_cluster = None
        print("dask-ml not installed: its KMeans is skipped")
    rows = []  # (implementation, workers, n, ms/iteration)
    for n_workers in workers:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cluster = distributed.LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, silence_logs=50,
            )  # fmt: skip
        with cluster, distributed.Client(cluster):
            for n in ns:
                X = _mixture(n, args.d, args.k).persist()
                C0 = np.asarray(X[: args.k].compute())

                def ours(iters, X=X, C0=C0):
                    kmeans_xp.KMeans(args.k, init=C0, max_iter=iters, tol=0).fit(X)

                ms = _per_iteration(ours)
                rows.append(("kmeans_xp[dask]", n_workers, n, ms))
                print(
                    f"kmeans_xp[dask]  workers {n_workers}  n {n:>9,}  {ms:8.1f} ms/iter",
                    flush=True,
                )
                if dask_ml_cluster is not None:

                    def theirs(iters, X=X, C0=C0):
                        dask_ml_cluster.KMeans(
                            n_clusters=args.k, init=C0, max_iter=iters, tol=0, n_init=1
                        ).fit(X)

                    try:
                        ms = _per_iteration(theirs)
                        rows.append(("dask-ml", n_workers, n, ms))
                        print(f"dask-ml          workers {n_workers}  n {n:>9,}  {ms:8.1f} ms/iter")
                    except Exception as exc:  # a peer failing must not end the run
                        print(f"dask-ml failed at n={n}: {type(exc).__name__}: {exc}")
    for n in ns:
        X = np.asarray(_mixture(n, args.d, args.k).compute(scheduler="threads"))
        C0 = X[: args.k].copy()

        def in_memory(iters, X=X, C0=C0):
            kmeans_xp.KMeans(args.k, init=C0, max_iter=iters, tol=0, algorithm="lloyd").fit(X)

        ms = _per_iteration(in_memory)
        rows.append(("kmeans_xp[numpy] in memory", 0, n, ms))
        print(f"kmeans_xp[numpy] in memory      n {n:>9,}  {ms:8.1f} ms/iter", flush=True)
    print()
    print("| implementation | workers | n | ms/iteration |")
    print("|---|---:|---:|---:|")
    for name, w, n, ms in rows:
        print(f"| {name} | {w or 'none'} | {n:,} | {ms:.1f} |")
    if args.png:
        _plot(rows, args.png, args.d, args.k)


def _plot(rows, path: str, d: int, k: int) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in sorted({(name, w) for name, w, _, _ in rows}):
        points = sorted((n, ms) for name, w, n, ms in rows if (name, w) == key)
        label = key[0] if key[1] == 0 else f"{key[0]}, {key[1]} worker(s)"
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n (rows)")
    ax.set_ylabel("ms per Lloyd iteration")
    ax.set_title(f"Dask scaling, d = {d}, k = {k}, float32")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
