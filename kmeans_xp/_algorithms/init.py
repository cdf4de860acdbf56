"""Initial centers: k-means++ (greedy, weighted), k-means|| and random choice, written once.

Random numbers are drawn on the host from a NumPy generator and moved to the device in one
transfer; the sampling itself (cumulative sums and searchsorted) runs on the device, so k-means++
makes no host round trip per center and the same seed picks the same points on every backend
(CuPy runs k-means++'s distances and update in its own kernels, drawing the same numbers).

``initial_centers`` is the one dispatcher from an ``init`` setting to centers, for every kind of
data: it asks a ``Seeding`` (``InMemorySeeding`` here, ``dask.DaskSeeding`` for Dask arrays)
for what the setting names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, NamedTuple, Protocol

import numpy as np

from .._backends import (
    candidate_potentials_for,
    host_threads_held,
    kmeans_plusplus_for,
    segment_sum_for,
)
from .._core.primitives import (
    assign_block,
    squared_norms,
)
from .._core.seeding import (
    chunk_bounds,
    sample_in_chunks,
    sq_distances,
    standard_candidate_potentials,
)
from .._lib.budget import (
    block_row_bytes,
    block_rows_for,
    row_blocks,
)
from .._lib.compat import (
    Array,
    accumulation_dtype,
    array_device,
    is_host_rows,
    is_numpy,
    itemsize,
    take_rows,
    to_numpy,
)
from .._lib.memmap import gather_rows
from .._lib.options import current_options
from .._lib.validation import RandomState, check_initial_centers
from .data import PreparedData
from .lloyd import lloyd


def default_local_trials(n_clusters: int) -> int:
    """2 + ⌊ln k⌋ candidates per step, the choice of Arthur & Vassilvitskii and scikit-learn."""
    return 2 + int(math.log(n_clusters))


def kmeans_plusplus_state_bytes(n_samples: int, n_local_trials: int, x_itemsize: int) -> int:
    """Device bytes k-means++ holds besides X and the fit's weights: ‖x‖² and D² (float64) per
    row, the weights in float64 (the standard version, up to one sampling chunk), the trial
    distances while kept, and one sampling chunk's increments and cumulative sums (float64).
    CuPy's kernels (for torch CUDA too) hold less: D², the kept trial distances, the chunk."""
    trials = n_samples * n_local_trials * x_itemsize
    options = current_options()
    kept = trials if trials <= options.trial_distances_max_bytes else 0
    chunk = min(n_samples, options.sampling_chunk_rows)
    return n_samples * (x_itemsize + 16) + kept + 16 * chunk


def kmeans_parallel_state_bytes(n_samples: int, x_itemsize: int) -> int:
    """Device bytes k-means|| holds besides X and the fit's weights: ‖x‖² and D² (float64) per
    row, and per sampling chunk the uniforms, the weights in float64, their products and the
    test (float64 temporaries, 48 bytes a row with room to spare)."""
    chunk = min(n_samples, current_options().sampling_chunk_rows)
    return n_samples * (x_itemsize + 8) + 48 * chunk


def init_state_bytes(init: object, n_samples: int, n_clusters: int, x_itemsize: int) -> int:
    """Device bytes ``init`` holds while it runs, besides X and the fit's weights (0 for random
    rows, explicit centers and callables, which hold k rows)."""
    if isinstance(init, str) and init == "k-means++":
        trials = default_local_trials(n_clusters)
        return kmeans_plusplus_state_bytes(n_samples, trials, x_itemsize)
    if isinstance(init, str) and init == "k-means||":
        return kmeans_parallel_state_bytes(n_samples, x_itemsize)
    return 0


def _walk_rows(X: Array, rows: int) -> int:
    """Rows per block of a walk over X: a streamed X (``HostRows``) serves blocks of at most the
    rows its device buffers were sized for (the fit's memory budget)."""
    return min(rows, X.block_rows) if is_host_rows(X) else rows


@host_threads_held
def kmeans_plusplus_indices(
    X: Array,
    n_clusters: int,
    weights: Array,
    rng: RandomState,
    *,
    offset: Array,
    n_local_trials: int,
    block_rows: int,
    xp: ModuleType,
) -> Array:
    """Indices (on X's device) of the rows that greedy weighted k-means++ picks as centers.

    Prior validation of the data is assumed. Each step draws ``n_local_trials`` candidates with
    probability ∝ w·D(x)² and keeps the one that lowers the potential Σ w·D(x)² the most.
    Distances are computed on row blocks of X, centered by ``offset``, one pass over X per
    center (two when the trial distances would pass the ``trial_distances_max_bytes`` pass
    option). Memory per row: ‖x‖² in X's dtype and D² in float64, plus the trial distances
    while they fit; the sampling works through chunks of ``sampling_chunk_rows`` (pass
    options). A library's own version
    (``_backends.kmeans_plusplus_for``: CuPy's kernels, for torch CUDA tensors too) runs
    instead where it applies, drawing the same random numbers.
    """
    fused = kmeans_plusplus_for(xp)
    if fused is not None and not is_host_rows(X):
        picked = fused(
            X, n_clusters, weights, rng, offset=offset, n_local_trials=n_local_trials, xp=xp
        )
        if picked is not None:
            return picked
    # All random numbers at once, in one host->device copy.
    uniforms_host = rng.uniform(size=1 + (n_clusters - 1) * n_local_trials)
    state = _GreedySeeding(X, weights, offset, n_local_trials, block_rows=block_rows, xp=xp)
    uniforms = xp.asarray(uniforms_host, dtype=state.acc, device=state.device)
    chosen = [state.first(uniforms[:1])]
    for step in range(1, n_clusters):
        lo = 1 + (step - 1) * n_local_trials
        chosen.append(state.step(uniforms[lo : lo + n_local_trials]))
    return xp.concat(chosen)


class _GreedySeeding:
    """The standard version's state between k-means++ steps: ‖x‖² per row, each row's squared
    distance to its nearest chosen center (D², in the accumulation dtype), and the trial
    distances of the last step while they fit the ``trial_distances_max_bytes`` pass option."""

    def __init__(
        self,
        X: Array,
        weights: Array,
        offset: Array,
        n_local_trials: int,
        *,
        block_rows: int,
        xp: ModuleType,
    ):
        self.X, self.weights, self.offset, self.xp = X, weights, offset, xp
        self.n_samples, n_features = X.shape
        self.device = array_device(X)
        self.acc = accumulation_dtype(xp, self.device)
        self.block_rows = _walk_rows(X, block_rows)
        # NumPy's own potentials pass centers each block into a buffer it reuses (no copy).
        own_potentials = None if is_host_rows(X) else candidate_potentials_for(xp)
        self.potentials = own_potentials or standard_candidate_potentials
        # X centered once for all k steps when the copy takes at most the memory one block may
        # (small X; on a GPU, up to the block budget): each step then reads X once, instead of
        # reading it and writing a centered copy. Larger X, and streamed X, are centered block
        # by block (torch CPU tensors use the copy where NumPy's pass does not serve them).
        once = (
            not is_numpy(xp)
            and not is_host_rows(X)
            and self.n_samples * n_features * itemsize(X, xp)
            <= self.block_rows * block_row_bytes(n_features, n_local_trials)
        )
        self.centered_blocks = [X[a:b, :] - offset for a, b in self.blocks()] if once else None
        self.x_sq = xp.empty((self.n_samples,), dtype=X.dtype, device=self.device)
        for a, b in self.blocks():
            self.x_sq[a:b] = squared_norms(self.centered(a, b), xp=xp)
        options = current_options()
        self.chunk_rows = options.sampling_chunk_rows
        # Up to one sampling chunk the weights are kept in float64 too (a cast per block and
        # step costs a few percent there); beyond, they are cast block by block.
        in_one_chunk = self.n_samples <= self.chunk_rows
        self.w_acc = xp.astype(weights, self.acc) if in_one_chunk else None
        trial_bytes = self.n_samples * n_local_trials * itemsize(X, xp)
        self.trial_sq = None
        if trial_bytes <= options.trial_distances_max_bytes:
            shape = (self.n_samples, n_local_trials)
            self.trial_sq = xp.empty(shape, dtype=X.dtype, device=self.device)
        self.closest = xp.empty((self.n_samples,), dtype=self.acc, device=self.device)

    def blocks(self) -> Iterator[tuple[int, int]]:
        """A fresh walk over X (``row_blocks`` reports each block as it is read)."""
        return row_blocks(self.n_samples, self.block_rows)

    def centered(self, start: int, stop: int) -> Array:
        if self.centered_blocks is not None:
            return self.centered_blocks[start // self.block_rows]
        return self.X[start:stop, :] - self.offset

    def weights_acc(self, start: int, stop: int) -> Array:
        if self.w_acc is not None:
            return self.w_acc[start:stop]
        return self.xp.astype(self.weights[start:stop], self.acc)

    def sample(self, increments: Callable[[int, int], Array], uniforms: Array) -> Array:
        return sample_in_chunks(
            increments, self.n_samples, uniforms, xp=self.xp, chunk_rows=self.chunk_rows
        )

    def first(self, uniform: Array) -> Array:
        """The first center, drawn by weight alone; D² becomes every row's distance to it."""
        xp = self.xp
        first = self.sample(lambda a, b: xp.astype(self.weights[a:b], self.acc), uniform)
        center = take_rows(self.X, first, xp) - self.offset
        for a, b in self.blocks():
            d = sq_distances(self.centered(a, b), self.x_sq[a:b], center, xp=xp)
            self.closest[a:b] = xp.astype(d[:, 0], self.acc)
        return first

    def step(self, uniforms: Array) -> Array:
        """One greedy step: candidates drawn ∝ w·D², the one that lowers the potential most
        kept, D² lowered by its distances. Returns its row index (shape (1,))."""
        xp = self.xp
        candidates = self.sample(lambda a, b: self.weights_acc(a, b) * self.closest[a:b], uniforms)
        candidate_centers = gather_rows(self.X, candidates, xp) - self.offset
        potential = self.potentials(
            self.X,
            self.offset,
            self.x_sq,
            candidate_centers,
            self.closest,
            self.weights if self.w_acc is None else self.w_acc,
            self.trial_sq,
            block_rows=self.block_rows,
            centered_blocks=self.centered_blocks,
            xp=xp,
        )
        best = xp.reshape(xp.argmin(potential), (1,))
        self._lower_closest(best, candidate_centers)
        return xp.take(candidates, best, axis=0)

    def _lower_closest(self, best: Array, candidate_centers: Array) -> None:
        """The winner's distances lower D² in place, a block at a time: from the kept trial
        distances, or from a second pass over X."""
        xp, acc, closest = self.xp, self.acc, self.closest
        if self.trial_sq is not None:
            for a in range(0, self.n_samples, self.block_rows):
                b = min(a + self.block_rows, self.n_samples)
                new = xp.astype(xp.take(self.trial_sq[a:b, :], best, axis=1)[:, 0], acc)
                closest[a:b] = xp.minimum(closest[a:b], new)
            return
        winner = xp.take(candidate_centers, best, axis=0)
        for a, b in self.blocks():
            new = sq_distances(self.centered(a, b), self.x_sq[a:b], winner, xp=xp)[:, 0]
            closest[a:b] = xp.minimum(closest[a:b], xp.astype(new, acc))


# Lloyd iterations that refine k-means++'s pick among the weighted k-means|| candidates (as
# Spark's k-means|| does); the candidates are few, so this costs little next to one pass over X.
PARALLEL_RECLUSTER_MAX_ITER = 30


def kmeans_parallel_centers(
    X: Array,
    n_clusters: int,
    weights: Array,
    rng: RandomState,
    *,
    offset: Array,
    oversampling_factor: float,
    n_rounds: int,
    tol: float,
    xp: ModuleType,
) -> Array:
    """Initial centers by k-means|| (Bahmani et al., "Scalable K-Means++", VLDB 2012).

    The weighted candidates of ``kmeans_parallel_candidates`` are reduced to k centers by
    weighted greedy k-means++ followed by a few weighted Lloyd iterations (``tol``, absolute),
    as Spark does. Returns centers of shape (k, d) in X's dtype, uncentered; they need not be
    rows of X.
    """
    candidates, candidate_weights = kmeans_parallel_candidates(
        X,
        n_clusters,
        weights,
        rng,
        offset=offset,
        oversampling_factor=oversampling_factor,
        n_rounds=n_rounds,
        xp=xp,
    )
    return reduce_candidates(
        gather_rows(X, candidates, xp),
        candidate_weights,
        n_clusters,
        rng,
        offset=offset,
        tol=tol,
        xp=xp,
    )


def reduce_candidates(
    candidate_rows: Array,
    candidate_weights: Array,
    n_clusters: int,
    rng: RandomState,
    *,
    offset: Array,
    tol: float,
    xp: ModuleType,
) -> Array:
    """k centers from m ≥ k weighted candidate rows: weighted greedy k-means++, then up to
    ``PARALLEL_RECLUSTER_MAX_ITER`` weighted Lloyd iterations (``tol`` absolute)."""
    m, n_features = candidate_rows.shape
    n_local_trials = default_local_trials(n_clusters)
    block_rows = block_rows_for(
        m,
        n_features,
        max(n_clusters, n_local_trials),
        itemsize(candidate_rows, xp),
        xp=xp,
        device=array_device(candidate_rows),
    )
    picked = kmeans_plusplus_indices(
        candidate_rows,
        n_clusters,
        candidate_weights,
        rng,
        offset=offset,
        n_local_trials=n_local_trials,
        block_rows=block_rows,
        xp=xp,
    )
    centers, _ = lloyd(
        candidate_rows,
        xp.take(candidate_rows, picked, axis=0),
        candidate_weights,
        offset=offset,
        max_iter=PARALLEL_RECLUSTER_MAX_ITER,
        tol=tol,
        verbose=False,
        block_rows=block_rows,
        xp=xp,
    )
    return centers


def kmeans_parallel_candidates(
    X: Array,
    n_clusters: int,
    weights: Array,
    rng: RandomState,
    *,
    offset: Array,
    oversampling_factor: float,
    n_rounds: int,
    xp: ModuleType,
) -> tuple[Array, Array]:
    """Row indices of the k-means|| candidates (at least k of them) and their weights.

    One row is drawn ∝ weight; then each of ``n_rounds`` rounds keeps every row independently
    with probability min(1, ℓ·w·D(x)²/φ), ℓ = ``oversampling_factor``·k and φ = Σ w·D(x)², so
    about ℓ rows join per round (rows of weight 0, and rows on a candidate, never do). A
    candidate's weight is the weight of the rows nearest to it, so the weights sum to Σ w.
    Passes over X: one for the first distances, one per round that found candidates, one for the
    weights — O(rounds), against k for k-means++. One uniform per row and round comes from the
    host generator, so a seed gives the same candidates on every backend. If fewer than k
    candidates were found (X has fewer distinct rows of positive weight than k), random rows make
    up the number; the fit's empty-cluster repair then deals with the duplicates.
    """
    state = _ParallelSeeding(X, weights, offset, xp=xp)
    candidates = state.oversampled(rng, oversampling_factor * n_clusters, n_rounds)
    if candidates.shape[0] < n_clusters:
        extra = random_indices(
            X.shape[0], n_clusters - candidates.shape[0], weights, rng, uniform_weights=False
        )
        extra = xp.asarray(extra, dtype=candidates.dtype, device=state.device)
        candidates = xp.concat([candidates, extra])
    return candidates, state.candidate_weights(candidates)


class _ParallelSeeding:
    """k-means||'s state over its rounds: ‖x‖² per row and each row's squared distance to its
    nearest candidate (D², in the accumulation dtype); the sampling works on (n,) vectors chunk
    by chunk, so no n-long temporary beyond them exists."""

    def __init__(self, X: Array, weights: Array, offset: Array, *, xp: ModuleType):
        self.X, self.weights, self.offset, self.xp = X, weights, offset, xp
        self.n_samples = X.shape[0]
        self.device = array_device(X)
        self.acc = accumulation_dtype(xp, self.device)
        self.chunk_rows = current_options().sampling_chunk_rows
        self.chunks = chunk_bounds(self.n_samples, self.chunk_rows)
        self.x_sq = xp.empty((self.n_samples,), dtype=X.dtype, device=self.device)
        for a, b in self.blocks_for(1):
            self.x_sq[a:b] = squared_norms(self.centered(a, b), xp=xp)
        self.closest = xp.empty((self.n_samples,), dtype=self.acc, device=self.device)

    def blocks_for(self, width: int) -> Iterator[tuple[int, int]]:
        """A fresh walk over X (blocks reported as read), sized for ``width`` columns."""
        X, xp = self.X, self.xp
        rows = block_rows_for(
            self.n_samples, X.shape[1], width, itemsize(X, xp), xp=xp, device=self.device
        )
        return row_blocks(self.n_samples, _walk_rows(X, rows))

    def centered(self, start: int, stop: int) -> Array:
        return self.X[start:stop, :] - self.offset

    def w_acc(self, start: int, stop: int) -> Array:
        return self.xp.astype(self.weights[start:stop], self.acc)

    def lower_closest(self, centers: Array, *, first: bool = False) -> None:
        """Lower each row's D² (in place) to the given centered centers; ``first``: set it."""
        xp, closest = self.xp, self.closest
        for a, b in self.blocks_for(centers.shape[0]):
            sq = sq_distances(self.centered(a, b), self.x_sq[a:b], centers, xp=xp)
            nearest = xp.astype(xp.min(sq, axis=1), self.acc)
            closest[a:b] = nearest if first else xp.minimum(closest[a:b], nearest)

    def oversampled(self, rng: RandomState, oversampling: float, n_rounds: int) -> Array:
        """Row indices of one row drawn ∝ weight, then of each round's oversampled rows."""
        xp = self.xp
        first_uniform = xp.asarray(rng.uniform(size=1), dtype=self.acc, device=self.device)
        first = sample_in_chunks(
            self.w_acc, self.n_samples, first_uniform, xp=xp, chunk_rows=self.chunk_rows
        )
        chosen = [first]
        self.lower_closest(take_rows(self.X, first, xp) - self.offset, first=True)
        for _ in range(n_rounds):
            potential = None
            for a, b in self.chunks:
                part = xp.sum(self.w_acc(a, b) * self.closest[a:b])
                potential = part if potential is None else potential + part
            potential = float(potential)
            if potential <= 0.0:  # every row of positive weight sits on a candidate
                break
            new = self._draw_round(rng, potential, oversampling)
            if new.shape[0] == 0:
                continue
            chosen.append(new)
            self.lower_closest(gather_rows(self.X, new, xp) - self.offset)
        return xp.concat(chosen)

    def _draw_round(self, rng: RandomState, potential: float, oversampling: float) -> Array:
        """The rows one round keeps: u < ℓ·w·D²/φ, multiplied out (no division, and D² = 0 or
        w = 0 is never kept). The uniforms are drawn chunk by chunk, in row order: the same
        numbers as all at once."""
        xp, found = self.xp, []
        for a, b in self.chunks:
            uniforms = xp.asarray(rng.uniform(size=b - a), dtype=self.acc, device=self.device)
            keep = uniforms * potential < oversampling * (self.w_acc(a, b) * self.closest[a:b])
            found.append(xp.nonzero(keep)[0] + a)
        return found[0] if len(found) == 1 else xp.concat(found)

    def candidate_weights(self, candidates: Array) -> Array:
        """Weight of each candidate: the weight of the rows nearest to it (one pass over X)."""
        xp = self.xp
        m = candidates.shape[0]
        centered_candidates = gather_rows(self.X, candidates, xp) - self.offset
        c_sq = squared_norms(centered_candidates, xp=xp)
        segment_sum = segment_sum_for(xp)
        total = None
        for a, b in self.blocks_for(m):
            block = self.centered(a, b)
            nearest, _ = assign_block(block, centered_candidates, c_sq, xp=xp)
            _, part = segment_sum(block, nearest, self.weights[a:b], m, xp=xp)
            total = part if total is None else total + part
        return xp.astype(total, self.weights.dtype)


def random_indices(
    n_samples: int,
    n_clusters: int,
    weights: Array | None,
    rng: RandomState,
    *,
    uniform_weights: bool,
) -> np.ndarray:
    """Host indices of ``n_clusters`` distinct rows, chosen with probability ∝ weight (any
    library's weights; None with ``uniform_weights``). Uniform draws are scikit-learn's
    (``rng.permutation(n)[:k]``), which holds n indices on the host while it draws."""
    if uniform_weights:
        return rng.permutation(n_samples)[:n_clusters]
    p = to_numpy(weights).astype(np.float64)
    n_positive = int(np.count_nonzero(p))
    if n_positive < n_clusters:
        # Too few weighted points to choose distinct ones; take all of them, then any others.
        order = np.argsort(-p, kind="stable")
        return order[:n_clusters]
    return rng.choice(n_samples, size=n_clusters, replace=False, p=p / p.sum())


class ParallelInit(NamedTuple):
    """The k-means|| settings of one fit."""

    oversampling_factor: float
    n_rounds: int
    tol: float  # absolute, for the Lloyd iterations on the weighted candidates


class Seeding(Protocol):
    """Where the initial centers come from: X in memory (``InMemorySeeding``) or on a Dask
    cluster (``dask.DaskSeeding``). ``initial_centers`` asks it for what ``init`` names."""

    n_samples: int
    source: Any  # X as the caller gave it, for a callable init

    def kmeans_plusplus(self, n_clusters: int, rng: RandomState) -> Array: ...

    def kmeans_parallel(
        self, n_clusters: int, rng: RandomState, parallel: ParallelInit
    ) -> Array: ...

    def weights_on_host(self) -> np.ndarray: ...

    def rows(self, indices: np.ndarray) -> Array: ...

    def checked(self, centers: Any, n_clusters: int) -> Array: ...


def initial_centers(
    seeding: Seeding,
    n_clusters: int,
    init: Any,
    rng: RandomState,
    uniform_weights: bool,
    parallel: ParallelInit,
) -> Array:
    """The initial centers ``init`` names (checked settings), from ``seeding``'s data: one
    dispatcher for every kind of data, so the same seed picks the same rows everywhere."""
    if isinstance(init, str) and init == "k-means||":
        return seeding.kmeans_parallel(n_clusters, rng, parallel)
    if isinstance(init, str) and init == "k-means++":
        return seeding.kmeans_plusplus(n_clusters, rng)
    if isinstance(init, str):  # "random"
        weights = None if uniform_weights else seeding.weights_on_host()
        rows = random_indices(
            seeding.n_samples, n_clusters, weights, rng, uniform_weights=uniform_weights
        )
        return seeding.rows(rows)
    if callable(init):
        return seeding.checked(init(seeding.source, n_clusters, rng), n_clusters)
    return init  # an explicit array, checked once by the caller (``seeding.checked``)


class InMemorySeeding:
    """``Seeding`` for X in memory (or streamed from the host), prepared for a fit."""

    def __init__(self, data: PreparedData):
        self.data = data
        self.n_samples = data.X.shape[0]
        self.source = data.source

    def kmeans_plusplus(self, n_clusters: int, rng: RandomState) -> Array:
        data = self.data
        n_local_trials = default_local_trials(n_clusters)
        indices = kmeans_plusplus_indices(
            data.X,
            n_clusters,
            data.weights,
            rng,
            offset=data.offset,
            n_local_trials=n_local_trials,
            block_rows=seeding_block_rows(data, n_local_trials),
            xp=data.xp,
        )
        return take_rows(data.X, indices, data.xp)

    def kmeans_parallel(self, n_clusters: int, rng: RandomState, parallel: ParallelInit) -> Array:
        data = self.data
        return kmeans_parallel_centers(
            data.X,
            n_clusters,
            data.weights,
            rng,
            offset=data.offset,
            oversampling_factor=parallel.oversampling_factor,
            n_rounds=parallel.n_rounds,
            tol=parallel.tol,
            xp=data.xp,
        )

    def weights_on_host(self) -> np.ndarray:
        return to_numpy(self.data.weights)

    def rows(self, indices: np.ndarray) -> Array:
        data = self.data
        return take_rows(data.X, data.xp.asarray(indices, device=data.device), data.xp)

    def checked(self, centers: Any, n_clusters: int) -> Array:
        data = self.data
        return check_initial_centers(centers, data.X, n_clusters, xp=data.xp, device=data.device)


def seeding_block_rows(prep: PreparedData, n_local_trials: int) -> int:
    """Row blocks for k-means++, whose temporaries are n_local_trials wide, not n_clusters."""
    n_samples, n_features = prep.X.shape
    return block_rows_for(
        n_samples,
        n_features,
        n_local_trials,
        itemsize(prep.X, prep.xp),
        xp=prep.xp,
        device=prep.device,
    )
