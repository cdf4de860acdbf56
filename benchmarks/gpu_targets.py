"""``python -m benchmarks.gpu_targets``: issue 4's memory and k-means++ targets on one GPU.

memory: X of ``--memory-shape`` (default 100 000 000 × 64, k = 1024: 25.6 GB of float32), a
Gaussian mixture drawn on the device in chunks; CuPy's memory pool is then limited to X +
``--extra-gb`` (default 2) and a default ``KMeans(k, max_iter=--memory-iters)`` fit must finish
under that limit (the fit reads the limit: its blocks are sized from what the pool may still
hand out). Printed: whether it finished (or its error), the most the pool held above X (a
memory hook sees every allocation and free), and the time.

k-means++: at ``--init-shape`` (default shape A, 1 048 576 × 128 → 1024), the time of
``kmeans_plusplus(X, k)`` against that of 20 Lloyd iterations (a fit of 21 iterations from given
centers, ``tol=0``, minus a fit of 1), each the median of two after a warm-up; the target is a
ratio ≤ 1. Beside it, once each: CuPy's k-means++ with the standard version's sampling instead of
its two sampling kernels, without pruning rows by the triangle inequality, and the standard
version itself, each with whether it picks the same rows.

``--device cpu`` runs both on NumPy (no pool, no limit) at the shapes given: the code path, for
the tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

from kmeans_xp import ConvergenceWarning, KMeans, kmeans_plusplus

CHUNK_ROWS = 1 << 22


def parse(shape: str) -> tuple[int, int, int]:
    n, d, k = (int(v) for v in shape.split("x"))
    return n, d, k


def mixture(xp, n: int, d: int, k: int, seed: int = 0):
    """float32 rows around k centers (spread 10, unit noise), drawn chunk by chunk where X is to
    live, so no n-long temporary (labels, noise) exists beside X."""
    if xp is np:
        rng = np.random.default_rng(seed)
        centers = (10.0 * rng.standard_normal((k, d))).astype(np.float32)

        def draw(m):
            noise = rng.standard_normal((m, d)).astype(np.float32)
            return centers[rng.integers(0, k, size=m)] + noise
    else:
        rs = xp.random.RandomState(seed)
        centers = 10.0 * rs.standard_normal((k, d), dtype=xp.float32)

        def draw(m):
            return centers[rs.randint(0, k, size=m)] + rs.standard_normal((m, d), dtype=xp.float32)

    X = xp.empty((n, d), dtype=xp.float32)
    for start in range(0, n, CHUNK_ROWS):
        stop = min(n, start + CHUNK_ROWS)
        X[start:stop] = draw(stop - start)
    return X


class _Sync:
    def __init__(self, xp):
        self.xp = xp

    def __call__(self) -> None:
        if self.xp is not np:
            self.xp.cuda.Device().synchronize()


def memory_target(xp, shape: tuple[int, int, int], extra_bytes: int, iters: int) -> dict:
    n, d, k = shape
    X = mixture(xp, n, d, k)
    result = {"shape": [n, d, k], "x_gb": X.nbytes / 1e9, "extra_gb": extra_bytes / 1e9}
    hook = None
    if xp is not np:
        _Sync(xp)()
        pool = xp.get_default_memory_pool()
        pool.free_all_blocks()  # the mixture's temporaries
        pool.set_limit(size=X.nbytes + extra_bytes)
        hook = peak_hook(xp)
        hook.__enter__()
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            km = KMeans(k, max_iter=iters, random_state=0).fit(X)
        _Sync(xp)()
        result.update(finished=True, n_iter=int(km.n_iter_), inertia=float(km.inertia_))
    except Exception as exc:  # the point of the run: say how it failed, and where
        result.update(finished=False, error=f"{type(exc).__name__}: {exc}"[:300])
        traceback.print_exc()
    result["seconds"] = time.perf_counter() - start
    if hook is not None:
        hook.__exit__(None, None, None)
        result["peak_above_x_gb"] = hook.peak / 1e9
        xp.get_default_memory_pool().set_limit(size=0)
    return result


def peak_hook(cupy):
    """A CuPy memory hook (a context manager) keeping in ``peak`` the most bytes the pool
    handed out at once while it was active; what was allocated before does not count."""

    class PeakHook(cupy.cuda.MemoryHook):
        name = "kmeans_xp_peak"

        def __init__(self):
            self.used = self.peak = 0

        def malloc_postprocess(self, **kwargs):
            self.used += kwargs["mem_size"]
            self.peak = max(self.peak, self.used)

        def free_postprocess(self, **kwargs):
            self.used -= kwargs["mem_size"]

    return PeakHook()


def init_target(xp, shape: tuple[int, int, int]) -> dict:
    n, d, k = shape
    X = mixture(xp, n, d, k, seed=1)
    sync = _Sync(xp)

    def timed(run) -> float:
        sync()
        start = time.perf_counter()
        run()
        sync()
        return time.perf_counter() - start

    C0 = X[:k].copy()

    def lloyd(iters: int) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            KMeans(k, init=C0, max_iter=iters, tol=0, algorithm="lloyd").fit(X)

    kmeans_plusplus(X, k, random_state=0)  # warm-up: kernels compiled, pools filled
    lloyd(2)
    init = statistics.median(
        timed(lambda s=s: kmeans_plusplus(X, k, random_state=s)) for s in (1, 2)
    )
    one = statistics.median(timed(lambda: lloyd(1)) for _ in range(2))
    many = statistics.median(timed(lambda: lloyd(21)) for _ in range(2))
    twenty = many - one
    ratio = init / twenty if twenty > 0 else float("inf")  # a toy shape's noise
    result = {"shape": [n, d, k], "kmeans_plusplus_s": init, "lloyd_20_s": twenty, "ratio": ratio}
    from kmeans_xp._lib.options import pass_options

    def picks_under(switch: str | None) -> tuple[float, object]:
        """One timed k-means++ from seed 1 with the pass option ``switch`` off, and its rows."""
        with pass_options(**({switch: False} if switch else {})):
            sync()
            start = time.perf_counter()
            indices = kmeans_plusplus(X, k, random_state=1)[1]
            sync()
        return time.perf_counter() - start, indices

    # Each of CuPy's k-means++ parts switched off in turn (the standard version's sampling by
    # CuPy's cumulative sums; every row read at every step; the standard version itself): its
    # time, and whether it picks the rows the default does from the same seed.
    _, default_picks = picks_under(None)
    for switch, name in (
        ("fused_kmeanspp_sampling", "cupy_sampling"),
        ("kmeanspp_pruning", "unpruned"),
        ("fused_kmeanspp", "standard"),
    ):
        seconds, picks = picks_under(switch)
        result[f"{name}_kmeans_plusplus_s"] = seconds
        same = bool((picks == default_picks).all())
        result["same_picks" if name == "standard" else f"same_picks_{name}"] = same
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--memory-shape", default="100000000x64x1024")
    parser.add_argument("--extra-gb", type=float, default=2.0)
    parser.add_argument("--memory-iters", type=int, default=3)
    parser.add_argument("--init-shape", default="1048576x128x1024")
    parser.add_argument("--skip", choices=("memory", "init"), help="run only the other part")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        xp = np
    else:
        import cupy as xp
    results = {"date": time.strftime("%Y-%m-%d"), "device": args.device}

    def write() -> None:  # after each part: a run stopped by its time limit keeps the first
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2))

    if args.skip != "init":
        r = init_target(xp, parse(args.init_shape))
        results["init"] = r
        print(
            f"| k-means++ at {tuple(r['shape'])} | {r['kmeans_plusplus_s']:.3f} s | 20 Lloyd "
            f"iterations {r['lloyd_20_s']:.3f} s | ratio {r['ratio']:.2f} (target <= 1) | "
            f"with CuPy's sampling {r['cupy_sampling_kmeans_plusplus_s']:.3f} s, same picks: "
            f"{r['same_picks_cupy_sampling']} | unpruned {r['unpruned_kmeans_plusplus_s']:.3f} "
            f"s, same picks: {r['same_picks_unpruned']} | standard k-means++ "
            f"{r['standard_kmeans_plusplus_s']:.3f} s, same picks: {r['same_picks']} |",
            flush=True,
        )
        write()
    if args.skip != "memory":
        extra = int(args.extra_gb * 1e9)
        r = memory_target(xp, parse(args.memory_shape), extra, args.memory_iters)
        results["memory"] = r
        outcome = f"finished, {r['n_iter']} iterations" if r["finished"] else r["error"]
        peak = f"{r['peak_above_x_gb']:.2f} GB" if "peak_above_x_gb" in r else "n/a (no pool)"
        print(
            f"| default fit at {tuple(r['shape'])}, X {r['x_gb']:.1f} GB, limit X + "
            f"{r['extra_gb']:.1f} GB | {outcome} | most above X {peak} | {r['seconds']:.1f} s |",
            flush=True,
        )
        write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
