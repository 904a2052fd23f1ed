"""The ``sknas`` command line: run a search on a CSV file, or report on a saved run.

``sknas`` with no subcommand runs the main job: the default search on the
bundled wine-quality data with the reference protocol (stratified 80/20
split, ``random_state=0``, features scaled in a pipeline).

Heavy imports (TensorFlow, matplotlib) happen inside the commands, after the
input has been checked, so a bad path or column fails fast with one line.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

__all__ = ["main"]

WINE_TARGET = "quality_label"
#: ``--task auto``: a numeric target (integer or float, not boolean) with more distinct
#: values than this is a regression target; any other target is a classification target
AUTO_MAX_CLASSES = 10
PLOTS = ("reward_history", "reward_distribution", "predictor", "controller_history")


class CLIError(Exception):
    """A problem with the user's input: one line on stderr, exit status 2."""


# ------------------------------------------------------------------ parser
def _parser():
    parser = argparse.ArgumentParser(
        prog="sknas", description="Neural architecture search for multilayer perceptrons. "
        "Without a subcommand: the default search on the bundled wine-quality data.")
    sub = parser.add_subparsers(dest="command", metavar="{search,report}")
    _add_search(sub.add_parser("search", help="search architectures for a CSV file",
                               description="Search MLP architectures for a CSV file: numeric "
                               "columns are imputed and scaled, the others one-hot encoded; "
                               "a held-out split (stratified for classification) scores the "
                               "served model (by default an ensemble of the cross-validated "
                               "finalists' fold models). A numeric target with more than "
                               f"{AUTO_MAX_CLASSES} distinct values is a regression target "
                               "(MLPNASRegressor; held-out R^2 and RMSE), any other a "
                               "classification target (MLPNASClassifier; held-out accuracy); "
                               "--task overrides the detection."))
    rep = sub.add_parser("report", help="print the top architectures of a saved run and plot it",
                         description="Print the top-N table of a run folder written with "
                         "--log-dir and write its four plots as PNG files.")
    rep.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by a search")
    rep.add_argument("--out", metavar="DIR", help="where to write the PNG files "
                     "(default: RUN_DIR/plots)")
    rep.add_argument("--top", type=int, default=5, metavar="N", help="rows of the table (default 5)")
    rep.add_argument("--html", nargs="?", const="", metavar="FILE",
                     help="write one self-contained HTML page (leaderboard, plots, controller "
                     "history) instead of the PNG files (those too if --out is given); default "
                     "FILE: RUN_FOLDER_NAME.html in the current directory. Nothing in the run "
                     "folder is changed")
    return parser


def _add_search(p):
    p.add_argument("data", nargs="?", metavar="DATA.csv",
                   help="CSV file with a header row (default: the bundled wine-quality data)")
    p.add_argument("--target", metavar="COL", help="target column (required with DATA.csv; "
                   f"default for the bundled data: {WINE_TARGET}, its classes; 'quality' is "
                   "its numeric score, a regression target with --task regression)")
    p.add_argument("--task", choices=("auto", "classification", "regression"), default="auto",
                   help="what to predict: 'auto' (the default) treats a numeric target with "
                        f"more than {AUTO_MAX_CLASSES} distinct values (missing ones left out) "
                        "as a regression target and any other (text, booleans, numbers with "
                        f"at most {AUTO_MAX_CLASSES} values) as class labels; 'classification' "
                        "and 'regression' force the choice")
    p.add_argument("--drop", action="extend", nargs="+", default=[], metavar="COL",
                   help="columns to leave out (ids, leaks)")
    p.add_argument("--controller-epochs", type=int, metavar="N", help="controller epochs (default 10)")
    p.add_argument("--samples-per-epoch", type=int, metavar="N",
                   help="candidates per controller epoch (default 10)")
    p.add_argument("--screen-factor", type=float, metavar="F",
                   help="sample F times as many architectures per controller epoch and train "
                        "those the accuracy predictor ranks highest, a fifth of them drawn "
                        "from the rest for exploration (default 1: train all it samples)")
    p.add_argument("--epochs", type=int, metavar="N", help="training epochs per candidate (default 10)")
    p.add_argument("--batch-size", type=_word_or_number("rows", ("auto",)), metavar="N",
                   help="mini-batch size of the search's candidates: 'auto' (the default: "
                        "64 from 1,000 training rows, else 32) or a number")
    p.add_argument("--validation-fraction", type=float, metavar="F",
                   help="share of the training rows that scores every candidate, in (0, 1) "
                   "(default 0.1)")
    p.add_argument("--controller-train-steps", type=int, metavar="N",
                   help="controller gradient steps per controller epoch (default 10)")
    p.add_argument("--units", type=int, nargs="+", metavar="N",
                   help="layer widths of the search space (default 8 16 32 64 128 256 512)")
    p.add_argument("--activations", nargs="+", metavar="NAME",
                   help="activations of the search space (default sigmoid tanh relu elu)")
    p.add_argument("--max-layers", type=int, metavar="N", help="maximum hidden layers (default 2)")
    p.add_argument("--space", choices=("tutorial", "extended", "modern"),
                   help="a named search space: 'tutorial' (the default), 'extended' (depth up "
                        "to 3, batch normalisation, dropout rates, learning rate and weight "
                        "decay searched) or 'modern' (also a robust input, label smoothing, "
                        "SELU and SiLU); the flags below and --units, --activations, "
                        "--max-layers change it")
    p.add_argument("--dropout-rates", type=float, nargs="+", metavar="R",
                   help="rates of the dropout tokens (default 0.2)")
    p.add_argument("--batch-norm", choices=("off", "on", "search"),
                   help="batch normalisation after each dense layer: never, always, or a "
                        "decision per layer")
    p.add_argument("--learning-rates", type=float, nargs="+", metavar="LR",
                   help="Adam learning rates the controller chooses from per candidate")
    p.add_argument("--weight-decays", type=float, nargs="+", metavar="WD",
                   help="weight decays the controller chooses from per candidate")
    p.add_argument("--baseline", type=_word_or_number(words=("ema", "batch"), number=float),
                   metavar="B",
                   help="reward baseline: 'ema' (moving average, the default), 'batch' (the "
                        "controller epoch's mean reward) or a number, such as the tutorial's 0.5")
    p.add_argument("--max-time", type=float, metavar="SECONDS",
                   help="stop the search after this time, then cross-validate and serve "
                        "the best so far as after a full search")
    p.add_argument("--cv", type=_word_or_number("folds"), metavar="K",
                   help="folds that re-score the best candidates: 'auto' (the default: 3 "
                        "below 1,000 training rows, 5 from 1,000 on, fewer only on tiny "
                        "data; none only with "
                        "--ensemble-size 0 and --refit other than 'folds', once the "
                        "validation split has 1,000 rows), a number, or 'none' for the "
                        "search's holdout alone")
    p.add_argument("--n-finalists", type=int, metavar="N",
                   help="candidates re-scored by --cv (default 8)")
    p.add_argument("--finalist-epochs", type=_word_or_number("epochs"), metavar="N",
                   help="training epochs of the re-scored finalists, and so of what is served: "
                        "'auto' (the default: 5 times --epochs from 1,000 training rows, "
                        "--epochs below), a number, or 'none' for --epochs")
    p.add_argument("--early-stopping", action="store_true",
                   help="stop each candidate when its validation loss stops improving, "
                        "keep its best epoch; a refit trains for that many epochs (default: "
                        "only when the encoded table is sparse)")
    p.add_argument("--ensemble-size", type=int, metavar="N",
                   help="serve an ensemble of the finalists chosen greedily in N picks; "
                        "0: the single winner (default 10; 0 with --cv none)")
    p.add_argument("--refit", choices=("auto", "folds", "all"),
                   help="what is served: 'folds', the models the finalists' cross-validation "
                        "trained, averaged; 'all', the winner (and ensemble members) retrained "
                        "on all the training rows; 'auto' (the default): 'folds' when the "
                        "finalists were cross-validated, else 'all'")
    p.add_argument("--random-state", type=int, default=0, metavar="N",
                   help="seed of the split and the search (default 0)")
    p.add_argument("--n-jobs", type=int, metavar="N", help="parallel candidate training")
    p.add_argument("--log-dir", metavar="DIR", help="write a run folder under DIR")
    p.add_argument("--model-out", metavar="FILE", help="save the fitted pipeline with joblib")
    p.add_argument("--top", type=int, default=5, metavar="N", help="rows of the top table (default 5)")
    p.add_argument("--test-size", type=float, default=0.2, metavar="F",
                   help="held-out fraction (default 0.2)")
    p.add_argument("-v", "--verbose", action="count", default=1,
                   help="-v: one line per candidate")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


# ---------------------------------------------------------------- the data
def _read_frame(path, target=None):
    import pandas as pd
    if path is None:
        from .datasets import load_wine_quality
        wine_target = "quality" if target == "quality" else WINE_TARGET
        return (load_wine_quality(as_frame=True, target=wine_target).frame,
                "bundled wine-quality data")
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"no such file: {path}")
    try:
        return pd.read_csv(p), str(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CLIError(f"cannot read {path} as CSV: {' '.join(str(exc).split())}") from None


def _features_and_target(frame, target, drop, task="classification"):
    """Features, target and the task (``task='auto'`` is resolved from the target)."""
    if target not in frame.columns:
        raise CLIError(f"target column {target!r} not found; columns are: "
                       f"{', '.join(map(str, frame.columns))}")
    unknown = [c for c in drop if c not in frame.columns]
    if unknown:
        raise CLIError(f"--drop: no column named {', '.join(map(repr, unknown))}")
    frame = frame[frame[target].notna()]
    y = frame[target]
    if task == "auto":
        task = _detect_task(y)
    if task == "regression":
        _check_regression_target(y, target)
    elif y.nunique() < 2:
        only = repr(y.iloc[0]) if len(y) else "none"
        raise CLIError(f"target column {target!r} has only one class ({only}); "
                       "a classifier needs at least 2")
    X = frame.drop(columns=[target, *drop])
    if X.shape[1] == 0:
        raise CLIError("no feature columns left after dropping the target and --drop columns")
    return X, y.astype(str) if y.dtype == object else y, task


def _detect_task(y):
    """``--task auto``: 'regression' for a numeric target (integer or float, not
    boolean) with more than ``AUTO_MAX_CLASSES`` distinct values, else 'classification'."""
    numeric = y.dtype.kind in "iuf"
    return "regression" if numeric and y.nunique() > AUTO_MAX_CLASSES else "classification"


def _check_regression_target(y, target):
    """A regression target must be numeric, finite and not constant."""
    import numpy as np
    if y.dtype.kind not in "iuf":
        sample = y.iloc[0] if len(y) else None
        raise CLIError(f"target column {target!r} is not numeric (values such as {sample!r}); "
                       "regression needs numbers: for class labels use --task classification")
    if not np.isfinite(y.to_numpy(dtype=float)).all():
        raise CLIError(f"target column {target!r} has infinite values; regression needs "
                       "finite numbers")
    if y.nunique() < 2:
        only = repr(y.iloc[0].item()) if len(y) else "none"
        raise CLIError(f"target column {target!r} is constant ({only}): there is nothing to "
                       "learn")


def _split(X, y, test_size, seed, task="classification"):
    from sklearn.model_selection import train_test_split
    if not 0 < test_size < 1:
        raise CLIError(f"--test-size must be between 0 and 1; got {test_size}")
    if task == "regression":  # no classes to stratify by
        try:
            return train_test_split(X, y, test_size=test_size, random_state=seed)
        except ValueError as exc:
            raise CLIError(f"cannot split the rows: {exc}") from None
    try:
        return train_test_split(X, y, test_size=test_size, stratify=y, random_state=seed)
    except ValueError as exc:
        raise CLIError(f"cannot make a stratified split: {exc}") from None


def _preprocessor(X):
    """Impute and scale numeric columns, impute and one-hot encode the others.

    The output is sparse when the one-hot columns make it mostly zeros (the
    ColumnTransformer's default ``sparse_threshold=0.3``): the search takes
    sparse rows, so a high-cardinality column costs memory for its stored
    values only."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    numeric = [c for c in X.columns if X[c].dtype.kind in "iuf"]
    categorical = [c for c in X.columns if c not in numeric]
    parts = []
    if numeric:
        parts.append(("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                      numeric))
    if categorical:
        parts.append(("categorical", make_pipeline(
            SimpleImputer(strategy="most_frequent"),
            OneHotEncoder(handle_unknown="ignore")), categorical))
    return ColumnTransformer(parts)


def _as_text_categories(X):
    """Categorical columns as strings (NaN kept), so mixed types encode."""
    X = X.copy()
    for c in X.columns:
        if X[c].dtype.kind not in "iuf":
            X[c] = X[c].map(lambda v: v if v is None or v != v else str(v)).astype(object)
    return X


# ------------------------------------------------------------------ tables
def _print_top(results, n):
    from ._trial import top_table
    top = top_table(results, n)
    n_all = len(results["reward"])
    print(f"\ntop {len(top)} architectures (of {n_all} candidates):")
    print(top.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


# ---------------------------------------------------------------- commands
def _word_or_number(what=None, words=("auto", "none"), number=int):
    """An argparse type taking one of ``words`` or a ``number`` (of ``what``; the
    estimator validates the value): ``--batch-size`` ('auto' only), ``--cv``,
    ``--finalist-epochs`` and ``--baseline`` ('ema', 'batch' or a float)."""
    def parse(text):
        if text in words:
            return text
        try:
            return number(text)
        except ValueError:
            choices = ", ".join(repr(word) for word in words)
            of = f" of {what}" if what else ""
            raise argparse.ArgumentTypeError(
                f"expected {choices} or a number{of}, got {text!r}") from None
    return parse


def _estimator_params(args):
    params = {"controller_epochs": args.controller_epochs, "samples_per_epoch": args.samples_per_epoch,
              "epochs": args.epochs, "batch_size": args.batch_size,
              "validation_fraction": args.validation_fraction, "max_time": args.max_time,
              "n_jobs": args.n_jobs, "log_dir": args.log_dir,
              "cv": args.cv, "n_finalists": args.n_finalists,
              "finalist_epochs": args.finalist_epochs,
              "early_stopping": True if args.early_stopping else None,
              "ensemble_size": args.ensemble_size,
              "refit": True if args.refit == "all" else args.refit}
    params = {k: v for k, v in params.items() if v is not None}
    space_flags = {"units": args.units, "activations": args.activations,
                   "max_layers": args.max_layers,
                   "dropout_rates": args.dropout_rates, "learning_rates": args.learning_rates,
                   "weight_decays": args.weight_decays,
                   "batch_norm": {"off": False, "on": True, "search": (False, True),
                                  None: None}[args.batch_norm]}
    if any(v is not None for v in space_flags.values()):
        # one SearchSpace: the preset, changed by the flags given
        from ._space import PRESETS, SearchSpace
        spec = dict(PRESETS[args.space or "tutorial"])
        spec.update({k: tuple(v) if isinstance(v, list) else v
                     for k, v in space_flags.items() if v is not None})
        params["space"] = SearchSpace(**spec)
    elif args.space is not None:
        params["space"] = args.space
    strategy_flags = {"train_steps": args.controller_train_steps, "baseline": args.baseline,
                      "screen_factor": args.screen_factor}
    if any(v is not None for v in strategy_flags.values()):
        from ._strategy import Reinforce
        params["strategy"] = Reinforce(**{k: v for k, v in strategy_flags.items()
                                          if v is not None})
    for name in ("cv", "finalist_epochs"):
        if params.get(name) == "none":
            params[name] = None
    return dict(params, random_state=args.random_state, verbose=0 if args.quiet else args.verbose)


def _search(args):
    if args.target is None and args.data is not None:
        raise CLIError("--target is required with a data file")
    target = args.target or WINE_TARGET
    frame, source = _read_frame(args.data, target)
    X, y, task = _features_and_target(frame, target, args.drop, args.task)
    X = _as_text_categories(X)
    X_train, X_test, y_train, y_test = _split(X, y, args.test_size, args.random_state, task)
    search = _make_search(args, task)  # bad input of any kind fails before any output
    if task == "regression":
        kind, split = f"regression target, range {y.min():.6g} to {y.max():.6g}", ""
    else:
        kind, split = f"{y.nunique()} classes", "stratified, "
    print(f"data: {source}, {len(X)} rows, {X.shape[1]} feature columns, target {target!r} "
          f"({kind}); train {len(X_train)} / test {len(X_test)} rows "
          f"({split}random_state={args.random_state})")
    sys.stdout.flush()
    pipe = _fit(search, X_train, y_train)
    _summarise(args, pipe, X_test, y_test, y_train)
    return 0


# TensorFlow's C++ start-up notices: printed to file descriptor 2 before absl logging is
# initialised, whatever TF_CPP_MIN_LOG_LEVEL says (TensorFlow 2.19 and later): the absl
# notice itself, INFO lines ("I0000 00:00:..." oneDNN, CUDA stubs, CPU features), the CPU
# features' continuation line, and the GPU build's duplicate-registration messages
_TF_NOISE = re.compile(r"WARNING: All log messages before absl::InitializeLog\(\)"
                       r"|^I\d{4} \d\d:\d\d:[\d.]+ "
                       r"|^To enable the following instructions"
                       r"|Unable to register cu\w+ factory")


def _import_tensorflow_quietly():
    """Import TensorFlow with its start-up log lines left out of stderr.

    The command line owns its process's stderr, so it captures file descriptor 2
    while TensorFlow starts and passes on every line but the known start-up
    notices: a real error still shows.
    """
    if "tensorflow" in sys.modules:
        return
    import tempfile
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines()
    kept = [line for line in lines if not _TF_NOISE.search(line)]
    if kept:
        print("\n".join(kept), file=sys.stderr)


def _make_search(args, task="classification"):
    """The estimator the flags ask for, its parameters and search space checked."""
    _import_tensorflow_quietly()
    from ._estimator import MLPNASClassifier, MLPNASRegressor
    from ._strategy import resolve_strategy
    cls = MLPNASRegressor if task == "regression" else MLPNASClassifier
    search = cls(**_estimator_params(args))
    try:
        search._validate_params()
        search._make_space()
        resolve_strategy(search.strategy).check()
    except ValueError as exc:
        raise CLIError(" ".join(str(exc).split())) from None
    return search


def _fit(search, X_train, y_train):
    from sklearn.pipeline import Pipeline
    try:
        return Pipeline([("preprocess", _preprocessor(X_train)), ("search", search)]).fit(
            X_train, y_train)
    except ValueError as exc:
        raise CLIError(" ".join(str(exc).split())) from None


def _served_label(search):
    """What the fitted ``search`` serves, for the summary: the winner or the
    ensemble (an ensemble of one pick may be a finalist other than the
    winner), refit or as fold models."""
    from ._trial import serves_ensemble
    ensemble = serves_ensemble(getattr(search, "ensemble_weights_", {}), search.best_index_)
    served = "ensemble" if ensemble else "winner"
    return f"{served}'s fold models" if search.refit_ == "folds" else f"refit {served}"


def _summarise(args, pipe, X_test, y_test, y_train=None):
    search = pipe.named_steps["search"]
    _print_top(search.search_results_, args.top)
    cv_score = float(search.search_results_["cv_score"][search.best_index_])
    how = "reward" if cv_score != cv_score else "cross-validated score"  # NaN: not a finalist
    print(f"\nbest architecture: {search.best_architecture_} ({how} {search.best_score_:.4f})")
    members = getattr(search, "ensemble_weights_", {})
    served = _served_label(search)
    if len(members) > 1:
        ranks = search.search_results_["rank"]
        print(f"served: an ensemble of {len(members)} finalists, weights "
              + ", ".join(f"{members[i]:.2f}" for i in sorted(members, key=lambda i: ranks[i]))
              + f" in rank order (selection score {search.ensemble_score_:.4f}, "
              f"cross-validated {search.ensemble_cv_score_:.4f})")
    if hasattr(search, "y_mean_"):  # a regressor
        r2, rmse = _r2_rmse(y_test, pipe.predict(X_test))
        r2_mean, rmse_mean = _r2_rmse(y_test, [float(y_train.mean())] * len(y_test))
        print(f"held-out test R^2 of the {served}: {r2:.4f}, RMSE {rmse:.6g} on "
              f"{len(y_test)} rows (predicting the training mean: R^2 {r2_mean:.4f}, "
              f"RMSE {rmse_mean:.6g})")
    else:
        accuracy = pipe.score(X_test, y_test)
        majority = y_test.value_counts(normalize=True).max()
        print(f"held-out test accuracy of the {served}: {accuracy:.4f} on {len(y_test)} rows "
              f"(majority class: {majority:.4f})")
    cv = f", cross-validation {search.cv_time_:.1f}s" if search.cv_time_ else ""
    refit = "assembling the fold models" if search.refit_ == "folds" else "refit"
    print(f"search {search.search_time_:.1f}s{cv}, {refit} {search.refit_time_:.1f}s")
    if getattr(search, "run_dir_", None):
        print(f"run folder: {search.run_dir_}")
    if args.model_out:
        import joblib
        joblib.dump(pipe, args.model_out)
        print(f"fitted pipeline saved to {args.model_out}")


def _r2_rmse(y_true, y_pred):
    """R^2 and root mean squared error of predictions of a numeric target."""
    import numpy as np
    from sklearn.metrics import mean_squared_error, r2_score
    return (float(r2_score(y_true, y_pred)),
            float(np.sqrt(mean_squared_error(y_true, y_pred))))


def _report(args):
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise CLIError(f"no such run folder: {args.run_dir}")
    import warnings

    from ._runlog import load_run
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = load_run(run_dir)
    except (OSError, ValueError, KeyError) as exc:
        raise CLIError(f"cannot read the run in {args.run_dir}: {' '.join(str(exc).split())}") \
            from None
    notes = [" ".join(str(w.message).split()) for w in caught]
    for note in notes:
        print(f"sknas: warning: {note}", file=sys.stderr)
    page = None if args.html is None else _write_html(run, args.html, notes)
    print(f"run: {run_dir}")
    _print_top(run.results, args.top)
    if page is not None:
        if run.meta.get("status") == "running":
            print(f"note: the search is still running or was interrupted (meta.json says "
                  f"'running'); the page shows the {len(run.results['reward'])} candidates "
                  "recorded so far")
        print(f"wrote {page}")
        if not args.out:
            return 0
    out = Path(args.out) if args.out else run_dir / "plots"
    for path in _write_plots(run.results, run.history, out):
        print(f"wrote {path}")
    return 0


def _write_html(run, file, notes):
    """``report --html [FILE]``: write the run's page (by default
    ``./RUN_FOLDER_NAME.html``) before anything is printed; its path."""
    from ._html import run_report
    path = Path(file) if file else Path(f"{run.path.resolve().name}.html")
    try:
        return run_report(run, path, notes=notes)
    except ValueError as exc:  # a path inside the run folder
        raise CLIError(" ".join(str(exc).split())) from None
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc.strerror or exc}") from None


def _write_plots(results, history, out):
    try:
        import matplotlib
    except ImportError:
        raise CLIError("writing plots needs matplotlib: pip install 'sknas[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ._plotting import (ControllerHistoryDisplay, PredictorDisplay,
                            RewardDistributionDisplay, RewardHistoryDisplay)
    out.mkdir(parents=True, exist_ok=True)
    displays = (RewardHistoryDisplay.from_results(results),
                RewardDistributionDisplay.from_results(results),
                PredictorDisplay.from_results(results),
                ControllerHistoryDisplay.from_history(history))
    paths = []
    for name, disp in zip(PLOTS, displays):
        paths.append(out / f"{name}.png")
        disp.figure_.savefig(paths[-1], dpi=100)
        plt.close(disp.figure_)
    return paths


def main(argv=None):
    """Run the ``sknas`` command line.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns
    -------
    status : int
        0 on success, 2 for a problem with the input.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["search"])
    command = _search if args.command == "search" else _report
    try:
        return command(args)
    except CLIError as exc:
        print(f"sknas: error: {exc}", file=sys.stderr)
        return 2
