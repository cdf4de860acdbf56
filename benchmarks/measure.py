"""Timing, peak memory and a common inertia, measured the same way for every implementation."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .implementations import Implementation


@dataclass
class Measurement:
    name: str
    kind: str
    ms_per_iter: float | None = None
    iterations_timed: int = 0
    peak_extra_mb: float | None = None  # resident memory above what it held before the run
    inertia: float | None = None
    skipped: str | None = None
    label_errors: float | None = None  # fraction of sampled labels worse than a float64 argmin
    worst_excess: float | None = None  # largest (chosen − best) / best among them


def peak_extra_mb(name: str, data_path: Path, centers_path: Path, iterations: int) -> float | None:
    """Peak resident memory (MB) that ``iterations`` Lloyd iterations add, in a fresh process."""
    command = [sys.executable, "-m", "benchmarks.memory", name, str(data_path), str(centers_path)]
    done = subprocess.run(
        [*command, str(iterations)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    if done.returncode != 0:
        return None
    return float(done.stdout.strip().splitlines()[-1])


def per_iteration(impl: Implementation, iters: int, repeats: int) -> tuple[float, int]:
    """(median time of 1 + iters iterations − median time of 1 iteration) / iterations run.

    The difference cancels what a fit does once (validation, copies, the final labels pass), so
    implementations with different fixed costs compare by what each iteration costs. Runs are
    interleaved so that a slow phase of the machine hits both alike. One warm-up first.
    """

    def timed(n: int) -> tuple[float, int]:
        impl.synchronize()
        start = time.perf_counter()
        _, done = impl.iterate(n)
        impl.synchronize()
        return time.perf_counter() - start, done

    timed(1 + iters)  # warm-up: imports, kernel compilation, allocator pools
    ones, manys = [], []
    for _ in range(repeats):
        ones.append(timed(1))
        manys.append(timed(1 + iters))
    done = manys[0][1] - ones[0][1]  # strict convergence can stop an implementation early
    if done <= 0:
        return float("nan"), 0
    t_one = statistics.median(t for t, _ in ones)
    t_many = statistics.median(t for t, _ in manys)
    return (t_many - t_one) / done, done


def common_inertia(X, centers: np.ndarray) -> float:
    """Σ‖x − nearest center‖² in float64: one evaluation for every implementation's centers.

    ``X`` may live on a GPU (any kmeans_xp backend); the centers are NumPy.
    """
    from kmeans_xp._algorithms.lloyd import labels_and_inertia
    from kmeans_xp._lib.compat import array_device, get_namespace, move_to

    xp, device = get_namespace(X), array_device(X)
    C = xp.astype(move_to(np.ascontiguousarray(centers), xp, device), X.dtype)
    _, inertia = labels_and_inertia(
        X,
        C,
        xp.ones((X.shape[0],), dtype=X.dtype, device=device),
        offset=xp.mean(X, axis=0),
        block_rows=4096,
        xp=xp,
    )
    return inertia


def time_once(fn, *args, sync) -> tuple[float, object]:
    """Seconds of one synchronised call ``fn(*args)``, and its result."""
    sync()
    start = time.perf_counter()
    result = fn(*args)
    sync()
    return time.perf_counter() - start, result


# Rows of the float64 label check (the 200 000-point sample) and its chunk size.
LABEL_SAMPLE = 200_000
_CHUNK = 8192


def float64_nearest(X: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index and squared distance of each row's nearest center, in float64 (on a CUDA device
    through torch when there is one). The index is the argmin of the GEMM form (float64: its
    rounding, ~1e-16 of ‖x‖², matters only at ties far below 1e-5); the distance is then taken
    by explicit differences, as ``label_check`` takes the chosen one's — the GEMM form's value
    for a row sitting on its center is rounding noise, often clipped to 0, against which any
    positive distance would count as infinitely worse."""
    try:
        import torch

        device = "cuda" if torch.cuda.is_available() else None
    except ImportError:
        device = None
    if device is None:
        Xd, C, lib = X.astype(np.float64), centers.astype(np.float64), np
    else:
        Xd = torch.asarray(X, device=device, dtype=torch.float64)
        C = torch.asarray(centers, device=device, dtype=torch.float64)
        lib = None
    c_sq = (C * C).sum(1)
    best_j, best_d = [], []
    for start in range(0, X.shape[0], _CHUNK):
        rows = Xd[start : start + _CHUNK]
        d = (rows * rows).sum(1)[:, None] - 2.0 * (rows @ C.T) + c_sq[None, :]
        j = d.argmin(1)
        diff = rows - C[j]
        dj = (diff * diff).sum(1)
        if lib is None:
            j, dj = j.cpu().numpy(), dj.cpu().numpy()
        best_j.append(j)
        best_d.append(dj)
    return np.concatenate(best_j), np.concatenate(best_d)


def label_check(labels: np.ndarray, X: np.ndarray, centers: np.ndarray, best: np.ndarray) -> dict:
    """How many labels are worse than the float64 argmin, and by how much at worst.

    A label is wrong when its center's float64 squared distance (by explicit differences)
    exceeds the best one's; ties are not errors.
    """
    diff = X.astype(np.float64) - centers.astype(np.float64)[np.asarray(labels, dtype=np.int64)]
    chosen = (diff * diff).sum(1)
    excess = (chosen - best) / np.maximum(best, np.finfo(np.float64).tiny)
    # The reference's own GEMM-form rounding (~1e-16 of the norms) is not an error.
    wrong = excess > 1e-9
    return {
        "label_errors": float(wrong.mean()),
        "worst_excess": float(excess[wrong].max()) if wrong.any() else 0.0,
    }
