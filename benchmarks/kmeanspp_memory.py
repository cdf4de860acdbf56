"""``python -m benchmarks.kmeanspp_memory``: k-means++'s memory per row and its time.

Memory: ``tracemalloc``'s peak during ``kmeans_plusplus(X, k)`` divided by n, on the second call in
the process (the first also holds one-off caches), for the ways ``_algorithms.init`` can run: in one
sampling chunk with the trial distances kept (the default for n ≤ 2^22), and at the scale where the
sampling goes through chunks and the winner's distances are recomputed. Time: median of three calls
at a larger shape; ``--block-bytes B`` times it with a block budget of B bytes instead of the CPU's
16 MiB (e.g. 2**30, as a GPU has: X in one block); ``--threads-from N`` sets from how many rows
NumPy's pass per center shares its blocks between threads (0: always, a huge number: never; a
checkout without that pass ignores it). ``--kmeans-xp PATH`` measures the package at PATH (another
checkout), for before/after comparisons; modes it does not know are skipped.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
import tracemalloc

import numpy as np

MODES = {  # name: (sampling_chunk_rows, trial_distances_max_bytes), as pass options
    "one chunk, trials kept": (2**22, 2**30),
    "one chunk, trials recomputed": (2**22, 0),
    "chunks, trials kept": (2**14, 2**30),
    "chunks, trials recomputed": (2**14, 0),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kmeans-xp", help="import kmeans_xp from this folder")
    parser.add_argument("--memory-shape", default="200000x8x16", help="NxDxK for the memory")
    parser.add_argument("--time-shape", default="500000x32x128", help="NxDxK for the time")
    parser.add_argument("--block-bytes", type=int, help="block budget for the time run")
    parser.add_argument(
        "--threads-from", type=int, help="rows from which a center's pass is shared"
    )
    parser.add_argument("--skip-memory", action="store_true", help="time only")
    args = parser.parse_args(argv)
    if args.kmeans_xp:
        sys.path.insert(0, args.kmeans_xp)
    kmeans_xp = importlib.import_module("kmeans_xp")
    options = importlib.import_module("kmeans_xp._lib.options")
    print(f"kmeans_xp from {kmeans_xp.__file__}")

    n, d, k = (int(v) for v in args.memory_shape.split("x"))
    X = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    for name, (chunk_rows, trial_bytes) in () if args.skip_memory else MODES.items():
        with options.pass_options(
            sampling_chunk_rows=chunk_rows, trial_distances_max_bytes=trial_bytes
        ):
            kmeans_xp.kmeans_plusplus(X, k, random_state=0)
            tracemalloc.start()
            _, indices = kmeans_xp.kmeans_plusplus(X, k, random_state=0)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        print(f"{n} x {d} -> {k}, {name}: {peak / n:.1f} bytes per row, picks {indices[:4]}")

    n, d, k = (int(v) for v in args.time_shape.split("x"))
    X = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    if args.block_bytes:
        budget = importlib.import_module("kmeans_xp._lib.budget")
        budget.HOST_BLOCK_BYTES = budget.HOST_BLOCK_BYTES_MIN = args.block_bytes
    numpy_backend = importlib.import_module("kmeans_xp._backends.numpy")
    threads = ""
    if args.threads_from is not None and hasattr(numpy_backend, "_MIN_ROWS_FOR_POTENTIALS_THREADS"):
        numpy_backend._MIN_ROWS_FOR_POTENTIALS_THREADS = args.threads_from
        threads = f", pass shared from {args.threads_from} rows"
    kmeans_xp.kmeans_plusplus(X, 16, random_state=0)
    times = []
    for seed in range(3):
        start = time.perf_counter()
        kmeans_xp.kmeans_plusplus(X, k, random_state=seed)
        times.append(time.perf_counter() - start)
    budget = f", block budget {args.block_bytes} bytes" if args.block_bytes else ""
    median = statistics.median(times)
    per_center = f"{median / k * 1e3:.2f} ms a center"
    print(f"{n} x {d} -> {k}{budget}{threads}: median {median:.2f} s of 3, {per_center}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
