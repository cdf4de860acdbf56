"""The part of scikit-learn's estimator protocol that tools like ``clone``, ``Pipeline`` and
``GridSearchCV`` rely on, implemented without importing scikit-learn: parameters, tags and the
fitted check; feature names and ``set_output``; metadata routing of ``sample_weight``. (Only
``__sklearn_tags__`` and ``get_metadata_routing`` import it, and only scikit-learn calls them.)

Parameters are the keyword arguments of ``__init__``, stored unchanged under the same names and
validated in ``fit`` (scikit-learn's convention, which ``clone`` checks).
"""

from __future__ import annotations

import importlib
import inspect
import sys
import warnings
from types import ModuleType
from typing import Any

import numpy as np

from ..exceptions import NotFittedError, sklearn_compatible


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
            raise sklearn_compatible(NotFittedError)(msg)


def feature_names_of(X: Any) -> np.ndarray | None:
    """The column names of a DataFrame-like X (pandas, polars, ...) when all are strings, as an
    object array (scikit-learn's ``feature_names_in_``); None for arrays and for columns named
    by other types (pandas' default integer names). TypeError for a mix of strings and others,
    as scikit-learn raises.
    """
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(columns, str):
        return None
    names = np.asarray(list(columns), dtype=object)
    kinds = sorted({type(name).__name__ for name in names})
    is_str = [isinstance(name, str) for name in names]
    if names.size and all(is_str):
        return names
    if any(is_str):
        msg = (
            f"X's column names mix strings with other types ({kinds}): feature names are kept "
            "only when every column name is a string. Convert them all to strings (for pandas: "
            "X.columns = X.columns.astype(str)) or to none."
        )
        raise TypeError(msg)
    return None


_OUTPUTS = ("default", "pandas", "polars")


class FeatureNamesMixin:
    """scikit-learn's feature-name and output-container protocol, for estimators whose
    ``transform`` gives one column per cluster.

    ``fit`` keeps a DataFrame's string column names as ``feature_names_in_``; predict, transform
    and score check new data against them (ValueError when they differ, a warning when only one
    side has names, as scikit-learn does). ``get_feature_names_out`` names the transform's
    columns ``<class name in lower case>0``, ``1``, .... ``set_output(transform="pandas")`` (or
    scikit-learn's ``set_config(transform_output=...)``, read only when scikit-learn is already
    imported) returns transform's NumPy results as a pandas or polars DataFrame; results in
    another library (CuPy, torch) stay in that library.
    """

    def _set_feature_names(self, names: np.ndarray | None) -> None:
        """Keep ``feature_names_of(X)`` for the X just fitted (None: no names)."""
        if names is None:
            self.__dict__.pop("feature_names_in_", None)
        else:
            self.feature_names_in_ = names

    def _check_feature_names(self, X: Any, *, stacklevel: int = 4) -> None:
        """Check X's column names against ``feature_names_in_`` (``stacklevel``: of the user's
        call, for the warnings; the default suits predict/transform/score's helper)."""
        fitted = getattr(self, "feature_names_in_", None)
        given = feature_names_of(X)
        cls = type(self).__name__
        if fitted is None and given is not None:
            warnings.warn(
                f"X has feature names, but {cls} was fitted without feature names.",
                UserWarning,
                stacklevel=stacklevel,
            )
        elif fitted is not None and given is None:
            warnings.warn(
                f"X does not have valid feature names, but {cls} was fitted with feature names.",
                UserWarning,
                stacklevel=stacklevel,
            )
        elif fitted is not None and (len(fitted) != len(given) or np.any(fitted != given)):
            fitted_set, given_set = set(fitted), set(given)
            unseen = [name for name in given if name not in fitted_set]
            missing = [name for name in fitted if name not in given_set]
            if not unseen and not missing:
                why = "the same names in another order"
            else:
                why = f"names not seen at fit: {unseen}; names seen at fit but missing: {missing}"
            msg = (
                f"X's feature names should match those {cls} was fitted with "
                f"({list(fitted)}), got {list(given)}: {why}."
            )
            raise ValueError(msg)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the columns ``transform`` returns: ``"<class>0"``, ``"<class>1"``, ...
        (e.g. ``kmeans0`` for KMeans), as scikit-learn names them.

        Parameters
        ----------
        input_features : array-like of str, optional
            Checked against ``feature_names_in_`` (or the number of features) when given; the
            output names do not depend on them.

        Returns
        -------
        numpy.ndarray of str objects, shape (n_clusters,)
        """
        self._check_is_fitted()
        if input_features is not None:
            given = np.asarray(list(input_features), dtype=object)
            fitted = getattr(self, "feature_names_in_", None)
            if fitted is not None and (len(given) != len(fitted) or np.any(given != fitted)):
                msg = (
                    f"input_features should equal feature_names_in_ ({list(fitted)}), got "
                    f"{list(given)}."
                )
                raise ValueError(msg)
            if len(given) != self.n_features_in_:
                msg = (
                    f"input_features should have {self.n_features_in_} names (the number of "
                    f"features seen at fit), got {len(given)}."
                )
                raise ValueError(msg)
        prefix = type(self).__name__.lower()
        n_out = int(self.cluster_centers_.shape[0])
        return np.asarray([f"{prefix}{i}" for i in range(n_out)], dtype=object)

    def set_output(self, *, transform: str | None = None) -> FeatureNamesMixin:
        """Choose the container ``transform`` and ``fit_transform`` return, as in scikit-learn.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"} or None
            ``"default"``: arrays of the input's library; ``"pandas"``/``"polars"``: a
            DataFrame with ``get_feature_names_out()`` as columns (and a pandas input's index),
            for NumPy results (CuPy and torch results stay arrays of their library); None:
            unchanged.

        Returns
        -------
        self
        """
        if transform is None:
            return self
        if transform not in _OUTPUTS:
            msg = f"transform must be one of {_OUTPUTS} or None, got transform={transform!r}."
            raise ValueError(msg)
        if transform != "default":
            _dataframe_library(transform)
        self._sklearn_output_config = {"transform": transform}  # the attribute sklearn reads
        return self

    def _wrap_transform_output(self, result: Any, X: Any) -> Any:
        """``result`` in the container ``set_output`` (or scikit-learn's config) asks for."""
        config = getattr(self, "_sklearn_output_config", {}).get("transform")
        if config is None:
            sklearn = sys.modules.get("sklearn")
            get_config = getattr(sklearn, "get_config", None)
            config = get_config().get("transform_output", "default") if get_config else "default"
        if config == "default" or type(result) is not np.ndarray:
            return result
        library = _dataframe_library(config)
        columns = list(self.get_feature_names_out())
        if config == "pandas":
            index = X.index if isinstance(X, library.DataFrame) else None
            return library.DataFrame(result, index=index, columns=columns)
        return library.DataFrame(result, schema=columns, orient="row")


def _dataframe_library(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        msg = f"set_output(transform={name!r}) needs {name}, which is not installed."
        raise ImportError(msg) from None


# scikit-learn's "leave this request as it is" value of set_*_request (the same string, so either
# library's constant works).
UNCHANGED = "$UNCHANGED$"


class _Requests(dict):
    """Method name -> the ``sample_weight`` request; scikit-learn's ``clone`` copies it."""

    def __sklearn_clone__(self) -> _Requests:
        return _Requests(self)


class MetadataRequestsMixin:
    """scikit-learn's metadata routing (opt-in there: ``set_config(enable_metadata_routing=True)``)
    for the one piece of metadata these estimators take, ``sample_weight``.

    ``set_fit_request(sample_weight=True)`` (and ``set_score_request``, and
    ``set_partial_fit_request`` where there is ``partial_fit``) asks a meta-estimator such as
    ``Pipeline`` or ``GridSearchCV`` to pass its ``sample_weight`` on; False: never; a string:
    pass the metadata of that name; None (the default): scikit-learn raises if weights are
    passed without a request, instead of silently ignoring them. ``get_metadata_routing`` hands
    the requests to scikit-learn, which alone calls it (and is imported only then). Requests
    live in ``_metadata_request``, the attribute scikit-learn's ``clone`` copies.
    """

    _methods_taking_sample_weight: tuple[str, ...] = ("fit", "score")

    def get_metadata_routing(self) -> Any:
        """The estimator's metadata requests, as scikit-learn's ``MetadataRequest``."""
        from sklearn.utils.metadata_routing import MetadataRequest

        request = MetadataRequest(owner=type(self).__name__)
        requested = getattr(self, "_metadata_request", {})
        for method in self._methods_taking_sample_weight:
            alias = requested.get(method)
            getattr(request, method).add_request(param="sample_weight", alias=alias)
        return request

    def _request(self, method: str, sample_weight: Any) -> MetadataRequestsMixin:
        if isinstance(sample_weight, str) and sample_weight == UNCHANGED:
            return self
        if not (sample_weight is None or isinstance(sample_weight, (bool, str))):
            msg = (
                f"sample_weight must be True, False, None or a metadata name (a string), got "
                f"sample_weight={sample_weight!r}."
            )
            raise ValueError(msg)
        if isinstance(sample_weight, str) and not sample_weight.isidentifier():
            msg = f"sample_weight's alias must be a Python identifier, got {sample_weight!r}."
            raise ValueError(msg)
        requests = _Requests(getattr(self, "_metadata_request", {}))
        requests[method] = sample_weight
        self._metadata_request = requests
        return self

    def set_fit_request(self, *, sample_weight: Any = UNCHANGED) -> MetadataRequestsMixin:
        """Whether a meta-estimator passes ``sample_weight`` to ``fit`` (see the class notes).

        Returns
        -------
        self
        """
        return self._request("fit", sample_weight)

    def set_score_request(self, *, sample_weight: Any = UNCHANGED) -> MetadataRequestsMixin:
        """Whether a meta-estimator passes ``sample_weight`` to ``score``.

        Returns
        -------
        self
        """
        return self._request("score", sample_weight)
