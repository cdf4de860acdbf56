"""The ``KMeans`` estimator: scikit-learn's interface over the fit driver.

It checks its parameters once (``params``) and delegates: in-memory data to ``functions._fit``,
Dask collections to ``_algorithms.dask``. Arrays come back in the caller's library, on the
caller's device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._algorithms.dask import fit_dask, is_dask_collection
from .._algorithms.fit import FitSettings, KMeansResult
from .._lib.compat import Array
from .._lib.memmap import bounded_residency
from .._lib.validation import check_integer
from .base import ClustererMixin, MetadataRequestsMixin, ParamsMixin, feature_names_of
from .fitted import FittedCentersMixin
from .functions import _fit
from .params import check_fit_settings, check_flag


class KMeans(FittedCentersMixin, MetadataRequestsMixin, ClustererMixin, ParamsMixin):
    """K-Means clustering on NumPy, CuPy or PyTorch arrays, with scikit-learn's interface.

    Parameters
    ----------
    n_clusters : int, default 8
        Number of clusters.
    init : "k-means++", "k-means||", "random", array of shape (n_clusters, n_features) or callable
        ``"k-means++"``: greedy weighted k-means++ with ``2 + int(log(n_clusters))`` local trials;
        one pass over X per center.
        ``"k-means||"``: scalable k-means++ (Bahmani et al. 2012): ``n_rounds`` rounds of
        oversampled D²-sampling, then weighted k-means++ and a few Lloyd iterations on the
        candidates; ``n_rounds + 2`` passes over X however large k is. Better when n·k is large
        (benchmarks/RESULTS.md compares the two), and the init to use on Dask.
        ``"random"``: ``n_clusters`` distinct rows, chosen with probability ∝ sample weight.
        An array: the initial centers (a NumPy array, a list or an array of X's library).
        A callable: ``init(X, n_clusters, random_state)`` returning such an array.
    n_init : "auto" or int, default "auto"
        Independent runs; the one with the lowest inertia is kept. "auto" is 1 for k-means++,
        k-means|| and explicit arrays, 10 for "random" and callables.
    max_iter : int, default 300
        Maximum Lloyd iterations per run.
    tol : float, default 1e-4
        Convergence threshold on the squared center shift Σ‖c_new − c‖², relative to the mean
        per-feature variance of X. A run also stops as soon as no label changes.
    verbose : int, default 0
        If positive, print one line per iteration (inertia, center shift) and why a run stopped.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Randomness is drawn on the host, so one seed gives the same start on every backend.
    copy_x : bool, default True
        Accepted so that scikit-learn code runs unchanged; both values behave the same. X is
        never modified (scikit-learn's ``copy_x=False`` centers X in place during the fit; here
        rows are centered as they are read, see Notes).
    algorithm : {"auto", "lloyd", "hamerly", "elkan"}, default "auto"
        How each Lloyd iteration finds the nearest centers; all give the same iterations (labels
        may differ only at genuine near-ties). ``"lloyd"``: every distance, by blocked GEMM.
        ``"hamerly"``: triangle-inequality bounds (one upper, one lower per point, O(n) memory)
        skip the rows that cannot change cluster; distances for the bounds are taken in float64.
        ``"elkan"`` is accepted for scikit-learn code and runs ``"hamerly"``. ``"auto"``:
        ``"hamerly"`` on a CPU, ``"lloyd"`` on a GPU (where the dense GEMM is cheaper than the
        gathers pruning needs).
    oversampling_factor : float, default 2.0
        k-means|| only: each round keeps about ``oversampling_factor * n_clusters`` candidates
        (ℓ in the paper).
    n_rounds : int, default 5
        k-means|| only: rounds of oversampled sampling (the paper finds 5 enough for ℓ = 2k).
    matmul_precision : {"auto", "highest", "high", "tf32x3"}, default "auto"
        Precision of the distance products on a GPU (the middle two are PyTorch's names).
        ``"highest"``: float32 products. ``"high"``: TF32 tensor-core products, several times
        faster on Ampere and later GPUs. ``"tf32x3"``: each float32 operand split into a TF32
        head and tail, three TF32 products in one GEMM of depth 3·n_features — about float32's
        accuracy (few rows rescored) at tensor-core speed. ``"auto"``: ``"tf32x3"`` for float32
        CuPy arrays, and torch CUDA tensors where CuPy is installed (they run its kernels), on an
        Ampere or later GPU with at least 256 clusters, where it was measured faster, else
        ``"highest"`` (torch CUDA without CuPy and X streamed from the host included). Whatever
        the mode, the labels are *certified*: a row
        whose two nearest centers are too close to call at that precision is scored again in
        float64, so labels equal a float64 argmin (see Notes); ``inertia_`` is computed exactly
        at the end. No effect on a CPU or for float64 data.
    device : None, "cuda", "cuda:N", "cpu", torch.device or cupy.cuda.Device, default None
        Where the fit computes. None: where X lives (a CuPy array fits on its GPU). Otherwise X
        must be a NumPy array or ``numpy.memmap`` on the host: it is copied to the device once
        when it fits there, or streamed to it in row blocks every pass when it does not (copies
        double-buffered behind the computation; a streamed in-RAM X is page-locked in place for
        the fit, a memmap goes through pinned staging buffers). ``"cuda"`` uses CuPy when it
        sees a GPU, else PyTorch; a ``torch.device`` or ``cupy.cuda.Device`` names the library
        too. The fitted arrays come back as NumPy arrays. Not for Dask arrays (nor are the
        tensor-core ``matmul_precision`` modes): a Dask fit computes where its chunks are.
    max_device_bytes : int, optional
        With ``device``: the device memory the fit may use (default: the free memory). X is
        streamed when it does not fit beside the fit's own state (about 32 bytes per row) and
        one pass's working memory; a small value forces streaming.

    Attributes
    ----------
    cluster_centers_ : array of shape (n_clusters, n_features)
        In X's library, on X's device, in X's floating dtype.
    labels_ : int64 array of shape (n_samples,)
        Index of the nearest center of each training point (for the final centers).
    inertia_ : float
        Σ w·‖x − c_label‖² over the training data, computed directly.
    n_iter_ : int
        Lloyd iterations of the best run.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : numpy.ndarray of str
        The column names of a DataFrame X, when all are strings (as in scikit-learn); new data
        for ``predict``, ``transform`` and ``score`` must then have the same names.

    Notes
    -----
    *Arrays in, arrays out.* X may be a NumPy, CuPy, PyTorch (any device) or array-api-strict
    array; other inputs (lists, pandas) are converted with NumPy. ``transform`` returns a pandas
    or polars DataFrame for NumPy results after ``set_output(transform="pandas")`` (or
    ``"polars"``), with ``get_feature_names_out()`` (``kmeans0``, ``kmeans1``, ...) as columns.
    ``sample_weight`` and an explicit ``init`` may be Python sequences, NumPy arrays or arrays of
    X's library (copied to X's device); an array of another device library raises
    ``TypeError``. ``predict``,
    ``transform`` and ``score`` accept arrays of any supported library: the centers are copied to
    that library and device once and cached.

    *Scale.* A ``numpy.memmap`` X is read block by block, never copied, and its file pages are
    released as the fit reads them (files larger than RAM fit in bounded memory). A Dask array X
    is fitted by one map-reduce over its row chunks per iteration (``init="k-means||"``,
    ``"random"`` or explicit centers; ``labels_`` is a Dask array, ``predict`` and ``transform``
    stay lazy, ``score`` computes).

    *Numerics.* float32 input stays float32, float64 stays float64; boolean, integer and float16
    input becomes the library's default float. Distances are computed on data centered by the
    training mean (X itself is not copied); sums and inertia accumulate in float64 where the
    device has it.
    On a GPU (CuPy, or PyTorch CUDA tensors) every assignment of float32 data is certified: each
    row's score error has a proven bound (``kmeans_xp._core.certified``), and the rows whose
    best and second-best centers lie within twice that bound are scored again in float64 — typically
    under 0.2 % of rows with float32 products, more with TF32 while the centers still move. GPU
    k-means libraries that skip this step label 0.07–0.1 % of points wrongly. A pass that runs
    out of device memory is run again with half the rows per block.

    Examples
    --------
    >>> import numpy as np
    >>> from kmeans_xp import KMeans
    >>> X = np.array([[1.0, 2.0], [1.0, 4.0], [1.0, 0.0], [10.0, 2.0], [10.0, 4.0], [10.0, 0.0]])
    >>> km = KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(km.cluster_centers_.tolist())
    [[1.0, 2.0], [10.0, 2.0]]
    >>> km.inertia_
    16.0
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | Array | Callable = "k-means++",
        n_init: int | str = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        verbose: int = 0,
        random_state: Any = None,
        copy_x: bool = True,
        algorithm: str = "auto",
        oversampling_factor: float = 2.0,
        n_rounds: int = 5,
        matmul_precision: str = "auto",
        device: Any = None,
        max_device_bytes: int | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.copy_x = copy_x
        self.algorithm = algorithm
        self.oversampling_factor = oversampling_factor
        self.n_rounds = n_rounds
        self.matmul_precision = matmul_precision
        self.device = device
        self.max_device_bytes = max_device_bytes

    # ---- fitting -----------------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> KMeans:
        """Compute the clustering of X.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
        y : ignored
            Present for scikit-learn's API.
        sample_weight : array of shape (n_samples,), optional
            Non-negative weights, not all zero; used in init, update and inertia.

        Returns
        -------
        self : KMeans
        """
        return self._fit_with_progress(X, sample_weight)

    def _fit_with_progress(
        self, X: Any, sample_weight: Any, on_iteration: Callable[[int, int], None] | None = None
    ) -> KMeans:
        """``fit``, with the per-iteration hook the command line's progress bar uses."""
        check_flag(self.copy_x, "copy_x")
        names = feature_names_of(X)
        if is_dask_collection(X):
            self._fit_dask(X, sample_weight)
        else:
            with bounded_residency(X):
                self._fit_in_memory(X, sample_weight, on_iteration)
        self._set_feature_names(names)
        return self

    def _check_params(self) -> None:
        """Every parameter checked as ``fit`` checks it (``load`` checks a file's this way)."""
        self._settings()
        check_flag(self.copy_x, "copy_x")
        if self.max_device_bytes is not None:
            check_integer(self.max_device_bytes, "max_device_bytes", minimum=1)

    def _settings(self) -> FitSettings:
        """The parameters, checked (``params.check_fit_settings``)."""
        return check_fit_settings(
            n_clusters=self.n_clusters,
            init=self.init,
            n_init=self.n_init,
            max_iter=self.max_iter,
            tol=self.tol,
            verbose=self.verbose,
            random_state=self.random_state,
            algorithm=self.algorithm,
            oversampling_factor=self.oversampling_factor,
            n_rounds=self.n_rounds,
            matmul_precision=self.matmul_precision,
        )

    def _fit_in_memory(
        self, X: Any, sample_weight: Any, on_iteration: Callable[[int, int], None] | None
    ) -> KMeans:
        result, data = _fit(
            X,
            sample_weight,
            self._settings(),
            device=self.device,
            max_device_bytes=self.max_device_bytes,
            on_iteration=on_iteration,
        )
        # The training mean: predict centers new data the same way fit did, so that
        # predict(X_train) reproduces labels_ exactly.
        self._set_fitted(result, n_features=data.X.shape[1], offset=data.offset)
        return self

    def _fit_dask(self, X: Any, sample_weight: Any) -> KMeans:
        """``fit`` on a Dask array: one map-reduce over the chunks per Lloyd iteration."""
        settings = self._settings()
        explicit = not isinstance(self.init, str) and not callable(self.init)
        # One init on Dask ("auto" means 1 there): each init costs passes over the cluster.
        if self.n_init != "auto" and settings.n_init != 1 and not explicit:
            msg = f"n_init={self.n_init!r}: a Dask fit runs one init; use n_init='auto' or 1."
            raise ValueError(msg)
        if settings.precision not in ("auto", "highest") or self.device is not None:
            msg = (
                f"matmul_precision={self.matmul_precision!r} and device={self.device!r} apply to "
                "in-memory X; a Dask fit computes where its chunks are (CuPy chunks under "
                "dask-cuda: float32 products, labels certified)."
            )
            raise ValueError(msg)
        centers, labels, inertia, n_iter, offset = fit_dask(X, sample_weight, settings)
        result = KMeansResult(centers, labels, inertia, n_iter)
        self._set_fitted(result, n_features=X.shape[1], offset=offset)
        return self

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> Array:
        """Fit, then return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_
