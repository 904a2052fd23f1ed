"""The served model: what ``model_`` is built from, and how it is saved.

:class:`ServingMixin` builds ``model_`` once the finalists are scored: the
winner's fold models, an ensemble of finalists' fold models, or architectures
retrained on all the rows (``refit``), as one plain Keras model; and it keeps
the model through pickling and writes it as a ``.keras`` file.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from ._trainer import CandidateData, build_keras_model, initial_weights
from ._trial import serves_ensemble

__all__ = ["ServingMixin"]


class ServingMixin:
    """Building, pickling and exporting the served model (see the module docstring)."""

    def _refit_mode(self, has_folds):
        """``refit`` with ``'auto'`` resolved: ``'folds'`` when the winner has
        fold models to serve (``has_folds``), else True; False stays False."""
        if not self.refit:
            return False
        if self.refit in ("auto", "folds") and has_folds:
            return "folds"
        return True

    def _fit_best(self, search, X, y, w, seed, folds):
        """Build ``model_``: the fold models of the winner (and members) with
        ``refit='folds'``; otherwise the ensemble the selection picked (see
        :func:`serves_ensemble`), or the single winner."""
        start = time.perf_counter()
        members = {t.index: t.ensemble_weight for t in search.trials if t.ensemble_weight > 0}
        self.ensemble_weights_ = members
        self.refit_ = self._refit_mode(self.best_index_ in folds)
        if self.refit_ == "folds":
            self.model_ = self._folds_model(search, members or {self.best_index_: 1.0}, folds,
                                            X.shape[1])
        elif serves_ensemble(members, self.best_index_):
            self.model_ = self._ensemble_model(search, members, X, y, w, seed)
        else:
            self.model_ = self._winner_model(search, X, y, w, seed)
        self.refit_time_ = time.perf_counter() - start

    def _served_kind(self):
        """What ``model_`` is, in words."""
        members = len(self.ensemble_weights_)
        what = (f"an ensemble of {members} finalists" if serves_ensemble(
            self.ensemble_weights_, self.best_index_) else "the winner")
        how = {"folds": "their fold models" if members > 1 else "its fold models",
               True: "refit on all rows", False: "as the search trained it"}[self.refit_]
        return f"{what}, {how}"

    def _winner_model(self, search, X, y, w, seed):
        """The winner: retrained on all rows if ``refit``, else as the search
        trained it (retrained on the search's split when those weights are
        gone, as after a resume)."""
        store = search.store
        own = search.best_weights
        best = search.trials[self.best_index_]
        if self.refit:
            data = CandidateData(X, y, w, X[:0], y[:0], w[:0], **self._data_fields())
            weights = self._train(best, data, store, seed, self.refit_epochs_)
        elif own is None or own[0] != self.best_index_:
            weights = self._train(best, search.data, store, seed)
        else:
            weights = own[1]
        return self._served_net(search, self.best_layers_, X.shape[1], weights)

    def _served_net(self, search, layers, n_features, weights):
        """The Keras model of one served net: ``layers`` with trained
        ``weights``, taking rows as the fit's were (sparse or dense)."""
        return build_keras_model(layers, n_features, search.data.head,
                                 self._served_weights(weights),
                                 input_stats=search.data.input_stats, sparse=_sparse(search))

    def _ensemble_model(self, search, members, X, y, w, seed):
        """One Keras model averaging the refit members' outputs with their
        weights (the winner, if a member, refit first as :meth:`_winner_model`
        refits it)."""
        winner = (self._winner_model(search, X, y, w, seed) if self.best_index_ in members
                  else None)
        data = CandidateData(X, y, w, X[:0], y[:0], w[:0], **self._data_fields())
        trained = self._refit_together(
            [search.trials[i] for i in members if i != self.best_index_], data, seed)
        nets = [(winner if index == self.best_index_ else self._served_net(
                     search, search.trials[index].layers, X.shape[1], trained[index]), weight)
                for index, weight in members.items()]
        return _weighted_sum_model(X.shape[1], nets, _sparse(search))

    def _folds_model(self, search, members, folds, n_features):
        """One Keras model averaging ``members``' fold models: member weight
        divided by its number of folds for each (``refit='folds'``)."""
        nets = [(self._served_net(search, search.trials[index].layers, n_features, weights),
                 weight / len(folds[index]))
                for index, weight in members.items() for weights in folds[index]]
        return _weighted_sum_model(n_features, nets, _sparse(search))

    def _refit_together(self, trials, data, seed):
        """Refit cross-validated ``trials`` on ``data`` as :meth:`_train` refits
        one (from its folds' fresh initialisation, for its folds' mean best
        epoch on their batches, without early stopping), side by side: one population per
        number of epochs, whose row order depends on that number only, so
        with the population trainer a member trains the same with or without
        the others. Returns
        ``{trial.index: weights}``."""
        groups = {}
        for trial in trials:
            groups.setdefault(trial.cv_best_epoch, []).append(trial)
        weights = {}
        for epochs, group in groups.items():
            candidates = []
            for trial in group:
                init, rng = self._fresh_start(trial, data, seed)
                candidates.append((trial.layers, init, int(rng.integers(2**31 - 1))))
            trainer = self._finalist_trainer(epochs=epochs, early_stopping=False)
            order = int(np.random.default_rng([seed, 2**22, epochs]).integers(2**31 - 1))
            results = trainer.train(candidates, data, order)
            for trial, result in zip(group, results):
                if result.status != "ok":
                    raise RuntimeError(f"Refitting {trial.architecture} failed: "
                                       f"{result.message}")
                weights[trial.index] = result.weights
        return weights

    def _served_weights(self, weights):
        """The trained weights as the served model uses them."""
        return weights

    def _fresh_start(self, trial, data, seed):
        """The fresh initialisation (and the generator after drawing it) that a
        finalist's folds, and later its refit, start from."""
        rng = np.random.default_rng([seed, 2**21, trial.index])
        return initial_weights(trial.layers, data.n_features, data.n_outputs, rng), rng

    def _train(self, trial, data, store, seed, epochs=None):
        """Train ``trial``'s architecture again on ``data``: from its folds'
        fresh initialisation when it was cross-validated (shared weights have
        seen every fold), else from the shared weights as every candidate
        starts; for ``epochs`` without early stopping (no validation rows), or,
        when ``epochs`` is None, as its folds trained (cross-validated) or as
        the search trains."""
        if trial.cv_scores:
            weights, rng = self._fresh_start(trial, data, seed)
        else:
            rng = np.random.default_rng([seed, 2**20])
            weights = initial_weights(trial.layers, data.n_features, data.n_outputs, rng, store)
        candidate = (trial.layers, weights, int(rng.integers(2**31 - 1)))
        if trial.cv_scores:  # on its folds' batches: as long as they trained, or ``epochs``
            trainer = (self._finalist_trainer() if epochs is None
                       else self._finalist_trainer(epochs, early_stopping=False))
        elif epochs is not None:
            trainer = self._make_trainer(epochs=epochs, early_stopping=False)
        else:
            trainer = self._make_trainer()
        result = trainer.train([candidate], data, int(rng.integers(2**31 - 1)))[0]
        if result.status != "ok":
            raise RuntimeError(f"Refitting {trial.architecture} failed: {result.message}")
        return result.weights

    def __getstate__(self):
        state = self.__dict__.copy()
        model = state.pop("model_", None)
        if model is not None:
            state["_model_keras_bytes"] = _model_to_bytes(model)
        return state

    def __setstate__(self, state):
        data = state.pop("_model_keras_bytes", None)
        self.__dict__.update(state)
        if data is not None:
            self.model_ = _model_from_bytes(data)

    def export_model(self, path):
        """Write the served model as a plain ``.keras`` file.

        The served model is ``model_`` (see ``refit``): by default the
        ensemble of the finalists' fold models, one Keras model averaging
        them with their weights (the winner's fold models alone with
        ``ensemble_size=0``; the refit winner or members with ``refit=True``).
        The file loads with ``keras.models.load_model(path)`` and no custom
        objects. A classifier's outputs are probabilities (one sigmoid unit
        for binary problems) for classes in the order of ``classes_``; a
        regressor's are the targets in their original units (the target's
        standardisation is folded into the output layer).

        Parameters
        ----------
        path : str or path-like
            Destination; should end in ``.keras``.

        Returns
        -------
        path : str
        """
        check_is_fitted(self, "model_")
        path = os.fspath(path)
        self.model_.save(path)
        return path

    def save_model(self, path):
        """Write the served model and its metadata to the folder ``path``, without pickle.

        The folder holds ``model.keras`` and ``sknas_model.json`` (the task,
        classes with their dtype or the targets' shape, feature names,
        architecture, parameters); :func:`sknas.load_model` rebuilds a
        predictor from it that gives the same predictions.

        Parameters
        ----------
        path : str or path-like
            Folder to write (created if needed; its two files are replaced).

        Returns
        -------
        path : pathlib.Path
        """
        from ._io import save_model
        return save_model(self, path)


def _sparse(search):
    """Whether the served model takes sparse rows: the fit's were sparse."""
    return sp.issparse(search.data.X)


def _weighted_sum_model(n_features, nets, sparse=False):
    """One Keras model whose output is the sum of ``(net, weight)`` pairs'
    outputs, each scaled by its weight (a ``Rescaling`` layer per net and an
    ``Add``): the served model of an ensemble (``sparse``: of sparse rows)."""
    import keras
    inputs = keras.Input((n_features,), sparse=sparse)
    outputs = [keras.layers.Rescaling(float(weight))(net(inputs)) for net, weight in nets]
    return keras.Model(inputs, keras.layers.Add()(outputs) if len(outputs) > 1 else outputs[0])


def _model_to_bytes(model):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        with open(path, "rb") as fh:
            return fh.read()


def _model_from_bytes(data):
    from ._runlog import load_keras
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        with open(path, "wb") as fh:
            fh.write(data)
        return load_keras(path)
