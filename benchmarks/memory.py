"""Peak memory of one implementation, measured in a fresh process.

``python -m benchmarks.memory NAME DATA.npy CENTERS.npy ITERATIONS`` loads the data, prepares
the implementation, then prints how much the process's peak resident memory (VmHWM) rose during
``ITERATIONS`` Lloyd iterations (after importing and warming up on a sliver of the data, so
neither library code nor earlier temporaries count). A fresh process matters: memory that an
earlier run freed and the allocator kept would otherwise hide a new run's temporaries.
"""

from __future__ import annotations

import gc
import sys

import numpy as np

from .implementations import by_name


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def main() -> None:
    name, data_path, centers_path, iterations = sys.argv[1:5]
    impl = by_name(name)
    X, C0 = np.load(data_path), np.load(centers_path)
    # Import the libraries and warm up on a sliver of the data, so that neither their code nor
    # full-size temporaries are in the measurement's baseline.
    impl.prepare(np.ascontiguousarray(X[: 2 * C0.shape[0]]), C0)
    impl.iterate(1)
    impl.prepare(X, C0)
    gc.collect()
    before = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident size
    impl.iterate(int(iterations))
    print((_status_kb("VmHWM") - before) / 1024)


if __name__ == "__main__":
    main()
