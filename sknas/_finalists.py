"""The finalists: cross-validation of the search's best candidates and the
ensemble selected from their out-of-fold outputs.

:class:`FinalistsMixin` gives the estimators (through
:class:`~sknas._base.BaseMLPNAS`) what happens after the search: which
splitter scores the finalists (``cv``), training every finalist's folds side
by side in one population (a fold's held-out rows take no part in its model),
and greedy ensemble selection with its cross-validated estimate. What differs
by task (folds, losses, scores, a regression fold's own standardisation)
is overridden in ``_estimator.py``.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.base import is_classifier
from sklearn.model_selection import KFold, check_cv

from ._data import scale_outputs
from ._trainer import CandidateData, FoldRows

__all__ = ["FinalistsMixin"]


class FinalistsMixin:
    """Cross-validated finalists and their ensemble (see the module docstring)."""

    def _cv_splitter(self, y, n_val, seed):
        """The splitter that scores the finalists, or None (checked before any training)."""
        cv = self.cv
        if self._n_members() and cv is None:
            raise ValueError("ensemble_size > 0 selects members on the finalists' out-of-fold "
                             "predictions: set cv (e.g. cv='auto' or cv=5), or ensemble_size=0.")
        if self._n_members() and not self.refit:
            raise ValueError("ensemble_size > 0 serves several finalists: it needs refit='auto', "
                             "'folds' or True.")
        if self.refit == "folds" and cv is None:
            raise ValueError("refit='folds' serves the cross-validated finalists' fold models: "
                             "set cv (e.g. cv='auto' or cv=5), or refit=True.")
        if cv == "auto":
            if n_val >= 1000 and not self._n_members() and self.refit != "folds":
                return None
            cv = min(self._auto_folds[self._large(len(y))], self._max_folds(y))
            if cv < 2:
                return None
        if cv is None:
            return None
        if isinstance(cv, Integral):
            most = self._max_folds(y)
            if cv > most:
                raise ValueError(f"cv={cv} folds need {self._folds_need(cv, y)}. Use "
                                 f"cv={most} or fewer, or cv=None.")
            return self._kfold(int(cv), seed)
        return check_cv(cv, y, classifier=is_classifier(self))

    #: what ``ensemble_size='auto'`` means (see its docstring)
    _auto_ensemble_size = 10

    def _n_members(self):
        """``ensemble_size`` with ``'auto'`` resolved."""
        if self.ensemble_size != "auto":
            return self.ensemble_size
        return self._auto_ensemble_size if self.cv is not None and self.refit else 0

    def _finalist_trainer(self, epochs=None, early_stopping=None):
        """A trainer as the finalists' folds train: ``finalist_epochs_`` (or
        ``epochs``) on batches of ``finalist_batch_size_``."""
        return self._make_trainer(self.finalist_epochs_ if epochs is None else epochs,
                                  early_stopping, self.finalist_batch_size_)

    def _max_folds(self, y):
        """The most folds the target allows (rows, or the smallest class's rows)."""
        return len(y)

    def _folds_need(self, cv, y):
        """What ``cv`` folds need of the target, and what it has, in words."""
        return f"at least {cv} rows; there are {len(y)}"

    def _kfold(self, n_splits, seed):
        return KFold(n_splits, shuffle=True, random_state=seed)

    def _score_finalists(self, search, splitter, X, y, w, seed):
        """Cross-validate the ``n_finalists`` best candidates; their trials get
        ``cv_scores``. Returns the fold models' weights of every finalist whose
        folds all trained, by trial index."""
        ok = [t for t in search.trials if t.status == "ok" and np.isfinite(t.reward)]
        finalists = sorted(ok, key=lambda t: -t.reward)[:self.n_finalists]
        folds = list(splitter.split(X, y if y.ndim == 1 else y[:, 0]))
        search.reporter.message(
            f"cross-validating {len(finalists)} finalists: {len(folds)} folds each, "
            f"{self.finalist_epochs_} epochs on batches of {self.finalist_batch_size_} "
            f"({len(finalists) * len(folds)} networks side by side)")
        data = CandidateData(X, y, w, X, y, w, **self._data_fields())
        fold_rows = self._fold_row_weights(folds, y, w, seed)
        candidates, row_weights = [], []
        for trial in finalists:
            init, rng = self._fresh_start(trial, data, seed)
            net_seed = int(rng.integers(2**31 - 1))
            for _ in folds:
                candidates.append((trial.layers, [tuple(a.copy() for a in layer) for layer in init],
                                   net_seed))
            row_weights.extend(fold_rows)
        results = self._train_finalists(search, finalists, len(folds), candidates, data, seed,
                                        row_weights)
        results = [self._from_fold_target(r, rows.target) for r, rows in zip(results, row_weights)]
        # a row's out-of-fold output is its mean over the folds that held it out (a
        # repeated splitter holds it out more than once, a shuffle split perhaps never)
        held_out = np.zeros(len(y))
        for _, val in folds:
            held_out[val] += 1
        seen = held_out > 0
        oof, fold_weights = {}, {}
        for i, trial in enumerate(finalists):
            mine = results[i * len(folds):(i + 1) * len(folds)]
            if all(r.status == "ok" for r in mine):
                fold_weights[trial.index] = [r.weights for r in mine]
            trial.cv_scores = [r.val_scores[max(r.best_epoch, 1) - 1]
                               if r.status == "ok" and r.val_scores else np.nan for r in mine]
            epochs = [r.best_epoch for r in mine if r.status == "ok"]
            trial.cv_best_epoch = (int(round(np.mean(epochs))) if epochs
                                   else self.finalist_epochs_)
            if self._n_members() and all(r.status == "ok" for r in mine):
                pred = np.zeros((len(y), data.n_outputs))
                for (_, val), r in zip(folds, mine):
                    pred[val] += r.val_outputs[val]
                oof[trial.index] = pred[seen] / held_out[seen, None]
        for trial in finalists:
            scores = np.asarray(trial.cv_scores, float)
            search.reporter.detail(f"finalist {trial.architecture}: cv_score="
                                   f"{np.nanmean(scores) if np.isfinite(scores).any() else np.nan:.4f}"
                                   f" ± {np.nanstd(scores) if np.isfinite(scores).any() else np.nan:.4f}")
        if self._n_members() and oof:
            held = [np.flatnonzero(np.isin(np.flatnonzero(seen), val)) for _, val in folds]
            self._select_ensemble(search, oof, y[seen], w[seen], held)
        return fold_weights

    def _train_finalists(self, search, finalists, n_folds, candidates, data, seed, row_weights):
        """Train the finalists' folds (``candidates``: ``n_folds`` per finalist,
        in the order of ``finalists``) and return their results."""
        return self._finalist_trainer().train(candidates, data, seed, row_weights,
                                              val_outputs=bool(self._n_members()))

    #: share of a fold's training rows that early stopping watches (at least one row)
    _stop_share = 0.1

    def _fold_row_weights(self, folds, y, w, seed):
        """Per fold, what its networks train and are scored on
        (:class:`~sknas._trainer.FoldRows`): ``w`` on its training rows and
        on its held-out rows; with early stopping, ``w`` on a tenth of its
        training rows (drawn once per fold, at least one row) that it then
        watches instead of training on them, so that no held-out row chooses
        its best epoch; and the target as the fold's own rows standardise it
        (:meth:`_fold_target`)."""
        rows = []
        for f, (train, val) in enumerate(folds):
            in_train = np.zeros(len(y), np.float32)
            in_train[train] = 1.0
            in_val = np.zeros(len(y), np.float32)
            in_val[val] = 1.0
            in_stop = None
            if self.early_stopping_:
                rng = np.random.default_rng([seed, 2**23, f])
                n_stop = max(1, int(round(self._stop_share * len(train))))
                watched = rng.choice(np.asarray(train), size=min(n_stop, len(train) - 1),
                                     replace=False)
                in_stop = np.zeros(len(y), np.float32)
                in_stop[watched] = 1.0
                in_train = in_train - in_stop
            rows.append(FoldRows(w * in_train, w * in_val, None if in_stop is None else w * in_stop,
                                 self._fold_target(y, train)))
        return rows

    def _fold_target(self, y, train):
        """``(shift, scale)`` standardising the encoded target as the fold's
        training rows ``train`` alone would, or None (the classifier)."""
        return None

    @staticmethod
    def _from_fold_target(result, target):
        """A fold's result in the encoded target's units: its output layer
        and out-of-fold outputs mapped back from the fold's standardisation."""
        if target is None or result.status != "ok":
            return result
        shift, scale = (np.asarray(a, np.float32) for a in target)
        result.weights = scale_outputs(result.weights, scale, shift)
        if result.val_outputs is not None:
            result.val_outputs = result.val_outputs * scale + shift
        return result

    def _greedy_picks(self, oof, y, w):
        """Greedy selection with replacement (Caruana et al., 2004) of
        ``ensemble_size`` picks among the out-of-fold outputs ``oof``
        (row -> array), each pick the one whose addition most lowers the
        loss of the average on ``y`` weighted by ``w``. Returns the picks
        and the average of their outputs."""
        ids = list(oof)
        total = np.zeros_like(oof[ids[0]])
        picks = []
        for _ in range(self._n_members()):
            losses = [self._oof_loss((total + oof[i]) / (len(picks) + 1), y, w) for i in ids]
            best = ids[int(np.argmin(losses))]  # ties: the earlier, better-rewarded finalist
            picks.append(best)
            total += oof[best]
        return picks, total / len(picks)

    def _select_ensemble(self, search, oof, y, w, held=()):
        """Select the ensemble (:meth:`_greedy_picks`) on the out-of-fold
        outputs of all rows; set the members' ``ensemble_weight``,
        ``ensemble_score_`` (the selection's own score: optimistic, since it
        chose on those rows) and ``ensemble_cv_score_``: for each fold's rows
        (``held``, positions in ``y``), the selection made without them and
        scored on them, pooled over the rows."""
        picks, mean = self._greedy_picks(oof, y, w)
        for i in oof:
            search.trials[i].ensemble_weight = picks.count(i) / len(picks)
        self.ensemble_score_ = self._oof_score(mean, y, w)
        outer = np.zeros_like(mean)
        count = np.zeros(len(y))
        for rows in held:
            rest = np.ones(len(y), bool)
            rest[rows] = False
            if not rest.any() or not len(rows):
                continue
            picks_f, _ = self._greedy_picks({i: p[rest] for i, p in oof.items()}, y[rest], w[rest])
            outer[rows] += sum(oof[i][rows] for i in picks_f) / len(picks_f)
            count[rows] += 1
        scored = count > 0
        self.ensemble_cv_score_ = (
            self._oof_score(outer[scored] / count[scored, None], y[scored], w[scored])
            if scored.any() else float("nan"))
        search.reporter.message(
            f"ensemble of {len(set(picks))} finalists ({len(picks)} picks): selection score "
            f"{self.ensemble_score_:.4f}, its cross-validated estimate {self.ensemble_cv_score_:.4f}")

    def _oof_loss(self, pred, y, w):
        """Weighted loss of averaged out-of-fold outputs (lower is better)."""
        return float(np.average(np.mean((pred - y) ** 2, axis=1), weights=w))

    def _oof_score(self, pred, y, w):
        """The search's score (R^2, averaged over targets) of out-of-fold
        outputs; NaN where a target does not vary over the rows."""
        mean = np.average(y, axis=0, weights=w)
        sse = (w[:, None] * (pred - y) ** 2).sum(axis=0)
        sst = (w[:, None] * (y - mean) ** 2).sum(axis=0)
        if not (sst > 1e-12).all():
            return float("nan")
        return float(np.mean(1 - sse / sst))
