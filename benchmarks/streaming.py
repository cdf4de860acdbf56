"""``python -m benchmarks.streaming``: a Lloyd iteration on host X streamed through a device,
against the time to copy X to that device once (issue 6: within 1.3×).

X (float32, a seeded mixture) stays in host memory; ``KMeans(device=..., max_device_bytes=...)``
with a budget of ``--budget-fraction`` of X forces streaming. The per-iteration time is the
harness's difference of a (1 + iters)- and a 1-iteration fit from the same centers; the copy time
is the median of three whole copies of X to the device (pageable host memory, as the fit reads).

``--copy`` times each way blocks can reach a GPU (``kmeans_xp._algorithms.streaming``):
"registered" (X
page-locked in place for the fit, copied from directly) and "staged" (rows copied into pinned
staging buffers first, as for a memmap). Each mode's row says which one the fit really took (a
driver may refuse the page lock) and how long locking X took (once a fit, not in the iteration).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

from kmeans_xp import ConvergenceWarning, KMeans
from kmeans_xp._algorithms import streaming
from kmeans_xp._lib.compat import resolve_device
from kmeans_xp._lib.options import pass_options

from .data import Shape, initial_centers, make_data


def _synchronizer(xp_device):
    xp, device = xp_device
    name = xp.__name__
    if "cupy" in name:
        import cupy

        return lambda: cupy.cuda.Device(device.id).synchronize()
    if "torch" in name and getattr(device, "type", "cpu") == "cuda":
        import torch

        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def streaming_budget(X: np.ndarray, fraction: float) -> int:
    """``max_device_bytes`` that forces streaming: ``fraction`` of X beside the fit's state
    (32 bytes a row, as the fit counts it)."""
    return int(X.nbytes * fraction) + X.shape[0] * 32


def copy_seconds(X: np.ndarray, device) -> float:
    """Median time of three whole host-to-device copies of X."""
    xp, target = resolve_device(device)
    sync = _synchronizer((xp, target))
    times = []
    for _ in range(3):
        sync()
        start = time.perf_counter()
        copy = xp.asarray(X, device=target)
        sync()
        times.append(time.perf_counter() - start)
        del copy
    return statistics.median(times)


def iteration_seconds(X, C0, device, budget: int, iters: int) -> float:
    xp, target = resolve_device(device)
    sync = _synchronizer((xp, target))

    def fit(n_iter: int) -> float:
        km = KMeans(
            C0.shape[0], init=C0, max_iter=n_iter, tol=0, device=device, max_device_bytes=budget
        )
        sync()
        start = time.perf_counter()
        with warnings.catch_warnings():  # a fixed iteration count may leave a cluster empty
            warnings.simplefilter("ignore", ConvergenceWarning)
            km.fit(X)
        sync()
        return time.perf_counter() - start

    fit(2)  # warm-up: kernels, pools
    ones = [fit(1) for _ in range(2)]
    manys = [fit(1 + iters) for _ in range(2)]
    return (statistics.median(manys) - statistics.median(ones)) / iters


def copy_mode_taken(X: np.ndarray, device) -> tuple[str, float]:
    """How a streamed fit on ``device`` will copy X's blocks under the current setting, and the
    seconds that preparing it took (page-locking X, where it is locked: most of it)."""
    xp, target = resolve_device(device)
    start = time.perf_counter()
    rows = streaming.HostRows(X, xp, target, block_rows=1)
    seconds = time.perf_counter() - start
    rows.close()
    return rows.copy_mode, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--shape", default="4000000x64x256", help="NxDxK")
    parser.add_argument("--budget-fraction", type=float, default=0.25)
    parser.add_argument("--iters", type=int, default=4)
    parser.add_argument(
        "--copy", default="registered,staged",
        help="comma-separated modes to time: registered (X page-locked in place), staged",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    n, d, k = (int(v) for v in args.shape.split("x"))
    X = make_data(Shape(n, d, k))
    C0 = initial_centers(X, k)
    budget = streaming_budget(X, args.budget_fraction)
    copy = copy_seconds(X, args.device)
    modes = {}
    for mode in args.copy.split(","):
        if mode not in ("registered", "staged"):
            parser.error(f"--copy: unknown mode {mode!r} (registered, staged)")
        with pass_options(register_host_memory=mode == "registered"):
            taken, lock_seconds = copy_mode_taken(X, args.device)
            seconds = iteration_seconds(X, C0, args.device, budget, args.iters)
        modes[mode] = {
            "taken": taken,
            "lock_ms": lock_seconds * 1e3 if taken == "registered" else 0.0,
            "iteration_ms": seconds * 1e3,
            "ratio": seconds / copy,
        }
    first = next(iter(modes.values()))
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "device": str(args.device),
        "shape": [n, d, k],
        "x_mb": X.nbytes / 2**20,
        "budget_mb": budget / 2**20,
        "copy_ms": copy * 1e3,
        "iteration_ms": first["iteration_ms"],  # the first mode's (by default what fits take)
        "ratio": first["ratio"],
        "modes": modes,
    }
    for mode, row in modes.items():
        print(
            f"| {n:,} x {d} -> {k} | X {result['x_mb']:.0f} MB, budget "
            f"{result['budget_mb']:.0f} MB | {mode} (took: {row['taken']}, lock "
            f"{row['lock_ms']:.1f} ms) | copy {result['copy_ms']:.1f} ms | iteration "
            f"{row['iteration_ms']:.1f} ms | ratio {row['ratio']:.2f} (target ≤ 1.3) |"
        )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
