"""Mini-batch K-Means (Sculley, "Web-scale k-means clustering", WWW 2010), written once.

Each step draws a batch of rows, assigns them to the nearest centers and moves every center that
received rows to the weighted mean of everything it has seen: c ← (c·W + Σ w·x) / (W + Σ w), W
being the weight the center has absorbed so far. Names, defaults and stopping rules are those of
scikit-learn's ``MiniBatchKMeans``: an exponentially weighted average of the batch inertia stops
a fit after ``max_no_improvement`` steps without a new minimum, ``tol`` stops it on a small
center shift, and centers that absorbed little weight are moved to random batch rows
(``reassignment_ratio``). ``partial_fit`` runs one step per call on the batch it is given.

Batches are gathered from X on its device (the row indices come from the host generator, so a
seed draws the same batches on every backend); the per-step host traffic is a few scalars.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .._algorithms.data import PreparedData
from .._algorithms.fit import KMeansResult, warn_if_fewer_clusters
from .._algorithms.init import InMemorySeeding, ParallelInit, initial_centers
from .._algorithms.lloyd import labels_and_inertia
from .._algorithms.prepare import prepare_data
from .._backends import segment_sum_for
from .._core.primitives import assign_block, squared_norms
from .._lib.compat import (
    Array,
    accumulation_dtype,
    array_device,
    get_namespace,
    library_name,
    move_to,
    to_numpy,
)
from .._lib.validation import (
    check_data,
    check_initial_centers,
    check_integer,
    check_non_negative_real,
    check_random_state,
)
from .base import (
    UNCHANGED,
    ClustererMixin,
    MetadataRequestsMixin,
    ParamsMixin,
    feature_names_of,
)
from .fitted import FittedCentersMixin
from .params import check_fit_settings
from .state import MINIBATCH_FORMAT_NAME, rng_from_json, rng_to_json


class MiniBatchKMeans(FittedCentersMixin, MetadataRequestsMixin, ClustererMixin, ParamsMixin):
    """Mini-batch K-Means on NumPy, CuPy or PyTorch arrays, with scikit-learn's interface.

    Parameters
    ----------
    n_clusters : int, default 8
        Number of clusters.
    init : "k-means++", "k-means||", "random", array of shape (n_clusters, n_features) or callable
        As in :class:`KMeans`, run on ``init_size`` random rows (on the first batch for
        ``partial_fit``).
    max_iter : int, default 100
        Passes over the data: a fit runs at most ``max_iter * n_samples // batch_size`` steps.
    batch_size : int, default 1024
        Rows per step (at most n_samples).
    verbose : int, default 0
        If positive, print the batch inertia and its smoothed value at every step.
    compute_labels : bool, default True
        Compute ``labels_`` and ``inertia_`` over the whole data once a fit ends (over the batch
        after ``partial_fit``). Without them ``inertia_`` is the smoothed batch inertia scaled to
        n_samples, and ``labels_`` is not set.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Draws the init, the batches and the reassignments, on the host.
    tol : float, default 0.0
        Stop when the squared center shift of a step, relative to the mean per-feature variance
        of X, is at most ``tol`` (0 disables this rule).
    max_no_improvement : int or None, default 10
        Stop after this many steps without a new minimum of the smoothed batch inertia; None
        disables this rule.
    init_size : int or None, default None
        Rows drawn to run the init on (and to pick the best of ``n_init`` inits). Default
        ``3 * batch_size`` (``3 * n_clusters`` where that is fewer than n_clusters rows), at
        most n_samples, as scikit-learn.
    n_init : "auto" or int, default "auto"
        Inits tried (each on its own ``init_size`` rows); the one with the lowest inertia on one
        common draw of ``init_size`` rows is kept. "auto": 1 for k-means++, k-means|| and explicit
        arrays, 3 for "random" and callables.
    reassignment_ratio : float, default 0.01
        Centers whose absorbed weight is below this fraction of the largest are moved to random
        rows of the current batch (every ``10 * n_clusters`` rows seen, or when a center has no
        weight). 0 disables reassignment.

    Attributes
    ----------
    cluster_centers_ : array of shape (n_clusters, n_features)
        In X's library, on X's device, in X's floating dtype.
    labels_ : int64 array of shape (n_samples,)
        Nearest center of each row (only with ``compute_labels``).
    inertia_ : float
        Σ w·‖x − c_label‖² over the data (see ``compute_labels``).
    n_iter_ : int
        Passes over the data, rounded up.
    n_steps_ : int
        Mini-batch steps run.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : numpy.ndarray of str
        The column names of a DataFrame X (the first batch's for ``partial_fit``), when all are
        strings; later data must have the same names. ``get_feature_names_out``, ``set_output``
        and the ``set_*_request`` methods are those of ``KMeans``.

    Examples
    --------
    >>> import numpy as np
    >>> from kmeans_xp import MiniBatchKMeans
    >>> X = np.array([[1.0, 2.0], [1.0, 4.0], [1.0, 0.0], [10.0, 2.0], [10.0, 4.0], [10.0, 0.0]])
    >>> mbk = MiniBatchKMeans(n_clusters=2, batch_size=6, random_state=0).fit(X)
    >>> sorted(np.round(mbk.cluster_centers_).tolist())
    [[1.0, 2.0], [10.0, 2.0]]
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: Any = "k-means++",
        max_iter: int = 100,
        batch_size: int = 1024,
        verbose: int = 0,
        compute_labels: bool = True,
        random_state: Any = None,
        tol: float = 0.0,
        max_no_improvement: int | None = 10,
        init_size: int | None = None,
        n_init: int | str = "auto",
        reassignment_ratio: float = 0.01,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.verbose = verbose
        self.compute_labels = compute_labels
        self.random_state = random_state
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.init_size = init_size
        self.n_init = n_init
        self.reassignment_ratio = reassignment_ratio

    # ---- fitting -----------------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """Compute the clustering of X by mini-batch steps.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
        y : ignored
        sample_weight : array of shape (n_samples,), optional
            Non-negative weights, not all zero.

        Returns
        -------
        self : MiniBatchKMeans
        """
        settings = self._checked_settings()
        names = feature_names_of(X)
        prep = prepare_data(X, settings["n_clusters"], sample_weight)
        xp, n_samples = prep.xp, prep.X.shape[0]
        rng = check_random_state(self.random_state)
        batch_size = min(settings["batch_size"], n_samples)
        init_size = self._resolved_init_size(batch_size, n_samples)
        tol = settings["tol"] * prep.mean_variance
        init = self.init
        if not isinstance(init, str) and not callable(init):
            init = check_initial_centers(
                init, prep.X, settings["n_clusters"], xp=xp, device=prep.device
            )

        # Inits on their own draws of rows, judged on one common draw (as scikit-learn).
        valid = _rows(prep, rng.integers(0, n_samples, size=init_size))
        best_centers, best_inertia = None, None
        for _ in range(settings["n_init"]):
            sample = _rows(prep, rng.integers(0, n_samples, size=init_size))
            centers = self._init_on(sample, rng, init=init)
            _, inertia = labels_and_inertia(
                valid.X,
                centers,
                valid.weights,
                offset=prep.offset,
                block_rows=valid.block_rows,
                xp=xp,
            )
            if best_inertia is None or inertia < best_inertia:
                best_centers, best_inertia = centers, inertia

        state = _StepState.starting(best_centers, prep, batch_size)
        monitor = _Convergence(batch_size, n_samples, tol, self.max_no_improvement, self.verbose)
        n_steps = max(1, (settings["max_iter"] * n_samples) // batch_size)
        step = 0
        for step in range(1, n_steps + 1):
            rows = rng.integers(0, n_samples, size=batch_size)
            batch = _rows(prep, rows)
            batch_inertia, shift = state.step(
                batch.X, batch.weights, rng, settings["reassignment_ratio"], want_shift=tol > 0
            )
            if monitor.should_stop(step, n_steps, batch_inertia, shift):
                break
        self._set_state(state, prep, step)
        self._step_state, self._rng = state, rng  # partial_fit goes on from here
        self.n_iter_ = int(-(-(step * batch_size) // n_samples))
        if self.compute_labels:
            self.labels_, self.inertia_ = labels_and_inertia(
                prep.X,
                self.cluster_centers_,
                prep.weights,
                offset=prep.offset,
                block_rows=prep.block_rows,
                xp=xp,
            )
            warn_if_fewer_clusters(self.labels_, settings["n_clusters"], xp)
        else:
            per_row = monitor.last if monitor.smoothed is None else monitor.smoothed
            self.inertia_ = float(per_row * n_samples)
        self._set_feature_names(names)
        return self

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """One mini-batch step on the batch X (the first call also chooses the initial centers).

        Batches may differ in size; every batch must have the first batch's number of features
        and be of its library and device.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
        y : ignored
        sample_weight : array of shape (n_samples,), optional

        Returns
        -------
        self : MiniBatchKMeans
        """
        settings = self._checked_settings()
        started = hasattr(self, "_step_state")
        names = feature_names_of(X)
        if started:
            self._check_feature_names(X, stacklevel=3)
            X = self._checked_batch(X)
        # The first batch must hold at least n_clusters rows (prepare_data says so); later ones any.
        prep = prepare_data(X, settings["n_clusters"] if not started else 1, sample_weight)
        if not started:
            self._rng = check_random_state(self.random_state)
            init = self.init
            if not isinstance(init, str) and not callable(init):
                init = check_initial_centers(
                    init, prep.X, settings["n_clusters"], xp=prep.xp, device=prep.device
                )
            batch_size = min(settings["batch_size"], prep.X.shape[0])
            init_size = self._resolved_init_size(batch_size, prep.X.shape[0])
            init_rows = self._rng.choice(prep.X.shape[0], size=init_size, replace=False)
            centers = self._init_on(_rows(prep, init_rows), self._rng, init=init)
            self._step_state = _StepState.starting(centers, prep, batch_size)
            self._offset = prep.offset
            self.n_steps_ = 0
            self._set_feature_names(names)
        else:
            # Batches are centered by the first batch's mean, as the centers are.
            prep = prep._replace(offset=self._offset)
        state = self._step_state
        state.step(prep.X, prep.weights, self._rng, settings["reassignment_ratio"], False)
        self._set_state(state, prep, self.n_steps_ + 1)
        if self.compute_labels:
            self.labels_, self.inertia_ = labels_and_inertia(
                prep.X,
                self.cluster_centers_,
                prep.weights,
                offset=prep.offset,
                block_rows=prep.block_rows,
                xp=prep.xp,
            )
        return self

    _methods_taking_sample_weight = ("fit", "partial_fit", "score")

    def set_partial_fit_request(self, *, sample_weight: Any = UNCHANGED) -> MiniBatchKMeans:
        """Whether a meta-estimator passes ``sample_weight`` to ``partial_fit`` (see
        ``set_fit_request``).

        Returns
        -------
        self
        """
        return self._request("partial_fit", sample_weight)

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> Array:
        """Fit, then return the labels of X (``labels_`` when ``compute_labels``)."""
        self.fit(X, sample_weight=sample_weight)
        return self.labels_ if self.compute_labels else self.predict(X)

    # ---- helpers -----------------------------------------------------------------------------

    def _check_params(self) -> None:
        """Every parameter checked as ``fit`` checks it (``load`` checks a file's this way)."""
        self._checked_settings()

    def _checked_settings(self) -> dict[str, Any]:
        """The parameters checked: those KMeans shares by its validator (3 runs for "auto" with
        random inits, as scikit-learn), then the mini-batch ones."""
        shared = check_fit_settings(
            n_clusters=self.n_clusters,
            init=self.init,
            n_init=self.n_init,
            max_iter=self.max_iter,
            tol=self.tol,
            verbose=self.verbose,
            random_state=self.random_state,
            random_runs=3,
        )
        if self.max_no_improvement is not None:
            check_integer(self.max_no_improvement, "max_no_improvement", minimum=0)
        if self.init_size is not None:
            check_integer(self.init_size, "init_size", minimum=1)
        if not isinstance(self.compute_labels, bool | np.bool_):
            msg = f"compute_labels must be True or False, got {self.compute_labels!r}."
            raise TypeError(msg)
        return {
            "n_clusters": shared.n_clusters,
            "max_iter": shared.max_iter,
            "batch_size": check_integer(self.batch_size, "batch_size", minimum=1),
            "tol": shared.tol,
            "reassignment_ratio": check_non_negative_real(
                self.reassignment_ratio, "reassignment_ratio"
            ),
            "n_init": shared.n_init,
        }

    def _resolved_init_size(self, batch_size: int, n_samples: int) -> int:
        """scikit-learn's rule: 3·batch_size by default (3·k where that is fewer than k rows),
        at most n_samples."""
        k = self.n_clusters
        init_size = self.init_size
        if init_size is None:
            init_size = 3 * batch_size
            if init_size < k:
                init_size = 3 * k
        elif init_size < k:
            warnings.warn(
                f"init_size={init_size} should be larger than n_clusters={k}. Setting it to "
                f"min(3*n_clusters, n_samples)",
                RuntimeWarning,
                stacklevel=4,
            )
            init_size = 3 * k
        return max(k, min(init_size, n_samples))

    def _init_on(self, sample: PreparedData, rng: Any, init: Any = None) -> Array:
        init = self.init if init is None else init
        parallel = ParallelInit(2.0, 5, 0.0)
        return initial_centers(
            InMemorySeeding(sample),
            self.n_clusters,
            init,
            rng,
            uniform_weights=False,
            parallel=parallel,
        )

    def _checked_batch(self, X: Any) -> Array:
        X, xp, device = check_data(X, "X")
        centers = self._step_state.centers
        if library_name(X) != library_name(centers) or str(device) != str(array_device(centers)):
            msg = (
                f"partial_fit got a batch of {library_name(X)} on {device}, but the model was "
                f"started on {library_name(centers)} on {array_device(centers)}; give every "
                f"batch in one library and on one device."
            )
            raise TypeError(msg)
        if X.shape[1] != self.n_features_in_:
            msg = (
                f"X has {X.shape[1]} features, but MiniBatchKMeans is expecting "
                f"{self.n_features_in_} features as input."
            )
            raise ValueError(msg)
        dtype = self.cluster_centers_.dtype
        return X if X.dtype == dtype else xp.astype(X, dtype)

    def _model_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """KMeans's model-file state, and what ``partial_fit`` goes on from: the centers'
        running sums, the step count, the batch size, the reassignment counter and the random
        generator's state."""
        metadata, arrays = super()._model_state()
        state = self._step_state
        arrays["step_centers"] = to_numpy(state.centers)
        arrays["step_weight_sums"] = to_numpy(state.weight_sums)
        metadata["format"] = MINIBATCH_FORMAT_NAME
        metadata["minibatch"] = {
            "n_steps": int(self.n_steps_),
            "batch_size": int(state.batch_size),
            "since_reassign": int(state.since_reassign),
            "rng": rng_to_json(self._rng),
        }
        return metadata, arrays

    def _restore_model_state(
        self, metadata: dict[str, Any], arrays: dict[str, np.ndarray], *, xp: Any, device: Any
    ) -> None:
        """KMeans's fitted attributes, then the step state: ``partial_fit`` goes on from it as
        the saved model would have."""
        super()._restore_model_state(metadata, arrays, xp=xp, device=device)
        values = metadata["minibatch"]
        self._step_state = _StepState(
            move_to(arrays["step_centers"], xp, device),
            move_to(arrays["step_weight_sums"], xp, device),
            offset=self._offset,
            dtype=self.cluster_centers_.dtype,
            batch_size=values["batch_size"],
            since_reassign=values["since_reassign"],
        )
        self._counts = self._step_state.weight_sums
        self.n_steps_ = values["n_steps"]
        self._rng = rng_from_json(values["rng"])

    def _set_state(self, state: _StepState, prep: PreparedData, n_steps: int) -> None:
        centers = state.centers_x() + prep.offset
        result = KMeansResult(centers, None, None, None)
        self._set_fitted(result, n_features=prep.X.shape[1], offset=prep.offset)
        self._counts = state.weight_sums
        self.n_steps_ = n_steps


def _rows(prep: PreparedData, rows: np.ndarray) -> PreparedData:
    """The given rows of X and their weights, on X's device (a copy, batch-sized)."""
    xp = prep.xp
    index = xp.asarray(rows, device=prep.device)
    return prep._replace(
        X=xp.take(prep.X, index, axis=0),
        weights=xp.take(prep.weights, index, axis=0),
        block_rows=max(1, min(prep.block_rows, len(rows))),
    )


class _StepState:
    """Centers (centered, accumulation dtype) and the weight each has absorbed."""

    def __init__(
        self,
        centers: Array,
        weight_sums: Array,
        *,
        offset: Array,
        dtype: Any,
        batch_size: int,
        since_reassign: int = 0,
    ) -> None:
        xp = get_namespace(centers)
        self.dtype = dtype  # X's
        self.acc = accumulation_dtype(xp, array_device(centers))
        self.offset = offset  # batches are centered by it, as the centers are
        self.centers = xp.astype(centers, self.acc)
        self.weight_sums = xp.astype(weight_sums, self.acc)
        self.batch_size = batch_size
        self.since_reassign = since_reassign

    @classmethod
    def starting(cls, centers: Array, prep: PreparedData, batch_size: int) -> _StepState:
        """The state before the first step, from initial centers in X's coordinates."""
        xp = prep.xp
        k = centers.shape[0]
        zeros = xp.zeros((k,), dtype=accumulation_dtype(xp, prep.device), device=prep.device)
        return cls(
            centers - prep.offset,
            zeros,
            offset=prep.offset,
            dtype=prep.X.dtype,
            batch_size=batch_size,
        )

    # The namespace and the update function are looked up, not stored, so the state (and the
    # estimator holding it) pickles.
    @property
    def xp(self) -> Any:
        return get_namespace(self.centers)

    @property
    def segment_sum(self) -> Any:
        return segment_sum_for(self.xp)

    def centers_x(self) -> Array:
        """The centered centers in X's dtype."""
        return self.xp.astype(self.centers, self.dtype)

    def step(
        self, batch: Array, weights: Array, rng: Any, reassignment_ratio: float, want_shift: bool
    ) -> tuple[float, float]:
        """One mini-batch step on an (uncentered) batch: its inertia with the centers before
        the step, and the squared center shift (0 unless asked)."""
        xp = self.xp
        k = self.centers.shape[0]
        centered = batch - self.offset
        centers_x = self.centers_x()
        labels, partial = assign_block(centered, centers_x, squared_norms(centers_x, xp=xp), xp=xp)
        x_sq = squared_norms(centered, xp=xp)
        sq = xp.astype(xp.clip(x_sq + partial, min=0.0), self.acc)
        batch_inertia = float(xp.sum(xp.astype(weights, self.acc) * sq))
        sums, counts = self.segment_sum(centered, labels, weights, k, xp=xp)
        total = self.weight_sums + counts
        hit = counts > 0
        safe_total = xp.where(hit, total, xp.ones_like(total))
        moved = (self.centers * self.weight_sums[:, None] + sums) / safe_total[:, None]
        new_centers = xp.where(hit[:, None], moved, self.centers)
        self.weight_sums = total
        if reassignment_ratio > 0 and self._reassign_now():
            new_centers = self._reassign(new_centers, centered, rng, reassignment_ratio)
        shift = 0.0
        if want_shift:
            diff = new_centers - self.centers
            shift = float(xp.sum(diff * diff))
        self.centers = new_centers
        return batch_inertia, shift

    def _reassign_now(self) -> bool:
        """scikit-learn's schedule: every 10·k rows seen, or as soon as a center has no weight."""
        self.since_reassign += self.batch_size
        xp = self.xp
        if bool(xp.any(self.weight_sums == 0)) or self.since_reassign >= 10 * self.centers.shape[0]:
            self.since_reassign = 0
            return True
        return False

    def _reassign(self, centers: Array, centered_batch: Array, rng: Any, ratio: float) -> Array:
        """Move centers with little absorbed weight to random rows of the batch (at most half
        the batch); their weight becomes the smallest weight kept, so they are not moved again
        at once."""
        xp = self.xp
        sums = to_numpy(self.weight_sums).astype(np.float64)
        to_move = sums < ratio * sums.max()
        m = centered_batch.shape[0]
        if to_move.sum() > 0.5 * m:
            to_move[np.argsort(sums, kind="stable")[int(0.5 * m) :]] = False
        n_move = int(to_move.sum())
        if n_move == 0 or n_move == len(sums):
            return centers
        picked = rng.choice(m, size=n_move, replace=False)
        # Row of the batch for each center (0 for those that stay; masked out below).
        source = np.zeros(len(sums), dtype=np.int64)
        source[to_move] = picked
        device = array_device(centers)
        rows = xp.astype(
            xp.take(centered_batch, xp.asarray(source, device=device), axis=0), self.acc
        )
        mask = xp.asarray(to_move, device=device)
        sums[to_move] = sums[~to_move].min()
        self.weight_sums = xp.asarray(sums, dtype=self.acc, device=device)
        return xp.where(mask[:, None], rows, centers)


class _Convergence:
    """scikit-learn's stopping rules for mini-batch steps."""

    def __init__(self, batch_size, n_samples, tol, max_no_improvement, verbose) -> None:
        self.batch_size = batch_size
        self.alpha = min(1.0, batch_size * 2.0 / (n_samples + 1))
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.verbose = verbose
        self.smoothed = None
        self.last = None
        self.smoothed_min = None
        self.no_improvement = 0

    def should_stop(self, step: int, n_steps: int, batch_inertia: float, shift: float) -> bool:
        batch_inertia /= self.batch_size  # comparable across batch sizes
        self.last = batch_inertia
        if step == 1:  # the first step's inertia is that of the init: left out, as scikit-learn
            if self.verbose:
                print(f"Minibatch step {step}/{n_steps}: mean batch inertia: {batch_inertia}")
            return False
        if self.smoothed is None:
            self.smoothed = batch_inertia
        else:
            self.smoothed = self.smoothed * (1 - self.alpha) + batch_inertia * self.alpha
        if self.verbose:
            print(
                f"Minibatch step {step}/{n_steps}: mean batch inertia: {batch_inertia}, "
                f"ewa inertia: {self.smoothed}"
            )
        if self.tol > 0.0 and shift <= self.tol:
            if self.verbose:
                print(f"Converged (small centers change) at step {step}/{n_steps}")
            return True
        if self.smoothed_min is None or self.smoothed < self.smoothed_min:
            self.no_improvement = 0
            self.smoothed_min = self.smoothed
        else:
            self.no_improvement += 1
        if self.max_no_improvement is not None and self.no_improvement >= self.max_no_improvement:
            if self.verbose:
                print(f"Converged (lack of improvement in inertia) at step {step}/{n_steps}")
            return True
        return False
