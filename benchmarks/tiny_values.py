"""``python -m benchmarks.tiny_values``: default fits of very small float32 values, seed by seed.

Three float32 blobs of 20 rows in 2 features (the validation tests' data: centers (0, 0),
(5, 5), (10, 10), unit spread, seed 4), scaled so their largest |value| is twice the smallest
that kmeans_xp accepts ("new": sqrt(d · smallest_normal / eps)) or accepted before 2026-11-27
("old": sqrt(smallest_normal / 4d), where squared distances are subnormal; those fits run with
the magnitude check switched off, as they did then). Each backend fits ``KMeans(3,
random_state=seed)`` for ``--seeds`` seeds; a line per limit and backend says how many fits did
not find the three blobs. Backends that are not installed, or have no GPU, are reported as such.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from contextlib import nullcontext
from unittest import mock

import numpy as np

from kmeans_xp import KMeans
from kmeans_xp._lib import validation as _validation


def blobs() -> tuple[np.ndarray, np.ndarray]:
    """The three blobs scaled to a largest |value| of 1, and each row's blob."""
    rng = np.random.default_rng(4)
    centers = np.array([[0.0, 0.0], [5.0, 5.0], [10.0, 10.0]])
    X = np.concatenate([rng.normal(c, 1.0, (20, 2)) for c in centers])
    return X / np.abs(X).max(), np.repeat(np.arange(3), 20)


def limits(n_features: int) -> dict[str, float]:
    """The smallest accepted largest |value| of float32 data, before and now."""
    finfo = np.finfo(np.float32)
    tiny, eps = float(finfo.smallest_normal), float(finfo.eps)
    return {
        "old": math.sqrt(tiny / (4 * n_features)),
        "new": math.sqrt(n_features * tiny / eps),
    }


def backend(name: str) -> tuple[Callable, Callable] | str:
    """(to the backend, back to NumPy), or why the backend cannot run here."""
    if name == "numpy":
        return np.asarray, np.asarray
    try:
        if name == "cupy":
            import cupy

            if cupy.cuda.runtime.getDeviceCount() == 0:
                return "no CUDA device"
            return cupy.asarray, cupy.asnumpy
        if name == "torch_cuda":
            import torch

            if not torch.cuda.is_available():
                return "no CUDA device"
            return (lambda a: torch.asarray(a, device="cuda")), (lambda t: t.cpu().numpy())
    except Exception as exc:  # not installed, no driver: say so
        return f"{type(exc).__name__}: {exc}"[:120]
    raise ValueError(f"unknown backend {name!r}")


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def wrong_partitions(to: Callable, back: Callable, X: np.ndarray, groups, seeds: int) -> int:
    return sum(
        not same_partition(back(KMeans(3, random_state=seed).fit(to(X)).labels_), groups)
        for seed in range(seeds)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="numpy,cupy,torch_cuda")
    parser.add_argument("--seeds", type=int, default=40)
    args = parser.parse_args(argv)
    X, groups = blobs()
    for which, lowest in limits(X.shape[1]).items():
        scaled = (X * 2 * lowest).astype(np.float32)
        unchecked = mock.patch.object(_validation, "check_magnitude", return_value=None)
        for name in args.backends.split(","):
            found = backend(name)
            if isinstance(found, str):
                print(f"{which} limit: {name} skipped: {found}")
                continue
            with unchecked if which == "old" else nullcontext():
                bad = wrong_partitions(*found, scaled, groups, args.seeds)
            print(
                f"{which} limit (largest |value| {2 * lowest:.3g}): {name} wrong partitions in "
                f"{args.seeds} seeds: {bad}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
