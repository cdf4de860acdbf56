"""The estimators' parameters, checked in one place for in-memory, Dask and mini-batch fits.

Each check names the parameter and shows the bad value. What comes out (``FitSettings``) is
plain validated values; the algorithms below never parse a parameter again.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .._algorithms.fit import ALGORITHMS, FitSettings
from .._algorithms.init import default_local_trials
from .._core.certified import check_precision
from .._lib.validation import (
    check_integer,
    check_positive_real,
    check_random_state,
    check_tolerance,
)

INIT_STRINGS = ("k-means++", "k-means||", "random")


def check_fit_settings(
    *,
    n_clusters: Any,
    init: Any,
    n_init: Any,
    max_iter: Any,
    tol: Any,
    verbose: Any,
    random_state: Any,
    algorithm: Any = "auto",
    oversampling_factor: Any = 2.0,
    n_rounds: Any = 5,
    matmul_precision: Any = "auto",
    random_runs: int = 10,
) -> FitSettings:
    """Every fit parameter checked, in this order, with the message users see.

    ``random_runs`` is what ``n_init="auto"`` means for random and callable inits (10 for
    KMeans, 3 for MiniBatchKMeans, as scikit-learn). An explicit ``init`` array is checked
    against X later, where X is known (``check_initial_centers``).
    """
    n_clusters = check_integer(n_clusters, "n_clusters", minimum=1)
    max_iter = check_integer(max_iter, "max_iter", minimum=1)
    tol = check_tolerance(tol)
    verbose = check_integer(
        int(verbose) if isinstance(verbose, bool) else verbose, "verbose", minimum=0
    )
    check_init(init)
    oversampling_factor = check_positive_real(oversampling_factor, "oversampling_factor")
    n_rounds = check_integer(n_rounds, "n_rounds", minimum=1)
    precision = check_precision(matmul_precision)
    algorithm = check_algorithm(algorithm)
    return FitSettings(
        n_clusters=n_clusters,
        init=init,
        n_init=resolve_n_init(n_init, init, random_runs=random_runs),
        max_iter=max_iter,
        tol=tol,
        verbose=verbose,
        rng=check_random_state(random_state),
        algorithm=algorithm,
        oversampling_factor=oversampling_factor,
        n_rounds=n_rounds,
        precision=precision,
    )


def check_algorithm(algorithm: Any) -> str:
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        msg = f"algorithm must be one of {', '.join(map(repr, ALGORITHMS))}, got {algorithm!r}."
        raise ValueError(msg)
    return algorithm


def check_n_local_trials(n_local_trials: Any, n_clusters: int) -> int:
    if n_local_trials is None:
        return default_local_trials(n_clusters)
    return check_integer(n_local_trials, "n_local_trials", minimum=1)


def check_init(init: Any) -> None:
    if isinstance(init, str):
        if init not in INIT_STRINGS:
            msg = (
                f"init must be 'k-means++', 'k-means||', 'random', an array of shape "
                f"(n_clusters, n_features) or a callable, got init={init!r}."
            )
            raise ValueError(msg)
    elif init is None:
        msg = "init must be 'k-means++', 'k-means||', 'random', an array or a callable, got None."
        raise TypeError(msg)


def resolve_n_init(n_init: Any, init: Any, *, random_runs: int = 10) -> int:
    """Runs to make: "auto" is 1 for k-means++, k-means|| and explicit centers, ``random_runs``
    for "random" and callables (10 in KMeans, 3 in MiniBatchKMeans, as scikit-learn)."""
    explicit = not isinstance(init, str) and not callable(init)
    if isinstance(n_init, str):
        if n_init != "auto":
            msg = f"n_init must be 'auto' or an integer >= 1, got n_init={n_init!r}."
            raise ValueError(msg)
        return 1 if explicit or init in ("k-means++", "k-means||") else random_runs
    n_init = check_integer(n_init, "n_init", minimum=1)
    if explicit and n_init != 1:
        warnings.warn(
            f"Explicit initial center position passed: performing only one init instead of "
            f"n_init={n_init}.",
            RuntimeWarning,
            stacklevel=4,
        )
        return 1
    return n_init


def check_flag(value: Any, name: str) -> bool:
    """``value`` as a bool; TypeError naming ``name`` unless it is True or False."""
    if not isinstance(value, bool | np.bool_):
        msg = f"{name} must be True or False, got {name}={value!r}."
        raise TypeError(msg)
    return bool(value)
