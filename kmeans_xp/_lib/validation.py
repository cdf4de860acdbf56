"""Checks at the door: every argument is validated here once, with a message that names it.

The algorithm modules assume validated input (finite, 2-D, floating, on one device).
"""

from __future__ import annotations

import math
import numbers
from types import ModuleType
from typing import Any

import numpy as np

from .budget import row_blocks
from .compat import (
    Array,
    accumulation_dtype,
    array_device,
    as_supported_array,
    default_float,
    get_namespace,
    library_name,
    move_to,
    to_numpy,
)

RandomState = np.random.Generator | np.random.RandomState


def check_integer(value: Any, name: str, *, minimum: int) -> int:
    """An integer (not a bool) ``>= minimum``, returned as a Python int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        msg = f"{name} must be an integer, got {value!r} of type {type(value).__name__}."
        raise TypeError(msg)
    if value < minimum:
        msg = f"{name} must be >= {minimum}, got {name}={value!r}."
        raise ValueError(msg)
    return int(value)


def check_tolerance(tol: Any) -> float:
    return check_non_negative_real(tol, "tol")


def check_non_negative_real(value: Any, name: str) -> float:
    """A finite real number >= 0 (``tol``, ``reassignment_ratio``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"{name} must be a real number, got {value!r} of type {type(value).__name__}."
        raise TypeError(msg)
    if not np.isfinite(value) or value < 0:
        msg = f"{name} must be a finite number >= 0, got {name}={value!r}."
        raise ValueError(msg)
    return float(value)


def check_positive_real(value: Any, name: str) -> float:
    """A finite real number > 0 (e.g. ``oversampling_factor``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"{name} must be a real number, got {value!r} of type {type(value).__name__}."
        raise TypeError(msg)
    if not np.isfinite(value) or value <= 0:
        msg = f"{name} must be a finite number > 0, got {name}={value!r}."
        raise ValueError(msg)
    return float(value)


def check_random_state(random_state: Any) -> RandomState:
    """None, an int seed, a ``numpy.random.Generator`` or a ``RandomState`` -> a host generator.

    Randomness is always drawn on the host, so the same seed picks the same points on every
    backend.
    """
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.Generator | np.random.RandomState):
        return random_state
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            msg = f"random_state must be a non-negative integer seed, got {random_state!r}."
            raise ValueError(msg)
        return np.random.default_rng(int(random_state))
    msg = (
        "random_state must be None, an int, a numpy.random.Generator or a "
        f"numpy.random.RandomState, got {random_state!r}."
    )
    raise TypeError(msg)


def _working_dtype(A: Array, name: str, xp: ModuleType, device: Any) -> Any:
    """float32 and float64 stay; booleans, integers and half floats become the namespace's
    default float (booleans as 0 and 1, as scikit-learn reads them)."""
    dtype = A.dtype
    if isinstance(dtype, np.dtype) and dtype.kind not in "biuf" and dtype.kind != "c":
        msg = f"{name} must hold numbers, got dtype {dtype} ({type(A).__name__})."
        raise TypeError(msg)
    if xp.isdtype(dtype, "complex floating"):
        # ValueError, as scikit-learn raises for complex data.
        msg = f"Complex data not supported: {name} has complex dtype {dtype}; K-Means needs reals."
        raise ValueError(msg)
    if dtype == xp.float32 or dtype == xp.float64:
        return dtype
    if xp.isdtype(dtype, ("bool", "integral", "real floating")):
        return default_float(xp, device)
    msg = f"{name} has unsupported dtype {dtype}."  # pragma: no cover - exotic dtypes only
    raise TypeError(msg)


def _as_numbers(A: Array, source: Any, name: str) -> Array:
    """A NumPy object array (``source`` converted, e.g. a DataFrame of mixed or nullable column
    types) as float64, as scikit-learn converts it: pandas' missing values become NaN, which the
    finiteness check then reports. Any other array is returned as is."""
    if not (isinstance(A, np.ndarray) and A.dtype == object):
        return A
    try:
        if type(source).__module__.startswith("pandas"):
            return np.asarray(source.to_numpy(dtype=np.float64, na_value=np.nan))
        return A.astype(np.float64)
    except (TypeError, ValueError) as exc:
        msg = f"{name} has dtype object, and not every value is a number: {exc}"
        raise type(exc)(msg) from None


def check_frame_columns(frame: Any, name: str = "X") -> None:
    """Refuse a pandas or polars DataFrame (or a Dask DataFrame, whose column types are pandas')
    with columns that are not real numbers or booleans, naming them: converted, text would fail
    with a bare conversion error, and dates would be clustered as nanosecond counts. Anything
    else passes."""
    module = type(frame).__module__
    if module.startswith(("pandas", "dask")) and hasattr(frame, "dtypes"):
        from pandas.api import types

        columns = [
            (
                column,
                dtype,
                types.is_complex_dtype(dtype),
                types.is_bool_dtype(dtype) or types.is_numeric_dtype(dtype),
            )
            for column, dtype in getattr(frame.dtypes, "items", lambda: [])()
        ]
    elif module.startswith("polars") and hasattr(frame, "schema"):
        columns = [
            (column, dtype, False, dtype.is_numeric() or str(dtype) == "Boolean")
            for column, dtype in frame.schema.items()
        ]
    else:
        return
    complex_columns = ", ".join(f"{c!r} ({t})" for c, t, is_complex, _ in columns if is_complex)
    if complex_columns:
        msg = f"Complex data not supported: {name} has complex column(s) {complex_columns}."
        raise ValueError(msg)
    other = [f"{c!r} ({t})" for c, t, is_complex, real in columns if not (real or is_complex)]
    if other:
        msg = (
            f"{name} must hold numbers, but its column(s) {', '.join(other)} do not; encode or "
            "drop them before clustering."
        )
        raise TypeError(msg)


def check_data(X: Any, name: str = "X") -> tuple[Array, ModuleType, Any]:
    """Validate a data matrix; return it (floating, 2-D, non-empty) with its namespace and device.

    The caller's array is returned as is when it is already float32 or float64; otherwise a
    converted copy. Values are checked separately (``check_values``: finite, and of a magnitude
    whose squared distances the dtype holds), block by block.
    """
    check_frame_columns(X, name)
    X = _as_numbers(as_supported_array(X, name), X, name)
    xp = get_namespace(X)
    device = array_device(X)
    if X.ndim != 2:
        msg = (
            f"{name} must be a 2-D array of shape (n_samples, n_features), got an array with "
            f"{X.ndim} dimension(s) and shape {tuple(X.shape)}."
        )
        if X.ndim == 1:
            msg += (
                f" Reshape your data: {name}.reshape(-1, 1) if it is one feature, "
                f"{name}.reshape(1, -1) if it is one sample."
            )
        raise ValueError(msg)
    n_samples, n_features = X.shape
    for count, what in ((n_samples, "sample"), (n_features, "feature")):
        if count == 0:  # worded as scikit-learn words it
            msg = (
                f"{name} has 0 {what}(s) (shape={tuple(X.shape)}) while a minimum of 1 is required."
            )
            raise ValueError(msg)
    dtype = _working_dtype(X, name, xp, device)
    if X.dtype != dtype:
        X = xp.astype(X, dtype)
    return X, xp, device


def largest_magnitude(A: Array, name: str, *, xp: ModuleType, block_rows: int) -> float:
    """A's largest absolute value (by row blocks, one host sync); ValueError if A holds NaN or
    infinity.

    One reduction answers both questions: a block's max(|A|) is NaN or infinite exactly where
    the block holds a NaN or an infinity (the array API standard's ``max`` propagates NaN).
    The offending values are counted, for the message, only then.
    """
    peak = None
    for start, stop in row_blocks(A.shape[0], block_rows):
        block_peak = xp.max(xp.abs(A[start:stop, ...]))
        peak = block_peak if peak is None else xp.max(xp.stack([peak, block_peak]))
    largest = 0.0 if peak is None else float(peak)
    if not math.isfinite(largest):
        n_bad = sum(
            int(xp.sum(xp.astype(~xp.isfinite(A[start:stop, ...]), xp.int64)))
            for start, stop in row_blocks(A.shape[0], block_rows)
        )
        msg = f"{name} contains {n_bad} NaN or infinite value(s); K-Means needs finite values."
        raise ValueError(msg)
    return largest


def check_finite(A: Array, name: str, *, xp: ModuleType, block_rows: int) -> None:
    """Raise ValueError if A holds NaN or infinity (checked by row blocks, one host sync)."""
    largest_magnitude(A, name, xp=xp, block_rows=block_rows)


def check_values(
    X: Array, name: str, *, xp: ModuleType, block_rows: int, n_samples: int | None = None
) -> float:
    """Raise ValueError unless the rows of X (data or centers) are finite, and their squared
    distances neither overflow X's dtype nor fall below its smallest normal number at X's scale
    (``check_magnitude``); return X's largest absolute value.

    ``n_samples``: how many rows' distances a fit adds up (X's rows unless X holds centers).
    """
    largest = largest_magnitude(X, name, xp=xp, block_rows=block_rows)
    if n_samples is None:
        n_samples = X.shape[0]
    check_magnitude(largest, name, xp.finfo(X.dtype), X.dtype, shape=(n_samples, X.shape[1]))
    return largest


_FLOAT64_MAX = float(np.finfo(np.float64).max)


def check_magnitude(
    largest: float, name: str, finfo: Any, dtype: Any, *, shape: tuple[int, int]
) -> None:
    """Raise ValueError where values up to ``largest`` in absolute value, in an (n, d) array of
    ``dtype`` (``finfo``: its ``xp.finfo``), make K-Means' squared distances meaningless.

    Two rows within ±M are at most 4·d·M² apart, squared. The expanded form ‖x‖² − 2x·c + ‖c‖²
    on rows centered by the column means (each value then within ±2M) has terms up to 16·d·M²,
    and a fit adds n distances in float64. Where that overflows, distances are infinite or NaN
    and the labels arbitrary.

    At the other end, results below the dtype's smallest normal number t lose precision, and
    GPUs may flush them to zero (CuPy compiles its kernels with ``-ftz=true``): where squared
    distances are subnormal, k-means++ on a GPU can pick wrong rows (benchmarks/RESULTS.md has
    the seeds that did). So values must reach sqrt(d·t / ε) (ε the dtype's epsilon): a squared
    distance's d terms then lose less to a flush (d·t) than it carries in rounding at the data's
    scale (ε·M²). M = 0 is not an error: constant data are clustered as such.
    """
    n_samples, n_features = shape
    highest = math.sqrt(min(float(finfo.max), _FLOAT64_MAX / n_samples) / (16 * n_features))
    lowest = math.sqrt(n_features * float(finfo.smallest_normal) / float(finfo.eps))
    if largest > highest:
        hint = " or pass it as float64" if float(finfo.max) < _FLOAT64_MAX else ""
        msg = (
            f"{name}'s largest absolute value, {largest:.3g}, is too large for K-Means in {dtype}: "
            f"with {n_features} feature(s) and {n_samples} row(s), squared distances can "
            f"overflow once values exceed {highest:.3g}. Rescale {name} (divide it by a "
            f"constant){hint}."
        )
        raise ValueError(msg)
    if 0 < largest < lowest:
        msg = (
            f"{name}'s largest absolute value, {largest:.3g}, is too small for K-Means in "
            f"{dtype}: with {n_features} feature(s), squared distances at this scale fall "
            f"below the smallest normal {dtype} number ({float(finfo.smallest_normal):.3g}), "
            f"which loses their precision (GPUs flush them to zero), unless a value exceeds "
            f"{lowest:.3g}. Rescale {name} (multiply it by a constant)."
        )
        raise ValueError(msg)


def _check_companion(value: Any, name: str, X: Array, xp: ModuleType, device: Any) -> Array:
    """Bring an array that accompanies X (weights, initial centers) to X's library and device,
    as floating point.

    Python sequences and NumPy arrays are host data and are copied to X's device. An array of
    another device library (e.g. a torch tensor with CuPy X) is refused: converting it would hide
    a transfer the caller did not ask for.
    """
    value = _as_numbers(as_supported_array(value, name), value, name)
    if not (library_name(value) == "numpy" or library_name(value) == library_name(X)):
        msg = (
            f"{name} is a {library_name(value)} array but X is a {library_name(X)} array; pass "
            f"{name} as a {library_name(X)} array, a NumPy array or a list."
        )
        raise TypeError(msg)
    value = move_to(value, xp, device)
    _working_dtype(value, name, xp, device)  # rejects complex numbers and strings
    if xp.isdtype(value.dtype, "real floating"):
        return value
    # Booleans and integers (which the standard neither negates nor compares with floats) in
    # float64 where the device has it: exact for integers up to 2**53.
    return xp.astype(value, accumulation_dtype(xp, device))


def check_sample_weight(
    sample_weight: Any,
    X: Array,
    *,
    xp: ModuleType,
    device: Any,
    block_rows: int,
    x_largest: float,
) -> Array:
    """Weights of shape (n_samples,) in X's dtype: finite, non-negative, not all zero, and small
    enough that weighted sums over X (whose largest absolute value is ``x_largest``; see
    ``check_weight_scale``) stay finite."""
    n_samples = X.shape[0]
    if sample_weight is None:
        return xp.ones((n_samples,), dtype=X.dtype, device=device)
    if isinstance(sample_weight, numbers.Real) and not isinstance(sample_weight, bool):
        sample_weight = np.full(n_samples, sample_weight, dtype=np.float64)
    w = _check_companion(sample_weight, "sample_weight", X, xp, device)
    if tuple(w.shape) != (n_samples,):
        msg = (
            f"sample_weight must have shape ({n_samples},) to match X with {n_samples} samples, "
            f"got shape {tuple(w.shape)}."
        )
        raise ValueError(msg)
    # Checked as given, before the cast to X's dtype could make them infinite or zero. Summed in
    # float64 where the device has it: float32 weights near its largest value would overflow
    # (and warn) in their own dtype.
    largest = largest_magnitude(w[:, None], "sample_weight", xp=xp, block_rows=block_rows)
    n_negative = int(xp.sum(xp.astype(w < 0, xp.int64)))
    acc = accumulation_dtype(xp, device)
    acc_max = float(xp.finfo(acc).max)
    if largest * n_samples <= acc_max:
        total = float(xp.sum(w, dtype=acc))
    else:  # the sum may overflow: summed scaled, so that it does so in Python (inf, no warning)
        total = largest * float(xp.sum(xp.astype(w, acc) / largest))
    check_weight_scale(
        n_negative,
        largest,
        total,
        x_largest=x_largest,
        n_features=X.shape[1],
        x_finfo=xp.finfo(X.dtype),
        x_dtype=X.dtype,
        acc_max=acc_max,
    )
    return xp.astype(w, X.dtype)


def check_weight_scale(
    n_negative: int,
    largest: float,
    total: float,
    *,
    x_largest: float,
    n_features: int,
    x_finfo: Any,
    x_dtype: Any,
    acc_max: float,
) -> None:
    """Raise ValueError for finite weights a fit cannot use: negative ones, all zero (in X's
    dtype ``x_dtype``, whose ``finfo`` is ``x_finfo``), or so large that X's dtype cannot hold
    them or that weighted sums overflow the accumulation dtype (largest value ``acc_max``).

    ``largest`` and ``total`` are the weights' largest absolute value and sum as given, before
    their cast to X's dtype. A fit adds up, in the accumulation dtype, weights (the counts),
    weighted rows (each within ±2·M once centered, M = ``x_largest``) and weighted squared
    distances (each up to 16·d·M², see ``check_magnitude``): the total weight times the largest
    of these must stay finite. Only the ratios between weights change the centers and labels, so
    the messages suggest rescaling.
    """
    rescale = (
        "Rescale sample_weight ({} it by a constant: only the ratios between weights change the "
        "centers and labels)."
    )
    if n_negative:
        msg = f"sample_weight must be non-negative, got {n_negative} negative value(s)."
        raise ValueError(msg)
    if largest > float(x_finfo.max):
        msg = (
            f"sample_weight's largest value, {largest:.3g}, does not fit X's dtype {x_dtype} "
            f"(largest {float(x_finfo.max):.3g}). " + rescale.format("divide")
        )
        raise ValueError(msg)
    if not total > 0:
        msg = "sample_weight must not be all zero: at least one sample needs a positive weight."
        raise ValueError(msg)
    # Values up to half the smallest subnormal number (smallest normal × eps) round to zero.
    if largest <= 0.5 * float(x_finfo.smallest_normal) * float(x_finfo.eps):
        msg = (
            f"sample_weight's largest value, {largest:.3g}, is zero in X's dtype {x_dtype}. "
            + rescale.format("multiply")
        )
        raise ValueError(msg)
    term = max(1.0, 2.0 * x_largest, 16.0 * n_features * x_largest * x_largest)
    if not total * term <= acc_max:  # (not <=: also where the total itself is infinite)
        msg = (
            f"sample_weight is too large for X: its values sum to {total:.3g}, and weighted sums "
            f"of squared distances up to {term:.3g} (X's largest absolute value is "
            f"{x_largest:.3g}, with {n_features} feature(s)) would overflow past "
            f"{acc_max:.3g}. " + rescale.format("divide")
        )
        raise ValueError(msg)


def check_initial_centers(
    init: Any, X: Array, n_clusters: int, *, xp: ModuleType, device: Any, name: str = "init"
) -> Array:
    """An explicit (n_clusters, n_features) array of finite initial centers, in X's dtype."""
    centers = _check_companion(init, name, X, xp, device)
    expected = (n_clusters, X.shape[1])
    if tuple(centers.shape) != expected:
        msg = (
            f"{name} must have shape (n_clusters, n_features) = {expected}, got shape "
            f"{tuple(centers.shape)}."
        )
        raise ValueError(msg)
    centers = xp.astype(centers, X.dtype)
    check_values(centers, name, xp=xp, block_rows=n_clusters, n_samples=X.shape[0])
    return centers


def check_labels(labels: Any, n_samples: int, name: str = "labels") -> tuple[np.ndarray, int]:
    """Cluster labels of any values -> (int64 codes 0..n_labels-1 on the host, n_labels).

    Labels are copied to the host to be encoded (n integers, small next to X); callers move the
    codes to X's device.
    """
    labels = to_numpy(as_supported_array(labels, name))
    if labels.ndim != 1:
        msg = f"{name} must be 1-D of shape (n_samples,), got shape {labels.shape}."
        raise ValueError(msg)
    if labels.shape[0] != n_samples:
        msg = (
            f"{name} must have one entry per sample: X has {n_samples} samples, {name} has "
            f"{labels.shape[0]}."
        )
        raise ValueError(msg)
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        msg = f"{name} contains NaN or infinite values."
        raise ValueError(msg)
    if labels.dtype.kind == "O":
        msg = f"{name} must be an array of numbers or strings, got dtype object."
        raise TypeError(msg)
    values, codes = np.unique(labels, return_inverse=True)
    return codes.reshape(-1).astype(np.int64), int(values.shape[0])
