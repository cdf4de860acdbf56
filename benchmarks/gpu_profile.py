"""``python -m benchmarks.gpu_profile``: where a GPU Lloyd iteration and k-means++ spend time.

For each shape, fits of 1 and of 1 + ``--iters`` Lloyd iterations from given centers (after a
warm-up fit) run under PyTorch's profiler, which records every CUDA kernel of the process
through CUPTI — CuPy's and cuBLAS's as well as torch's; the difference of the two is what the
iterations cost. Printed per shape: the wall time per iteration, the kernels' busy time per
iteration (wall well above it means launches, synchronisations or Python between kernels cost
the difference), and the kernels by time with their launch counts. The same two fits run again
under ``cProfile`` give the host's side (``--host-top`` rows): the Python functions by their own
time per iteration — a wait for the device shows as the time of whatever read it back
(``__float__``, ``__int__``, ``get``), and calls per iteration count the launches' callers.
``--kmeanspp K`` profiles ``kmeans_plusplus(X, K)`` at the first shape the same way (per
center); ``--streaming NxDxK`` a fit streaming host X to the GPU (copies show as memcpy rows).
``--backend cupy,torch_cuda`` profiles the Lloyd shapes on each (the same kernels, driven
through CuPy or torch: where their wall times differ, the host rows say why). A backend may
name a variant as the benchmark does, e.g. ``cupy:tf32x3:mma`` (the tensor-core kernel with
split TF32 products); shapes that variant does not change are left out for it.

``--backend torch`` runs on the CPU (the profiler then lists torch's CPU operators): the code
path, for the tests.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from kmeans_xp import ConvergenceWarning, KMeans, kmeans_plusplus

from .gpu_targets import mixture, parse
from .implementations import backend_impl
from .streaming import streaming_budget

DEFAULT_SHAPES = "1048576x128x1024,10000000x32x64,8388608x128x1024"


def _library(backend: str):
    """(array namespace for mixture(), a function moving X there, a synchronize())."""
    import torch

    if backend == "cupy":
        import cupy

        return cupy, lambda X: X, lambda: cupy.cuda.Device().synchronize()
    if backend == "torch_cuda":
        import cupy

        return cupy, lambda X: torch.from_dlpack(X), torch.cuda.synchronize
    return np, torch.from_numpy, lambda: None


def kernel_totals(profiler) -> dict[str, list[float]]:
    """{kernel name: [calls, milliseconds]} from a finished ``torch.profiler.profile``: device
    kernels where any were recorded, else top-level CPU operators (a CPU-only run)."""
    from torch.autograd import DeviceType

    events = [e for e in profiler.events() if e.device_type == DeviceType.CUDA]
    if not events:
        events = [e for e in profiler.events() if e.cpu_parent is None]
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for e in events:
        row = totals[e.name[:90]]
        row[0] += 1
        row[1] += e.time_range.elapsed_us() / 1e3
    return dict(totals)


def kernel_table(totals: dict[str, list[float]], per: int) -> tuple[float, list[dict]]:
    """(busy milliseconds per unit, rows of kernel / calls / ms per unit / share of the busy
    time), the kernels by total time; ``per`` units in ``totals``."""
    busy = sum(ms for _, ms in totals.values())
    rows = [
        {
            "kernel": name,
            "calls_per": calls / per,
            "ms_per": ms / per,
            "share": ms / busy if busy else 0.0,
        }
        for name, (calls, ms) in sorted(totals.items(), key=lambda item: -item[1][1])
    ]
    return busy / per, rows


def difference(many: dict, one: dict) -> dict[str, list[float]]:
    """Per kernel, ``many`` minus ``one``: what the extra iterations cost, without the fit's
    fixed work (validation, init, the final labels pass)."""
    names = set(many) | set(one)
    zero = [0, 0.0]
    diff = {
        n: [many.get(n, zero)[0] - one.get(n, zero)[0], many.get(n, zero)[1] - one.get(n, zero)[1]]
        for n in names
    }
    return {n: v for n, v in diff.items() if v[0] > 0 or v[1] > 0}


def _profiled(run, sync):
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    sync()
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        run()
        sync()
        wall = time.perf_counter() - start
    return wall, prof


def host_totals(run, sync) -> dict[str, list[float]]:
    """{function: [calls, own milliseconds]} of ``run()`` (and a final ``sync()``) under
    ``cProfile``: where the host's time goes, waits for the device included."""
    sync()
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    sync()
    profiler.disable()
    totals: dict[str, list[float]] = {}
    for (path, line, name), (_, calls, own, _, _) in pstats.Stats(profiler).stats.items():
        where = f"{Path(path).name}:{line}({name})" if line else name
        totals[where[:90]] = [calls, own * 1e3]
    return totals


def _per_iteration(fit, sync, iters: int, top: int, host_top: int = 0) -> dict:
    """``fit(max_iter)`` profiled at 1 and at 1 + ``iters`` iterations after a warm-up: the wall
    and kernel time per iteration, and the kernels, from the difference of the two; with
    ``host_top``, the host's functions from the same difference under ``cProfile``."""
    fit(2)  # warm-up: kernels compiled, pools filled
    wall_one, prof_one = _profiled(lambda: fit(1), sync)
    wall_many, prof_many = _profiled(lambda: fit(1 + iters), sync)
    busy, rows = kernel_table(difference(kernel_totals(prof_many), kernel_totals(prof_one)), iters)
    result = {
        "wall_ms_per_iteration": (wall_many - wall_one) * 1e3 / iters,
        "busy_ms_per_iteration": busy,
        "kernels": rows[:top],
    }
    if host_top:
        one = host_totals(lambda: fit(1), sync)
        many = host_totals(lambda: fit(1 + iters), sync)
        _, host_rows = kernel_table(difference(many, one), iters)
        result["host"] = [
            {"function": r["kernel"], "calls_per": r["calls_per"], "ms_per": r["ms_per"]}
            for r in host_rows[:host_top]
        ]
    return result


def profile_lloyd(
    backend: str, shape: tuple[int, int, int], iters: int, top: int, host_top: int = 0
) -> dict:
    """``backend`` as the benchmark names it: ``cupy``, ``torch_cuda``, ``cupy:tf32x3:mma``..."""
    variant = backend_impl(backend)
    xp, move, sync = _library(variant.backend)
    n, d, k = shape
    X = move(mixture(xp, n, d, k, seed=3))
    C0 = X[:k].clone() if hasattr(X, "clone") else X[:k].copy()

    def fit(max_iter: int) -> None:
        with warnings.catch_warnings(), variant._kernels():
            warnings.simplefilter("ignore", ConvergenceWarning)
            KMeans(
                k, init=C0, max_iter=max_iter, tol=0, algorithm="lloyd",
                matmul_precision=variant.precision,
            ).fit(X)  # fmt: skip

    return {
        "what": f"Lloyd iteration (fits of 1 + {iters} and of 1 iteration, the difference)",
        "backend": backend,
        "shape": [n, d, k],
        **_per_iteration(fit, sync, iters, top, host_top),
    }


def profile_streaming(device: str, shape: tuple[int, int, int], iters: int, top: int) -> dict:
    """A Lloyd iteration on host X streamed to ``device`` with a budget of a quarter of X beside
    the fit's state (as ``benchmarks.streaming`` measures it); copies show as memcpy rows."""
    import torch

    n, d, k = shape
    X = mixture(np, n, d, k, seed=5)
    C0 = X[:k].copy()
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)

    def fit(max_iter: int) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            KMeans(
                k, init=C0, max_iter=max_iter, tol=0, algorithm="lloyd", device=device,
                max_device_bytes=streaming_budget(X, 0.25),
            ).fit(X)  # fmt: skip

    return {
        "what": f"streamed Lloyd iteration, host X, budget X/4 + state (fits of 1 + {iters}, 1)",
        "backend": device,
        "shape": [n, d, k],
        **_per_iteration(fit, sync, iters, top),
    }


def small_pass_anatomy(shape: tuple[int, int, int], repeats: int = 5) -> dict | None:
    """At a shape the fused small-k·d pass takes (CuPy): its time with the sums
    (``assign_and_sum``) and without (``CertifiedAssign``, labels only), and the separate
    ``segment_sum`` of those labels — what the in-kernel sums cost (the labels-only time
    includes one ``X - offset`` copy). None elsewhere; GPU only (run by ``ci/gpu.sh``)."""
    import functools

    import cupy
    from cupyx.profiler import benchmark

    from kmeans_xp._backends import cuda_launch
    from kmeans_xp._backends import cupy as _cupy
    from kmeans_xp._core.passes import standard_assign_and_sum
    from kmeans_xp._lib.compat import get_namespace

    n, d, k = shape
    if cuda_launch.small_pass(d, k, np.float32, accumulate=True) is None:
        return None
    X = mixture(cupy, n, d, k, seed=6)
    offset = X.mean(axis=0)
    C = (X[:k] - offset).copy()
    w = cupy.ones(n, dtype=cupy.float32)
    xp = get_namespace(X)
    rows = n  # one block: the kernels alone
    standard = functools.partial(
        standard_assign_and_sum, make_assign=functools.partial(_cupy.CertifiedAssign, xp=xp)
    )

    def fused():
        _cupy.assign_and_sum(
            X, C, w, offset, _cupy.segment_sum, block_rows=rows, xp=xp, standard=standard
        )

    def assign_only():
        _cupy.CertifiedAssign(C, xp=xp)(X - offset)

    labels, _ = _cupy.CertifiedAssign(C, xp=xp)(X - offset)
    centered = X - offset

    def sums_only():
        _cupy.segment_sum(centered, labels, w, k, xp=xp)

    def ms(run) -> float:
        return float(np.median(benchmark(run, n_repeat=repeats, n_warmup=1).gpu_times) * 1e3)

    return {
        "shape": [n, d, k],
        "fused_pass_ms": ms(fused),
        "assign_only_ms": ms(assign_only),
        "segment_sum_ms": ms(sums_only),
    }


def profile_kmeanspp(backend: str, shape: tuple[int, int, int], n_centers: int, top: int) -> dict:
    xp, move, sync = _library(backend)
    n, d, k = shape
    X = move(mixture(xp, n, d, k, seed=4))
    kmeans_plusplus(X, n_centers, random_state=0)  # warm-up
    wall, prof = _profiled(lambda: kmeans_plusplus(X, n_centers, random_state=1), sync)
    busy, rows = kernel_table(kernel_totals(prof), n_centers)
    return {
        "what": f"kmeans_plusplus, {n_centers} centers (per center)",
        "backend": backend,
        "shape": [n, d, n_centers],
        "wall_ms_per_center": wall * 1e3 / n_centers,
        "busy_ms_per_center": busy,
        "kernels": rows[:top],
    }


def _print(result: dict) -> None:
    unit = "iteration" if "wall_ms_per_iteration" in result else "center"
    wall, busy = result[f"wall_ms_per_{unit}"], result[f"busy_ms_per_{unit}"]
    print(f"\n### {result['what']} at {tuple(result['shape'])} on {result['backend']}")
    print(f"wall {wall:.3f} ms per {unit}, kernels busy {busy:.3f} ms per {unit}\n")
    print(f"| kernel | calls per {unit} | ms per {unit} | share |\n|---|---:|---:|---:|")
    for row in result["kernels"]:
        print(
            f"| `{row['kernel']}` | {row['calls_per']:.1f} | {row['ms_per']:.3f} | "
            f"{row['share']:.1%} |"
        )
    if result.get("host"):
        print(f"\nhost (cProfile, own time per {unit}):\n")
        print(f"| function | calls per {unit} | ms per {unit} |\n|---|---:|---:|")
        for row in result["host"]:
            print(f"| `{row['function']}` | {row['calls_per']:.1f} | {row['ms_per']:.3f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend", default="cupy",
        help="cupy, torch_cuda or torch (CPU), or several, comma-separated: each profiles the "
        "Lloyd shapes (k-means++ and the anatomy run on the first)",
    )  # fmt: skip
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help="comma-separated NxDxK")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--kmeanspp", type=int, default=64, help="centers to profile; 0: none")
    parser.add_argument("--top", type=int, default=12, help="kernels listed per profile")
    parser.add_argument(
        "--host-top", type=int, default=15,
        help="host functions listed per Lloyd profile (cProfile); 0: no host profile",
    )  # fmt: skip
    parser.add_argument(
        "--streaming", help="NxDxK: also a fit streaming host X to --streaming-device"
    )
    parser.add_argument("--streaming-device", default="cuda")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    backends = args.backend.split(",")
    unknown = sorted({b.split(":")[0] for b in backends} - {"cupy", "torch_cuda", "torch"})
    if unknown:
        parser.error(f"--backend: unknown {unknown}; choose from cupy, torch_cuda, torch")
    try:
        variants = {b: backend_impl(b) for b in backends}
    except ValueError as exc:
        parser.error(f"--backend: {exc}")
    shapes = [parse(s) for s in args.shapes.split(",")]
    results = []

    def write() -> None:  # after each profile: a run stopped by its time limit keeps the rest
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2))

    first = variants[backends[0]].backend  # k-means++ and the anatomy run on the first
    if args.kmeanspp:
        results.append(profile_kmeanspp(first, shapes[0], args.kmeanspp, args.top))
        _print(results[-1])
        write()
    if args.streaming:  # before the Lloyd shapes: a run stopped by its time limit keeps it
        shape = parse(args.streaming)
        results.append(profile_streaming(args.streaming_device, shape, args.iters, args.top))
        _print(results[-1])
        write()
    for backend in backends:
        for shape in shapes:
            if variants[backend].fits(*shape) is not None:  # the same kernels as without it
                continue
            results.append(profile_lloyd(backend, shape, args.iters, args.top, args.host_top))
            _print(results[-1])
            write()
    if first == "cupy":
        for shape in shapes:
            anatomy = small_pass_anatomy(shape)
            if anatomy is not None:
                results.append({"what": "fused small-k·d pass, anatomy", **anatomy})
                print(
                    f"\n### fused pass at {tuple(shape)}: with sums {anatomy['fused_pass_ms']:.3f} "
                    f"ms, labels only {anatomy['assign_only_ms']:.3f} ms (with an X - offset "
                    f"copy), segment_sum alone {anatomy['segment_sum_ms']:.3f} ms"
                )
                write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
