"""Variants of the finalists' training that were measured and not adopted.

A study script, not part of sknas: it runs ``bench_quality.py`` with extra
keys understood in ``--configs``, each implemented here by patching the
estimator or the population trainer (so it follows their internals, and may
need updating when they change):

- ``fin_es=True``: early stopping (patience ``n_iter_no_change``, best epoch
  restored) for the finalists' folds only, the search's candidates unchanged;
- ``schedule='cosine'`` or ``'linear'``: the finalists' folds train with a
  learning rate that decays to 0 at their last step (decoupled weight decay
  scaled with it, as Keras's AdamW does);
- ``uniform=0`` or ``uniform=K``: the served ensemble gives equal weights to
  all finalists (0) or to the K best by cross-validated score, instead of the
  greedy selection;
- ``repeats=R``: an int ``cv`` (and ``'auto'``'s 5 folds) repeated R times with
  other shuffles (``RepeatedStratifiedKFold``): R x k fold models per finalist,
  all served, and out-of-fold outputs averaged over the repeats;
- ``fin_batch=B``: the finalists' folds train on mini-batches of B rows (the
  search's candidates keep ``batch_size``). First a patch, now the estimator's
  own ``finalist_batch_size=B``, which this key passes on, so the recorded
  commands still run the same training;
- ``fin_keep=K``: a rung of successive halving for the finalists when
  ``finalist_epochs='auto'`` trains them longer than ``epochs`` (from 1,000
  rows): every finalist's folds train ``epochs``, and only the K best by that
  cross-validated score train ``finalist_epochs_``, from the same start (so
  exactly as without the rung); the others keep their short fold models and
  scores, and take no part in the ensemble unless ``fin_join=True``.
  ``fin_keep=0``: no rung (the default). Measured on 2026-12-06 (tuning
  seeds, the four large tables): about half the fit time on wine-quality and
  default, but wine-quality lost 0.0095 (see ``docs/performance.rst``).

The results are in ``studies/2026-11-29-fold-models.md`` (rows in
``results/results_quality_folds_variants*.json``), and for ``fin_keep`` in
``results/results_quality_classification_v2_choose_finalist_rung.json``.
Example::

    python benchmarks/variants_folds.py --purpose choose --peers \\
        --configs "dict(fin_es=True)" "dict(schedule='cosine')"

It takes ``bench_quality.py``'s flags, among them ``--purpose`` and
``--protocol`` (``benchmarks/suite.py``): a variant is chosen with
``--purpose choose`` (the tuning seeds 0-2, the default seeds then), and
reported with ``--purpose report`` (the report seeds 3-7); the recorded runs
were version 1's (``--protocol 1`` with their ``--seeds``).
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_quality as bq  # noqa: E402
from flat import make  # noqa: E402


class FinalistEarlyStopping:
    """Early stopping for the finalists' folds only."""

    def _score_finalists(self, *args, **kwargs):
        old = self.early_stopping_
        self.early_stopping_ = True
        try:
            return super()._score_finalists(*args, **kwargs)
        finally:
            self.early_stopping_ = old


def scheduled_trainer_class():
    """A PopulationTrainer whose Adam steps take a decaying learning rate."""
    import tensorflow as tf

    from sknas import _trainer

    if getattr(_trainer._Group, "_scheduled", False):
        return _trainer._ScheduledTrainer
    plain_apply = _trainer._Group.apply

    def apply(self, grads, b1p, b2p):  # the step's factor, set while tracing the step
        scale = getattr(self, "_scale", None)
        if scale is None:
            return plain_apply(self, grads, b1p, b2p)
        lr, decay = self.learning_rate, self.decay
        self.learning_rate = lr * scale
        self.decay = None if decay is None else decay * scale
        try:
            return plain_apply(self, grads, b1p, b2p)
        finally:
            self.learning_rate, self.decay = lr, decay

    class ScheduledTrainer(_trainer.PopulationTrainer):
        schedule = "cosine"

        def _make_step(self, pop, rows, n, first_step):
            plain_step = super()._make_step(pop, rows, n, first_step)
            total = tf.cast(self.epochs * ((n + self.batch_size - 1) // self.batch_size),
                            tf.float32)

            def step(s, *state):
                t = tf.cast(first_step + s, tf.float32) / total
                factor = 0.5 * (1.0 + tf.cos(np.pi * t)) if self.schedule == "cosine" else 1.0 - t
                for g in pop.groups:
                    g._scale = factor
                try:
                    return plain_step(s, *state)
                finally:
                    for g in pop.groups:
                        g._scale = None
            return step

        def _graph_key(self, *args):  # not the plain trainer's cached graphs
            return super()._graph_key(*args) + (self.schedule,)

    _trainer._Group.apply = apply
    _trainer._Group._scheduled = True
    _trainer._ScheduledTrainer = ScheduledTrainer
    return ScheduledTrainer


class FinalistSchedule:
    """The finalists' folds train with a decaying learning rate."""

    _schedule = "cosine"

    def _make_trainer(self, epochs=None, early_stopping=None, batch_size=None):
        trainer = super()._make_trainer(epochs, early_stopping, batch_size)
        if epochs is None:  # the search's trainer
            return trainer
        scheduled = scheduled_trainer_class()(
            epochs=trainer.epochs, batch_size=trainer.batch_size,
            learning_rate=trainer.learning_rate, early_stopping=trainer.early_stopping,
            n_iter_no_change=trainer.n_iter_no_change)
        scheduled.schedule = self._schedule
        return scheduled


class UniformEnsemble:
    """The served ensemble averages the ``_top`` finalists best by
    cross-validated score (all of them when None) with equal weights,
    instead of the greedy selection."""

    _top = None

    def _select_ensemble(self, search, oof, y, w):
        ids = sorted(oof, key=lambda i: -np.nanmean(search.trials[i].cv_scores))
        ids = ids[:self._top] if self._top else ids
        for i in oof:
            search.trials[i].ensemble_weight = 1.0 / len(ids) if i in ids else 0.0
        self.ensemble_score_ = self._oof_score(sum(oof[i] for i in ids) / len(ids), y, w)


class RepeatedFolds:
    """An int ``cv`` (and ``'auto'``'s 5) is repeated ``_repeats`` times with
    other shuffles: every finalist trains ``_repeats`` x k fold models, all
    served, and a row's out-of-fold output is its mean over its repeats."""

    _repeats = 2

    def _kfold(self, n_splits, seed):
        from sklearn.base import is_classifier
        from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold
        cls = RepeatedStratifiedKFold if is_classifier(self) else RepeatedKFold
        return cls(n_splits=n_splits, n_repeats=self._repeats, random_state=seed)


class FinalistRung:
    """A rung of successive halving before the finalists train longer
    (``fin_keep``; see the module docstring)."""

    _going_on = 3
    _join = False

    def _train_finalists(self, search, finalists, n_folds, candidates, data, seed, row_weights):
        self._stopped = set()
        if (self.finalist_epochs != "auto" or self.finalist_epochs_ <= self.epochs
                or len(finalists) <= self._going_on):
            return super()._train_finalists(search, finalists, n_folds, candidates, data, seed,
                                            row_weights)
        val_outputs = bool(self._n_members())
        results = self._finalist_trainer(epochs=self.epochs).train(
            candidates, data, seed, row_weights, val_outputs=val_outputs)
        scores = []
        for i in range(len(finalists)):
            mine = results[i * n_folds:(i + 1) * n_folds]
            ok = all(r.status == "ok" and r.val_scores for r in mine)
            scores.append(np.mean([r.val_scores[max(r.best_epoch, 1) - 1] for r in mine])
                          if ok else -np.inf)
        order = np.argsort(-np.asarray(scores), kind="stable")[:self._going_on]
        order = sorted(int(i) for i in order if np.isfinite(scores[i]))
        search.reporter.message(
            f"after {self.epochs} epochs, {len(order)} of {len(finalists)} finalists go on to "
            f"{self.finalist_epochs_}")
        picked = [i * n_folds + f for i in order for f in range(n_folds)]
        longer = self._finalist_trainer().train(
            [candidates[k] for k in picked], data, seed, [row_weights[k] for k in picked],
            val_outputs=val_outputs)
        for k, r in zip(picked, longer):
            results[k] = r
        self._stopped = {finalists[i].index for i in set(range(len(finalists))) - set(order)}
        return results

    def _select_ensemble(self, search, oof, *args):
        if not self._join:
            oof = {i: p for i, p in oof.items() if i not in self._stopped}
        return super()._select_ensemble(search, oof, *args)


_plain_class = bq.sknas_class


def sknas_class(task):
    base = _plain_class(task)

    def factory(**params):
        mixins = []
        schedule = params.pop("schedule", None)
        if schedule:
            mixins.append(type("Schedule", (FinalistSchedule,), {"_schedule": schedule}))
        fin_batch = params.pop("fin_batch", None)
        if fin_batch:  # the prototype of the estimator's own parameter
            params["finalist_batch_size"] = fin_batch
        fin_keep = params.pop("fin_keep", None)
        fin_join = params.pop("fin_join", False)
        if fin_keep:
            mixins.append(type("Rung", (FinalistRung,), {"_going_on": fin_keep,
                                                         "_join": fin_join}))
        uniform = params.pop("uniform", None)
        if uniform is not None:
            mixins.append(type("Uniform", (UniformEnsemble,), {"_top": uniform or None}))
        repeats = params.pop("repeats", None)
        if repeats:
            mixins.append(type("Repeated", (RepeatedFolds,), {"_repeats": repeats}))
        if params.pop("fin_es", False):
            mixins.append(FinalistEarlyStopping)
        if mixins:
            return make(type("Variant" + base.__name__, (*mixins, base), {}), **params)
        return make(base, **params)
    return factory


bq.sknas_class = sknas_class

if __name__ == "__main__":
    bq.main()
