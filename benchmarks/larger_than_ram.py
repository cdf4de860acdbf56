"""A fit on a float32 numpy.memmap, with the process's peak resident memory.

    python -m benchmarks.larger_than_ram --path /tmp/big.npy [--rows 25400000] [--d 256]
                                         [--k 64] [--max-iter 3] [--keep]

Writes a Gaussian mixture of ``rows × d`` float32 to ``--path`` (unless a file of that shape is
there already), opens it with ``mmap_mode="r"``, fits ``KMeans(k, init="k-means||",
algorithm="lloyd")`` on it and prints the time, the iterations, the inertia and the peak of the
process's resident memory during the fit: VmHWM (reset after writing the file), and RSS split
into anonymous memory and file pages (sampled every 50 ms). The defaults make a 26 GB file,
larger than the 24 GB of RAM of this project's machine. The file is removed afterwards unless
``--keep``.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np


def _status_mib() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = int(line.split()[1]) // 1024
    return out


def write_mixture(path: str, rows: int, d: int, k: int, seed: int = 0) -> None:
    """A float32 .npy of ``rows`` × ``d`` written in slices (never whole in memory)."""
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, d))
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(k, d)).astype(np.float32)
    step = max(1, (64 * 2**20) // (4 * d))
    for start in range(0, rows, step):
        m = min(step, rows - start)
        X[start : start + m] = (
            rng.standard_normal((m, d), dtype=np.float32) + means[rng.integers(0, k, m)]
        )
        X.flush()
    del X


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", required=True)
    parser.add_argument("--rows", type=int, default=25_400_000)
    parser.add_argument("--d", type=int, default=256)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--max-iter", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="leave the data file in place")
    args = parser.parse_args(argv)
    from kmeans_xp import KMeans

    start = time.perf_counter()
    try:
        existing = np.load(args.path, mmap_mode="r")
        reuse = existing.shape == (args.rows, args.d) and existing.dtype == np.float32
        del existing
    except (OSError, ValueError):
        reuse = False
    if not reuse:
        write_mixture(args.path, args.rows, args.d, args.k)
        print(f"wrote {args.path} in {time.perf_counter() - start:.1f} s", flush=True)
    X = np.load(args.path, mmap_mode="r")
    # Writing the file left its pages in this process's peak: start the peak afresh (Linux).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    print(f"X {X.shape} float32, {X.nbytes / 1e9:.2f} GB; before the fit {_status_mib()} MiB")
    peak = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            status = _status_mib()
            for key in peak:
                peak[key] = max(peak[key], status[key])
            time.sleep(0.05)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    start = time.perf_counter()
    km = KMeans(
        args.k, init="k-means||", max_iter=args.max_iter, algorithm="lloyd", random_state=0
    ).fit(X)
    seconds = time.perf_counter() - start
    done.set()
    watcher.join()
    print(f"fit {seconds:.1f} s, n_iter {km.n_iter_}, inertia {km.inertia_:.6g}")
    print(f"peak resident MiB: VmHWM {_status_mib()['VmHWM']}, sampled {peak}")
    del X
    if not args.keep:
        os.remove(args.path)


if __name__ == "__main__":
    main()
