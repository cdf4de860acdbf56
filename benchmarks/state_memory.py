"""``python -m benchmarks.state_memory``: the memory a fit holds per row besides X.

1. A 5-iteration Lloyd fit from given centers, ``tracemalloc``'s peak ÷ n (second fit in the
   process), on NumPy and on array-api-strict — the standard pass the GPU backends run, on
   NumPy's allocator, which tracemalloc sees.
2. A streamed fit (``device="cpu"``: the NumPy "device", all of whose allocations tracemalloc
   sees) for each init, with ``max_device_bytes`` = the state the fit plans for + 200 kB (n × 32
   + 200 kB where the checkout has no ``device_state_bytes``): its peak against that budget.

``--kmeans-xp PATH`` imports the package from PATH (another checkout), for before/after runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tracemalloc
import warnings

import numpy as np


def peak_bytes(fit) -> int:
    fit()  # first-call allocations (caches) are not the fit's
    tracemalloc.start()
    fit()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kmeans-xp", help="import kmeans_xp from this folder")
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args(argv)
    if args.kmeans_xp:
        sys.path.insert(0, args.kmeans_xp)
    kmeans_xp = importlib.import_module("kmeans_xp")
    kmeans_module = importlib.import_module("kmeans_xp._algorithms.prepare")
    streaming = importlib.import_module("kmeans_xp._algorithms.streaming")
    import array_api_strict as xps

    print(f"kmeans_xp from {kmeans_xp.__file__}")
    warnings.simplefilter("ignore")
    n = args.n
    rng = np.random.default_rng(0)

    X = rng.normal(size=(n, 8)).astype(np.float32)
    for name, data in (("numpy", X), ("array-api-strict", xps.asarray(X))):
        km = kmeans_xp.KMeans(16, init=data[:16, :], max_iter=5, tol=0, algorithm="lloyd")
        peak = peak_bytes(lambda km=km, data=data: km.fit(data))
        print(f"Lloyd fit, {name}, {n} x 8 -> 16 float32: {peak / n:.1f} bytes per row")

    X = (rng.normal(size=(n, 4)) + 5.0 * rng.integers(0, 6, size=(n, 1))).astype(np.float32)
    planned = getattr(kmeans_module, "device_state_bytes", None)
    for init in ("explicit", "random", "k-means++", "k-means||"):
        init_arg = X[:6].copy() if init == "explicit" else init
        state = n * streaming.STATE_BYTES_PER_ROW if planned is None else planned(n, 6, 4, init_arg)
        budget = state + 200_000
        km = kmeans_xp.KMeans(6, init=init_arg, random_state=0, max_iter=5, tol=0, device="cpu")
        km.set_params(max_device_bytes=budget)
        peak = peak_bytes(lambda km=km: km.fit(X))
        print(
            f"streamed fit, init={init}, {n} x 4 -> 6: peak {peak / 1e6:.2f} MB for "
            f"max_device_bytes {budget / 1e6:.2f} MB ({peak / budget:.2f} of it)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
