"""Estimators from flat parameter dicts, for the benchmarks' recorded variants.

The studies in ``benchmarks/studies/`` and the scripts' variant tables name
their settings as flat keywords (``baseline=0.5``, ``units=(4, 8)``,
``screen_factor=3``, ``trainer='keras'``...), as the estimators took them
before 2026-12-06. Since then the search space and the strategy are objects
(``space=SearchSpace(...)``, ``strategy=Reinforce(...)``) and a few
comparison knobs are private class attributes. :func:`make` builds the same
estimator from the flat spelling, so every recorded command still runs::

    make(MLPNASClassifier, baseline=0.5, units=(8, 16), trainer="keras")
    # == a subclass with _trainer_kind = 'keras', built with
    #    space=SearchSpace(units=(8, 16)), strategy=Reinforce(baseline=0.5)

``validation_fraction='auto'``, the estimators' default from 2026-11-30 to
2026-12-06, becomes a subclass that holds out what it held out
(:func:`auto_validation_rows`).
"""

from __future__ import annotations

from sklearn.base import RegressorMixin

from sknas import RandomSearch, Reinforce, SearchSpace
from sknas._space import PRESETS

#: what ``validation_fraction='auto'`` held out until 2026-12-06 (commit fd61cce),
#: the classifier's rule: this share of the rows, at most this many, never less
#: than this share (the regressor's 'auto' was a tenth)
AUTO_VALIDATION = (0.25, 250, 0.1)


def auto_validation_rows(n_rows, regression=False):
    """Rows the former ``validation_fraction='auto'`` held out of ``n_rows``."""
    share, most, least = AUTO_VALIDATION
    if regression:
        return max(2, int(round(least * n_rows)))
    return max(1, int(round(least * n_rows)), min(int(round(share * n_rows)), most))

#: flat name -> Reinforce's
STRATEGY = {"controller_units": "lstm_units", "controller_train_steps": "train_steps",
            "controller_learning_rate": "learning_rate", "controller_decay": "decay",
            "controller_clipnorm": "clipnorm", "discount": "discount", "baseline": "baseline",
            "baseline_decay": "baseline_decay", "normalize_advantage": "normalize_advantage",
            "entropy_weight": "entropy_weight", "use_predictor": "use_predictor",
            "screen_factor": "screen_factor"}
#: flat name -> SearchSpace's
SPACE = {"units": "units", "activations": "activations", "max_layers": "max_layers",
         "dropout_rate": "dropout_rates", "input_transforms": "input_transforms",
         "lr_schedules": "lr_schedules", "label_smoothings": "label_smoothings",
         "members": "members", "input_scaling": "input_scaling"}
#: flat name -> the private class attribute a subclass sets
HOOKS = {"reward": "_reward", "reward_score": "_reward_score", "trainer": "_trainer_kind",
         "finalist_batch_size": "_finalist_batch_size",
         # the size-keyed rules of the 'auto' values, for the studies that re-examine them
         "large_data_rows": "_large_data_rows",
         "auto_batch_size": "_auto_batch_size", "auto_finalist_factor": "_auto_finalist_factor"}


def make(cls, **params):
    """``cls(**params)`` with the flat names of :data:`STRATEGY`, :data:`SPACE`
    and :data:`HOOKS` turned into the objects and attributes they became."""
    strategy = {STRATEGY[k]: params.pop(k) for k in list(params) if k in STRATEGY}
    space = {SPACE[k]: params.pop(k) for k in list(params) if k in SPACE}
    hooks = {HOOKS[k]: params.pop(k) for k in list(params) if k in HOOKS}
    if params.get("validation_fraction") == "auto":  # gone from the estimators: its old rule
        del params["validation_fraction"]
        regression = issubclass(cls, RegressorMixin)
        hooks["_validation_rows"] = lambda self, n: auto_validation_rows(n, regression)
    if space:
        preset = params.get("space", "tutorial")
        spec = dict(PRESETS[preset]) if isinstance(preset, str) else preset.get_params()
        if isinstance(preset, str) and issubclass(cls, RegressorMixin):
            spec.pop("label_smoothings", None)  # as the regressor takes a named preset
        params["space"] = SearchSpace(**{**spec, **space})
    if strategy:
        named = params.get("strategy", "reinforce")
        if named == "random" or isinstance(named, RandomSearch):
            raise ValueError(f"strategy='random' has none of {sorted(strategy)}")
        base = Reinforce() if isinstance(named, str) else named
        params["strategy"] = base.set_params(**strategy)
    if hooks.get("_finalist_batch_size") in ("auto", "none"):
        hooks["_finalist_batch_size"] = None
    if hooks:
        cls = type(cls.__name__, (cls,), dict(hooks))
    return cls(**params)
