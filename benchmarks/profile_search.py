"""Profile where a default sknas fit spends its time.

Run from the repository root::

    python benchmarks/profile_search.py --fit           # where a default fit's time goes
    python benchmarks/profile_search.py --fit --quick   # the same on a tiny budget (smoke test)
    python benchmarks/profile_search.py --fit --table pima  # a suite table (tuning seed 0's split)
    python benchmarks/profile_search.py [--pops N]      # a few populations, one by one
    python benchmarks/profile_search.py --cprofile      # ... and cProfile a whole default fit

``--fit`` is the place to start. It runs one default
``MLPNASClassifier(random_state=0)`` fit on the reference protocol
(bundled wine-quality data, stratified 80/20 split with ``random_state=0``,
``StandardScaler``) and prints its wall time by phase, each with its share
of the fit: the search (candidate training split into graph setup, tracing,
running and the trainer's other work; controller sampling; controller
update; initial weights and weight-table merges; the rest of the loop), the
finalists (their cross-validation training, the same split, and the ensemble
selection), building the served model, and what ``_fit`` does around them;
then the first and a second ``predict_proba`` on the test rows, and the
estimator's own ``search_time_``, ``cv_time_`` and ``refit_time_`` to check
the table against. The methods are timed by wrapping them for that one fit
(:class:`PhaseClock`); each second counts once, in the innermost phase that
holds it. ``--quick`` fits ``controller_epochs=2, samples_per_epoch=5,
epochs=3`` instead of the defaults.

Without ``--fit`` it prints, for ``--pops`` populations of the default
search, the time to sample them, to set up, trace and run the population
graph, and to update the controller; ``--cprofile`` adds a cProfile summary
of one whole default fit.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import os
import pstats
import sys
import time
from collections import defaultdict
from contextlib import contextmanager

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

#: what ``--quick`` changes in the default estimator
QUICK = {"controller_epochs": 2, "samples_per_epoch": 5, "epochs": 3}

#: the sections of a fit, in the order they run: ``(key, heading)``
SECTIONS = [("fit", "fit (validation, split, input statistics, results tables)"),
            ("search", "search"), ("finalists", "finalists"), ("serving", "serving")]

#: the rows inside a section, in print order: ``(key, label)``; ``rest`` is the
#: section's own time outside every timed method below it
ROWS = [("setup", "training: graph setup (variables, inputs)"),
        ("trace", "training: graph tracing"),
        ("run", "training: graph running"),
        ("gc", "training: graph garbage collection"),
        ("trainer", "training: other (nets, populations, weights back)"),
        ("keras", "training: Keras model.fit"),
        ("sample", "controller: sampling"),
        ("update", "controller: update (REINFORCE + predictor)"),
        ("init", "initial weights (from the weight table)"),
        ("merge", "weight-table merges"),
        ("select", "ensemble selection"),
        ("rest", None)]

#: what ``rest`` is in each section (``fit``'s is its one row)
REST = {"search": "rest (bookkeeping, trials, logging)",
        "finalists": "rest (folds, row weights, out-of-fold outputs)",
        "serving": "building the served Keras model"}


def reference_data(table=None):
    """Scaled train/test parts of the reference protocol, or with ``table``
    the suite's classification table of that name, split and preprocessed
    as the suite does with tuning seed 0."""
    if table is not None:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from suite import load, preprocessor, split
        X, y, _ = load(table, "classification")
        X_tr, X_te, y_tr, y_te = split(X, y, "classification", seed=0)
        pre = preprocessor(X).fit(X_tr)
        return (pre.transform(X_tr), pre.transform(X_te), np.asarray(y_tr),
                np.asarray(y_te))
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    from sknas.datasets import load_wine_quality
    X, y = load_wine_quality(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_tr)
    return scaler.transform(X_tr), scaler.transform(X_te), y_tr, y_te


# ------------------------------------------------------------ --fit
class PhaseClock:
    """Exclusive wall time of wrapped methods, by section and row.

    A wrapped call's time, less the time of the wrapped calls it makes,
    goes to one row of the innermost section around it (a wrapped method
    may open a section itself), so each second counts once. Use
    :meth:`wrapping` to wrap methods for the duration of a ``with`` block.

    Attributes
    ----------
    seconds : dict of (str, str) to float
        Exclusive seconds by ``(section, row)``.
    calls : dict of (str, str) to int
        Calls timed into each ``(section, row)`` (a ``split`` call counts in
        the rows it splits into, not in its own).
    longest : dict of (str, str) to float
        The most seconds one call put in each ``(section, row)``: a one-off
        cost (a first call's tracing) shows as most of its row.
    """

    def __init__(self):
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)
        self.longest = defaultdict(float)
        self._stack = []  # per open call: [its section or None, seconds of its timed callees]

    def _section(self):
        return next((s for s, _ in reversed(self._stack) if s is not None), "fit")

    def wrap(self, fn, row="rest", section=None, split=None):
        """``fn`` timed into ``row`` (of ``section``, if it opens one, else
        of the section around it). ``split(args, result)``, if given, takes
        seconds from the call's own time into other rows: a dict of row to
        seconds (:attr:`PopulationTrainer.last_timings_`)."""

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            frame = [section, 0.0]
            self._stack.append(frame)
            start = time.perf_counter()
            done = False
            try:
                result = fn(*args, **kwargs)
                done = True
                return result
            finally:
                elapsed = time.perf_counter() - start
                where = self._section()
                self._stack.pop()
                if self._stack:
                    self._stack[-1][1] += elapsed
                own = elapsed - frame[1]
                pieces = split(args, result) if done and split is not None else {}
                for key, seconds in pieces.items():
                    self._add(where, key, seconds)
                    own -= seconds
                self._add(where, row, own, count=not pieces)

        return timed

    def _add(self, section, row, seconds, count=True):
        self.seconds[section, row] += seconds
        self.longest[section, row] = max(self.longest[section, row], seconds)
        if count:
            self.calls[section, row] += 1

    @contextmanager
    def wrapping(self, targets):
        """Wrap ``targets``, ``(owner, name, row, section, split)`` with
        ``owner`` a class or module, while the block runs; the originals
        come back afterwards, even on an error."""
        saved = []
        try:
            for owner, name, row, section, split in targets:
                if isinstance(owner, type):  # the class in the MRO that defines it
                    owner = next(c for c in owner.__mro__ if name in vars(c))
                original = vars(owner)[name]
                saved.append((owner, name, original))
                setattr(owner, name, self.wrap(original, row, section, split))
            yield self
        finally:
            for owner, name, original in reversed(saved):
                setattr(owner, name, original)


def _run_timings(args, result):
    """The graph setup, trace and run seconds of a ``PopulationTrainer._run`` call."""
    return dict(args[0].last_timings_)


def fit_targets(estimator_class):
    """What :func:`profile_fit` wraps: ``(owner, name, row, section, split)``."""
    import sknas._population as population
    import sknas._search as search
    from sknas._controller import Controller
    from sknas._keras import KerasTrainer
    from sknas._random_search import RandomStrategy
    from sknas._weights import SharedWeights
    return [
        (estimator_class, "_fit", "rest", "fit", None),
        (search.Search, "run", "rest", "search", None),
        (estimator_class, "_score_finalists", "rest", "finalists", None),
        (estimator_class, "_select_ensemble", "select", None, None),
        (estimator_class, "_fit_best", "rest", "serving", None),
        (population.PopulationTrainer, "train", "trainer", None, None),
        (population.PopulationTrainer, "_run", "trainer", None, _run_timings),
        (population, "_collect_graphs", "gc", None, None),
        (KerasTrainer, "train", "keras", None, None),
        (Controller, "sample", "sample", None, None),
        (Controller, "update", "update", None, None),
        (RandomStrategy, "sample", "sample", None, None),
        (RandomStrategy, "update", "update", None, None),
        (search, "initial_weights", "init", None, None),
        (SharedWeights, "merge", "merge", None, None),
    ]


def profile_fit(quick=False, seed=0, table=None):
    """Fit one default ``MLPNASClassifier`` on the reference protocol and
    print its wall time by phase (see the module docstring).

    Parameters
    ----------
    quick : bool, default=False
        Fit with :data:`QUICK` instead of the defaults.
    seed : int, default=0
        ``random_state`` of the estimator.
    table : str, default=None
        A classification table of the benchmark suite instead of the
        reference protocol (split with tuning seed 0).

    Returns
    -------
    clock : PhaseClock
        The fit's seconds by phase.
    """
    from sknas import MLPNASClassifier
    X, X_te, y, y_te = reference_data(table)
    est = MLPNASClassifier(random_state=seed, **(QUICK if quick else {}))
    clock = PhaseClock()
    with clock.wrapping(fit_targets(MLPNASClassifier)):
        start = time.perf_counter()
        est.fit(X, y)
        total = time.perf_counter() - start
    predict = []
    for _ in range(2):
        start = time.perf_counter()
        proba = est.predict_proba(X_te)
        predict.append(time.perf_counter() - start)
    accuracy = float(np.mean(est.classes_[proba.argmax(axis=1)] == y_te))
    settings = ", ".join(f"{k}={v}" for k, v in QUICK.items()) if quick else "defaults"
    print(f"MLPNASClassifier(random_state={seed}) ({settings}) on {table or 'wine quality'}: "
          f"{len(y)} training rows, {est.n_candidates_} candidates, served "
          f"{est._served_kind()}; test accuracy {accuracy:.4f}")
    print(budgets(est))
    print(format_table(clock, total, predict, len(y_te)))
    print(f"cross-check: search_time_ {est.search_time_:.2f}s, cv_time_ {est.cv_time_:.2f}s, "
          f"refit_time_ {est.refit_time_:.2f}s (the search, finalists and serving rows above)")
    return clock


def budgets(est):
    """What the fitted ``est`` trained, in one line: the search's candidates
    and the finalists' networks, with their epochs and batch sizes."""
    results = est.search_results_
    n_folds = sum(name.startswith("split") and name.endswith("_score") for name in results)
    n_finalists = int(np.isfinite(results["cv_score"]).sum())
    finalists = (f"{n_finalists} finalists x {n_folds} folds = {n_finalists * n_folds} networks "
                 f"side by side, {est.finalist_epochs_} epochs on batches of "
                 f"{est.finalist_batch_size_}" if n_folds else "no finalists")
    n_pops = len(est.controller_history_["controller_epoch"])
    return (f"trained: {est.n_candidates_} candidates in {n_pops} populations, "
            f"{est.epochs} epochs on batches of {est.batch_size_}; {finalists}")


def format_table(clock, total, predict, n_test):
    """The table of :func:`profile_fit`: each section's rows with seconds,
    share of ``total``, calls and the longest call's seconds; ``other`` (the fit's time outside
    ``_fit``) makes the rows sum to ``total``; then the two ``predict``
    timings on ``n_test`` rows, after the fit."""
    width = 58
    rule = "-" * (width + 34)
    lines = [f"{'phase':<{width}} {'seconds':>8} {'share':>7} {'calls':>6} {'longest':>8}",
             rule]

    def line(label, seconds, key=None):
        text = f"{label:<{width}} {seconds:8.2f} {seconds / total:7.1%}"
        if key is not None:
            text += f" {clock.calls[key]:6d} {clock.longest[key]:8.2f}"
        return text

    order = [key for key, _ in ROWS]
    accounted = 0.0
    for section, heading in SECTIONS:
        rows = [(r, s) for (sec, r), s in clock.seconds.items() if sec == section]
        if not rows:
            continue
        rows.sort(key=lambda rs: order.index(rs[0]) if rs[0] in order else len(order))
        subtotal = sum(s for _, s in rows)
        accounted += subtotal
        if section == "fit":  # _fit's own time is one row
            lines.append(line(heading, subtotal, (section, "rest")))
            continue
        lines.append(line(heading, subtotal))
        labels = dict(ROWS)
        for row, seconds in rows:
            label = REST[section] if row == "rest" else labels.get(row, row)
            lines.append(line("  " + label, seconds, (section, row)))
    lines.append(line("other (outside _fit: parameter checks, fitted attributes)",
                      total - accounted))
    lines.append(rule)
    lines.append(line("total fit", total))
    lines.append(f"after the fit, on the {n_test} test rows:")
    lines.append(f"{'  predict_proba, first call':<{width}} {predict[0]:8.2f}")
    lines.append(f"{'  predict_proba, second call (warm)':<{width}} {predict[1]:8.3f}")
    return "\n".join(lines)


# ------------------------------------------------------------ populations
def split_phases(n_pops=3, seed=0):
    """Per population of the default search: sampling, setup, tracing, running, update."""
    from sknas import MLPNASClassifier
    from sknas._strategy import resolve_strategy
    from sknas._trainer import initial_weights
    X, _, y, _ = reference_data()
    est = MLPNASClassifier(random_state=seed, controller_epochs=n_pops)
    # the search's data and trainer, as ``_fit`` prepares them (dense rows: no early stopping)
    space = est._make_space()
    Xv, yv, w = est._validate_training_data(X, y, None)
    est.input_stats_ = est._input_stats(space, Xv)
    data = est._split(Xv, yv, w, seed)
    batch_size = est._training_sizes(len(yv))[0]
    trainer = est._make_trainer(early_stopping=est.early_stopping is True, batch_size=batch_size)
    ctrl = resolve_strategy(est.strategy).build(space, seed)
    rng = np.random.default_rng(seed)
    for p in range(n_pops):
        t0 = time.perf_counter()
        archs, _ = ctrl.sample(10, rng)
        t_sample = time.perf_counter() - t0
        layers = [space.layers(a) for a in archs]
        cands = [(lay, initial_weights(lay, data.n_features, data.n_outputs, rng), k)
                 for k, lay in enumerate(layers)]
        res = trainer.train(cands, data, p)
        t0 = time.perf_counter()
        ctrl.update(archs, [np.mean(r.val_scores) for r in res])
        t_update = time.perf_counter() - t0
        phases = "  ".join(f"{k} {v:.2f}s" for k, v in trainer.last_timings_.items())
        print(f"population {p}: sample {t_sample:.3f}s  {phases}  update {t_update:.3f}s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true",
                        help="time one default fit by phase (search, controller, finalists, "
                             "ensemble, serving)")
    parser.add_argument("--quick", action="store_true",
                        help=f"with --fit (implied): a tiny budget ({QUICK})")
    parser.add_argument("--table", help="with --fit: a classification table of the benchmark "
                        "suite (benchmarks/suite.py), split with tuning seed 0, instead of "
                        "the reference protocol")
    parser.add_argument("--pops", type=int, default=3)
    parser.add_argument("--cprofile", action="store_true", help="also cProfile a whole search")
    args = parser.parse_args(argv)
    if args.fit or args.quick:
        profile_fit(quick=args.quick, table=args.table)
        return
    split_phases(args.pops)
    if args.cprofile:
        from sknas import MLPNASClassifier
        X, _, y, _ = reference_data()
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        MLPNASClassifier(random_state=0).fit(X, y)
        prof.disable()
        print(f"default search + refit: {time.perf_counter() - t0:.1f}s")
        pstats.Stats(prof).sort_stats("cumulative").print_stats(35)


if __name__ == "__main__":
    main()
