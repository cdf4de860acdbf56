"""Exceptions and warnings raised by kmeans_xp (named as scikit-learn names them)."""

from __future__ import annotations

__all__ = ["ConvergenceWarning", "ModelFileError", "NotFittedError"]


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit``.

    Subclasses both ``ValueError`` and ``AttributeError``, as scikit-learn's does, so code written
    against either keeps working.
    """


class ConvergenceWarning(UserWarning):
    """The fit finished, but its result is degenerate (e.g. fewer distinct clusters than asked)."""


class ModelFileError(ValueError):
    """A model file could not be read: not a kmeans_xp model, damaged, or modified after saving."""
