"""``python -m benchmarks.certified_rescore``: how many rows the certified assignment rescores.

On a GPU every float32 row whose two nearest centers are within the proven error bound is scored
again in float64 (``kmeans_xp/_certified.py``). The fraction depends only on the data, the
centers and the bound, not on the card, so it is measured here on the CPU with the very same
code: float32 products as they are ("highest"), TF32 products emulated by truncating both
operands to 10 mantissa bits ("high"), and the same on operands split into head and tail
("tf32x3"; the heads pass the truncation unchanged). Data: the GPU benchmark's mixtures (at
most ``--rows`` rows of each shape), at the benchmark's initial centers and after a few Lloyd
iterations.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from kmeans_xp import ConvergenceWarning, KMeans
from kmeans_xp._core.certified import PRECISIONS, TENSOR_CORE_PRECISIONS, CertifiedAssign

from .data import Shape, initial_centers, make_data, parse_shapes


def truncate_to_tf32(a: np.ndarray) -> np.ndarray:
    """float32 with the 13 low mantissa bits cleared: TF32 inputs, truncated."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32) & np.uint32(0xFFFFE000)
    return bits.view(np.float32)


def tf32_matmul(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A TF32 tensor-core product emulated on the CPU: truncated inputs, float32 accumulation."""
    return truncate_to_tf32(A) @ truncate_to_tf32(B)


class CountingAssign(CertifiedAssign):
    """The certified assignment, counting the rows it rescores."""

    rescored = 0

    def rescore(self, X_rows):
        self.rescored += X_rows.shape[0]
        return super().rescore(X_rows)


def rescored_fraction(X: np.ndarray, centers: np.ndarray, precision: str) -> float:
    offset = X.mean(axis=0, dtype=np.float64).astype(X.dtype)
    matmul = tf32_matmul if precision in TENSOR_CORE_PRECISIONS else None
    assign = CountingAssign(centers - offset, xp=np, precision=precision, matmul=matmul)
    for start in range(0, X.shape[0], 8192):
        assign(X[start : start + 8192] - offset)
    return assign.rescored / X.shape[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shapes", default="1048576x128x1024,10000000x32x64,131072x256x16384,8388608x128x1024"
    )
    parser.add_argument("--rows", type=int, default=262_144, help="rows of each shape's data")
    parser.add_argument("--iters", default="0,5,20", help="Lloyd iterations before measuring")
    args = parser.parse_args(argv)
    iters = [int(i) for i in args.iters.split(",")]
    print(
        "| shape (n, d, k) | rows | Lloyd iterations | rescored, float32 | rescored, TF32 "
        "| rescored, TF32x3 |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for shape in parse_shapes(args.shapes):
        n = min(shape.n, args.rows)
        X = make_data(Shape(n, shape.d, shape.k))
        C0 = initial_centers(X, shape.k)
        for it in iters:
            centers = C0
            if it:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    km = KMeans(shape.k, init=C0, max_iter=it, tol=0, algorithm="lloyd").fit(X)
                centers = km.cluster_centers_
            cells = [f"{rescored_fraction(X, centers, p):.2e}" for p in PRECISIONS]
            print(f"| {shape.label} | {n:,} | {it} | {' | '.join(cells)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
