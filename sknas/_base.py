"""The estimator behind both tasks: it checks, orchestrates and reports.

:class:`BaseMLPNAS` validates the data, draws the validation split, runs the
search (``_search.py``), has the finalists cross-validated and the ensemble
selected (``_finalists.py``), builds the served model (``_serving.py``) and
stores the results; its parameters and their documentation live in
``_params.py``. The classifier and the regressor (``_estimator.py``) add only
what differs: how the target is checked and encoded, how the validation split
is drawn, the output layer and how predictions are served.
"""

from __future__ import annotations

import os
import time
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, _fit_context, is_classifier
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ._data import input_stats
from ._finalists import FinalistsMixin
from ._parallel import CandidateExecutor
from ._params import ESTIMATOR_PARAMETERS, _estimator_init, _refuse_moved
from ._reporting import Reporter
from ._runlog import keeps_python_random_state
from ._serving import ServingMixin
from ._search import Search, SearchBudget, interrupt_guard
from ._space import PRESETS, SearchSpace
from ._strategy import RandomSearch, Reinforce, resolve_strategy
from ._trainer import (BYTES_PER_PARAM, CandidateData, KerasTrainer, PopulationTrainer,
                       available_memory, n_params)
from ._trial import best_row, history_table, results_table, top_table
from ._weights import SharedWeights

__all__ = ["BaseMLPNAS"]


class BaseMLPNAS(FinalistsMixin, ServingMixin, BaseEstimator):
    """Base class of :class:`MLPNASClassifier` and :class:`MLPNASRegressor`.

    Subclasses define ``_validate_target`` (the encoded target and what the
    estimator must remember of it), ``_split`` (the validation split),
    ``_head_data`` (the :class:`~sknas._trainer.CandidateData` task fields)
    and ``_finish_model`` (the served Keras model from trained weights).
    """

    _parameter_constraints: dict = {
        "space": [StrOptions(set(PRESETS)), SearchSpace],
        "strategy": [StrOptions({"reinforce", "random"}), Reinforce, RandomSearch],
        "controller_epochs": [Interval(Integral, 1, None, closed="left")],
        "samples_per_epoch": [Interval(Integral, 1, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "cv": [StrOptions({"auto"}), Interval(Integral, 2, None, closed="left"), "cv_object",
               None],
        "n_finalists": [Interval(Integral, 1, None, closed="left")],
        "finalist_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"}),
                            None],
        "ensemble_size": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "weight_sharing": ["boolean"],
        "n_jobs": [Interval(Integral, None, -1, closed="right"),
                   Interval(Integral, 1, None, closed="left"), None],
        "error_score": [StrOptions({"raise"}), Real],
        "max_time": [Interval(Real, 0, None, closed="neither"), None],
        "max_candidates": [Interval(Integral, 1, None, closed="left"), None],
        "refit": ["boolean", StrOptions({"auto", "folds"})],
        "log_dir": [str, os.PathLike, None],
        "resume": [str, os.PathLike, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    #: Hooks for the benchmarks, not parameters (no measured benefit to users): a
    #: subclass sets them. How the per-epoch validation scores make the reward
    #: ('weighted', the tutorial's mean weighted 1, 2, ..., E; 'last'; 'max'); the
    #: trainer ('population', one compiled graph per controller epoch; 'keras', the
    #: tutorial's ``model.fit`` per candidate, the reference the population trainer is
    #: tested against); and the finalists' batch size (None: the search's).
    _reward = "weighted"
    #: the per-epoch score the reward weighs: 'accuracy' (the validation score: the
    #: tutorial's accuracy, a regressor's R^2) or 'likelihood' (exp(-validation log
    #: loss), see ``Search``'s ``reward_score`` and the search space guide)
    _reward_score = "accuracy"
    _trainer_kind = "population"
    _finalist_batch_size = None

    __init__ = _estimator_init(ESTIMATOR_PARAMETERS)

    def set_params(self, **params):
        """Set the parameters of this estimator (see ``get_params``).

        ``strategy__...`` and ``space__...`` reach the strategy's and the
        space's own parameters; when ``strategy`` or ``space`` is still a
        name (``'reinforce'``, ``'tutorial'``...), it is first replaced by
        the object it names.

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : estimator instance
        """
        _refuse_moved(type(self).__name__, params)
        if isinstance(self.strategy, str) and any(k.startswith("strategy__") for k in params):
            self.strategy = resolve_strategy(self.strategy)
        if isinstance(self.space, str) and any(k.startswith("space__") for k in params):
            self.space = self._preset_space(self.space)
        return super().set_params(**params)

    def _preset_space(self, name):
        """The preset ``name`` for this estimator: a regressor's has no label
        smoothing (it has no labels to smooth)."""
        space = SearchSpace.from_preset(name)
        if not is_classifier(self) and space.label_smoothings is not None:
            space.label_smoothings = None
        return space

    # ------------------------------------------------------------ validation
    def _make_space(self):
        """The checked :class:`SearchSpace` of ``space``."""
        space = self._preset_space(self.space) if isinstance(self.space, str) else self.space
        space.check()
        smoothing = space._grammar.label_smoothings
        if smoothing and any(smoothing) and not is_classifier(self):
            raise ValueError(f"space: label_smoothings={smoothing} smooths class labels; "
                             f"{type(self).__name__} needs label_smoothings=None.")
        import keras
        for name in space.activations:
            try:
                keras.activations.get(name)
            except ValueError:
                raise ValueError(f"activations: {name!r} is not a Keras activation "
                                 "(e.g. 'relu', 'tanh', 'sigmoid', 'elu')") from None
        return space

    def _validate_training_data(self, X, y, sample_weight):
        """Checked float32 ``X`` (dense, or CSR), the encoded target and float32 row weights."""
        if sp.issparse(y):
            raise ValueError(f"y is a sparse {type(y).__name__}; {type(self).__name__} needs a "
                             "dense target: pass y.toarray().ravel() (or y.toarray() for "
                             "several regression targets).")
        self._check_target_kind(y)
        try:
            X, y = validate_data(self, X, y, reset=True, dtype=[np.float64, np.float32],
                                 accept_sparse=_SPARSE_FORMATS, ensure_min_samples=2,
                                 **self._target_validation)
        except ValueError as exc:
            if "could not convert" in str(exc):
                raise ValueError(f"{exc}. {type(self).__name__} needs numeric features: encode "
                                 "categorical columns first, e.g. with a ColumnTransformer and "
                                 "a OneHotEncoder in a Pipeline.") from exc
            raise
        y_enc = self._encode_target(y)
        w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        w = self._row_weights(y, w)
        if not w.sum() > 0:
            raise ValueError("sample_weight (times class_weight) sums to zero: no row would count "
                             "in training or in the reward.")
        return _as_float32(X), y_enc, w.astype(np.float32)

    #: keyword arguments of ``validate_data`` for the target
    _target_validation: dict = {}

    def _check_target_kind(self, y):
        """Reject a target of the wrong kind before anything else."""

    def _data_fields(self):
        """What every :class:`CandidateData` of this fit holds besides its rows."""
        return {**self._task_fields(), "input_stats": getattr(self, "input_stats_", None)}

    def _input_stats(self, space, X):
        """``input_stats_``: the statistics of the input transforms the space
        can choose, on all the training rows, or None (checked: dense ``X``,
        as members and input scaling need too)."""
        members = [k for k in (space._grammar.members or ()) if k > 1]
        if members and sp.issparse(X):
            raise ValueError(f"space: members {tuple(members)} scale every feature per member, "
                             "which this sparse X cannot take; use members=None (or (1,)) with "
                             "sparse X, or pass X dense.")
        if max(space._grammar.scalings or (0,)) and sp.issparse(X):
            raise ValueError("space: input_scaling scales every feature, which this sparse X "
                             "cannot take; use input_scaling=False with sparse X, or pass X "
                             "dense.")
        transforms = [t for t in (space._grammar.input_transforms or ()) if t != "none"]
        if not transforms:
            return None
        if sp.issparse(X):
            raise ValueError(f"space: input_transforms {tuple(transforms)} shift every feature, "
                             "which a sparse X cannot hold; use input_transforms=None (or "
                             "('none',)) with sparse X, or pass X dense.")
        return input_stats(X, transforms)

    def _row_weights(self, y, w):
        """Row weights from ``sample_weight`` (the classifier applies ``class_weight``)."""
        return w

    def _validation_rows(self, n_rows):
        """Rows of the search's validation split for ``n_rows`` training rows."""
        return max(self._min_validation_rows, int(round(self.validation_fraction * n_rows)))

    #: the fewest rows the validation split holds (the regressor's R^2 needs two)
    _min_validation_rows = 1

    def _split(self, X, y, w, seed):
        n_val = self._validation_rows(len(y))
        if len(y) - n_val < 1:
            raise ValueError(
                f"Too few samples ({len(y)}) to hold out a validation split of {n_val} "
                f"row{'s' if n_val > 1 else ''} and train on the rest: {type(self).__name__} "
                f"needs at least {n_val + 1} rows.")
        for attempt in range(self._split_attempts):
            parts = train_test_split(X, y, w, test_size=n_val,
                                     stratify=self._stratify(y, n_val),
                                     random_state=(seed + attempt) % (2**31 - 1))
            X_tr, X_val, y_tr, y_val, w_tr, w_val = parts
            if self._scores_candidates(y_val):
                return CandidateData(X_tr, y_tr, w_tr, X_val, y_val, w_val,
                                     **self._data_fields())
        raise ValueError(
            f"Every validation split of {n_val} rows (of {len(y)}) tried held a constant target, "
            "so R^2 cannot score the candidates. Give more rows, a larger "
            "validation_fraction, or a target with more distinct values.")

    #: how many seeds ``_split`` tries for a validation split that can score candidates
    _split_attempts = 20

    def _scores_candidates(self, y_val):
        """Whether a validation split can score the candidates (the first
        split drawn always can, but for a regressor's constant target)."""
        return True

    def _stratify(self, y, n_val):
        """Labels to stratify the validation split by, or None."""
        return None

    # -------------------------------------------------------------- the fit
    #: sparse rows: the population trainer's first layer takes lazy Adam steps where a
    #: mini-batch touches a small share of the columns (see
    #: ``PopulationTrainer(lazy_adam='auto')`` and the sparse input guide); True until
    #: 2026-12-07
    _lazy_adam = "auto"

    def _make_trainer(self, epochs=None, early_stopping=None, batch_size=None, losses=False):
        """The candidates' trainer; ``losses``: it records the validation losses
        that a reward of ``_reward_score='likelihood'`` needs (the search's)."""
        losses = losses and self._reward_score == "likelihood"
        if losses and self._trainer_kind == "keras":
            raise ValueError("_reward_score='likelihood' needs the population trainer's "
                             "validation losses; the Keras trainer records none")
        own = ({} if self._trainer_kind == "keras" else
               {"lazy_adam": self._lazy_adam, "val_losses": losses})
        cls = KerasTrainer if self._trainer_kind == "keras" else PopulationTrainer
        return cls(epochs=self.epochs if epochs is None else epochs,
                   batch_size=self.batch_size_ if batch_size is None else batch_size,
                   learning_rate=self.learning_rate,
                   early_stopping=self.early_stopping_ if early_stopping is None else early_stopping,
                   n_iter_no_change=self.n_iter_no_change, **own)

    #: from this many training rows on, ``'auto'`` trains on larger batches and the
    #: finalists train longer
    _large_data_rows = 1000
    #: what ``batch_size='auto'`` means (small data, large)
    _auto_batch_size = (32, 64)
    #: what ``finalist_epochs='auto'`` means: this many times ``epochs`` (small, large);
    #: the classifier's small tables trained three times ``epochs`` until 2026-12-06, which
    #: bought nothing on the report seeds (see the generalisation guide)
    _auto_finalist_factor = (1, 5)
    #: folds of ``cv='auto'`` (small, large); 5 at every size until 2026-12-07 (see the
    #: generalisation guide)
    _auto_folds = (3, 5)

    def _large(self, n_rows):
        """1 from ``_large_data_rows`` training rows on, else 0: the index into
        the ``_auto_*`` pairs above (the one rule by size they share)."""
        return int(n_rows >= self._large_data_rows)

    def _training_sizes(self, n_rows):
        """``(batch_size, finalist_epochs, finalist_batch_size)`` for
        ``n_rows`` training rows, with ``'auto'`` and ``None`` resolved."""
        large = self._large(n_rows)
        batch = self._auto_batch_size[large] if self.batch_size == "auto" else self.batch_size
        epochs = self.finalist_epochs
        if epochs == "auto":
            epochs = self._auto_finalist_factor[large] * self.epochs
        finalist_batch = self._finalist_batch_size or batch
        return batch, self.epochs if epochs is None else epochs, finalist_batch

    @_fit_context(prefer_skip_nested_validation=True)
    @keeps_python_random_state
    def fit(self, X, y, sample_weight=None):
        """Run the architecture search and build the served model from its best candidates.

        Every fitted attribute comes from the last successful fit. When the
        parameters are refused by the checks of their types and ranges that
        run before any work (scikit-learn's parameter validation), ``fit``
        raises and an earlier fit stays as it was, as scikit-learn's own
        estimators do. Once that check has passed, the earlier fit's
        attributes are removed; if ``fit`` then raises (bad data, a
        parameter combination refused, every candidate failed, a second
        Ctrl-C), the estimator is left unfitted: no fitted attribute of this
        or an earlier fit survives.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric training data.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Class labels (strings, integers, booleans...) for the classifier;
            numeric targets, one or several columns, for the regressor.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights, used in candidate training, the reward and the refit.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._clear_fitted()
        try:
            return self._fit(X, y, sample_weight)
        except BaseException:
            self._clear_fitted()
            raise

    def _clear_fitted(self):
        """Remove every fitted attribute (a name ending in ``_``)."""
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, name)

    def _fit(self, X, y, sample_weight):
        space = self._make_space()
        plan = resolve_strategy(self.strategy).check()  # the strategy object, checked
        X, y, w = self._validate_training_data(X, y, sample_weight)
        self.early_stopping_ = (sp.issparse(X) if self.early_stopping == "auto"
                                else bool(self.early_stopping))
        self.batch_size_, self.finalist_epochs_, self.finalist_batch_size_ = (
            self._training_sizes(X.shape[0]))
        seed = self._search_seed()
        self.input_stats_ = self._input_stats(space, X)
        data = self._split(X, y, w, seed)
        self.n_validation_ = len(data.y_val)
        self._check_memory(space, data)
        splitter = self._cv_splitter(y, len(data.y_val), seed)
        strategy = plan.build(space, seed)  # the stateful strategy: a new one each fit
        store = SharedWeights() if self.weight_sharing else None
        budget = SearchBudget(max_time=self.max_time, max_candidates=self.max_candidates)
        search = Search(space, strategy,
                        CandidateExecutor(self._make_trainer(losses=True), self.n_jobs),
                        store, data, controller_epochs=self.controller_epochs,
                        samples_per_epoch=self.samples_per_epoch,
                        screen_factor=plan.screen_factor,
                        reward=self._reward, reward_score=self._reward_score,
                        error_score=self.error_score, seed=seed, budget=budget,
                        reporter=Reporter(self.verbose), callbacks=self._callbacks())
        start_epoch = self._restore(search)
        with interrupt_guard(budget):
            search.run(start_epoch)
        self.search_time_ = time.perf_counter() - budget.started
        self.cv_time_ = 0.0
        self.ensemble_score_ = self.ensemble_cv_score_ = float("nan")
        # what acts after the search comes from this fit's parameters, never from
        # a resumed run's record of an earlier fit
        for trial in search.trials:
            trial.cv_scores, trial.cv_best_epoch, trial.ensemble_weight = [], 0, 0.0
        folds = {}
        if splitter is not None and search.stop_reason != "interrupted":
            start = time.perf_counter()
            folds = self._score_finalists(search, splitter, X, y, w, seed)
            self.cv_time_ = time.perf_counter() - start
            search.reporter.message(f"finalists cross-validated in {self.cv_time_:.1f}s")
        self._store_results(search, strategy)
        self._fit_best(search, X, y, w, seed, folds)
        search.reporter.message(
            f"served model ({self._served_kind()}) built in {self.refit_time_:.1f}s; "
            f"winner {self.best_architecture_}, best_score_={self.best_score_:.4f}")
        for cb in search.callbacks:
            cb.on_refit(self, search)
        return self

    def _check_memory(self, space, data):
        """Refuse, before any training, a search of which not even the
        narrowest candidate fits in this machine's memory (in each worker
        process here). Wider candidates that do not fit fail one by one,
        recorded, before they allocate anything (see
        :meth:`PopulationTrainer.train`)."""
        import joblib
        n_in, n_out = data.n_features, data.n_outputs
        units = min(space.dense_tokens)[0]
        candidate = n_params([{"type": "dense", "units": units, "activation": "relu"}],
                             n_in, n_out) * BYTES_PER_PARAM
        workers = 1 if self.n_jobs is None else joblib.effective_n_jobs(self.n_jobs)
        have = available_memory()
        if have is not None and candidate * workers > have:
            gb = 2.0**30
            raise MemoryError(
                f"This search does not fit in memory: on {n_in} features even its narrowest "
                f"candidate ({units} units) needs about {candidate / gb:.1f} GB in "
                f"training{f' in each of {workers} workers' if workers > 1 else ''}, and about "
                f"{have / gb:.1f} GB is available. Use fewer features (e.g. "
                "TfidfVectorizer(max_features=...) or SelectKBest in the pipeline), smaller "
                "widths (space=SearchSpace(units=...)), or fewer `n_jobs`.")

    def _search_seed(self):
        """The search's integer seed: from ``random_state``, or the resumed run's."""
        if self.resume is not None:
            from ._runlog import read_meta
            return int(read_meta(self.resume)["seed"])
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    def _callbacks(self):
        """The run log: continue ``resume``, or a new folder under ``log_dir``."""
        from ._runlog import RunLog
        if self.resume is not None:
            log = RunLog.open(self.resume)
        elif self.log_dir is not None:
            log = RunLog.create(self.log_dir)
        else:
            self.run_dir_ = None
            return []
        self.run_dir_ = log.path
        return [log]

    def _restore(self, search):
        """Write a new run's metadata or restore a resumed search; the epoch to start at."""
        from ._runlog import RunLog
        logs = [cb for cb in search.callbacks if isinstance(cb, RunLog)]
        return logs[0].begin(self, search) if logs else 0

    def _store_results(self, search, strategy):
        trials = search.trials
        ok = [t for t in trials if t.status == "ok"]
        if not ok:
            first = trials[0].message if trials else "no candidate was trained"
            where = (f" The run folder {self.run_dir_} keeps the failed trials."
                     if self.run_dir_ is not None else "")
            raise RuntimeError("Every candidate of the search failed; the first error was: "
                               f"{first}.{where}")
        self.search_results_ = results_table(trials)
        self.best_index_ = best_row(self.search_results_)
        best = trials[self.best_index_]
        self.best_architecture_ = best.architecture
        self.best_layers_ = best.layers
        cv_score = self.search_results_["cv_score"][self.best_index_]
        self.best_score_ = float(best.reward if np.isnan(cv_score) else cv_score)
        self.refit_epochs_ = best.cv_best_epoch or best.best_epoch or self.epochs
        self.controller_history_ = history_table(search.history)
        self.controller_ = strategy
        self.stop_reason_ = search.stop_reason
        self.n_candidates_ = len(trials)

    # -------------------------------------------------------------- results
    def top_architectures(self, n=5):
        """The ``n`` best candidates of the search (the tutorial's TOP_N report).

        Parameters
        ----------
        n : int, default=5
            Number of rows.

        Returns
        -------
        top : pandas.DataFrame
            Columns ``rank``, ``architecture``, ``reward``, ``predicted_reward``,
            ``n_params``, ``controller_epoch``, ``fit_time``, best first.
            With ``verbose``, the table is also printed.
        """
        check_is_fitted(self, "search_results_")
        top = top_table(self.search_results_, n)
        if self.verbose:
            Reporter(self.verbose).message("top architectures:\n" + top.to_string(index=False))
        return top

    def _model_input(self, X):
        """``X`` checked against what ``fit`` saw, as float32 (dense, or CSR)."""
        check_is_fitted(self, "model_")
        return _as_float32(validate_data(self, X, reset=False, dtype=[np.float64, np.float32],
                                         accept_sparse=_SPARSE_FORMATS))

    def to_html(self, path=None, *, held_out_score=None):
        """Write the report of this fitted search: one self-contained HTML page.

        The same page as ``sknas report RUN_DIR --html`` (see the report
        guide): parameters, data summary, leaderboard, winner, plots and
        controller history, with nothing loaded from a network.

        Parameters
        ----------
        path : str or path-like, default=None
            File to write; ``None`` returns the HTML text instead.
        held_out_score : float or dict of str to float, default=None
            The winner's score on held-out data, shown on the page.

        Returns
        -------
        html_or_path : str or pathlib.Path
        """
        check_is_fitted(self, "search_results_")
        from ._html import estimator_report
        return estimator_report(self, path, held_out_score=held_out_score)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = True
        # the population trainer draws every random number from random_state;
        # model.fit's shuffling and dropout draw from TensorFlow's global seed
        tags.non_deterministic = self._trainer_kind == "keras"
        return tags


#: Sparse formats ``fit`` and the predictions take (converted to CSR).
_SPARSE_FORMATS = ("csr", "csc", "coo")


def _as_float32(X):
    """Validated ``X`` as float32: an array, or a CSR matrix in canonical form
    (sorted column indices, duplicates summed), which is what the trainers
    take and what keeps a mini-batch's gather a slice of stored values."""
    if not sp.issparse(X):
        return X.astype(np.float32)
    if X.format == "csr" and X.dtype == np.float32 and X.has_canonical_format:
        return sp.csr_matrix(X)
    X = sp.csr_matrix(X, dtype=np.float32, copy=True)  # the caller's matrix is left alone
    X.sum_duplicates()
    X.sort_indices()
    return X


