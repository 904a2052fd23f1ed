"""The search loop: sample a controller epoch, train it, update the controller."""

from __future__ import annotations

import signal
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ._space import describe_layers
from ._trainer import CandidateResult, initial_weights, n_params
from ._trial import Trial, predictor_spearman, reward_from_scores

__all__ = ["SCREEN_EXPLORE_SHARE", "Search", "SearchBudget", "interrupt_guard", "screen"]

#: Share of a screened controller epoch's trained candidates drawn uniformly
#: from those the predictor did not rank highest (at least one).
SCREEN_EXPLORE_SHARE = 0.2


def screen(predicted, n_train, rng):
    """Which of the sampled candidates to train: the predictor's top ones and
    an exploration share drawn uniformly from the rest.

    Parameters
    ----------
    predicted : array-like of shape (m,)
        The predictor's estimate of each sampled candidate.
    n_train : int
        How many to train (``n_train < m``).
    rng : numpy.random.Generator

    Returns
    -------
    chosen : ndarray of int
        Indices of the candidates to train, in sampling order.
    weight : ndarray of float
        Each chosen candidate's inverse inclusion probability given the
        sample: 1 for a top pick, ``(m - n_top) / n_explore`` for an
        exploration pick (they sum to ``m``). With one candidate to train
        there is no exploration share and the top pick has weight 1.
    """
    p = np.asarray(predicted, dtype=float)
    m = p.size
    n_explore = min(max(1, int(round(SCREEN_EXPLORE_SHARE * n_train))), n_train - 1)
    n_top = n_train - n_explore
    order = np.argsort(-np.nan_to_num(p, nan=-np.inf), kind="stable")  # ties: sampling order
    top, rest = order[:n_top], np.sort(order[n_top:])
    explore = rng.choice(rest, size=n_explore, replace=False) if n_explore else rest[:0]
    chosen = np.sort(np.concatenate([top, explore]))
    weight = np.where(np.isin(chosen, top), 1.0, (m - n_top) / max(n_explore, 1))
    return chosen, weight


class SearchInterrupted(UserWarning):
    """Warning issued when Ctrl-C ends a search early."""


@dataclass
class SearchBudget:
    """When the search stops (besides running out of controller epochs)."""

    max_time: float | None = None
    max_candidates: int | None = None
    interrupted: bool = False
    started: float = field(default_factory=time.perf_counter)

    def stop_reason(self, n_done):
        if self.interrupted:
            return "interrupted"
        if self.max_time is not None and time.perf_counter() - self.started >= self.max_time:
            return "max_time"
        if self.max_candidates is not None and n_done >= self.max_candidates:
            return "max_candidates"
        return None


@contextmanager
def interrupt_guard(budget):
    """First Ctrl-C asks the search to stop after the current population; a
    second one raises ``KeyboardInterrupt`` at once. Only in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if budget.interrupted:
            raise KeyboardInterrupt
        budget.interrupted = True
        warnings.warn("Interrupted: the search stops after the candidates now training, "
                      "then refits the best so far. Press Ctrl-C again to abort.",
                      SearchInterrupted, stacklevel=2)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Search:
    """Run the controller search.

    Parameters
    ----------
    space : SearchSpace
    strategy : Controller or RandomStrategy
        What to try: ``sample(n, rng, exclude)`` and ``update(archs, rewards)``.
    executor : CandidateExecutor
        How to score it.
    store : SharedWeights or None
        One-shot weight table; ``None`` disables weight sharing.
    data : CandidateData
    controller_epochs, samples_per_epoch : int
    screen_factor : float, default=1
        Sample ``round(screen_factor * samples_per_epoch)`` architectures per
        controller epoch and train ``samples_per_epoch`` of them, chosen by
        :func:`screen`; 1 trains all it samples.
    reward : {'weighted', 'last', 'max'}
    reward_score : {'accuracy', 'likelihood'}, default='accuracy'
        The per-epoch score that ``reward`` weighs: the validation score
        (accuracy, or a regressor's R^2), or ``exp(-validation loss)`` from
        the results' ``val_losses`` (the geometric mean of the probability
        given to the true class; a regressor's ``exp(-MSE)`` on its
        standardised targets).
    error_score : float or 'raise'
    seed : int
    budget : SearchBudget
    reporter : Reporter
    callbacks : list
        Objects with ``on_trial(trial)`` and ``on_epoch(row, search)``
        (the run log).
    """

    def __init__(self, space, strategy, executor, store, data, *, controller_epochs,
                 samples_per_epoch, reward, error_score, seed, budget, reporter, callbacks=(),
                 screen_factor=1, reward_score="accuracy"):
        self.space = space
        self.strategy = strategy
        self.executor = executor
        self.store = store
        self.data = data
        self.controller_epochs = controller_epochs
        self.samples_per_epoch = samples_per_epoch
        self.screen_factor = screen_factor
        self.reward = reward
        self.reward_score = reward_score
        self.error_score = error_score
        self.seed = seed
        self.budget = budget
        self.reporter = reporter
        self.callbacks = list(callbacks)
        self.trials = []
        self.history = []
        self.best_weights = None  # (trial index, trained weights) of the best so far
        self.stop_reason = "completed"

    @property
    def n_total(self):
        return self.controller_epochs * self.samples_per_epoch

    def run(self, start_epoch=0):
        """Run controller epochs ``start_epoch ..``; returns ``self``."""
        self.reporter.search_start(self.controller_epochs, self.samples_per_epoch, self.space.size)
        with self.executor:
            for epoch in range(start_epoch, self.controller_epochs):
                reason = self.budget.stop_reason(len(self.trials))
                if reason is not None:
                    self.stop_reason = reason
                    break
                if not self._run_epoch(epoch):
                    break
        self.reporter.message(f"search ended ({self.stop_reason}) after {len(self.trials)} candidates")
        return self

    def _run_epoch(self, epoch):
        started = time.perf_counter() - self.budget.started
        rng = np.random.default_rng([self.seed, epoch])
        n = self.samples_per_epoch
        if self.budget.max_candidates is not None:
            n = min(n, self.budget.max_candidates - len(self.trials))
        n_sample = max(n, int(round(self.screen_factor * n)))
        archs, predicted = self.strategy.sample(n_sample, rng,
                                                exclude={t.arch for t in self.trials})
        if len(archs) < n:
            warnings.warn(f"The search space is exhausted: all {self.space.size} architectures "
                          "have been tried; the search ends early.", UserWarning, stacklevel=3)
            self.stop_reason = "exhausted"
        if not archs:
            return False
        n_sampled, weight = len(archs), None
        if n_sampled > n:
            chosen, weight = screen(predicted, n, rng)
            archs = [archs[k] for k in chosen]
            predicted = [predicted[k] for k in chosen]
        trials = self._train(epoch, archs, predicted, rng)
        rewards = np.array([t.reward if t.status == "ok" else np.nan for t in trials])
        # the policy learns from rewards in [0, 1]: a regressor's negative R^2
        # (worse than predicting the mean) counts as a failure, reward 0
        failed = [t.status != "ok" for t in trials]
        info = self.strategy.update(archs, np.clip(rewards, 0.0, 1.0), failed=failed,
                                    sample_weight=weight)
        row = {"controller_epoch": epoch, "started": started, **info,
               "predictor_spearman": predictor_spearman(
                   [t.predicted_reward for t in trials if t.status == "ok"],
                   [t.reward for t in trials if t.status == "ok"]),
               "n_screened": n_sampled - len(archs),
               "best_reward": self._best_reward(),
               "n_failed": int(sum(failed)),
               "elapsed": time.perf_counter() - self.budget.started}
        row["mean_reward"] = float(np.nanmean(rewards)) if np.isfinite(rewards).any() else np.nan
        self.history.append(row)
        self.reporter.epoch(row, self.controller_epochs)
        for cb in self.callbacks:
            cb.on_epoch(row, self)
        return self.stop_reason != "exhausted"

    def _best_reward(self):
        """Best reward of the successful candidates so far (NaN if none)."""
        ok = [t.reward for t in self.trials if t.status == "ok" and np.isfinite(t.reward)]
        return float(max(ok)) if ok else float("nan")

    def _train(self, epoch, archs, predicted, rng):
        d = self.data
        layers = [self.space.layers(a) for a in archs]
        seeds = rng.integers(0, 2**31 - 1, size=len(archs) + 1)
        candidates, broken = [], {}
        for k, (lay, s) in enumerate(zip(layers, seeds[1:])):
            try:  # a candidate too big for memory fails alone
                candidates.append((lay, initial_weights(lay, d.n_features, d.n_outputs, rng, self.store), int(s)))
            except (MemoryError, ValueError) as exc:
                broken[k] = CandidateResult(status="failed", error=exc,
                                            message=f"{type(exc).__name__}: {exc}")
        trained = iter(self.executor.run(candidates, d, int(seeds[0])) if candidates else [])
        results = [broken[k] if k in broken else next(trained) for k in range(len(archs))]
        trials = [self._record(epoch, arch, lay, pred, res)
                  for arch, lay, pred, res in zip(archs, layers, predicted, results)]
        self._keep_best(trials, results)
        if self.store is not None:
            self.store.merge(layers, [r.weights if r.status == "ok" else None for r in results])
        return trials

    def _keep_best(self, trials, results):
        """Hold on to the trained weights of the best candidate so far."""
        best = -np.inf if self.best_weights is None else self.trials[self.best_weights[0]].reward
        for trial, result in zip(trials, results):
            if trial.status == "ok" and trial.reward > best:
                best, self.best_weights = trial.reward, (trial.index, result.weights)

    def _record(self, epoch, arch, layers, predicted, result):
        d = self.data
        trial = Trial(index=len(self.trials), controller_epoch=epoch, arch=tuple(arch),
                      architecture=describe_layers(layers, d.head.name), layers=layers,
                      n_params=n_params(layers, d.n_features, d.n_outputs),
                      predicted_reward=float(predicted), val_scores=list(result.val_scores),
                      fit_time=result.fit_time, status=result.status, message=result.message,
                      host=result.host, pid=result.pid, best_epoch=result.best_epoch)
        if result.status == "ok":
            scores = (np.exp(-np.asarray(result.val_losses, dtype=float))
                      if self.reward_score == "likelihood" else result.val_scores)
            trial.reward = reward_from_scores(scores, self.reward)
        elif self.error_score == "raise":
            raise result.error if result.error is not None else RuntimeError(result.message)
        else:
            trial.reward = float(self.error_score)
        self.trials.append(trial)
        self.reporter.candidate(trial, self.n_total)
        for cb in self.callbacks:
            cb.on_trial(trial)
        return trial
