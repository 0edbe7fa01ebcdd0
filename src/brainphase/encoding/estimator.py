"""scikit-learn's estimator contract for the ridge estimators, without importing scikit-learn.

``import sklearn.base`` imports scipy.stats, scipy.sparse and pandas: about 1.5 s of CPU per
process, a seventh of a demo ``brainphase encode`` job, which needs none of them.
:class:`RegressorParams` gives what ``sklearn.base.BaseEstimator`` + ``RegressorMixin`` +
``MultiOutputMixin`` gave :class:`~brainphase.encoding.ridge.RidgeCV` and
:class:`~brainphase.encoding.banded.BandedRidgeCV`: ``get_params`` / ``set_params`` over the
``__init__`` arguments (so ``sklearn.base.clone`` and search utilities work), a regressor's
``score`` (mean R^2, ``sklearn.metrics.r2_score``), its tags, and the not-fitted error.
scikit-learn is imported only when one of those is used.
"""

from __future__ import annotations

import inspect
from typing import Any

from brainphase.errors import InputError


class RegressorParams:
    """Mixin: scikit-learn regressor protocol from the ``__init__`` signature (see the module docstring)."""

    _estimator_type = "regressor"

    @classmethod
    def _get_param_names(cls) -> list[str]:
        """Names of the ``__init__`` arguments, sorted (as ``BaseEstimator``)."""
        parameters = inspect.signature(cls.__init__).parameters.values()
        return sorted(p.name for p in parameters if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of this estimator (``deep``: also ``name__key`` of parameters that have ``get_params``)."""
        params = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                params.update({f"{name}__{key}": item for key, item in value.get_params().items()})
            params[name] = value
        return params

    def set_params(self, **params: Any) -> RegressorParams:
        """Set ``__init__`` parameters by name; returns self."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise InputError(f"{type(self).__name__} has no parameter {name!r} (parameters: {valid})")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = []
        for name in self._get_param_names():
            value = getattr(self, name)
            default = defaults.get(name, inspect.Parameter.empty)
            try:
                same = bool(value is default or value == default)
            except ValueError:  # arrays compare element-wise
                same = False
            if not same:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        """The tags of a multi-output scikit-learn regressor (imports scikit-learn)."""
        from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin

        class MultiOutputRegressor(MultiOutputMixin, RegressorMixin, BaseEstimator):
            pass

        return MultiOutputRegressor().__sklearn_tags__()

    def score(self, X, y, sample_weight=None) -> float:
        """Mean R^2 over targets (``sklearn.metrics.r2_score``, as ``RegressorMixin.score``)."""
        from sklearn.metrics import r2_score

        return r2_score(y, self.predict(X), sample_weight=sample_weight)

    def _check_fitted(self, attribute: str) -> None:
        """Raise scikit-learn's ``NotFittedError`` when ``attribute`` is not set yet."""
        if not hasattr(self, attribute):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet; call 'fit' first")
