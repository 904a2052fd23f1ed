"""Trial records: what happened to each candidate, and the results table."""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass, field

import numpy as np

from ._space import optimizer_settings

__all__ = ["Trial", "best_row", "history_table", "predictor_spearman", "results_table",
           "serves_ensemble",
           "reward_from_scores", "top_table"]

@dataclass
class Trial:
    """One candidate of the search.

    ``reward`` is the score the controller learned from (``error_score``
    when the candidate failed); ``val_scores`` holds its per-epoch validation
    score (accuracy or R^2); ``best_epoch`` the epochs behind its trained
    weights; ``cv_scores`` its per-fold scores when it was a cross-validated
    finalist (empty otherwise) and ``cv_best_epoch`` the mean of its folds'
    best epochs (0 otherwise).
    """

    index: int
    controller_epoch: int
    arch: tuple
    architecture: str
    layers: list
    n_params: int
    predicted_reward: float = float("nan")
    reward: float = float("nan")
    val_scores: list = field(default_factory=list)
    fit_time: float = 0.0
    status: str = "pending"
    message: str = ""
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    best_epoch: int = 0
    cv_scores: list = field(default_factory=list)
    cv_best_epoch: int = 0
    ensemble_weight: float = 0.0

    def to_json(self):
        """JSON-ready dict (NaN kept as ``None``)."""
        d = asdict(self)
        d["arch"] = list(self.arch)
        for k in ("predicted_reward", "reward"):
            d[k] = None if d[k] is None or np.isnan(d[k]) else float(d[k])
        d["val_scores"] = [float(s) for s in self.val_scores]
        d["cv_scores"] = [None if np.isnan(s) else float(s) for s in self.cv_scores]
        return d

    @classmethod
    def from_json(cls, d):
        """Inverse of :meth:`to_json`."""
        d = dict(d)
        d["arch"] = tuple(d["arch"])
        for k in ("predicted_reward", "reward"):
            d[k] = float("nan") if d[k] is None else float(d[k])
        d["cv_scores"] = [float("nan") if s is None else float(s) for s in d.get("cv_scores", [])]
        return cls(**d)


def reward_from_scores(val_scores, how):
    """Reward from per-epoch validation scores.

    Parameters
    ----------
    val_scores : sequence of float
    how : {'weighted', 'last', 'max'}
        ``'weighted'``: mean weighted 1, 2, ..., E (the tutorial's choice);
        ``'last'``: the last epoch's; ``'max'``: the best epoch's.
    """
    s = np.asarray(val_scores, dtype=float)
    if s.size == 0:
        return float("nan")
    if how == "last":
        return float(s[-1])
    if how == "max":
        return float(s.max())
    weights = np.arange(1, s.size + 1)
    return float(np.sum(weights * s) / weights.sum())


def _rank(rewards, ok, cv_score):
    """Ranks as in ``cv_results_``: 1 is best and equal scores share the
    smallest rank. Cross-validated finalists come first, by ``cv_score``;
    the other successful candidates follow by reward; failed rows rank after
    every successful one, whatever ``error_score`` they were given."""
    usable = ok & ~np.isnan(rewards)
    finalist = usable & ~np.isnan(cv_score)
    key = np.where(finalist, cv_score, np.where(usable, rewards, -np.inf))
    tier = np.where(finalist, 0, np.where(usable, 1, 2))
    order = np.lexsort((-key, tier))
    ranks = np.empty(len(key), dtype=np.int32)
    ranks[order] = np.arange(1, len(key) + 1)
    for t, value in set(zip(tier.tolist(), key.tolist())):
        same = (tier == t) & (key == value)
        ranks[same] = ranks[same].min()
    return ranks


def _counts(values):
    """Whole numbers as an int64 column, or float64 where one is beyond int64
    (a failed candidate of 2**40 units): no count may lose the table."""
    if all(-2**63 <= v < 2**63 for v in values):
        return np.array(values, dtype=np.int64)
    return np.array([float(v) for v in values], dtype=np.float64)


def results_table(trials):
    """``search_results_``: a dict of equal-length arrays, one row per trial."""
    rewards = np.array([t.reward for t in trials], dtype=float)
    ok = np.array([t.status == "ok" for t in trials], dtype=bool)
    n_splits = max([len(t.cv_scores) for t in trials] + [0])
    folds = np.full((len(trials), n_splits), np.nan)
    for i, t in enumerate(trials):
        folds[i, :len(t.cv_scores)] = t.cv_scores
    with np.errstate(invalid="ignore"):
        cv_score = folds.mean(axis=1) if n_splits else np.full(len(trials), np.nan)
        cv_std = folds.std(axis=1) if n_splits else np.full(len(trials), np.nan)
    # each candidate's own (learning rate, weight decay); NaN where the space has none
    settings = np.array([optimizer_settings(t.layers) for t in trials], float).reshape(-1, 2)
    cols = {
        "architecture": np.array([t.architecture for t in trials], dtype=object),
        "layers": np.array([None] * len(trials), dtype=object),
        "n_layers": np.array([sum(layer["type"] != "optimizer" for layer in t.layers)
                              for t in trials], dtype=np.int32),
        "learning_rate": settings[:, 0],
        "weight_decay": settings[:, 1],
        "n_params": _counts([t.n_params for t in trials]),
        "controller_epoch": np.array([t.controller_epoch for t in trials], dtype=np.int32),
        "reward": rewards,
        "predicted_reward": np.array([t.predicted_reward for t in trials], dtype=float),
        "last_score": np.array([t.val_scores[-1] if t.val_scores else np.nan for t in trials]),
        "max_score": np.array([max(t.val_scores) if t.val_scores else np.nan for t in trials]),
        "fit_time": np.array([t.fit_time for t in trials], dtype=float),
        "best_epoch": np.array([t.best_epoch for t in trials], dtype=np.int32),
        "ensemble_weight": np.array([t.ensemble_weight for t in trials], dtype=float),
        "cv_score": cv_score,
        "cv_std": cv_std,
        **{f"split{j}_score": folds[:, j] for j in range(n_splits)},
        "rank": _rank(rewards, ok, cv_score) if len(trials) else np.array([], dtype=np.int32),
        "status": np.array([t.status for t in trials], dtype=object),
        "message": np.array([t.message for t in trials], dtype=object),
        "host": np.array([t.host for t in trials], dtype=object),
        "pid": np.array([t.pid for t in trials], dtype=np.int64),
    }
    for i, t in enumerate(trials):
        cols["layers"][i] = t.layers
    return cols


def best_row(results):
    """Row of the best successful candidate of a results table (rank 1: the
    best cross-validated finalist, else the best reward), or ``None``."""
    ok = np.asarray(results["status"]) == "ok"
    if not ok.any():
        return None
    rank = np.asarray(results["rank"]) if "rank" in results else None
    if rank is None:
        return int(np.argmax(np.where(ok, results["reward"], -np.inf)))
    return int(np.argmin(np.where(ok, rank, np.inf)))


def predictor_spearman(predicted, observed, min_pairs=3):
    """Spearman rank correlation of the predictor's estimates with the rewards.

    Parameters
    ----------
    predicted, observed : array-like of shape (n,)
        Pairs with a NaN in either member are left out.
    min_pairs : int, default=3
        Fewer finite pairs than this give NaN.

    Returns
    -------
    rho : float
        ``scipy.stats.spearmanr`` of the pairs (average ranks for ties);
        NaN with fewer than ``min_pairs`` pairs or when either side is constant.
    """
    from scipy.stats import spearmanr
    p = np.asarray(predicted, dtype=float)
    o = np.asarray(observed, dtype=float)
    keep = np.isfinite(p) & np.isfinite(o)
    p, o = p[keep], o[keep]
    if p.size < max(min_pairs, 2) or np.ptp(p) == 0 or np.ptp(o) == 0:
        return float("nan")
    return float(spearmanr(p, o).statistic)


def epoch_spearman(results):
    """``predictor_spearman`` of each controller epoch's successful rows of a
    results table: ``{controller_epoch: rho}``."""
    epochs = np.asarray(results.get("controller_epoch", []), dtype=int)
    n = len(epochs)
    ok = np.asarray(results.get("status", np.full(n, "ok")), dtype=object) == "ok"
    predicted = np.asarray(results.get("predicted_reward", np.full(n, np.nan)), dtype=float)
    rewards = np.asarray(results.get("reward", np.full(n, np.nan)), dtype=float)
    return {int(e): predictor_spearman(predicted[ok & (epochs == e)], rewards[ok & (epochs == e)])
            for e in np.unique(epochs)}


def history_table(rows):
    """``controller_history_``-style dict of arrays from history rows."""
    keys = rows[0].keys() if rows else ()
    return {k: np.array([row.get(k, np.nan) for row in rows]) for k in keys}


TOP_COLUMNS = ("rank", "architecture", "cv_score", "cv_std", "ensemble_weight", "reward",
               "predicted_reward", "n_params", "controller_epoch", "fit_time")


def top_table(results, n=5):
    """The ``n`` best successful candidates of a results table, best first.

    Parameters
    ----------
    results : dict of array-like or DataFrame
        ``search_results_`` or a loaded run's results.
    n : int, default=5

    Returns
    -------
    top : pandas.DataFrame
        Columns ``rank``, ``architecture``, ``cv_score`` and ``cv_std`` (when
        finalists were cross-validated), ``reward``, ``predicted_reward``,
        ``n_params``, ``controller_epoch``, ``fit_time`` (those present).
    """
    import pandas as pd
    frame = results if hasattr(results, "columns") else \
        pd.DataFrame({k: list(v) for k, v in dict(results).items()})
    if "status" in frame:
        frame = frame[frame["status"] == "ok"]
    if "rank" in frame:
        frame = frame.sort_values("rank", kind="stable")
    else:
        frame = frame.sort_values("reward", ascending=False, kind="stable")
    optional = {"cv_score": frame.get("cv_score"), "cv_std": frame.get("cv_std"),
                "ensemble_weight": frame.get("ensemble_weight")}
    cols = [c for c in TOP_COLUMNS if c in frame and not (
        c in optional and not (optional[c].fillna(0) != 0).any())]
    return frame[cols].head(n).reset_index(drop=True)


def serves_ensemble(members, best_index):
    """Whether the ensemble selection's ``members`` (row -> weight) make an
    ensemble to serve rather than the single winner ``best_index``: several
    members, or one that is not the winner."""
    return bool(members) and set(members) != {best_index}
