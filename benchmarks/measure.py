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
    from kmeans_xp._array_api import array_device, get_namespace, move_to
    from kmeans_xp._lloyd import labels_and_inertia

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
