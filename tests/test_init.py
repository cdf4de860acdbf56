"""Initialisation: k-means++ (its probabilities, its greed, its weights) and random choice."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import blobs

import kmeans_xp._algorithms.init as init_module
from kmeans_xp import ConvergenceWarning, KMeans, kmeans, kmeans_plusplus
from kmeans_xp._algorithms.init import default_local_trials, random_indices
from kmeans_xp._lib.options import pass_options


@pytest.fixture(params=["in memory", "in chunks, trials recomputed"])
def sampling(use_options, request, monkeypatch):
    """k-means++ as it runs on ordinary data, and as on hundreds of millions of rows: the
    D²-sampling through chunks (here of 2 rows) and the winner's distances from a second pass
    instead of the kept trial distances."""
    if request.param != "in memory":
        use_options(sampling_chunk_rows=2)
        use_options(trial_distances_max_bytes=0)
    return request.param


def test_default_local_trials():
    assert [default_local_trials(k) for k in (1, 2, 3, 8, 1000)] == [2, 2, 3, 4, 8]


def test_kmeans_plusplus_returns_rows_of_x_and_their_indices(xp):
    X, _ = blobs(30, [[0, 0], [5, 5], [10, 0], [0, 10]], seed=1)
    centers, indices = kmeans_plusplus(xp.asarray(X), 4, random_state=0)
    idx = xp.to_numpy(indices)
    assert idx.dtype == np.int64
    assert idx.shape == (4,)
    assert len(set(idx.tolist())) == 4
    np.testing.assert_array_equal(xp.to_numpy(centers), X[idx])
    assert type(centers) is type(xp.asarray(X))


def test_kmeans_plusplus_picks_one_point_per_separated_blob(xp):
    X, y = blobs(25, [[0, 0], [50, 0], [0, 50], [50, 50], [25, 100]], sd=0.5, seed=2)
    for seed in range(5):
        _, indices = kmeans_plusplus(xp.asarray(X), 5, random_state=seed)
        assert sorted(y[xp.to_numpy(indices)].tolist()) == [0, 1, 2, 3, 4]


def test_same_seed_same_indices_on_every_backend(xp):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 6))
    w = rng.uniform(0.1, 3.0, size=500)
    _, expected = kmeans_plusplus(X, 12, sample_weight=w, random_state=42)
    _, got = kmeans_plusplus(xp.asarray(X), 12, sample_weight=xp.asarray(w), random_state=42)
    np.testing.assert_array_equal(xp.to_numpy(got), expected)


def test_random_state_kinds_give_reproducible_results():
    X, _ = blobs(30, [[0, 0], [5, 5], [10, 0]], seed=4)
    a = kmeans_plusplus(X, 3, random_state=np.random.default_rng(7))[1]
    b = kmeans_plusplus(X, 3, random_state=np.random.default_rng(7))[1]
    c = kmeans_plusplus(X, 3, random_state=np.random.RandomState(7))[1]
    d = kmeans_plusplus(X, 3, random_state=np.random.RandomState(7))[1]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(c, d)


def test_zero_weight_points_are_never_chosen(xp, sampling):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 2))
    w = np.zeros(60)
    w[::3] = 1.0
    for seed in range(10):
        _, indices = kmeans_plusplus(
            xp.asarray(X), 5, sample_weight=xp.asarray(w), random_state=seed
        )
        assert np.all(w[xp.to_numpy(indices)] > 0)


def _pair_frequencies(X, w, n_draws, **kwargs):
    rng = np.random.default_rng(0)
    counts = {}
    for _ in range(n_draws):
        _, idx = kmeans_plusplus(X, 2, sample_weight=w, random_state=rng, **kwargs)
        key = tuple(idx.tolist())
        counts[key] = counts.get(key, 0) + 1
    return counts


@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_plusplus_samples_with_d2_probabilities(weighted, sampling):
    """With one local trial, P(first=i, second=j) = w_i/W · w_j·d_ij² / Σ_l w_l·d_il²."""
    chi2 = pytest.importorskip("scipy.stats").chi2
    X = np.array([[0.0], [1.0], [3.0], [7.0]])
    w = np.array([1.0, 2.0, 0.5, 1.0]) if weighted else np.ones(4)
    n_draws = 4000
    counts = _pair_frequencies(X, w, n_draws, n_local_trials=1)
    d2 = (X - X.T) ** 2
    expected = {}
    for i in range(4):
        for j in range(4):
            if i != j:
                expected[(i, j)] = w[i] / w.sum() * w[j] * d2[i, j] / (w * d2[i]).sum()
    assert set(counts) <= set(expected)  # never the same point twice
    observed = np.array([counts.get(key, 0) for key in expected])
    predicted = np.array([expected[key] for key in expected]) * n_draws
    statistic = ((observed - predicted) ** 2 / predicted).sum()
    assert statistic < chi2.ppf(0.999, df=len(expected) - 1)


def test_chunked_sampling_picks_what_the_in_memory_one_picks(xp):
    """Chunks change only the rounding of the cumulative sums: the same seed picks the same
    rows, with weights (whole chunks of zero weight included) and without."""
    rng = np.random.default_rng(8)
    X = xp.asarray(rng.normal(size=(500, 3)).astype(np.float32))
    w = rng.uniform(size=500)
    w[100:180] = 0.0
    for weights in (None, xp.asarray(w)):
        expected = [
            kmeans_plusplus(X, 12, sample_weight=weights, random_state=s)[1] for s in (0, 1)
        ]
        with pass_options(sampling_chunk_rows=64, trial_distances_max_bytes=0):
            got = [kmeans_plusplus(X, 12, sample_weight=weights, random_state=s)[1] for s in (0, 1)]
        for e, g in zip(expected, got, strict=True):
            np.testing.assert_array_equal(xp.to_numpy(g), xp.to_numpy(e))


def test_kmeans_plusplus_memory_per_row_is_bounded(use_options, monkeypatch):
    """Without the kept trial distances, k-means++ holds ‖x‖², D² and the weights per row (16
    bytes for float32 X) plus chunk and block temporaries: measured with tracemalloc."""
    import tracemalloc

    n = 200_000
    X = np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)
    use_options(sampling_chunk_rows=2**14)
    use_options(trial_distances_max_bytes=0)
    kmeans_plusplus(X, 16, random_state=0)  # first-call allocations (caches) are not per row
    tracemalloc.start()
    kmeans_plusplus(X, 16, random_state=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # 16 B/row of state, blocks of at most X/4 (8 B/row here) and a few 16k-row chunks.
    assert peak / n < 28, f"{peak / n:.1f} bytes per row"  # 32 in one chunk, 36 with trials kept


def test_chunked_sampling_frees_each_chunks_cumulative_sum():
    """Found at 100 M rows on an H200: CuPy's ``c[-1]`` is a view, and a list of them kept every
    chunk's cumulative sum alive (8 bytes a row of X). Here NumPy arrays whose last element is
    a view, as CuPy's (and torch's) are: when the totals are stacked, no chunk's sum is alive."""
    import types
    import weakref

    import array_api_compat.numpy as compat

    class ViewLast(np.ndarray):
        def __getitem__(self, key):
            if key == -1:
                return np.ndarray.__getitem__(self, slice(-1, None)).reshape(())  # a view
            return np.ndarray.__getitem__(self, key)

    alive = []
    seen_at_stack = []

    def cumulative_sum(a):
        result = np.cumsum(np.asarray(a)).view(ViewLast)
        alive.append(weakref.ref(result))
        return result

    def stack(arrays):
        seen_at_stack.append(sum(ref() is not None for ref in alive))
        return np.stack([np.asarray(a) for a in arrays])

    xp = types.SimpleNamespace(**{n: getattr(compat, n) for n in dir(compat) if n[0] != "_"})
    xp.cumulative_sum, xp.stack = cumulative_sum, stack
    weights = np.random.default_rng(0).uniform(size=1000)
    picked = init_module.sample_in_chunks(
        lambda a, b: weights[a:b], 1000, np.array([0.3, 0.9]), xp=xp, chunk_rows=100
    )
    assert seen_at_stack == [0]
    expected = np.searchsorted(np.cumsum(weights), np.array([0.3, 0.9]) * weights.sum(), "right")
    np.testing.assert_array_equal(picked, expected)


def test_greedy_trials_lower_the_potential():
    """The greedy variant (several trials) ends with a lower mean potential than plain D²."""
    rng = np.random.default_rng(6)
    X = rng.normal(size=(400, 2))

    def potential(indices):
        C = X[indices]
        return ((X[:, None, :] - C[None]) ** 2).sum(-1).min(1).sum()

    plain = np.mean(
        [potential(kmeans_plusplus(X, 8, random_state=s, n_local_trials=1)[1]) for s in range(30)]
    )
    greedy = np.mean([potential(kmeans_plusplus(X, 8, random_state=s)[1]) for s in range(30)])
    assert greedy < plain


def test_random_init_chooses_distinct_rows():
    rng = np.random.default_rng(7)
    rows = random_indices(50, 10, None, rng, uniform_weights=True)
    assert len(set(rows.tolist())) == 10
    assert rows.max() < 50
    w = np.zeros(50)
    w[[3, 7, 11]] = 1.0
    weighted = random_indices(50, 3, w, rng, uniform_weights=False)
    assert sorted(weighted.tolist()) == [3, 7, 11]
    few = random_indices(50, 5, w, rng, uniform_weights=False)
    assert {3, 7, 11} <= set(few.tolist())
    assert len(set(few.tolist())) == 5


def test_random_init_is_reproducible_across_backends(xp):
    X, _ = blobs(30, [[0, 0], [5, 5], [10, 0]], seed=8)
    a = KMeans(n_clusters=3, init="random", n_init=2, random_state=3).fit(X)
    b = KMeans(n_clusters=3, init="random", n_init=2, random_state=3).fit(xp.asarray(X))
    np.testing.assert_array_equal(xp.to_numpy(b.labels_), a.labels_)


# ---- k-means|| ---------------------------------------------------------------------------------


def _parallel_candidates(X, k, w, seed, *, xp, oversampling_factor=2.0, n_rounds=5):
    from kmeans_xp._algorithms.init import kmeans_parallel_candidates

    ns = xp.xp
    Xd = xp.asarray(X)
    offset = ns.mean(Xd, axis=0)
    return kmeans_parallel_candidates(
        Xd, k, xp.asarray(w, dtype=X.dtype), np.random.default_rng(seed), offset=offset,
        oversampling_factor=oversampling_factor, n_rounds=n_rounds, xp=ns,
    )  # fmt: skip


def test_kmeans_parallel_finds_every_separated_blob(xp):
    centers = [[0, 0], [50, 0], [0, 50], [50, 50], [25, 100], [100, 25]]
    X, y = blobs(40, centers, sd=0.5, seed=6)
    for seed in range(5):
        km = KMeans(6, init="k-means||", random_state=seed).fit(xp.asarray(X))
        got = np.sort(xp.to_numpy(km.cluster_centers_), axis=0)
        truth = np.sort(np.array([X[y == j].mean(axis=0) for j in range(6)]), axis=0)
        np.testing.assert_allclose(got, truth, atol=1e-6)


def test_kmeans_parallel_same_seed_same_centers_on_every_backend(xp):
    rng = np.random.default_rng(8)
    X, _ = blobs(50, rng.normal(scale=6.0, size=(10, 4)), sd=1.0, seed=8)
    w = rng.uniform(0.2, 2.0, size=X.shape[0])
    kwargs = {"init": "k-means||", "max_iter": 1, "random_state": 3}
    expected = KMeans(10, **kwargs).fit(X, sample_weight=w).cluster_centers_
    got = KMeans(10, **kwargs).fit(xp.asarray(X), sample_weight=xp.asarray(w)).cluster_centers_
    np.testing.assert_allclose(xp.to_numpy(got), expected, rtol=1e-10, atol=1e-10)


def test_kmeans_parallel_candidates_never_weightless_and_carry_all_weight(xp):
    rng = np.random.default_rng(9)
    X = rng.normal(size=(400, 3))
    w = np.zeros(400)
    w[::4] = rng.uniform(0.5, 2.0, size=100)
    for seed in range(5):
        rows, weights = _parallel_candidates(X, 7, w, seed, xp=xp)
        rows, weights = xp.to_numpy(rows), xp.to_numpy(weights)
        assert len(rows) >= 7
        assert np.all(w[rows] > 0)  # weight 0 is never drawn
        assert len(set(rows.tolist())) == len(rows)  # a row on a candidate is never drawn again
        assert weights.sum() == pytest.approx(w.sum(), rel=1e-12)
        # A candidate's weight is that of the rows nearest to it.
        nearest = np.argmin(((X[:, None, :] - X[rows][None]) ** 2).sum(-1), axis=1)
        np.testing.assert_allclose(weights, np.bincount(nearest, w, len(rows)), rtol=1e-12)


def test_kmeans_parallel_in_sampling_chunks_draws_the_same_candidates(use_options, xp, monkeypatch):
    """At scale the rounds test rows chunk by chunk (uniforms drawn per chunk, in row order) and
    the first row is drawn through chunks: the candidates are those of one chunk."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(500, 3))
    w = rng.uniform(0.1, 2.0, size=500)
    expected = [_parallel_candidates(X, 9, w, seed, xp=xp) for seed in (0, 1)]
    use_options(sampling_chunk_rows=64)
    got = [_parallel_candidates(X, 9, w, seed, xp=xp) for seed in (0, 1)]
    for (rows_e, weights_e), (rows_g, weights_g) in zip(expected, got, strict=True):
        np.testing.assert_array_equal(xp.to_numpy(rows_g), xp.to_numpy(rows_e))
        np.testing.assert_allclose(xp.to_numpy(weights_g), xp.to_numpy(weights_e), rtol=1e-12)


def test_kmeans_parallel_oversamples_about_l_per_round():
    rng = np.random.default_rng(10)
    X = rng.normal(size=(20_000, 2))
    counts = []
    for n_rounds in (1, 3):
        rows, _ = _parallel_candidates(
            X, 10, np.ones(len(X)), 0, xp=_numpy_backend(), oversampling_factor=5.0,
            n_rounds=n_rounds,
        )  # fmt: skip
        counts.append(len(rows))
    # Each round keeps each row with probability min(1, ℓ·D²/φ): about ℓ = 50 rows, a few fewer
    # where the probability is capped at 1 (Poisson spread: ±3σ ≈ ±21 per round).
    assert 20 <= counts[0] - 1 <= 75
    assert 90 <= counts[1] - 1 <= 190


def _numpy_backend():
    from conftest import Backend

    return Backend("numpy", np, None)


def test_kmeans_parallel_passes_over_x_do_not_grow_with_k(monkeypatch):
    """O(rounds) passes, against one per center for k-means++: count the rows of X whose
    distances are computed, outside the reclustering of the (few) candidates."""
    import kmeans_xp._algorithms.init as init_module

    X, _ = blobs(500, np.random.default_rng(11).normal(scale=5.0, size=(40, 3)), seed=11)
    rows_seen = {"n": 0}
    inner = {"active": False}
    import kmeans_xp._core.seeding as seeding_module

    sq_distances = init_module.sq_distances
    plusplus = init_module.kmeans_plusplus_indices

    def counting_sq_distances(X_block, *args, **kwargs):
        if not inner["active"]:
            rows_seen["n"] += X_block.shape[0]
        return sq_distances(X_block, *args, **kwargs)

    def flagged_plusplus(X_seen, *args, **kwargs):
        # Only k-means||'s reclustering of its candidates (fewer rows than X) is left out.
        inner["active"] = X_seen.shape[0] < X.shape[0]
        try:
            return plusplus(X_seen, *args, **kwargs)
        finally:
            inner["active"] = False

    monkeypatch.setattr(init_module, "sq_distances", counting_sq_distances)
    monkeypatch.setattr(seeding_module, "sq_distances", counting_sq_distances)
    monkeypatch.setattr(init_module, "kmeans_plusplus_indices", flagged_plusplus)
    # The standard k-means++ pass, whose rows sq_distances counts (NumPy's own skips it).
    monkeypatch.setattr(init_module, "candidate_potentials_for", lambda xp: None)
    passes = {}
    for k in (2, 40):
        rows_seen["n"] = 0
        KMeans(k, init="k-means||", n_rounds=4, max_iter=1, random_state=0).fit(X)
        passes[k] = rows_seen["n"] / X.shape[0]
    assert passes[2] <= 1 + 4
    assert passes[40] <= 1 + 4
    rows_seen["n"] = 0
    KMeans(40, init="k-means++", max_iter=1, random_state=0).fit(X)
    assert rows_seen["n"] / X.shape[0] >= 40  # one pass per center


def test_kmeans_parallel_with_fewer_distinct_points_than_k(xp):
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]), 10, axis=0)
    with pytest.warns(ConvergenceWarning, match="Number of distinct clusters"):
        km = KMeans(5, init="k-means||", random_state=0).fit(xp.asarray(X))
    centers = xp.to_numpy(km.cluster_centers_)
    assert np.all(np.isfinite(centers))
    assert km.inertia_ == pytest.approx(0.0, abs=1e-12)


def test_kmeans_parallel_quality_matches_kmeans_plusplus():
    """Over seeds, the final inertia from k-means|| is that of k-means++ on touching blobs."""
    rng = np.random.default_rng(12)
    X, _ = blobs(100, rng.normal(scale=4.0, size=(25, 5)), seed=12)
    plus = [KMeans(25, random_state=s).fit(X).inertia_ for s in range(8)]
    parallel = [KMeans(25, init="k-means||", random_state=s).fit(X).inertia_ for s in range(8)]
    assert np.mean(parallel) <= 1.05 * np.mean(plus)


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        (
            {"oversampling_factor": 0},
            ValueError,
            r"oversampling_factor must be a finite number > 0",
        ),
        ({"oversampling_factor": -1.5}, ValueError, r"oversampling_factor=-1.5"),
        ({"oversampling_factor": float("nan")}, ValueError, r"oversampling_factor=nan"),
        ({"oversampling_factor": "2"}, TypeError, r"oversampling_factor must be a real number"),
        ({"oversampling_factor": True}, TypeError, r"oversampling_factor must be a real number"),
        ({"n_rounds": 0}, ValueError, r"n_rounds"),
        ({"n_rounds": 1.5}, TypeError, r"n_rounds"),
        ({"init": "k-means|"}, ValueError, r"'k-means\|\|'.*init='k-means\|'"),
    ],
)
def test_kmeans_parallel_bad_parameters(params, error, match):
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(error, match=match):
        KMeans(3, **{"init": "k-means||", **params}).fit(X)


def test_kmeans_parallel_n_init_auto_is_one_and_kmeans_function_takes_its_parameters(capsys):
    X, _ = blobs(20, [[0, 0], [9, 9]], seed=13)
    KMeans(2, init="k-means||", verbose=1, random_state=0).fit(X)
    assert capsys.readouterr().out.count("Initialization complete") == 1
    a = kmeans(X, 2, init="k-means||", oversampling_factor=3.0, n_rounds=2, random_state=1)
    b = KMeans(2, init="k-means||", oversampling_factor=3.0, n_rounds=2, random_state=1).fit(X)
    np.testing.assert_array_equal(a.centers, b.cluster_centers_)


@pytest.mark.parametrize("chunked", [False, True])
def test_kmeans_plusplus_reads_nothing_back_per_center(
    use_options, monkeypatch, host_reads, chunked
):
    """No host round trip per center (slow on a GPU): the number of device-to-host reads does
    not grow with k."""
    import array_api_strict as xps

    if chunked:
        use_options(sampling_chunk_rows=64)
        use_options(trial_distances_max_bytes=0)
    X = xps.asarray(np.random.default_rng(0).normal(size=(400, 3)))
    counts = []
    for k in (4, 16):
        host_reads.clear()
        kmeans_plusplus(X, k, random_state=0)
        counts.append(len(host_reads))
    assert counts[0] == counts[1], counts


def test_kmeans_plusplus_takes_scikit_learns_x_squared_norms(xp):
    """Accepted (scikit-learn's signature) and shape-checked; the picks do not depend on it."""
    X, _ = blobs(10, [[0.0, 0.0], [5.0, 5.0], [0.0, 8.0], [9.0, 0.0]], seed=3)
    _, expected = kmeans_plusplus(xp.asarray(X), 4, random_state=0)
    norms = xp.asarray((X**2).sum(axis=1))
    _, indices = kmeans_plusplus(xp.asarray(X), 4, x_squared_norms=norms, random_state=0)
    np.testing.assert_array_equal(xp.to_numpy(indices), xp.to_numpy(expected))
    with pytest.raises(ValueError, match=r"x_squared_norms must have shape \(40,\) .* \(39,\)"):
        kmeans_plusplus(xp.asarray(X), 4, x_squared_norms=np.ones(39))
