"""Standard-only pieces of the seeding passes (k-means++ and k-means||): D²-sampling over
chunked cumulative sums, and the candidates' potentials over row blocks.

The CuPy and NumPy backends have faster versions of the potentials and the sampling; these are
their reference and the path for every other library.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from .._lib.budget import row_blocks
from .._lib.compat import Array
from .primitives import squared_norms


def sample_by_cumulative(cumulative: Array, uniforms: Array, *, xp: ModuleType) -> Array:
    """Indices drawn with probability proportional to the increments of ``cumulative``.

    ``side="right"`` never returns an index whose increment is zero (a point of weight or
    distance zero) unless every increment is zero.
    """
    n = cumulative.shape[0]
    targets = uniforms * cumulative[-1]
    indices = xp.searchsorted(cumulative, targets, side="right")
    return xp.clip(indices, max=n - 1)


def sq_distances(X_block: Array, x_sq_norms: Array, centers: Array, *, xp: ModuleType) -> Array:
    """Squared distances, (m, c), of centered rows to centered centers, clipped at 0."""
    c_sq = squared_norms(centers, xp=xp)
    sq = x_sq_norms[:, None] - 2.0 * (X_block @ centers.T) + c_sq[None, :]
    return xp.clip(sq, min=0.0)


def chunk_bounds(n_samples: int, chunk_rows: int) -> list[tuple[int, int]]:
    """(start, stop) of consecutive chunks of an (n,) vector (not row blocks of X: nothing is
    reported to ``_lib.memmap``)."""
    return [(a, min(a + chunk_rows, n_samples)) for a in range(0, n_samples, chunk_rows)]


def sample_in_chunks(
    increments: Callable[[int, int], Array],
    n_samples: int,
    uniforms: Array,
    *,
    xp: ModuleType,
    chunk_rows: int,
) -> Array:
    """``sample_by_cumulative`` over increments produced chunk by chunk, never n at once.

    ``increments(start, stop)`` gives the non-negative weights of rows start:stop (in float64).
    A first walk finds each chunk's total (the last element of its cumulative sum); each target
    ``u · total`` picks a chunk, then a row inside it. With one chunk this is exactly
    ``sample_by_cumulative``; with several, a row of zero increment is still never picked (the
    target inside its chunk is kept below the chunk's total).
    """
    chunks = chunk_bounds(n_samples, chunk_rows)
    if len(chunks) == 1:
        return sample_by_cumulative(xp.cumulative_sum(increments(0, n_samples)), uniforms, xp=xp)
    # Each total copied out of its chunk's cumulative sum, so the sum itself is freed at once:
    # a view of its last element would keep every chunk's sum alive until the stack (8 bytes a
    # row of X beside the fit's budget).
    totals = xp.stack(
        [xp.asarray(xp.cumulative_sum(increments(a, b))[-1], copy=True) for a, b in chunks]
    )
    ends = xp.cumulative_sum(totals)
    targets = uniforms * ends[-1]
    which = xp.clip(xp.searchsorted(ends, targets, side="right"), max=len(chunks) - 1)
    starts = ends - totals
    inside = targets - xp.take(starts, which, axis=0)
    picked = xp.zeros_like(which)
    for index, (a, b) in enumerate(chunks):
        cumulative = xp.cumulative_sum(increments(a, b))
        below_total = xp.nextafter(cumulative[-1], xp.zeros_like(cumulative[-1]))
        local = xp.searchsorted(cumulative, xp.minimum(inside, below_total), side="right")
        picked = xp.where(which == index, xp.clip(local, max=b - a - 1) + a, picked)
    return picked


def standard_candidate_potentials(
    X: Array,
    offset: Array,
    x_sq: Array,
    candidates: Array,
    closest: Array,
    weights: Array,
    trial_sq: Array | None,
    *,
    block_rows: int,
    centered_blocks: list[Array] | None,
    xp: ModuleType,
) -> Array:
    """Potential Σ w·min(D², d(x, c)²) of each (centered) candidate c, summed block by block in
    the accumulation dtype of ``closest`` (D², per row); each block's distances to the
    candidates are written to ``trial_sq`` when it is given. ``centered_blocks``: X's blocks
    already centered by ``offset`` (else each block is centered as it is read); ``weights``
    are cast to the accumulation dtype block by block (no copy where they already are).
    ``_backends.candidate_potentials_for`` gives a library's own version (NumPy's)."""
    acc = closest.dtype
    potential = None
    for a, b in row_blocks(X.shape[0], block_rows):
        if centered_blocks is not None:
            block = centered_blocks[a // block_rows]
        else:
            block = X[a:b, :] - offset
        sq = sq_distances(block, x_sq[a:b], candidates, xp=xp)
        if trial_sq is not None:
            trial_sq[a:b, :] = sq
        d_block = xp.minimum(closest[a:b, None], xp.astype(sq, acc))
        part = xp.sum(xp.astype(weights[a:b], acc, copy=False)[:, None] * d_block, axis=0)
        potential = part if potential is None else potential + part
    return potential
