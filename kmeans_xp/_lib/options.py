"""Pass options: the switches and sizes that change how passes and kernels run, never what they
compute.

Every option has the default a fit uses. Tests and benchmarks choose others for a block of code
with ``pass_options(...)``; nothing flips a module global. The options live in a context
variable, so a choice made in one thread does not leak into fits running in other threads (a
thread, or a Dask task, that another started runs with the defaults).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class PassOptions:
    """How passes and kernels run. Results do not depend on these, only speed and memory.

    Attributes
    ----------
    small_pass : bool
        CuPy's fused Lloyd pass at small k·d (one kernel: assign, sums and counts).
    mma : bool
        CuPy's fused tensor-core assignment for ``matmul_precision`` "high" and "tf32x3". Off by
        default: it has not been measured faster than cuBLAS plus the best-two pass.
    fused_kmeanspp : bool
        CuPy's k-means++ step in a few kernels (off: the standard-only step on CuPy arrays).
    fused_kmeanspp_sampling : bool
        CuPy's D²-sampling kernels within that step (off: the standard-only cumulative sums).
    kmeanspp_pruning : bool
        Skip rows that no trial center can come closer to, in CuPy's k-means++ step.
    register_host_memory : bool
        Page-lock host X in place when a fit streams it to a GPU (off: copy through staging
        buffers, as for memory maps).
    sampling_chunk_rows : int
        Rows per chunk of k-means++'s and k-means||'s cumulative sums, so that no n-long
        temporary beyond the running sums exists.
    trial_distances_max_bytes : int
        The most that k-means++ keeps of its trial distances between picking a center and
        updating the closest distances; beyond it, X is read a second time instead.
    """

    small_pass: bool = True
    mma: bool = False
    fused_kmeanspp: bool = True
    fused_kmeanspp_sampling: bool = True
    kmeanspp_pruning: bool = True
    register_host_memory: bool = True
    sampling_chunk_rows: int = 2**22
    trial_distances_max_bytes: int = 2**30

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            expected = bool if field.type == "bool" else int
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                msg = f"{field.name} must be {field.type}, got {value!r}."
                raise TypeError(msg)
        if self.sampling_chunk_rows < 1:
            msg = f"sampling_chunk_rows must be >= 1, got {self.sampling_chunk_rows}."
            raise ValueError(msg)
        if self.trial_distances_max_bytes < 0:
            msg = f"trial_distances_max_bytes must be >= 0, got {self.trial_distances_max_bytes}."
            raise ValueError(msg)


# A frozen instance: safe to share as the context variable's default.
_CURRENT: contextvars.ContextVar[PassOptions] = contextvars.ContextVar(
    "kmeans_xp_pass_options",
    default=PassOptions(),  # noqa: B039
)


def current_options() -> PassOptions:
    """The options in force in this thread."""
    return _CURRENT.get()


@contextmanager
def pass_options(**changes: bool | int) -> Iterator[PassOptions]:
    """Run the block with these options changed (the others as they are), then restore them.

    Examples
    --------
    >>> from kmeans_xp._lib.options import current_options, pass_options
    >>> with pass_options(sampling_chunk_rows=64):
    ...     current_options().sampling_chunk_rows
    64
    >>> current_options().sampling_chunk_rows
    4194304
    """
    unknown = set(changes) - {field.name for field in fields(PassOptions)}
    if unknown:
        known = [field.name for field in fields(PassOptions)]
        msg = f"unknown pass options {sorted(unknown)}; known: {known}."
        raise TypeError(msg)
    token = _CURRENT.set(replace(_CURRENT.get(), **changes))
    try:
        yield _CURRENT.get()
    finally:
        _CURRENT.reset(token)
