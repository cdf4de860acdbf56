"""``python -m benchmarks cpu|gpu [options]``: run the comparison and write its results.

For each shape: seeded float32 data, one set of initial centers, and every implementation run
for the same fixed number of Lloyd iterations from those centers (tol=0); then, separately, each
implementation's default end-to-end fit. Results go to ``--out`` as JSON, markdown and a PNG.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import time
import traceback
from functools import partial
from pathlib import Path

import numpy as np

from .data import initial_centers, make_data, parse_shapes
from .implementations import CPU_PEERS, GPU_PEERS, implementations
from .measure import (
    LABEL_SAMPLE,
    Measurement,
    common_inertia,
    float64_nearest,
    label_check,
    peak_extra_mb,
    per_iteration,
    time_once,
)
from .report import write_results

DEFAULT_SHAPES = {
    "cpu": "tutorial,100000x32x64,1000000x64x256,200000x128x1024",
    "gpu": "1048576x128x1024,10000000x32x64,131072x256x16384,8388608x128x1024",
}
DEFAULT_BACKENDS = {"cpu": "numpy,torch", "gpu": "cupy,torch_cuda"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def environment(mode: str) -> dict:
    env = {
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "command": "python -m benchmarks " + " ".join(sys.argv[1:]),
    }
    versions = {}
    for name in ("numpy", "kmeans_xp", "sklearn", "faiss", "scipy", "torch", "cupy"):
        with contextlib.suppress(Exception):
            versions[name] = __import__(name).__version__
    env["versions"] = versions
    try:
        import threadpoolctl

        env["threadpools"] = [
            {k: info.get(k) for k in ("internal_api", "num_threads", "architecture", "version")}
            for info in threadpoolctl.threadpool_info()
        ]
    except ImportError:
        pass
    if mode == "gpu":
        try:
            import torch

            env["gpu"] = torch.cuda.get_device_name()
        except Exception:
            pass
    return env


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run_shape(shape, impls, args, gpu: bool) -> dict:
    X = make_data(shape)
    C0 = initial_centers(X, shape.k)
    saved = (args.out / "X.npy", args.out / "C0.npy")  # for the memory probes' fresh processes
    if not gpu:
        args.out.mkdir(parents=True, exist_ok=True)
        np.save(saved[0], X)
        np.save(saved[1], C0)
    x_mb = X.nbytes / 2**20
    X_eval = _evaluation_copy(X, gpu)
    rows: list[Measurement] = []
    check_centers = None  # the first kmeans_xp row's final centers: every label check uses them
    for impl in impls:
        reason = impl.missing() or impl.fits(shape.n, shape.d, shape.k)
        if reason:
            rows.append(Measurement(impl.name, impl.kind, skipped=reason))
            log(f"  {impl.name:<22} skipped: {reason}")
            continue
        try:
            impl.prepare(X, C0)
            ms, timed = per_iteration(impl, args.iters, args.repeats)
            m = Measurement(impl.name, impl.kind, ms_per_iter=ms * 1e3, iterations_timed=timed)
            if impl.kind != "floor":
                if not gpu:
                    m.peak_extra_mb = peak_extra_mb(impl.name, *saved, 1 + args.iters)
                centers, _ = impl.iterate(1 + args.iters)
                m.inertia = common_inertia(X_eval, centers)
                if check_centers is None and impl.kind == "kmeans_xp":
                    check_centers = centers
        except Exception as exc:  # one implementation's failure must not cost the others' rows
            rows.append(Measurement(impl.name, impl.kind, skipped=_failure(exc)))
            log(f"  {impl.name:<22} {rows[-1].skipped}")
            traceback.print_exc()
            impl.X = impl.C0 = None
            continue
        rows.append(m)
        peak = f", peak +{m.peak_extra_mb:.0f} MB" if m.peak_extra_mb is not None else ""
        log(f"  {impl.name:<22} {m.ms_per_iter:10.2f} ms/iter ({timed} timed{peak})")
        impl.X = impl.C0 = None  # let device memory go before the next one

    if gpu and args.label_check:
        _check_labels(X, check_centers if check_centers is not None else C0, impls, rows)

    e2e: list[dict] = []
    if args.e2e:
        for impl in impls:
            if (
                not impl.supports_default_fit
                or impl.missing()
                or impl.fits(shape.n, shape.d, shape.k)
            ):
                continue
            impl.prepare(X, C0)
            # kmeans_xp runs once per init asked for; the peers with their defaults.
            inits = args.e2e_inits if impl.kind == "kmeans_xp" else [None]
            for init in inits:
                fit = impl.default_fit if init is None else partial(impl.default_fit, init=init)
                name = impl.name if init in (None, "k-means++") else f"{impl.name} {init}"
                fit(shape.k, 0)  # warm-up
                times, inertias = [], []
                for seed in range(args.e2e_repeats):
                    seconds, inertia = time_once(fit, shape.k, seed, sync=impl.synchronize)
                    times.append(seconds)
                    inertias.append(inertia)
                seconds, inertia = float(np.median(times)), float(np.mean(inertias))
                e2e.append(
                    {"name": name, "seconds": seconds, "inertia": inertia, "seeds": len(times)}
                )
                log(f"  default fit {name:<22} {seconds:8.3f} s, mean inertia {inertia:.6g}")
            impl.X = impl.C0 = None
    return {
        "shape": shape.label,
        "n": shape.n,
        "d": shape.d,
        "k": shape.k,
        "x_mb": x_mb,
        "rows": [vars(r) for r in rows],
        "e2e": e2e,
    }


def _check_labels(X, centers, impls, rows) -> None:
    """Each implementation's labels of a sample of X for one set of centers, against float64."""
    sample = X[np.random.default_rng(2).choice(X.shape[0], min(LABEL_SAMPLE, X.shape[0]), False)]
    _, best = float64_nearest(sample, centers)
    for impl, m in zip(impls, rows, strict=True):
        if m.skipped or impl.assign is None:
            continue
        try:
            result = label_check(impl.assign(sample, centers), sample, centers, best)
        except Exception as exc:  # as in run_shape: the other rows still get their check
            log(f"  {impl.name:<22} label check {_failure(exc)}")
            traceback.print_exc()
            continue
        m.label_errors, m.worst_excess = result["label_errors"], result["worst_excess"]
        log(
            f"  {impl.name:<22} labels worse than float64: {m.label_errors:.2e} "
            f"(worst by {m.worst_excess:.1e} of the best distance)"
        )


def _failure(exc: Exception) -> str:
    """A row's note for an implementation that raised (its traceback goes to stderr)."""
    return f"failed: {type(exc).__name__}: {exc}"[:300]


def _evaluation_copy(X: np.ndarray, gpu: bool):
    """X where the common inertia is computed: on the GPU in gpu mode (a CPU pass over
    millions of points per implementation would dominate the run)."""
    if gpu:
        import torch

        if torch.cuda.is_available():
            return torch.asarray(X, device="cuda")
    return X


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("mode", choices=["cpu", "gpu"])
    parser.add_argument(
        "--shapes", help="comma-separated NxDxK, or 'tutorial' (default: the issue's)"
    )
    parser.add_argument(
        "--backends", help="kmeans_xp backends (cpu: numpy,torch; gpu: cupy,torch_cuda)"
    )
    parser.add_argument("--peers", help="comma-separated peers; default all for the mode")
    parser.add_argument("--iters", type=int, default=10, help="timed Lloyd iterations (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats, median reported")
    parser.add_argument("--no-e2e", dest="e2e", action="store_false", help="skip default fits")
    parser.add_argument("--e2e-repeats", type=int, default=3, help="seeds of the default fit")
    parser.add_argument(
        "--e2e-inits",
        type=lambda text: text.split(","),
        default=["k-means++"],
        help="kmeans_xp inits for the default fit, e.g. k-means++,k-means|| (default k-means++)",
    )
    parser.add_argument(
        "--no-label-check", dest="label_check", action="store_false",
        help="gpu: skip the float64 label check on a 200 000-row sample",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)

    gpu = args.mode == "gpu"
    shapes = parse_shapes(args.shapes or DEFAULT_SHAPES[args.mode])
    backends = (args.backends or DEFAULT_BACKENDS[args.mode]).split(",")
    peers = args.peers.split(",") if args.peers is not None else (GPU_PEERS if gpu else CPU_PEERS)
    peers = [p for p in peers if p]
    try:
        impls = implementations(args.mode, backends, peers)
    except KeyError as exc:
        parser.error(f"unknown peer {exc}; choose from {GPU_PEERS if gpu else CPU_PEERS}")

    env = environment(args.mode)
    log(f"{args.mode} benchmark: {len(shapes)} shape(s), {len(impls)} implementation(s)")
    results = []
    for i, shape in enumerate(shapes, 1):
        log(f"[{i}/{len(shapes)}] shape {shape.label}")
        results.append(run_shape(shape, impls, args, gpu))
        # Written after every shape, so a run cut short (a device's time limit) keeps its rows.
        paths = write_results(args.mode, env, results, args.out)
    for scratch in ("X.npy", "C0.npy"):
        (args.out / scratch).unlink(missing_ok=True)
    paths = write_results(args.mode, env, results, args.out)
    for path in paths:
        log(f"wrote {path}")
    print()
    print(Path(paths[1]).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
