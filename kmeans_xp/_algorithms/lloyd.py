"""Lloyd's algorithm, written once against the array API standard.

Each iteration is one pass over X in row blocks: assign each row to its nearest center and add it
to its cluster's running sum. Prior validation of the data is assumed (finite, floating, 2-D,
weights non-negative); ``prepare.prepare_data`` does it.

Numerics: X is centered by its column mean block by block (X itself is never copied), which keeps
the GEMM form of the distance accurate when the data sit far from the origin; sums and inertia
accumulate in float64 where the device has it; squared distances are clipped at zero.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .._backends import (
    assign_and_sum_for,
    assign_for,
    distances_to_centers_for,
    host_threads_held,
    labels_and_inertia_for,
    segment_sum_for,
)
from .._core.passes import (
    squared_distances_from_partials,
    standard_assign_and_sum,
    standard_distances_to_centers,
    standard_labels_and_inertia,
    with_smaller_blocks_on_oom,
)
from .._core.primitives import PassBuffers
from .._lib.compat import (
    Array,
    accumulation_dtype,
    array_device,
    is_host_rows,
    itemsize,
)
from .iterations import IterationStep, centers_from_sums, read_scalars, run_iterations
from .repair import relocate_retrying_on_oom, repair_chunk_rows, sums_after_repair


def pass_for(
    xp: ModuleType, device: Any, precision: str = "highest", *, streamed: bool = False
) -> Callable:
    """The E+M pass for namespace ``xp``: a library's own (NumPy, CuPy, torch CUDA through CuPy) or
    ``standard_assign_and_sum`` with the device's assignment (``_backends.assign_for``). X streamed
    from the host (``streamed``) is read by the standard pass, one block after the other."""
    standard = functools.partial(
        standard_assign_and_sum, make_assign=assign_for(xp, device, precision)
    )
    own = None if streamed else assign_and_sum_for(xp, device, standard, precision)
    return own or standard


@host_threads_held
def lloyd(
    X: Array,
    initial_centers: Array,
    weights: Array,
    *,
    offset: Array,
    max_iter: int,
    tol: float,
    verbose: bool,
    block_rows: int,
    xp: ModuleType,
    on_iteration: Callable[[int], None] | None = None,
    precision: str = "highest",
    x_centered: bool = False,
) -> tuple[Array, int]:
    """Run Lloyd iterations from ``initial_centers``; return the final centers and iterations run.

    Stops when an iteration leaves every label unchanged (strict convergence), when the squared
    center shift Σ‖c_new − c‖² is ≤ ``tol`` (absolute; the caller scales it by the data's
    variance), or after ``max_iter`` iterations. Each iteration reads three scalars back to the
    host (empty clusters, shift, labels changed) in one transfer, and nothing else (a repair of
    empty clusters reads more).

    ``on_iteration(n_iter)``, when given, is called after each iteration (progress bars).
    ``precision`` is the GPU products' precision (``_backends.assign_for``). A pass that runs
    out of memory is run again with smaller blocks. ``x_centered``: X is already X − ``offset``
    (the caller centered it once), so the passes do not subtract it block by block; centers
    come and go uncentered either way.

    The returned labels are not final: the caller recomputes labels and inertia for the returned
    centers (``labels_and_inertia``), so all three always agree.
    """
    step = _LloydStep(
        X,
        weights,
        offset=offset,
        x_centered=x_centered,
        block_rows=block_rows,
        xp=xp,
        precision=precision,
        verbose=verbose,
    )
    centers, n_iter = run_iterations(
        step,
        initial_centers - offset,
        max_iter=max_iter,
        tol=tol,
        verbose=verbose,
        on_iteration=on_iteration,
    )
    return centers + offset, n_iter


class _LloydStep:
    """One Lloyd iteration on centered centers: a pass over X (assign, sums), the update, and
    the repair of empty clusters. It keeps the last pass's labels and partial distances for
    the next pass to overwrite (``PassBuffers``), and the rows per block that worked."""

    def __init__(
        self,
        X: Array,
        weights: Array,
        *,
        offset: Array,
        x_centered: bool,
        block_rows: int,
        xp: ModuleType,
        precision: str,
        verbose: bool,
    ):
        self.X, self.weights, self.xp, self.verbose = X, weights, xp, verbose
        self.device = array_device(X)
        self.block_rows = block_rows
        self.segment_sum = segment_sum_for(xp)
        self.assign_and_sum = pass_for(xp, self.device, precision, streamed=is_host_rows(X))
        self.pass_offset = None if x_centered else offset  # what the passes subtract from X
        self.buffers: PassBuffers | None = None
        self.unit_weights: bool | None = None  # known at the first repair (reads all weights)

    def __call__(self, n_iter: int, centers: Array) -> IterationStep:
        xp, acc = self.xp, accumulation_dtype(self.xp, self.device)
        rows_before = self.block_rows
        (labels, partial, sums, counts), self.block_rows = with_smaller_blocks_on_oom(
            functools.partial(
                self.assign_and_sum,
                self.X,
                centers,
                self.weights,
                self.pass_offset,
                self.segment_sum,
                xp=xp,
                out=self.buffers,
            ),
            self.block_rows,
            xp=xp,
            device=self.device,
        )
        # The labels changed since the last iteration, counted by the pass as it overwrote them;
        # not known after a retry (the failed attempt overwrote some) or a relocation.
        same_blocks = self.block_rows == rows_before
        n_changed = self.buffers.n_changed if self.buffers is not None and same_blocks else None
        # The next centers and their shift, then one read of the three scalars the loop needs
        # (on a GPU the host waits for the device once per iteration, not three times); a
        # repair of empty clusters, rare, recomputes both.
        new_centers = centers_from_sums(sums, counts, centers, xp=xp)
        step = xp.astype(new_centers - centers, acc)
        n_empty, shift, n_changed = read_scalars(
            [xp.sum(xp.astype(counts == 0, xp.int64)), xp.sum(step * step), n_changed],
            xp=xp,
            device=self.device,
        )
        n_empty = int(n_empty)
        sq_dist = None
        if n_empty or self.verbose:
            sq_dist = squared_distances_from_partials(
                self.X, partial, self.pass_offset, block_rows=self.block_rows, xp=xp
            )
        if n_empty:
            labels, sums, counts = self._repair(labels, sq_dist, sums, counts)
            n_changed = None
            new_centers = centers_from_sums(sums, counts, centers, xp=xp)
            step = xp.astype(new_centers - centers, acc)
            shift = float(xp.sum(step * step))
        inertia = None
        if self.verbose:
            inertia = float(xp.sum(xp.astype(self.weights, acc) * xp.astype(sq_dist, acc)))
        self.buffers = PassBuffers(labels, partial)
        return IterationStep(new_centers, shift, n_changed, n_empty, inertia)

    def _repair(
        self, labels: Array, sq_dist: Array, sums: Array, counts: Array
    ) -> tuple[Array, Array, Array]:
        """Empty clusters refilled with the farthest rows; the labels, sums and counts after
        (as they were where no row can move)."""
        xp, X = self.xp, self.X
        chunk_rows = repair_chunk_rows(
            self.block_rows, X.shape[1], counts.shape[0], itemsize(X, xp)
        )
        relocation = relocate_retrying_on_oom(
            labels,
            sq_dist,
            self.weights,
            counts,
            xp=xp,
            device=self.device,
            chunk_rows=chunk_rows,
        )
        if relocation is None:
            return labels, sums, counts
        if self.unit_weights is None:
            self.unit_weights = bool(xp.all(self.weights == 1))
        sums, counts = sums_after_repair(
            X,
            relocation,
            self.weights,
            self.pass_offset,
            sums,
            counts,
            self.segment_sum,
            unit_weights=self.unit_weights,
            block_rows=self.block_rows,
            xp=xp,
        )
        return relocation.labels, sums, counts


@host_threads_held
def labels_and_inertia(
    X: Array,
    centers: Array,
    weights: Array | None,
    *,
    offset: Array,
    block_rows: int,
    xp: ModuleType,
    precision: str = "highest",
) -> tuple[Array, float | None]:
    """Labels of the nearest center and the inertia Σ w·‖x − c_label‖², computed directly.

    Distances for the argmin use X and ``centers`` centered by ``offset`` (as in the fit), by
    the pass's assignment (certified on a GPU, see ``_backends.assign_for``); the inertia is
    formed from the differences themselves in float64 where available, not from the GEMM form,
    so it is the honest sum of squares. With ``weights=None`` only the labels are computed
    (``predict``) and the inertia is None. Labels are int64, whatever the pass used inside.
    NumPy has its own version of the pass, which also serves torch CPU tensors in large passes
    (``_backends.labels_and_inertia_for``).
    """
    device = array_device(X)
    centered = centers - offset
    standard = functools.partial(
        standard_labels_and_inertia, make_assign=assign_for(xp, device, precision)
    )
    run_pass = labels_and_inertia_for(xp, device, standard) or standard
    run = functools.partial(run_pass, X, centers, centered, weights, offset, xp=xp)
    result, _ = with_smaller_blocks_on_oom(run, block_rows, xp=xp, device=device)
    return result


@host_threads_held
def distances_to_centers(
    X: Array, centers: Array, *, offset: Array, block_rows: int, xp: ModuleType
) -> Array:
    """Euclidean distances (n, k) from rows of X to ``centers``, in X's dtype.

    Formed by the GEMM form on centered data in the accumulation dtype (float64 where
    available, as scikit-learn upcasts float32 here), clipped at 0 before the square root.
    NumPy has its own version of these operations, which also serves torch CPU tensors in large
    passes (``_backends.distances_to_centers_for``).
    """
    own = distances_to_centers_for(xp, array_device(X), standard_distances_to_centers)
    run = own or standard_distances_to_centers
    return run(X, centers, offset=offset, block_rows=block_rows, xp=xp)
