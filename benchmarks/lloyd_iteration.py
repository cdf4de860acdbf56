"""Quick probe: milliseconds per Lloyd iteration of kmeans_xp, beside the bare GEMM floor.

Not the benchmark harness (that is planned); a small, honest measurement to see where a backend
stands. Per-iteration time is (fit with 1 + N iterations − fit with 1 iteration) / N from the same
initial centers with tol=0, so validation, centering and the final labels pass cancel out.

    python benchmarks/lloyd_iteration.py --backend numpy --shape 100000,32,64
    python benchmarks/lloyd_iteration.py --backend cupy --shape 1048576,128,1024
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np

from kmeans_xp import ConvergenceWarning, KMeans


def make_data(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    """float32 Gaussian mixture: k random means, unit spread."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(k, d)).astype(np.float32)
    X = rng.standard_normal((n, d), dtype=np.float32)
    X += means[rng.integers(0, k, size=n)]
    return X


def backend(name: str):
    """(to_device, synchronize) for a backend name."""
    if name == "numpy":
        return (lambda a: a), (lambda: None)
    if name == "cupy":
        import cupy

        return cupy.asarray, cupy.cuda.Device().synchronize
    if name in ("torch", "torch_cuda"):
        import torch

        device = "cuda" if name == "torch_cuda" else "cpu"
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        return (lambda a: torch.asarray(a, device=device)), sync
    raise SystemExit(f"unknown backend {name!r}")


def timed(fn, sync, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain_torch_iteration(X, C, k):
    """The usual PyTorch Lloyd step: matmul + argmin + index_add_ (DESIGN.md's baseline)."""
    import torch

    scores = (C * C).sum(1)[None, :] - 2.0 * (X @ C.T)
    labels = scores.argmin(1)
    sums = torch.zeros_like(C).index_add_(0, labels, X)
    counts = torch.zeros(k, device=X.device, dtype=X.dtype).index_add_(
        0, labels, torch.ones_like(labels, dtype=X.dtype)
    )
    return sums / counts.clamp(min=1)[:, None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--shape", default="100000,32,64", help="n,d,k")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n, d, k = (int(v) for v in args.shape.split(","))
    to_device, sync = backend(args.backend)
    X = to_device(make_data(n, d, k))
    init = X[:k]

    def fit(iterations):
        # Stopping after a fixed number of iterations may leave a cluster momentarily empty;
        # that warning is expected here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return KMeans(n_clusters=k, init=init, max_iter=iterations, tol=0).fit(X)

    one = timed(lambda: fit(1), sync, args.repeats)
    many = timed(lambda: fit(1 + args.iters), sync, args.repeats)
    n_iter = fit(1 + args.iters).n_iter_
    per_iter_ms = (many - one) / (n_iter - 1) * 1e3 if n_iter > 1 else float("nan")
    gemm_ms = timed(lambda: X @ init.T, sync, args.repeats) * 1e3
    row = f"{args.backend:<10} n={n} d={d} k={k}: kmeans_xp {per_iter_ms:8.2f} ms/iter"
    row += f" (fixed cost {one * 1e3:.1f} ms, {n_iter - 1} iterations timed)"
    row += f" | GEMM X@C.T {gemm_ms:8.2f} ms"
    if args.backend.startswith("torch"):
        plain_ms = timed(lambda: plain_torch_iteration(X, init, k), sync, args.repeats) * 1e3
        row += f" | plain torch step {plain_ms:8.2f} ms"
    print(row, flush=True)


if __name__ == "__main__":
    main()
