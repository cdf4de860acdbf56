"""Exceptions and warnings raised by kmeans_xp (named as scikit-learn names them).

Where scikit-learn is already imported, ``NotFittedError`` and ``ConvergenceWarning`` are raised
as subclasses of both these classes and scikit-learn's of the same name
(``sklearn_compatible``), so ``except sklearn.exceptions.NotFittedError`` and warning filters on
scikit-learn's ``ConvergenceWarning`` catch them too; kmeans_xp itself never imports
scikit-learn.
"""

from __future__ import annotations

import functools
import sys

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


def sklearn_compatible(cls: type) -> type:
    """``cls`` (``NotFittedError`` or ``ConvergenceWarning``) to raise or warn with: where
    ``sklearn.exceptions`` is already imported, a subclass of ``cls`` and of scikit-learn's class
    of the same name; else ``cls`` itself."""
    theirs = getattr(sys.modules.get("sklearn.exceptions"), cls.__name__, None)
    return cls if theirs is None else _twin(cls, theirs)


@functools.cache
def _twin(ours: type, theirs: type) -> type:
    # Named in this module (see __getattr__) so that instances pickle, e.g. between joblib's
    # worker processes.
    namespace = {"__module__": __name__, "__qualname__": f"_Sklearn{ours.__name__}"}
    return type(ours.__name__, (ours, theirs), {**namespace, "__doc__": ours.__doc__})


def __getattr__(name: str) -> type:
    """The twins by their pickled names, made on demand (the process unpickling one may not have
    raised one yet; the process that pickled it had scikit-learn imported)."""
    ours = {
        "_SklearnNotFittedError": NotFittedError,
        "_SklearnConvergenceWarning": ConvergenceWarning,
    }.get(name)
    if ours is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    import sklearn.exceptions

    return _twin(ours, getattr(sklearn.exceptions, ours.__name__))
