"""The one iteration driver: every loop of Lloyd iterations (plain, Hamerly's bounds, Dask's
map-reduce, X streamed from the host) runs here, with its pass plugged in as a step.

A step takes the current centers, runs its pass over X, refills empty clusters and returns the
next centers with what the driver needs to decide (``IterationStep``). The driver owns what
every loop must do alike: the progress hook, the stopping rules and the verbose lines.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

from .._lib.compat import Array, accumulation_dtype, get_namespace, to_numpy


class IterationStep(NamedTuple):
    """What one iteration produced: the next centers and the facts the stopping rules read."""

    centers: Any
    shift: float  # squared center shift, Σ‖c_new − c‖²
    n_changed: float | None  # labels changed by this iteration's pass; None where not counted
    n_empty: int  # empty clusters refilled
    inertia: float | None  # known in verbose mode only (it costs a pass)


def run_iterations(
    step: Callable[[int, Any], IterationStep],
    centers: Any,
    *,
    max_iter: int,
    tol: float,
    verbose: bool,
    on_iteration: Callable[[int], None] | None = None,
) -> tuple[Any, int]:
    """``step(n_iter, centers)`` until a stopping rule holds or ``max_iter`` iterations ran;
    returns the last centers and the number of iterations. ``on_iteration(n_iter)`` is called
    after each iteration (progress bars)."""
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        result = step(n_iter, centers)
        centers = result.centers
        if on_iteration is not None:
            on_iteration(n_iter)
        if stop_after_iteration(n_iter, result, tol=tol, verbose=verbose):
            break
    else:
        if verbose:
            print(f"Stopped after max_iter={max_iter} iterations without converging.")
    return centers, n_iter


def centers_from_sums(sums: Array, counts: Array, previous: Array, *, xp: ModuleType) -> Array:
    """Weighted means; a cluster with zero total weight keeps its previous center."""
    has_weight = counts > 0
    denominator = xp.where(has_weight, counts, xp.ones_like(counts))
    means = xp.astype(sums / denominator[:, None], previous.dtype)
    return xp.where(has_weight[:, None], means, previous)


def read_scalars(values: list[Any], *, xp: ModuleType, device: Any) -> list[Any]:
    """Scalars of ``values`` on the host, the device's read back in one transfer (each read of
    a GPU value waits for the device); Python numbers and None pass through, another library's
    scalars are read one by one. Device values come back as floats, through the accumulation
    dtype (exact for counts below 2**53 in float64)."""
    out = list(values)
    on_device = []
    for i, v in enumerate(values):
        if isinstance(v, int | float | None):
            continue
        if get_namespace(v) is xp:
            on_device.append(i)
        else:
            out[i] = float(v)
    if on_device:
        acc = accumulation_dtype(xp, device)
        stacked = xp.stack([xp.reshape(xp.astype(values[i], acc), ()) for i in on_device])
        for i, value in zip(on_device, to_numpy(stacked).tolist(), strict=True):
            out[i] = value
    return out


def stop_after_iteration(n_iter: int, result: IterationStep, *, tol: float, verbose: bool) -> bool:
    """Lloyd's stopping rules; in verbose mode, prints the iteration and the reason to stop.

    Stop when no label changed (strict convergence) or the squared center shift is ≤ ``tol``.
    """
    shift = result.shift
    if verbose:
        inertia = "" if result.inertia is None else f"inertia {result.inertia:.6g}, "
        moved = f", {result.n_empty} empty cluster(s) refilled" if result.n_empty else ""
        print(f"Iteration {n_iter}: {inertia}center shift {shift:.3e}{moved}")
    if result.n_changed == 0:
        if verbose:
            print(f"Converged at iteration {n_iter}: strict convergence (labels unchanged).")
        return True
    if shift <= tol:
        if verbose:
            print(
                f"Converged at iteration {n_iter}: center shift {shift:.3e} "
                f"within tolerance {tol:.3e}."
            )
        return True
    return False
