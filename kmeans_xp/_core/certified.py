"""Nearest-center assignment whose labels are those of an exact (float64) argmin.

The GEMM form of the squared distance, ‖c‖² − 2·x·c, computed in float32 — and more so with TF32
tensor-core products — can pick the wrong center when two centers are almost equally near: GPU
k-means libraries that skip this get a fraction of a percent of labels wrong (benchmarks/RESULTS.md
counts them). Here every row's score error has an a-priori bound, ``a·‖x‖ + b`` for all centers at
once (``score_error_coefficients``); a row whose best and second-best scores are within twice that
bound is *ambiguous* and is scored again in float64. Every other row's label is provably the argmin
of the exact scores, so all labels are the float64 argmin, up to ties in float64 itself.

``CertifiedAssign`` is the standard-only version (and the reference the CuPy kernel is tested
against); it is what GPU namespaces use when no library-specific version is available.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from .._lib.compat import Array, accumulation_dtype, array_device, itemsize
from .primitives import squared_norms

# "highest": float32 products; "high": TF32 tensor-core products; "tf32x3": three TF32 products
# of split operands (``split_for_tf32``), float32-like accuracy at tensor-core speed.
PRECISIONS = ("highest", "high", "tf32x3")
TENSOR_CORE_PRECISIONS = ("high", "tf32x3")
# What ``matmul_precision`` accepts: one of the modes, or "auto" (the default), which a fit
# resolves to one of them for its data and device (``_backends.resolve_precision``).
MATMUL_PRECISIONS = ("auto", *PRECISIONS)

# Unit roundoff of the dtype the scores are computed in.
_UNIT_ROUNDOFF = {4: 2.0**-24, 8: 2.0**-53}
# TF32 keeps 10 of float32's 23 mantissa bits. cuBLAS does not document how tensor cores convert
# their float32 inputs, so truncation is assumed: relative error below 2**-10 per input.
TF32_INPUT_ERROR = 2.0**-10
# Tensor cores accumulate in float32 but need not round to nearest (on V100/A100 they were found
# to truncate while aligning the addends), so their sums are allowed 2 units in the last place
# per addition instead of half of one.
TENSOR_CORE_ACCUMULATION_ROUNDOFF = 2.0**-22
# Veltkamp's splitting factor 2**13 + 1: float32's 24-bit significand into a head of 11 bits
# (exactly representable in TF32) and a tail.
_SPLIT_FACTOR = 2.0**13 + 1.0
# Covers the rounding in ‖x‖ (computed in X's dtype) and in the bound's own arithmetic, both a
# few units of d·u relative, far below this.
_MARGIN = 1.0 + 2.0**-6
# Stands for "no bound" (finite, so that a·‖x‖ stays 0 for x = 0 instead of NaN).
_NO_BOUND = 2.0**60
# Rows scored again in float64 at once: (rows × k) float64 scores of at most this many elements.
_RECHECK_ELEMENTS = 2**22


def score_error_coefficients(
    n_features: int, dtype_itemsize: int, precision: str, center_norm_max: float
) -> tuple[float, float]:
    """(a, b) such that every computed score is within a·‖x‖ + b of its exact value.

    A score ‖c‖² − 2·x·c is computed as fl(fl(‖c‖²) − 2·fl(x·c)), with ‖c‖² rounded from
    float64. With u the unit roundoff, γ_n(u) = n·u / (1 − n·u), and ε = ``TF32_INPUT_ERROR``:

    - the dot product, accumulated in any order: |error| ≤ (δ + γ)·Σ|x_i c_i| ≤ (δ + γ)‖x‖‖c‖,
      where δ is the error of the inputs and γ that of the accumulation:

      - "highest" (float32 products): δ = 0, γ = γ_d(u);
      - "high" (TF32): each input within ε, so δ = 2ε + ε², and γ = γ_d(u_tc) with
        u_tc = ``TENSOR_CORE_ACCUMULATION_ROUNDOFF``;
      - "tf32x3" (x = h + l, ``split_for_tf32``; x·c ≈ h_x·h_c + h_x·l_c + l_x·h_c): heads are
        exact in TF32, |l| ≤ ε|x| and |h| ≤ (1 + ε)|x|, so the tails' conversion and the dropped
        l_x·l_c give δ = 2ε²(1 + ε) + ε²; the 3d terms sum to at most
        (1 + ε)²(1 + 2ε)·Σ|x_i c_i|, so γ = γ_3d(u_tc)·(1 + ε)²(1 + 2ε).

    - ‖c‖² rounded to X's dtype: ≤ u‖c‖²
    - the subtraction: ≤ u·|score| ≤ u(‖c‖² + 2‖x‖‖c‖)

    so a = 2(δ + γ + u)·C and b = 2u·C², with C = max ‖c_j‖ (times a small margin).
    """
    u = _UNIT_ROUNDOFF[dtype_itemsize]
    eps = TF32_INPUT_ERROR

    def gamma(n: int, roundoff: float) -> float:
        if n * roundoff >= 0.5:  # millions of features: no useful bound, every row is rescored
            return _NO_BOUND
        return n * roundoff / (1.0 - n * roundoff)

    if precision == "high":
        delta = 2.0 * eps + eps**2
        accumulation = gamma(n_features, TENSOR_CORE_ACCUMULATION_ROUNDOFF)
    elif precision == "tf32x3":
        delta = 2.0 * eps**2 * (1.0 + eps) + eps**2
        terms = (1.0 + eps) ** 2 * (1.0 + 2.0 * eps)
        accumulation = gamma(3 * n_features, TENSOR_CORE_ACCUMULATION_ROUNDOFF) * terms
    else:
        delta, accumulation = 0.0, gamma(n_features, u)
    a = 2.0 * (delta + accumulation + u) * center_norm_max * _MARGIN
    b = 2.0 * u * center_norm_max**2 * _MARGIN
    return a, b


def check_precision(precision: object) -> str:
    """Validate the ``matmul_precision`` parameter ("auto" or one of ``PRECISIONS``)."""
    if precision not in MATMUL_PRECISIONS:
        msg = (
            f"matmul_precision must be one of {MATMUL_PRECISIONS}; "
            f"got matmul_precision={precision!r}."
        )
        raise ValueError(msg)
    return precision  # type: ignore[return-value]


def split_for_tf32(A: Array, *, xp: ModuleType, tail_at: int) -> Array:
    """(m, 3d) operand of a "tf32x3" product: each float32 x = h + l exactly, with h exact in TF32
    and |l| ≤ 2⁻¹¹|x| (Veltkamp's splitting, round to nearest; standard arithmetic only).

    The three d-wide column groups hold h, h and h, except group ``tail_at`` which holds l: rows
    of X use ``tail_at=2`` and centers ``tail_at=1``, so one product of K = 3d gives
    h_x·h_c + h_x·l_c + l_x·h_c. A library's bitwise version (clearing 13 mantissa bits) is as
    good: the error bound assumes only |l| ≤ 2⁻¹⁰|x|.
    """
    scaled = A * _SPLIT_FACTOR
    head = scaled - (scaled - A)
    tail = A - head
    groups = [head, head, head]
    groups[tail_at] = tail
    return xp.concat(groups, axis=1)


class CertifiedAssign:
    """``assign_block`` for one set of centered centers, with ambiguous rows scored in float64.

    Call it on centered row blocks; it returns (labels, partial squared distances) like
    ``primitives.assign_block``. Only float32 data are certified: in float64 the scores already
    are what the certificate would recompute.

    Parameters
    ----------
    centers : array of shape (k, d), float32 or float64, centered like the blocks
    xp : namespace
    precision : {"highest", "high", "tf32x3"}
        "high" when ``matmul`` may use TF32 products (the bound widens accordingly); "tf32x3"
        when it does, and the products are to be taken of split operands (``split_for_tf32``).
    matmul : callable, optional
        ``matmul(A, B)`` for the block's products (a library's TF32 switch); ``xp.matmul`` if None.
    best_two : callable, optional
        ``best_two(scores) -> (labels, best, second)`` along the last axis (a library's top-k);
        the standard-only ``best_two`` if None.
    """

    def __init__(
        self,
        centers: Array,
        *,
        xp: ModuleType,
        precision: str = "highest",
        matmul: Callable[[Array, Array], Array] | None = None,
        best_two: Callable[[Array], tuple[Array, Array, Array]] | None = None,
    ) -> None:
        self.xp = xp
        self.matmul = matmul or xp.matmul
        self.best_two = best_two or (lambda scores: standard_best_two(scores, xp=xp))
        device = array_device(centers)
        wide = accumulation_dtype(xp, device)
        self.centers_wide = xp.astype(centers, wide)
        self.c_sq_wide = squared_norms(self.centers_wide, xp=xp)
        self.c_sq = xp.astype(self.c_sq_wide, centers.dtype)
        self.certify = itemsize(centers, xp) == 4 and wide != centers.dtype
        # Split operands only where the bound is for them: float32 data on a float64 device.
        self.split = self.certify and precision == "tf32x3"
        neg2_centers = -2.0 * centers  # exact: a power of two
        if self.split:
            neg2_centers = split_for_tf32(neg2_centers, xp=xp, tail_at=1)
        self.neg2_centers_t = neg2_centers.T
        self.a = self.b = 0.0
        if self.certify:
            norm_max = float(xp.sqrt(xp.max(self.c_sq_wide)))
            self.a, self.b = score_error_coefficients(centers.shape[1], 4, precision, norm_max)

    def __call__(self, X_block: Array) -> tuple[Array, Array]:
        xp = self.xp
        m, k = X_block.shape[0], self.c_sq.shape[0]
        operand = split_for_tf32(X_block, xp=xp, tail_at=2) if self.split else X_block
        scores = self.matmul(operand, self.neg2_centers_t) + self.c_sq[None, :]
        if not self.certify or k == 1:
            labels = xp.argmin(scores, axis=1)
            rows = xp.arange(m, dtype=labels.dtype, device=array_device(labels))
            return labels, xp.take(xp.reshape(scores, (-1,)), rows * k + labels, axis=0)
        labels, partial, second = self.best_two(scores)
        flagged = ambiguous(second - partial, squared_norms(X_block, xp=xp), self.a, self.b, xp=xp)
        if bool(xp.any(flagged)):
            new_labels, new_partial = self.rescore(X_block[flagged])
            labels[flagged] = xp.astype(new_labels, labels.dtype)
            partial[flagged] = new_partial
        return labels, partial

    def rescore(self, X_rows: Array) -> tuple[Array, Array]:
        """Labels and partial distances of some rows, scored in float64 (chunked)."""
        xp = self.xp
        k = self.c_sq_wide.shape[0]
        chunk = max(1, _RECHECK_ELEMENTS // k)
        labels, partial = [], []
        n_rows = X_rows.shape[0]
        for start in range(0, n_rows, chunk):
            rows = xp.astype(X_rows[start : min(start + chunk, n_rows), :], self.centers_wide.dtype)
            scores = self.c_sq_wide[None, :] - 2.0 * (rows @ self.centers_wide.T)
            labels.append(xp.argmin(scores, axis=1))
            partial.append(xp.astype(xp.min(scores, axis=1), X_rows.dtype))
        return xp.concat(labels), xp.concat(partial)


def standard_best_two(scores: Array, *, xp: ModuleType) -> tuple[Array, Array, Array]:
    """Per row: the argmin (first on ties), the minimum and the second-smallest value."""
    m, k = scores.shape
    labels = xp.argmin(scores, axis=1)
    rows = xp.arange(m, dtype=labels.dtype, device=array_device(labels))
    best = xp.take(xp.reshape(scores, (-1,)), rows * k + labels, axis=0)
    columns = xp.arange(k, dtype=labels.dtype, device=array_device(labels))
    second = xp.min(xp.where(columns[None, :] == labels[:, None], xp.inf, scores), axis=1)
    return labels, best, second


def ambiguous(gap: Array, x_sq_norms: Array, a: float, b: float, *, xp: ModuleType) -> Array:
    """Rows whose second-best score is within twice the error bound of the best.

    If the gap exceeds 2·(a‖x‖ + b), no other center's exact score can be below the best's: the
    best's computed score is at most a‖x‖ + b too high, every other at most that too low.
    """
    return gap <= 2.0 * (a * xp.sqrt(x_sq_norms) + b)
