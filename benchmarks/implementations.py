"""The implementations the harness compares, each behind the same small interface.

``prepare(X, C0)`` moves the data where the implementation wants it (not timed);
``iterate(n)`` runs exactly ``n`` Lloyd iterations from ``C0`` (fewer only if the implementation
stops at strict convergence, which it reports) and returns the centers as NumPy;
``default_fit(k, seed)`` runs the implementation's default end-to-end fit and returns its inertia.
A missing library makes ``missing()`` return a reason, and the harness skips it with a note.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np


def _missing_module(name: str) -> str | None:
    try:
        importlib.import_module(name)
    except Exception as exc:  # ImportError, or a GPU library without a GPU
        return f"{name} not importable ({type(exc).__name__})"
    return None


class Implementation:
    name = "?"
    kind = "peer"  # "kmeans_xp", "peer" or "floor"
    supports_default_fit = False

    def missing(self) -> str | None:
        return None

    def fits(self, n: int, d: int, k: int) -> str | None:
        """A reason to skip this shape (e.g. memory), or None."""
        return None

    def prepare(self, X: np.ndarray, C0: np.ndarray) -> None:
        self.X, self.C0 = X, C0

    def synchronize(self) -> None:
        pass

    def iterate(self, n_iter: int) -> tuple[np.ndarray, int]:
        raise NotImplementedError

    def default_fit(self, k: int, seed: int) -> float:
        raise NotImplementedError

    # Set by implementations that can label given points for given centers (the GPU label check).
    assign = None


# ---- kmeans_xp ---------------------------------------------------------------------------------


class KMeansXP(Implementation):
    kind = "kmeans_xp"
    supports_default_fit = True

    def __init__(
        self,
        backend: str,
        precision: str = "auto",
        *,
        small_pass: bool = True,
        mma: bool = False,
    ):
        self.backend = backend
        self.precision = precision
        self.small_pass = small_pass
        self.mma = mma
        suffix = "" if precision == "auto" else f", {precision}"  # the default unnamed
        suffix += "" if small_pass else ", gemm"
        suffix += ", mma" if mma else ""
        self.name = f"kmeans_xp[{backend}{suffix}]"

    def fits(self, n: int, d: int, k: int) -> str | None:
        # mma runs the tensor-core kernel at every shape, the small pass's too
        if self.small_pass:
            return None
        from kmeans_xp._backends import cuda_launch

        if cuda_launch.small_pass(d, k, np.float32, accumulate=True) is None:
            return "no fused pass at this shape: the same kernels as kmeans_xp[cupy]"
        return None

    def _kernels(self):
        """The CuPy backend's choice of kernels for this peer: ``small_pass=False`` sends every
        shape through cuBLAS, as before the fused small-k·d pass (``cupy:gemm``); ``mma`` turns
        the tensor-core kernel ``assign_mma`` on (``cupy:tf32x3:mma``), which then takes the
        small-k·d shapes too (its sums by ``segment_sum``)."""
        from kmeans_xp._lib.options import pass_options

        return pass_options(small_pass=self.small_pass, mma=self.mma)

    def missing(self) -> str | None:
        if self.backend == "numpy":
            return None
        if self.backend == "cupy":
            reason = _missing_module("cupy")
            if reason:
                return reason
            import cupy

            try:
                return None if cupy.cuda.runtime.getDeviceCount() > 0 else "no CUDA device"
            except Exception:
                return "no CUDA device"
        reason = _missing_module("torch")
        if reason or self.backend == "torch":
            return reason
        import torch

        return None if torch.cuda.is_available() else "no CUDA device"

    def _to_backend(self, a: np.ndarray):
        if self.backend == "numpy":
            return a
        if self.backend == "cupy":
            import cupy

            return cupy.asarray(a)
        import torch

        return torch.asarray(a, device="cuda" if self.backend == "torch_cuda" else "cpu")

    def prepare(self, X: np.ndarray, C0: np.ndarray) -> None:
        self.X, self.C0 = self._to_backend(X), self._to_backend(C0)

    def synchronize(self) -> None:
        if self.backend == "cupy":
            import cupy

            cupy.cuda.Device().synchronize()
        elif self.backend == "torch_cuda":
            import torch

            torch.cuda.synchronize()

    def iterate(self, n_iter: int) -> tuple[np.ndarray, int]:
        from kmeans_xp import ConvergenceWarning, KMeans
        from kmeans_xp._lib.compat import to_numpy

        with warnings.catch_warnings(), self._kernels():
            # A fixed iteration count may stop with a momentarily empty cluster: expected here.
            warnings.simplefilter("ignore", ConvergenceWarning)
            km = KMeans(
                self.C0.shape[0], init=self.C0, max_iter=n_iter, tol=0,
                matmul_precision=self.precision,
            ).fit(self.X)  # fmt: skip
        return to_numpy(km.cluster_centers_), km.n_iter_

    def assign(self, X: np.ndarray, centers: np.ndarray) -> np.ndarray:
        """Labels of X's rows for ``centers``, by the pass a fit uses (centered by X's mean)."""
        from kmeans_xp._algorithms.lloyd import labels_and_inertia
        from kmeans_xp._backends import resolve_precision
        from kmeans_xp._lib.budget import block_rows_for
        from kmeans_xp._lib.compat import get_namespace, itemsize, to_numpy

        X_dev = self._to_backend(X)
        xp = get_namespace(X_dev)
        rows = block_rows_for(
            X.shape[0], X.shape[1], centers.shape[0], itemsize(X_dev, xp), xp=xp,
            device=X_dev.device if self.backend != "numpy" else "cpu",
        )  # fmt: skip
        with self._kernels():
            labels, _ = labels_and_inertia(
                X_dev, self._to_backend(centers), None,
                offset=self._to_backend(X.mean(axis=0, dtype=np.float64).astype(X.dtype)),
                block_rows=rows, xp=xp,
                precision=resolve_precision(self.precision, X_dev, centers.shape[0], xp=xp),
            )  # fmt: skip
        return to_numpy(labels)

    def default_fit(self, k: int, seed: int, init: str = "k-means++") -> float:
        from kmeans_xp import KMeans

        km = KMeans(n_clusters=k, init=init, random_state=seed, matmul_precision=self.precision)
        with self._kernels():
            return km.fit(self.X).inertia_


# ---- CPU peers ---------------------------------------------------------------------------------


class SklearnKMeans(Implementation):
    supports_default_fit = True

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self.name = f"sklearn-{algorithm}"

    def missing(self) -> str | None:
        return _missing_module("sklearn")

    def iterate(self, n_iter: int) -> tuple[np.ndarray, int]:
        from sklearn.cluster import KMeans
        from sklearn.exceptions import ConvergenceWarning

        estimator = KMeans(
            self.C0.shape[0], init=self.C0, n_init=1, max_iter=n_iter, tol=0,
            algorithm=self.algorithm,
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # as for kmeans_xp
            km = estimator.fit(self.X)
        return km.cluster_centers_, km.n_iter_

    def default_fit(self, k: int, seed: int) -> float:
        from sklearn.cluster import KMeans

        return (
            KMeans(n_clusters=k, random_state=seed, algorithm=self.algorithm).fit(self.X).inertia_
        )


class FaissKMeans(Implementation):
    name = "faiss"

    def missing(self) -> str | None:
        return _missing_module("faiss")

    def iterate(self, n_iter: int) -> tuple[np.ndarray, int]:
        import faiss

        n, d = self.X.shape
        k = self.C0.shape[0]
        # No subsampling: every point takes part in every iteration, as in the others.
        km = faiss.Kmeans(
            d,
            k,
            niter=n_iter,
            max_points_per_centroid=n // k + 1,
            min_points_per_centroid=1,
            seed=0,
            verbose=False,
        )
        km.train(self.X, init_centroids=self.C0)
        return np.asarray(km.centroids), n_iter


class ScipyKMeans2(Implementation):
    name = "scipy-kmeans2"

    def missing(self) -> str | None:
        return _missing_module("scipy")

    def iterate(self, n_iter: int) -> tuple[np.ndarray, int]:
        from scipy.cluster.vq import kmeans2

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "One of the clusters is empty"
            centers, _ = kmeans2(self.X, self.C0, iter=n_iter, minit="matrix")
        return centers, n_iter


class TutorialCode(Implementation):
    """The seed tutorial's own loop: an n×k×d broadcast, then a Python loop over clusters."""

    name = "tutorial"
    max_temporary_bytes = 4 * 2**30

    def fits(self, n: int, d: int, k: int) -> str | None:
        need = 2 * n * k * d * 4  # the difference array and its square
        if need > self.max_temporary_bytes:
            return f"its n*k*d temporary needs {need / 2**30:.0f} GiB"
        return None

    def iterate(self, n_iter: int) -> tuple[np.ndarray, int]:
        X, centroids = self.X, self.C0
        k = centroids.shape[0]
        for _ in range(n_iter):
            distances = np.linalg.norm(X[:, np.newaxis] - centroids, axis=2)
            labels = np.argmin(distances, axis=1)
            new = [
                X[labels == i].mean(axis=0) if np.any(labels == i) else centroids[i]
                for i in range(k)
            ]
            centroids = np.array(new)
        return centroids, n_iter


# ---- GPU peers ---------------------------------------------------------------------------------


class _TorchCudaPeer(Implementation):
    """A peer that runs on PyTorch CUDA tensors (and needs ``module`` installed, if named)."""

    module: str | None = None

    def missing(self) -> str | None:
        return (self.module and _missing_module(self.module)) or KMeansXP("torch_cuda").missing()

    def prepare(self, X: np.ndarray, C0: np.ndarray) -> None:
        import torch

        self.X = torch.asarray(X, device="cuda")
        self.C0 = torch.asarray(C0, device="cuda")

    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize()


class PlainTorch(_TorchCudaPeer):
    """The usual PyTorch Lloyd step: matmul + argmin + index_add_ (DESIGN.md's baseline)."""

    name = "torch-plain"

    def iterate(self, n_iter: int) -> tuple[np.ndarray, int]:
        import torch

        X, C = self.X, self.C0
        k = C.shape[0]
        ones = torch.ones(X.shape[0], device=X.device, dtype=X.dtype)
        for _ in range(n_iter):
            labels = ((C * C).sum(1)[None, :] - 2.0 * (X @ C.T)).argmin(1)
            sums = torch.zeros_like(C).index_add_(0, labels, X)
            counts = torch.zeros(k, device=X.device, dtype=X.dtype).index_add_(0, labels, ones)
            C = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], C)
        return C.cpu().numpy(), n_iter

    def assign(self, X: np.ndarray, centers: np.ndarray) -> np.ndarray:
        import torch

        X_dev = torch.asarray(X, device="cuda")
        C = torch.asarray(centers, device="cuda")
        return ((C * C).sum(1)[None, :] - 2.0 * (X_dev @ C.T)).argmin(1).cpu().numpy()


class NaiveCupy(Implementation):
    """The obvious CuPy Lloyd step: GEMM + argmin + ``cupyx.scatter_add`` (DESIGN.md's row)."""

    name = "cupy-naive"

    def missing(self) -> str | None:
        return KMeansXP("cupy").missing()

    def prepare(self, X: np.ndarray, C0: np.ndarray) -> None:
        import cupy

        self.X, self.C0 = cupy.asarray(X), cupy.asarray(C0)

    def synchronize(self) -> None:
        import cupy

        cupy.cuda.Device().synchronize()

    def iterate(self, n_iter: int) -> tuple[np.ndarray, int]:
        import cupy
        import cupyx

        X, C = self.X, self.C0
        k = C.shape[0]
        for _ in range(n_iter):
            labels = ((C * C).sum(1)[None, :] - 2.0 * (X @ C.T)).argmin(1)
            sums = cupy.zeros_like(C)
            cupyx.scatter_add(sums, labels, X)
            counts = cupy.bincount(labels, minlength=k).astype(X.dtype)
            C = cupy.where(counts[:, None] > 0, sums / cupy.maximum(counts, 1)[:, None], C)
        return C.get(), n_iter

    def assign(self, X: np.ndarray, centers: np.ndarray) -> np.ndarray:
        import cupy

        X_dev, C = cupy.asarray(X), cupy.asarray(centers)
        return ((C * C).sum(1)[None, :] - 2.0 * (X_dev @ C.T)).argmin(1).get()


class FlashKMeans(_TorchCudaPeer):
    """flash-kmeans' ``batch_kmeans_Euclid`` (Triton; its float32 dot products run in TF32)."""

    name = "flash-kmeans"
    module = "flash_kmeans"

    def prepare(self, X: np.ndarray, C0: np.ndarray) -> None:
        super().prepare(X, C0)
        self.X, self.C0 = self.X[None], self.C0[None]  # a batch of one

    def iterate(self, n_iter: int) -> tuple[np.ndarray, int]:
        from flash_kmeans import batch_kmeans_Euclid

        # tol=0: its test is `shift < tol`, so every iteration runs.
        _, centers, done = batch_kmeans_Euclid(
            self.X, self.C0.shape[1], max_iters=n_iter, tol=0.0, init_centroids=self.C0.clone()
        )
        return centers[0].cpu().numpy(), int(done)

    def assign(self, X: np.ndarray, centers: np.ndarray) -> np.ndarray:
        import torch
        from flash_kmeans.assign_euclid_triton import euclid_assign_triton

        X_dev = torch.asarray(X, device="cuda")[None]
        C = torch.asarray(centers, device="cuda")[None]
        return euclid_assign_triton(X_dev, C, (X_dev * X_dev).sum(-1))[0].cpu().numpy()


class FastPytorchKMeans(_TorchCudaPeer):
    """fast-pytorch-kmeans' ``KMeans`` (GEMM + argmax of similarity, one-hot GEMM update)."""

    name = "fast-pytorch-kmeans"
    module = "fast_pytorch_kmeans"

    def fits(self, n: int, d: int, k: int) -> str | None:
        # Its update is a dense (k, n) one-hot matrix times X.
        import torch

        free, _ = torch.cuda.mem_get_info()
        need = 4 * n * k * 2 + 4 * n * d
        return None if need < free * 0.8 else f"needs {need / 2**30:.0f} GiB (a dense k-by-n mask)"

    def iterate(self, n_iter: int) -> tuple[np.ndarray, int]:
        from fast_pytorch_kmeans import KMeans

        km = KMeans(self.C0.shape[0], max_iter=n_iter, tol=-1.0, mode="euclidean")
        km.fit(self.X, centroids=self.C0.clone())
        return km.centroids.cpu().numpy(), n_iter

    def assign(self, X: np.ndarray, centers: np.ndarray) -> np.ndarray:
        import torch
        from fast_pytorch_kmeans import KMeans

        km = KMeans(centers.shape[0], mode="euclidean")
        km.centroids = torch.asarray(centers, device="cuda")
        return km.predict(torch.asarray(X, device="cuda")).cpu().numpy()


# ---- the floor ---------------------------------------------------------------------------------


class GemmFloor(Implementation):
    """One X @ C.T of the iteration's shape: the least any GEMM-based iteration can cost.

    ``tf32``: with TF32 tensor cores; ``split`` too: of depth 3d, as ``matmul_precision="tf32x3"``
    takes its products (operands three times as wide; their values do not matter for the time).
    """

    kind = "floor"

    def __init__(self, backend: str = "numpy", tf32: bool = False, split: bool = False) -> None:
        self.backend = backend
        self.tf32 = tf32 or split
        self.split = split
        mode = ", tf32x3" if split else ", tf32" if tf32 else ""
        self.name = f"GEMM[{backend}{mode}]"

    def missing(self) -> str | None:
        return KMeansXP(self.backend).missing()

    def prepare(self, X: np.ndarray, C0: np.ndarray) -> None:
        self.impl = KMeansXP(self.backend)
        self.impl.prepare(X, C0)
        # The operands as X and C0, which the harness drops after the row (device memory).
        self.X, self.C0 = self.impl.X, self.impl.C0
        self.impl.X = self.impl.C0 = None
        if self.split:
            import torch

            self.X, self.C0 = (torch.cat([a, a, a], dim=1) for a in (self.X, self.C0))

    def synchronize(self) -> None:
        self.impl.synchronize()

    def iterate(self, n_iter: int) -> tuple[np.ndarray, int]:
        X, C = self.X, self.C0
        if self.tf32:
            import torch

            torch.backends.cuda.matmul.allow_tf32 = True
        try:
            for _ in range(n_iter):
                X @ C.T
        finally:
            if self.tf32:
                torch.backends.cuda.matmul.allow_tf32 = False
        return None, n_iter


def by_name(name: str) -> Implementation:
    """An implementation from its report name, e.g. ``kmeans_xp[numpy]`` or ``sklearn-lloyd``."""
    if name.startswith("kmeans_xp[") and name.endswith("]"):
        return backend_impl(name[len("kmeans_xp[") : -1].replace(", ", ":"))
    table = {
        "sklearn-lloyd": lambda: SklearnKMeans("lloyd"),
        "sklearn-elkan": lambda: SklearnKMeans("elkan"),
        "faiss": FaissKMeans,
        "scipy": ScipyKMeans2,
        "scipy-kmeans2": ScipyKMeans2,
        "tutorial": TutorialCode,
        "gemm": lambda: GemmFloor("numpy"),
        "torch-plain": PlainTorch,
        "cupy-naive": NaiveCupy,
        "flash-kmeans": FlashKMeans,
        "fast-pytorch-kmeans": FastPytorchKMeans,
        "gemm-tf32": lambda: GemmFloor("torch_cuda", tf32=True),
        "gemm-tf32x3": lambda: GemmFloor("torch_cuda", split=True),
    }
    return table[name]()


def backend_impl(spec: str) -> KMeansXP:
    """kmeans_xp from a ``--backends`` item: ``cupy`` (the default ``matmul_precision="auto"``),
    ``cupy:highest`` for float32 products, ``cupy:high`` / ``cupy:tf32x3`` for
    tensor-core products (``matmul_precision``), ``cupy:gemm`` for cuBLAS products at every
    shape (no fused small-k·d pass), ``cupy:high:mma`` / ``cupy:tf32x3:mma`` for tensor-core
    products fused with the best two (``assign_mma``, off by default)."""
    backend, *variants = spec.split(":")
    unknown = set(variants) - {"gemm", "mma", "high", "tf32x3", "highest"}
    if unknown:
        raise ValueError(f"unknown kmeans_xp variant in {spec!r}: {sorted(unknown)}")
    precision = next((v for v in variants if v not in ("gemm", "mma")), "auto")
    if "mma" in variants and precision not in ("high", "tf32x3"):
        raise ValueError(f"{spec!r}: mma takes TF32 products, name high or tf32x3 with it")
    return KMeansXP(backend, precision, small_pass="gemm" not in variants, mma="mma" in variants)


def implementations(mode: str, backends: list[str], peers: list[str]) -> list[Implementation]:
    """kmeans_xp on each backend, then the peers (KeyError for an unknown peer)."""
    impls: list[Implementation] = [backend_impl(b) for b in backends]
    for peer in peers:
        if peer == "gemm":  # the floor in the library the mode is about
            impls.append(GemmFloor("torch_cuda" if mode == "gpu" else "numpy"))
        else:
            impls.append(by_name(peer))
    return impls


CPU_PEERS = ["sklearn-lloyd", "sklearn-elkan", "faiss", "scipy", "tutorial", "gemm"]
GPU_PEERS = [
    "torch-plain",
    "cupy-naive",
    "fast-pytorch-kmeans",
    "flash-kmeans",
    "gemm",
    "gemm-tf32",
    "gemm-tf32x3",
]
