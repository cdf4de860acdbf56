"""One in-memory fit: ``n_init`` runs of initialisation and iterations on prepared data, the
best kept.

The settings come checked (``_estimators.params``); the data come validated and on their
device (``prepare.prepare_data``). ``run_fit`` picks the iteration (plain Lloyd or Hamerly's
bounds), the block sizes and the precision, runs the inits through the one init dispatcher
(``init.initial_centers``), and computes the final labels and inertia for each run's centers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

from .._backends import centered_for_passes, resolve_precision
from .._lib.budget import device_block_bytes
from .._lib.compat import Array, is_host_rows, on_gpu
from .._lib.validation import RandomState
from ..exceptions import ConvergenceWarning, sklearn_compatible
from .hamerly import hamerly
from .init import InMemorySeeding, ParallelInit, initial_centers
from .lloyd import labels_and_inertia, lloyd
from .prepare import PreparedData, pass_block_rows

ALGORITHMS = ("auto", "lloyd", "hamerly", "elkan")


@dataclass(frozen=True)
class FitSettings:
    """A fit's parameters, checked (``_estimators.params.check_fit_settings``).

    ``tol`` is relative (scaled by the data's variance at the fit); ``init`` is a string, a
    callable, or an array not yet checked against X; ``precision`` may still be "auto".
    """

    n_clusters: int
    init: Any
    n_init: int
    max_iter: int
    tol: float
    verbose: int
    rng: RandomState
    algorithm: str
    oversampling_factor: float
    n_rounds: int
    precision: str


class KMeansResult(NamedTuple):
    """What ``kmeans`` returns; unpacks as ``centers, labels, inertia, n_iter``."""

    centers: Array
    labels: Array
    inertia: float
    n_iter: int


def iteration_for(algorithm: str, xp: Any, device: Any) -> Callable:
    """The iteration loop to run: plain Lloyd, or Lloyd pruned by Hamerly's bounds."""
    if algorithm == "auto":
        # Bounds save GEMM work on a CPU; on a GPU the dense GEMM beats the gathers they need.
        return lloyd if on_gpu(xp, device) else hamerly
    return lloyd if algorithm == "lloyd" else hamerly


def run_fit(
    data: PreparedData,
    settings: FitSettings,
    *,
    uniform_weights: bool,
    on_iteration: Callable[[int, int], None] | None = None,
) -> KMeansResult:
    """The ``n_init`` runs on prepared data; returns the best (lowest inertia, the earlier run
    on ties). ``on_iteration(run, n_iter)`` is called after every iteration."""
    xp, k = data.xp, settings.n_clusters
    precision = resolve_precision(settings.precision, data.X, k, xp=xp)
    iterate = _streamable(iteration_for(settings.algorithm, xp, data.device), data, settings)
    seeding = InMemorySeeding(data)
    init = settings.init
    if not isinstance(init, str) and not callable(init):
        init = seeding.checked(init, k)  # once, before any work
    # tol is relative to the data: the mean per-feature variance of X (as scikit-learn).
    tol = settings.tol * data.mean_variance
    parallel = ParallelInit(settings.oversampling_factor, settings.n_rounds, tol)
    pass_rows = pass_block_rows(data, k, iterate)
    X_pass = _centered_once(data, k, iterate, precision)
    centered = {} if X_pass is None else {"x_centered": True}
    best: KMeansResult | None = None
    for run in range(settings.n_init):
        centers = initial_centers(seeding, k, init, settings.rng, uniform_weights, parallel)
        if settings.verbose:
            print(f"Initialization complete (run {run + 1} of {settings.n_init}).")
        centers, n_iter = iterate(
            data.X if X_pass is None else X_pass,
            centers,
            data.weights,
            offset=data.offset,
            max_iter=settings.max_iter,
            tol=tol,
            verbose=bool(settings.verbose),
            block_rows=pass_rows,
            xp=xp,
            precision=precision,
            on_iteration=None if on_iteration is None else partial(on_iteration, run),
            **centered,
        )
        labels, inertia = labels_and_inertia(
            data.X,
            centers,
            data.weights,
            offset=data.offset,
            block_rows=pass_rows,
            xp=xp,
            precision=precision,
        )
        # Runs within a relative 1e-9 are ties, and the earlier run wins: two runs that find the
        # same partition differ only in rounding (GPU atomics change the last bit from run to
        # run), and that must not decide which labels a seed gives.
        if best is None or inertia < best.inertia * (1 - 1e-9):
            best = KMeansResult(centers, labels, inertia, n_iter)
    warn_if_fewer_clusters(best.labels, k, xp)
    return best


def _streamable(iterate: Callable, data: PreparedData, settings: FitSettings) -> Callable:
    """``iterate``, or Lloyd where X is streamed from the host (Hamerly gathers scattered rows);
    a streamed fit that asked for Hamerly by name is refused."""
    if not is_host_rows(data.X):
        return iterate
    if settings.algorithm in ("hamerly", "elkan"):
        msg = (
            f"algorithm={settings.algorithm!r} gathers scattered rows; a fit that streams X "
            "from the host runs algorithm='lloyd' (or 'auto')."
        )
        raise ValueError(msg)
    return lloyd


def _centered_once(
    data: PreparedData, n_clusters: int, iterate: Callable, precision: str
) -> Array | None:
    """X − offset for Lloyd's passes where CuPy's kernels run them and the copy fits a block's
    budget (they would subtract the offset block by block, every iteration); else None."""
    if iterate is not lloyd or is_host_rows(data.X):
        return None
    return centered_for_passes(
        data.X,
        data.offset,
        n_clusters,
        xp=data.xp,
        device=data.device,
        budget=device_block_bytes(data.xp, data.device),
        precision=precision,
    )


# Rows of labels whose distinct values are found at once: ``unique_values`` copies and sorts
# what it is given, 8 bytes a label on a GPU, which must stay within a block's budget, not n.
_DISTINCT_CHUNK_ROWS = 1 << 20


def count_distinct_labels(labels: Array, xp: Any) -> int:
    """The number of distinct values of ``labels``, found chunk by chunk so that no copy of
    more than ``_DISTINCT_CHUNK_ROWS`` labels is made (on a GPU each chunk waits for the device:
    the size of ``unique_values`` depends on the data; ~100 waits at n = 1e8, once per fit)."""
    n = labels.shape[0]
    seen = None
    for start in range(0, n, _DISTINCT_CHUNK_ROWS):
        found = xp.unique_values(labels[start : min(start + _DISTINCT_CHUNK_ROWS, n)])
        seen = found if seen is None else xp.unique_values(xp.concat([seen, found]))
    return 0 if seen is None else int(seen.shape[0])


def warn_if_fewer_clusters(labels: Array, n_clusters: int, xp: Any) -> None:
    """ConvergenceWarning when the final labels use fewer than n_clusters clusters."""
    n_distinct = count_distinct_labels(labels, xp)
    if n_distinct < n_clusters:
        warnings.warn(
            f"Number of distinct clusters ({n_distinct}) found smaller than "
            f"n_clusters ({n_clusters}). Possibly due to duplicate points in X.",
            sklearn_compatible(ConvergenceWarning),
            stacklevel=4,
        )
