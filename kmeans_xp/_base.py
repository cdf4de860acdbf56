"""The small part of scikit-learn's estimator protocol that tools like ``clone``, ``Pipeline`` and
``GridSearchCV`` rely on, implemented without importing scikit-learn.

Parameters are the keyword arguments of ``__init__``, stored unchanged under the same names and
validated in ``fit`` (scikit-learn's convention, which ``clone`` checks).
"""

from __future__ import annotations

import inspect
from typing import Any

from .exceptions import NotFittedError


class ParamsMixin:
    """``get_params``/``set_params`` and a scikit-learn-style ``repr``, from ``__init__``."""

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return sorted(
            name
            for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of this estimator, by name (``deep`` is accepted for scikit-learn)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> ParamsMixin:
        """Set parameters by name; they are validated at the next ``fit``. Returns self."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                msg = (
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {valid}."
                )
                raise ValueError(msg)
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()
        }
        changed = []
        for name, value in self.get_params().items():
            default = defaults.get(name, inspect.Parameter.empty)
            if default is inspect.Parameter.empty or not _same(value, default):
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"


def _same(value: Any, default: Any) -> bool:
    if type(value) is not type(default):
        return False
    try:
        return bool(value == default)
    except (TypeError, ValueError):  # arrays compare elementwise
        return value is default


class ClustererMixin:
    """Tags and fitted-state checks that make the estimator a scikit-learn clusterer."""

    _estimator_type = "clusterer"  # scikit-learn < 1.6 reads this

    def __sklearn_tags__(self):
        # Called only by scikit-learn itself, so importing it here adds no dependency.
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(
            estimator_type="clusterer",
            target_tags=TargetTags(required=False),
            transformer_tags=TransformerTags(),
            input_tags=InputTags(),
            non_deterministic=False,
        )

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "cluster_centers_")

    def _check_is_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            msg = (
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )
            raise NotFittedError(msg)
