"""scikit-learn's own estimator checks (``parametrize_with_checks``), one test per check."""

from __future__ import annotations

import warnings

import pytest

estimator_checks = pytest.importorskip("sklearn.utils.estimator_checks")

from kmeans_xp import KMeans, MiniBatchKMeans  # noqa: E402


def _expected_failures(estimator) -> dict[str, str]:
    # scikit-learn marks the same check as expected to fail for its own KMeans and
    # MiniBatchKMeans.
    return {
        "check_sample_weight_equivalence_on_dense_data": (
            "the random init draws rows by index, so integer weights and repeated rows give "
            "different initial centers from the same seed"
        ),
    }


with warnings.catch_warnings():  # the estimators are not BaseEstimator subclasses, by design
    warnings.filterwarnings("ignore", message=r"Estimator .* does not inherit from")
    _every_check = estimator_checks.parametrize_with_checks(
        [KMeans(n_clusters=3, random_state=0), MiniBatchKMeans(n_clusters=3, random_state=0)],
        expected_failed_checks=_expected_failures,
    )


@_every_check
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
