"""The scripts in examples/ run, with a tiny budget, and write what they promise."""

import os
import subprocess
import sys
from pathlib import Path

import joblib
import keras
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_example(name, cwd):
    env = dict(os.environ, SKNAS_EXAMPLE_TINY="1", PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3",
               MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / name)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return proc.stdout


def held_out_accuracy(out):
    value = float(out.split("held-out test accuracy: ")[1].split()[0])
    assert 0.0 <= value <= 1.0
    return value


def majority_rate(sample=None):
    """How often the majority class occurs in the examples' test part: the
    stratified 80/20 split (``random_state=0``) of the wine-quality data, after
    the stratified sample of ``sample`` rows that a tiny run may draw first."""
    from sklearn.model_selection import train_test_split

    from sknas.datasets import load_wine_quality
    X, y = load_wine_quality(return_X_y=True)
    if sample is not None:
        X, _, y, _ = train_test_split(X, y, train_size=sample, stratify=y, random_state=0)
    _, _, _, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    return np.unique(y_test, return_counts=True)[1].max() / len(y_test)


def test_plot_wine_search_writes_four_plots(tmp_path):
    out = run_example("plot_wine_search.py", tmp_path)
    assert "controller epoch 2/2" in out
    assert "top architectures" in out
    # better than always answering the majority class (0.629 on this split)
    assert held_out_accuracy(out) > majority_rate()
    for name in ("reward_history", "reward_distribution", "predictor", "controller_history"):
        png = tmp_path / f"wine_{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG", name


def test_grid_search_controller_tunes_the_strategy(tmp_path):
    out = run_example("grid_search_controller.py", tmp_path)
    assert "{'strategy__learning_rate': 0.003}" in out
    assert "{'strategy__learning_rate': 0.01}" in out
    best = float(out.split("best parameters: {'strategy__learning_rate': ")[1].split("}")[0])
    # the refit estimator's strategy holds the best value and keeps its other settings
    strategy = out.split("best strategy: ")[1].splitlines()[0]
    assert strategy.startswith("Reinforce(") and "train_steps=1" in strategy
    assert (f"learning_rate={best!r}" in strategy) == (best != 0.01)  # 0.01: the default
    # the tiny run searches a stratified sample of 600 rows (majority 0.633 on its split)
    assert held_out_accuracy(out) > majority_rate(sample=600)


def test_save_load_export_round_trips(tmp_path):
    out = run_example("save_load_export.py", tmp_path)
    assert "reloaded predictions identical: True" in out
    assert "agrees with the pipeline on 100.0% of the test rows" in out
    pipe = joblib.load(tmp_path / "wine_search.joblib")
    exported = keras.models.load_model(tmp_path / "wine_winner.keras")
    assert exported.output_shape == (None, len(pipe[-1].classes_))
    assert exported.count_params() == pipe[-1].model_.count_params()
    assert held_out_accuracy(out) > majority_rate()


def test_regression_wine_beats_predicting_the_mean(tmp_path):
    out = run_example("regression_wine.py", tmp_path)
    assert "controller epoch 1/1" in out and "top architectures" in out
    assert out.split("best architecture: ")[1].splitlines()[0].endswith("linear(1)")
    r2 = float(out.split("held-out test R^2: ")[1].split(",")[0])
    rmse = float(out.split("RMSE: ")[1].split()[0])
    mean_line = out.split("predicting the training mean: ")[1].splitlines()[0]
    mean_r2 = float(mean_line.split("R^2 ")[1].split(",")[0])
    mean_rmse = float(mean_line.split("RMSE ")[1])
    # the mean of the training scores: R^2 -0.0057, RMSE 0.9415 on this split
    assert abs(mean_r2) < 0.05 and 0.9 < mean_rmse < 1.0
    assert r2 > mean_r2 + 0.1 and rmse < mean_rmse


def test_extended_space_example_shows_the_decisions(tmp_path):
    out = run_example("extended_space.py", tmp_path)
    assert "tutorial space: 840 architectures" in out
    assert "extended space: 1,522,944 architectures" in out
    assert "best architecture: adam(lr=" in out and "learning_rate" in out
    assert held_out_accuracy(out) > majority_rate(sample=600) - 0.05


@pytest.mark.parametrize("name", ["plot_wine_search.py", "grid_search_controller.py",
                                  "save_load_export.py", "regression_wine.py",
                                  "extended_space.py"])
def test_examples_are_documented(name):
    text = (ROOT / "examples" / name).read_text()
    assert text.startswith('"""') and "SKNAS_EXAMPLE_TINY" in text
    assert name in (ROOT / "docs" / "examples.rst").read_text()
