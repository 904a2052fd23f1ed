"""MLPNASRegressor as a user meets it: real TensorFlow training with tiny budgets.

Pipelines, ``TransformedTargetRegressor``, grid search and cross-validation,
joblib in a fresh process, ``sample_weight``, several targets, original
units, bad targets, run folders and resume, worker processes, saved and
exported models, the plots, the bundled wine data as a regression problem
and the command line (a real subprocess).
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import TransformedTargetRegressor
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conftest import TINY
from sknas import MLPNASRegressor, load_model, load_run
from sknas._search import Search

ROOT = Path(__file__).resolve().parents[1]

#: The shared fits: a few more epochs than TINY, so that the easy problem is learned.
BUDGET = dict(TINY, epochs=4)
#: The other fits (grid search, cross-validation, weights, several targets...) skip
#: the finalists' cross-validation where the estimator has it: it is tested elsewhere,
#: and here it would multiply the training time of each fit.
FAST = dict(BUDGET, **({"cv": None} if "cv" in MLPNASRegressor().get_params() else {}))

SHIFT, SCALE = 1000.0, 100.0


def easy(n=300, seed=0):
    """An easy problem whose target lives far from 0 and far from unit scale."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    signal = X[:, 0] + 0.5 * X[:, 1] - 0.5 * X[:, 2] + 0.1 * rng.normal(size=n)
    return X, SHIFT + SCALE * signal


@pytest.fixture(scope="module")
def data():
    X, y = easy()
    return train_test_split(X, y, test_size=0.25, random_state=0)


def pipeline(**params):
    return make_pipeline(StandardScaler(), MLPNASRegressor(**{**BUDGET, **params}))


@pytest.fixture(scope="module")
def straight(data):
    """Two controller epochs in this process: the reference search."""
    X_train, _, y_train, _ = data
    return pipeline(controller_epochs=2).fit(X_train, y_train)


@pytest.fixture(scope="module")
def logged(data, tmp_path_factory):
    """The first controller epoch of the same search, with a run folder."""
    X_train, _, y_train, _ = data
    return pipeline(log_dir=tmp_path_factory.mktemp("logs")).fit(X_train, y_train)


def same_search(results, reference):
    assert list(results["architecture"]) == list(reference["architecture"])
    np.testing.assert_allclose(results["reward"], reference["reward"], rtol=0, atol=1e-6)


# ------------------------------------------------------------ composition
def test_pipeline_with_a_scaler_predicts_in_original_units(straight, data):
    X_train, X_test, y_train, y_test = data
    reg = straight[-1]
    # standardised inside fit: the candidates never saw the raw scale
    np.testing.assert_allclose(reg.y_mean_, [y_train.mean()])
    np.testing.assert_allclose(reg.y_scale_, [y_train.std()])
    pred = straight.predict(X_test)
    assert pred.shape == y_test.shape and pred.dtype == np.float64
    # ... and restored: the served predictions are in the target's units
    assert abs(pred.mean() - SHIFT) < 0.3 * SCALE
    assert straight.score(X_test, y_test) == pytest.approx(r2_score(y_test, pred))
    assert straight.score(X_test, y_test) > 0.5
    assert np.sqrt(mean_squared_error(y_test, pred)) < 0.7 * y_test.std()
    assert reg.best_architecture_.endswith("linear(1)")


def test_transformed_target_regressor_with_a_standard_scaler(data):
    X_train, X_test, y_train, y_test = data
    ttr = TransformedTargetRegressor(regressor=pipeline(**FAST), transformer=StandardScaler())
    ttr.fit(X_train, y_train)
    inner = ttr.regressor_[-1]
    # the target reached the search already standardised: its own standardisation is
    # then the identity, so the two compose
    np.testing.assert_allclose(inner.y_mean_, [0.0], atol=1e-9)
    np.testing.assert_allclose(inner.y_scale_, [1.0], rtol=1e-9)
    transformed = ttr.regressor_.predict(X_test)
    assert transformed.shape == (len(X_test),)
    np.testing.assert_allclose(
        ttr.predict(X_test), ttr.transformer_.inverse_transform(transformed[:, None]).ravel())
    assert ttr.score(X_test, y_test) > 0.5


def test_grid_search_over_a_controller_parameter(data):
    X_train, X_test, y_train, y_test = data
    grid = GridSearchCV(pipeline(**{**FAST, "samples_per_epoch": 1}),
                        {"mlpnasregressor__strategy__baseline": ["ema", 0.5]}, cv=2)
    grid.fit(X_train, y_train)
    scores = grid.cv_results_["mean_test_score"]
    assert len(scores) == 2 and np.isfinite(scores).all()
    best = grid.best_estimator_[-1]
    assert best.strategy.baseline == grid.best_params_["mlpnasregressor__strategy__baseline"]
    # the parameter reached the refit search's controller
    baselines = best.controller_history_["baseline"]
    if best.strategy.baseline == 0.5:
        np.testing.assert_allclose(baselines, 0.5)
    else:  # 'ema' starts at the mean of what the controller learns from: max(R^2, 0)
        res = best.search_results_
        first = (res["controller_epoch"] == 0) & (res["status"] == "ok")
        assert baselines[0] == pytest.approx(np.clip(res["reward"][first], 0, 1).mean())
    # GridSearchCV scores with the estimator's own score: R^2
    assert grid.score(X_test, y_test) == pytest.approx(r2_score(y_test, grid.predict(X_test)))


def test_cross_val_score_scores_r2_in_original_units():
    X, y = easy(200, seed=1)
    scores = cross_val_score(pipeline(**FAST), X, y, cv=KFold(2, shuffle=True, random_state=0))
    assert scores.shape == (2,)
    assert (scores > 0.3).all(), scores


# -------------------------------------------------------------- the target
def test_sample_weight_decides_which_rows_are_fit():
    """Two groups the features cannot tell apart, with opposite targets: the
    weighted group wins (y = x), whichever it is."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(240, 1))
    group = np.arange(240) % 2 == 0
    y = np.where(group, x[:, 0], -x[:, 0])

    def errors(weight_of_group):
        w = np.where(group, weight_of_group, 1.0 - weight_of_group)
        pred = MLPNASRegressor(**FAST).fit(x, y, sample_weight=w).predict(x)
        return (mean_squared_error(y[group], pred[group]),
                mean_squared_error(y[~group], pred[~group]))

    a, b = errors(1.0)  # only the first group counts
    assert a < 0.25 * b, (a, b)
    a, b = errors(0.0)  # only the second
    assert b < 0.25 * a, (a, b)


def test_several_targets(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(240, 3))
    # two targets on very different scales: each is standardised on its own
    Y = np.column_stack([SHIFT + SCALE * (X[:, 0] + X[:, 1]), -5 + 0.01 * X[:, 2]])
    reg = MLPNASRegressor(**{**FAST, "epochs": 8}).fit(X[:180], Y[:180])
    assert reg.n_outputs_ == 2 and reg.y_mean_.shape == reg.y_scale_.shape == (2,)
    assert reg.best_architecture_.endswith("linear(2)")
    pred = reg.predict(X[180:])
    assert pred.shape == (60, 2)
    per_target = r2_score(Y[180:], pred, multioutput="raw_values")
    assert (per_target > 0.3).all(), per_target
    assert reg.score(X[180:], Y[180:]) == pytest.approx(per_target.mean())
    saved = load_model(reg.save_model(tmp_path / "two"))
    np.testing.assert_allclose(saved.predict(X[180:]), pred, rtol=1e-6)


def test_a_negative_r2_is_kept_but_counts_as_zero_for_the_controller():
    """Candidates overshooting (learning rate 5) on a target the features cannot
    predict do far worse than the mean (R^2 < 0): the results keep the R^2, the
    controller learns from max(R^2, 0)."""
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(400, 4)), SHIFT + SCALE * rng.normal(size=400)
    reg = MLPNASRegressor(**{**FAST, "learning_rate": 5.0, "epochs": 1}).fit(X, y)
    rewards = reg.search_results_["reward"]
    assert (rewards < -1).all(), rewards  # the premise
    assert reg.best_score_ == pytest.approx(rewards.max())
    assert reg.controller_history_["mean_reward"][0] == pytest.approx(rewards.mean())
    # 'ema' starts at the mean of what the controller learned from: 0, not the mean R^2
    assert reg.controller_history_["baseline"][0] == 0.0


def test_validation_r2_is_taken_about_the_validation_targets_mean():
    """Guards against the trainer's validation R^2 measuring the squares about 0 rather
    than about the validation target's mean (the estimators' standardised targets have
    a mean near 0, which hides it): the score is scikit-learn's R^2 of the net's
    predictions, on a target far from 0."""
    from sknas._trainer import CandidateData, PopulationTrainer, build_keras_model, initial_weights
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    y = (5.0 + X[:, :1] - 0.5 * X[:, 1:2] + 0.2 * rng.normal(size=(300, 1))).astype(np.float32)
    w = np.ones(300, np.float32)
    data = CandidateData(X[:240], y[:240], w[:240], X[240:], y[240:], w[240:], 0,
                         task="regression")
    assert abs(y[240:].mean()) > 4 * y[240:].std()  # the premise: a mean far from 0
    layers = [{"type": "dense", "units": 8, "activation": "relu"}]
    init = initial_weights(layers, 4, 1, np.random.default_rng(1))
    result = PopulationTrainer(epochs=3).train([(layers, init, 2)], data, 0)[0]
    assert result.status == "ok"
    model = build_keras_model(layers, 4, data.head, result.weights)
    pred = np.asarray(model(X[240:], training=False))
    expected = r2_score(y[240:], pred)
    assert result.val_scores[-1] == pytest.approx(expected, rel=1e-4, abs=1e-4)


@pytest.fixture
def no_search(monkeypatch):
    """Fail loudly if a search starts."""
    def run(self, *args, **kwargs):
        raise AssertionError("the search started: validation should have failed first")
    monkeypatch.setattr(Search, "run", run)


def _bad_target(kind):
    y = np.linspace(0.0, 1.0, 20)
    if kind == "nan":
        y[3] = np.nan
    elif kind == "inf":
        y[3] = np.inf
    elif kind == "constant":
        y = np.full(20, 7.0)
    elif kind == "constant column":
        y = np.column_stack([y, np.full(20, 2.5)])
    elif kind == "strings":
        y = np.array(["cheap", "dear"] * 10, dtype=object)
    elif kind == "string series":
        y = pd.Series(["low", "high"] * 10)
    return y


@pytest.mark.parametrize("kind, message", [
    ("nan", "Input y contains NaN"),
    ("inf", "Input y contains infinity"),
    # (the value may print as np.float64(7.0) under NumPy 2: see the regressor's
    # _encode_target)
    ("constant", r"The target is constant \(column 0 is always .*7\.0.*\): there is nothing"),
    ("constant column", r"The target is constant \(column 1 is always .*2\.5"),
    ("strings", "needs a numeric target; y holds values such as 'cheap'.*MLPNASClassifier"),
    ("string series", "needs a numeric target; y holds values such as 'low'.*MLPNASClassifier"),
])
def test_bad_targets_fail_before_any_training(no_search, kind, message):
    X = np.random.default_rng(0).normal(size=(20, 3))
    reg = MLPNASRegressor(**TINY)
    with pytest.raises(ValueError, match=message):
        reg.fit(X, _bad_target(kind))
    assert not hasattr(reg, "y_mean_")  # a failed fit leaves nothing fitted


# ------------------------------------------------------ runs and workers
def test_run_folder_knows_the_task_and_the_target(logged, data):
    _, X_test, y_train, _ = data
    reg = logged[-1]
    run = load_run(reg.run_dir_)
    assert run.meta["task"] == "regression" and run.meta["status"] == "finished"
    assert run.meta["classes"] is None and run.classes is None
    assert run.meta["target"]["n_outputs"] == 1
    np.testing.assert_allclose(run.meta["target"]["mean"], [y_train.mean()])
    np.testing.assert_allclose(run.meta["target"]["std"], [y_train.std()])
    assert list(run.results["architecture"]) == list(reg.search_results_["architecture"])
    np.testing.assert_allclose(run.results["reward"], reg.search_results_["reward"])
    # the winner in the folder serves original units, as the estimator does
    X_scaled = logged[0].transform(X_test).astype(np.float32)
    served = np.asarray(run.load_model()(X_scaled)).ravel()
    np.testing.assert_allclose(served, logged.predict(X_test), rtol=1e-5)
    assert abs(served.mean() - SHIFT) < 0.3 * SCALE


def test_resume_continues_a_regression_run(logged, straight, data, tmp_path):
    X_train, _, y_train, _ = data
    run_dir = Path(shutil.copytree(logged[-1].run_dir_, tmp_path / "run"))
    resumed = pipeline(controller_epochs=2, resume=run_dir).fit(X_train, y_train)
    res = resumed[-1].search_results_
    assert list(res["controller_epoch"]) == [0, 0, 1, 1]
    # the first controller epoch is the logged one, not trained again ...
    first = logged[-1].search_results_
    assert list(res["fit_time"][:2]) == list(first["fit_time"])
    # ... and the whole search is the one that ran in one go
    same_search(res, straight[-1].search_results_)
    run = load_run(run_dir)
    assert run.meta["task"] == "regression" and len(run.meta["resumed"]) == 1


def test_n_jobs_2_gives_the_sequential_search(straight, data):
    X_train, _, y_train, _ = data
    parallel = pipeline(controller_epochs=2, n_jobs=2).fit(X_train, y_train)
    res = parallel[-1].search_results_
    assert os.getpid() not in set(res["pid"])  # trained in worker processes
    same_search(res, straight[-1].search_results_)


# ----------------------------------------------------------- persistence
def test_save_model_and_load_model_round_trip(logged, data, tmp_path):
    _, X_test, _, y_test = data
    reg = logged[-1]
    X_scaled = logged[0].transform(X_test)
    saved = load_model(reg.save_model(tmp_path / "model"))
    assert saved.task == "regression" and saved.classes_ is None
    assert "task='regression'" in repr(saved)
    np.testing.assert_array_equal(saved.predict(X_scaled), reg.predict(X_scaled))
    assert saved.score(X_scaled, y_test) == pytest.approx(reg.score(X_scaled, y_test))
    assert saved.score(X_scaled, y_test) == pytest.approx(r2_score(y_test, reg.predict(X_scaled)))
    with pytest.raises(AttributeError, match="no predict_proba"):
        saved.predict_proba(X_scaled)
    meta = json.loads((tmp_path / "model" / "sknas_model.json").read_text())
    assert meta["task"] == "regression" and meta["classes"] is None


#: Runs in a fresh interpreter: the exported file is loaded with plain Keras before
#: sknas is imported, then the joblib pipeline.
FRESH = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import joblib, keras, numpy as np
    folder = sys.argv[1]
    X = np.load(os.path.join(folder, "X.npy"))
    exported = keras.models.load_model(os.path.join(folder, "winner.keras"))
    out = {"sknas_imported_for_export": "sknas" in sys.modules,
           "export": np.asarray(exported(np.load(os.path.join(folder, "X_scaled.npy"))))
                       .tolist()}
    pipe = joblib.load(os.path.join(folder, "pipe.joblib"))
    out["joblib"] = pipe.predict(X).tolist()
    out["type"] = type(pipe[-1]).__name__
    json.dump(out, open(os.path.join(folder, "out.json"), "w"))
""")


@pytest.fixture(scope="module")
def fresh_process(logged, data, tmp_path_factory):
    """The logged pipeline dumped with joblib and its winner exported, both loaded
    in a new Python process."""
    _, X_test, _, _ = data
    folder = tmp_path_factory.mktemp("fresh")
    np.save(folder / "X.npy", X_test)
    np.save(folder / "X_scaled.npy", logged[0].transform(X_test).astype(np.float32))
    joblib.dump(logged, folder / "pipe.joblib")
    logged[-1].export_model(folder / "winner.keras")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.run([sys.executable, "-c", FRESH, str(folder)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((folder / "out.json").read_text())


def test_joblib_in_a_fresh_process_gives_the_same_predictions(fresh_process, logged, data):
    _, X_test, _, _ = data
    assert fresh_process["type"] == "MLPNASRegressor"
    np.testing.assert_array_equal(fresh_process["joblib"], logged.predict(X_test))


def test_export_model_loads_with_plain_keras_in_original_units(fresh_process, logged, data):
    _, X_test, _, y_test = data
    assert not fresh_process["sknas_imported_for_export"]
    out = np.asarray(fresh_process["export"])
    assert out.shape == (len(X_test), 1)
    np.testing.assert_allclose(out[:, 0], logged.predict(X_test), rtol=1e-5)
    assert r2_score(y_test, out[:, 0]) > 0.3


# ------------------------------------------------------------------ plots
def test_the_four_displays_draw_a_regression_search(logged, tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sknas import (ControllerHistoryDisplay, PredictorDisplay, RewardDistributionDisplay,
                       RewardHistoryDisplay)
    rewards = logged[-1].search_results_["reward"]
    try:
        history = RewardHistoryDisplay.from_estimator(logged)
        np.testing.assert_allclose(history.points_.get_offsets()[:, 1], rewards)
        assert history.ax_.get_ylabel() == "reward (validation score)"
        dist = RewardDistributionDisplay.from_estimator(logged)
        assert dist.counts_.sum() == len(rewards)
        assert dist.ax_.get_xlabel() == "reward (validation score)"
        predictor = PredictorDisplay.from_estimator(logged)
        assert predictor.ax_.get_title().startswith("Reward predictor: Pearson r = ")
        controller = ControllerHistoryDisplay.from_estimator(logged)
        assert controller.lines_["mean_reward"].get_ydata()[0] == pytest.approx(
            logged[-1].controller_history_["mean_reward"][0])
        for name, disp in [("history", history), ("dist", dist), ("predictor", predictor),
                           ("controller", controller)]:
            disp.figure_.savefig(tmp_path / f"{name}.png", dpi=50)
            assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    finally:
        plt.close("all")


# --------------------------------------------------------------- the data
def test_wine_quality_as_a_regression_target():
    from sknas.datasets import load_wine_quality
    bunch = load_wine_quality(as_frame=True, target="quality")
    assert bunch.data.shape == (4898, 11) and bunch.target.name == "quality"
    # neither the label derived from the score nor the index column is a feature
    assert "quality_label" not in bunch.frame and "quality" not in bunch.data
    assert list(bunch.frame.columns) == bunch.feature_names + ["quality"]
    assert bunch.target.dtype == np.int64 and bunch.target.between(3, 9).all()
    assert bunch.target_names == ["quality"]
    X, y = load_wine_quality(return_X_y=True, target="quality")
    assert X.dtype == np.float64 and y.dtype == np.int64 and len(y) == 4898
    np.testing.assert_array_equal(X, bunch.data.to_numpy())
    with pytest.raises(ValueError, match="target must be one of"):
        load_wine_quality(target="colour")


# ---------------------------------------------------------- command line
TINY_FLAGS = ["--controller-epochs", "1", "--samples-per-epoch", "2", "--epochs", "8",
              "--controller-train-steps", "1", "--units", "4", "8", "-q"]


def sknas(*args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    return subprocess.Popen([sys.executable, "-m", "sknas", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


CLI_TESTS = ("test_cli_detects_a_regression_target_and_beats_the_mean",
             "test_cli_task_classification_on_a_numeric_target")


@pytest.fixture(scope="module", autouse=True)
def cli_runs(request, tmp_path_factory):
    """Two searches from the command line: a price with a text column and missing
    values (auto-detected as regression), and a numeric target of 12 levels forced
    to classification.

    When the tests that read them are selected, both processes start with the
    first test of this file and run in the background while the in-process fits
    go on (TensorFlow's start-up in a new process takes seconds); the two tests
    at the end of the file wait for them.
    """
    if not any(item.name in CLI_TESTS for item in request.session.items):
        yield None
        return
    cwd = tmp_path_factory.mktemp("cli")
    X, y = easy(200, seed=3)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    frame["colour"] = np.where(X[:, 3] > 0, "red", "blue")
    frame.loc[::17, "b"] = np.nan
    frame["price"] = y
    frame.to_csv(cwd / "prices.csv", index=False)
    rng = np.random.default_rng(4)
    level = np.repeat(np.arange(12), 20)
    grades = pd.DataFrame({"x": level + 0.2 * rng.normal(size=240),
                           "noise": rng.normal(size=240), "grade": level})
    grades.to_csv(cwd / "grades.csv", index=False)
    procs = {"regression": sknas("search", "prices.csv", "--target", "price", *TINY_FLAGS,
                                 "--model-out", "prices.joblib", cwd=cwd),
             "classification": sknas("search", "grades.csv", "--target", "grade", "--task",
                                     "classification", *TINY_FLAGS, cwd=cwd)}
    done = {}

    def result(name):
        if name not in done:
            out, err = procs[name].communicate(timeout=300)
            done[name] = (procs[name].returncode, out, err)
        return done[name]

    yield cwd, result
    for proc in procs.values():  # a test that failed early leaves no process behind
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _after(text, prefix):
    return text.split(prefix)[1].splitlines()[0]


def test_cli_detects_a_regression_target_and_beats_the_mean(cli_runs):
    cwd, result = cli_runs
    code, out, err = result("regression")
    assert code == 0, err
    assert "Traceback" not in err
    y = pd.read_csv(cwd / "prices.csv")["price"]
    data_line = _after(out, "target 'price' (")
    assert data_line.startswith(f"regression target, range {y.min():.6g} to {y.max():.6g}); ")
    # a plain split: the one recomputed here
    assert "train 160 / test 40 rows (random_state=0)" in data_line
    frame = pd.read_csv(cwd / "prices.csv")
    X_train, X_test, y_train, y_test = train_test_split(
        frame.drop(columns="price"), frame["price"], test_size=0.2, random_state=0)
    served, line = _after(out, "held-out test R^2 of the ").split(": ", 1)
    assert served in ("winner's fold models", "ensemble's fold models")  # the default
    r2, rmse = float(line.split(",")[0]), float(line.split("RMSE ")[1].split()[0])
    mean_r2 = float(line.split("predicting the training mean: R^2 ")[1].split(",")[0])
    mean_rmse = float(line.split("RMSE ")[2].rstrip(")"))
    assert f"on {len(y_test)} rows" in line
    baseline = np.full(len(y_test), y_train.mean())
    assert mean_r2 == pytest.approx(r2_score(y_test, baseline), abs=1e-4)
    assert mean_rmse == pytest.approx(np.sqrt(mean_squared_error(y_test, baseline)), rel=1e-5)
    # the served models are much better than predicting the mean (on this tiny budget
    # each of cv='auto''s 3 fold models trains 8 epochs on 107 of the 160 rows)
    assert r2 > 0.4 and r2 > mean_r2 + 0.4 and rmse < mean_rmse
    # the saved pipeline is the regressor that printed these numbers
    pipe = joblib.load(cwd / "prices.joblib")
    assert type(pipe[-1]).__name__ == "MLPNASRegressor"
    pred = pipe.predict(X_test)
    assert r2 == pytest.approx(r2_score(y_test, pred), abs=1e-4)
    assert rmse == pytest.approx(np.sqrt(mean_squared_error(y_test, pred)), rel=1e-5)
    assert "linear(1)" in _after(out, "best architecture: ")


def test_cli_task_classification_on_a_numeric_target(cli_runs):
    _, result = cli_runs
    code, out, err = result("classification")
    assert code == 0, err
    assert "target 'grade' (12 classes); train 192 / test 48 rows (stratified, " in out
    assert "softmax(12)" in _after(out, "best architecture: ")
    line = _after(out, "held-out test accuracy of the ").split(": ", 1)[1]
    accuracy = float(line.split()[0])
    assert "(majority class: 0.0833)" in line and accuracy > 0.0833
    assert "R^2" not in out


@pytest.mark.parametrize("values, task", [
    (np.linspace(0, 1, 50), "regression"),          # floats, many values
    (np.arange(50) % 11, "regression"),             # integers, 11 levels
    (np.arange(50) % 10, "classification"),         # integers, 10 levels
    (np.arange(50) % 7 + 3, "classification"),      # wine quality: 3 to 9
    (np.arange(50) % 3 * 0.5, "classification"),    # floats, 3 levels
    (np.arange(50) % 2 == 0, "classification"),     # booleans
    (np.array([f"c{i}" for i in range(50)], dtype=object), "classification"),  # text
])
def test_cli_task_detection_rule(values, task):
    from sknas._cli import _detect_task
    assert _detect_task(pd.Series(values)) == task


@pytest.mark.parametrize("csv, args, message", [
    ("x,y\n1,3\n2,3\n3,3\n", ["--task", "regression"], "target column 'y' is constant (3)"),
    ("x,y\n1,a\n2,b\n3,a\n", ["--task", "regression"],
     "target column 'y' is not numeric (values such as 'a'); regression needs numbers: "
     "for class labels use --task classification"),
    ("x,y\n1,inf\n2,3\n3,4\n", ["--task", "regression"], "target column 'y' has infinite values"),
    ("x,y\n1,inf\n" + "".join(f"{i},{i * 1.5}\n" for i in range(12)), [],
     "target column 'y' has infinite values"),
])
def test_cli_bad_regression_targets_are_one_line_before_any_output(csv, args, message, tmp_path,
                                                                   capsys):
    from sknas._cli import main
    (tmp_path / "data.csv").write_text(csv)
    assert main(["search", str(tmp_path / "data.csv"), "--target", "y", *args]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and lines[0].startswith("sknas: error: ")
    assert message in lines[0]
