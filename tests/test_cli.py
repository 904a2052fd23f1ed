"""The ``sknas`` command line, run as a real subprocess (``python -m sknas``)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_FLAGS = ["--controller-epochs", "2", "--samples-per-epoch", "2", "--epochs", "8",
              "--controller-train-steps", "1", "--units", "4", "8"]


def sknas(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "sknas", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def iris_csv(tmp_path_factory):
    """Iris with an id column, a categorical column and missing values."""
    from sklearn.datasets import load_iris
    frame = load_iris(as_frame=True).frame
    frame["id"] = np.arange(len(frame))
    frame["colour"] = np.where(frame["sepal length (cm)"] > 5.8, "red", "blue")
    frame.loc[::17, "petal width (cm)"] = np.nan
    frame.loc[::23, "colour"] = np.nan
    frame["species"] = frame.pop("target").map({0: "setosa", 1: "versicolor", 2: "virginica"})
    path = tmp_path_factory.mktemp("data") / "iris.csv"
    frame.to_csv(path, index=False)
    return path


def majority_rate_of_test_part(csv, target, test_size=0.2, random_state=0):
    """How often the majority class occurs in the held-out part that ``sknas search``
    scores on: its split is stratified, with the default --test-size and --random-state."""
    from sklearn.model_selection import train_test_split
    y = pd.read_csv(csv)[target].dropna()
    _, y_test = train_test_split(y, test_size=test_size, stratify=y, random_state=random_state)
    return y_test.value_counts(normalize=True).max()


@pytest.fixture(scope="module")
def searched(iris_csv, tmp_path_factory):
    """One tiny search with a run log and a saved pipeline."""
    cwd = tmp_path_factory.mktemp("search")
    proc = sknas("search", iris_csv, "--target", "species", "--drop", "id", *TINY_FLAGS,
                 "--activations", "relu", "tanh", "--baseline", "0.5", "--max-time", "600",
                 "--top", "3", "--log-dir", "logs", "--model-out", "model.joblib", "-v", cwd=cwd)
    return proc, cwd


def test_search_prints_progress_top_table_and_held_out_accuracy(searched, iris_csv):
    proc, _ = searched
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "train 120 / test 30 rows" in out
    assert "[sknas] [1/4]" in out and "[sknas] [4/4]" in out  # -v: one line per candidate
    assert "controller epoch 2/2" in out
    assert "top 3 architectures (of 4 candidates)" in out
    # the default serves the finalists' fold models (of one winner, or of an ensemble)
    served, line = out.split("held-out test accuracy of the ")[1].splitlines()[0].split(": ", 1)
    assert served in ("winner's fold models", "ensemble's fold models")
    accuracy = float(line.split()[0])
    majority = majority_rate_of_test_part(iris_csv, "species")
    assert f"on 30 rows (majority class: {majority:.4f})" in line
    # the refit winner learned something: better than always answering the majority class
    assert majority < accuracy <= 1.0
    assert "Traceback" not in proc.stderr
    # TensorFlow's start-up notices (printed whatever TF_CPP_MIN_LOG_LEVEL says) are left out
    assert "InitializeLog" not in proc.stderr, proc.stderr
    assert not re.search(r"^[IWE]\d{4} \d\d:\d\d:", proc.stderr, re.M), proc.stderr


def test_search_saves_a_pipeline_that_predicts_labels(searched, iris_csv):
    proc, cwd = searched
    pipe = joblib.load(cwd / "model.joblib")
    frame = pd.read_csv(iris_csv)
    X = frame.drop(columns=["species", "id"])
    pred = pipe.predict(X)
    assert set(pred) <= {"setosa", "versicolor", "virginica"}
    # the categorical column was one-hot encoded (blue, red) next to 4 scaled columns
    assert pipe.named_steps["search"].n_features_in_ == 6


def test_search_flags_reach_the_estimator(searched):
    import json
    _, cwd = searched
    params = json.loads(next((cwd / "logs").glob("run-*/params.json")).read_text())
    # --units and --activations make the space, --baseline and --controller-train-steps the
    # strategy
    assert params["space__activations"] == ["relu", "tanh"] and params["space__units"] == [4, 8]
    assert params["space"] == "SearchSpace(units=(4, 8), activations=('relu', 'tanh'))"
    assert params["strategy__baseline"] == 0.5 and params["strategy__train_steps"] == 1
    assert params["strategy"] == "Reinforce(baseline=0.5, train_steps=1)"
    assert params["max_time"] == 600
    assert params["controller_epochs"] == 2 and params["epochs"] == 8
    for removed in ("units", "activations", "baseline", "controller_train_steps"):
        assert removed not in params
    lines = next((cwd / "logs").glob("run-*/trials.jsonl")).read_text().splitlines()
    activations = {layer.get("activation") for line in lines
                   for layer in json.loads(line)["layers"] if layer["type"] == "dense"}
    assert len(lines) == 4 and activations <= {"relu", "tanh"}


def test_report_prints_the_saved_table_and_writes_four_pngs(searched, tmp_path):
    proc, cwd = searched
    run_dirs = list((cwd / "logs").iterdir())
    assert len(run_dirs) == 1
    assert f"run folder: {Path('logs') / run_dirs[0].name}" in proc.stdout
    rep = sknas("report", run_dirs[0], "--out", tmp_path / "plots", "--top", "2", cwd=cwd)
    assert rep.returncode == 0, rep.stderr
    assert "top 2 architectures (of 4 candidates)" in rep.stdout
    best = proc.stdout.split("best architecture: ")[1].split(" (")[0]
    first_row = rep.stdout.split("fit_time\n")[1].splitlines()[0]
    assert best in first_row
    for name in ("reward_history", "reward_distribution", "predictor", "controller_history"):
        png = tmp_path / "plots" / f"{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, message", [
    (["search", "missing.csv", "--target", "y"], "no such file: missing.csv"),
    (["search", "{iris}", "--target", "nope"], "target column 'nope' not found"),
    (["search", "{iris}"], "--target is required"),
    (["search", "{iris}", "--target", "species", "--drop", "zzz"], "no column named 'zzz'"),
    (["search", "{iris}", "--target", "species", "--max-time", "0"],
     "'max_time' parameter of MLPNASClassifier must be a float in the range (0.0, inf)"),
    (["search", "{iris}", "--target", "species", "--activations", "swishy"],
     "'swishy' is not a Keras activation"),
    (["search", "{iris}", "--target", "species", "--units", "4", "4"],
     "units must not repeat a width"),
    (["search", "{iris}", "--target", "species", "--controller-train-steps", "0"],
     "'train_steps' parameter of Reinforce must be an int in the range [1, inf)"),
    (["search", "{one}", "--target", "label"], "has only one class ('a')"),
    (["report", "no-such-run"], "no such run folder"),
    (["report", "."], "cannot read the run"),
])
def test_bad_input_is_one_line_on_stderr_and_status_2(args, message, iris_csv, tmp_path):
    (tmp_path / "one.csv").write_text("x,label\n1,a\n2,a\n3,a\n")
    args = [a.format(iris=iris_csv, one=tmp_path / "one.csv") for a in args]
    proc = sknas(*args, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sknas: error: "), proc.stderr
    assert message in lines[0]
    assert proc.stdout == ""


def test_help_lists_the_subcommands_and_flags(tmp_path):
    top = sknas("--help", cwd=tmp_path)
    assert top.returncode == 0 and "{search,report}" in top.stdout
    search = sknas("search", "--help", cwd=tmp_path)
    for flag in ("--target", "--drop", "--controller-epochs", "--samples-per-epoch", "--epochs",
                 "--random-state", "--n-jobs", "--log-dir", "--model-out", "--top", "--test-size",
                 "--activations", "--baseline", "--max-time"):
        assert flag in search.stdout


def test_space_and_strategy_flags_map_to_a_search_space_and_a_reinforce():
    from sknas import Reinforce, SearchSpace
    from sknas._cli import _estimator_params, _parser

    def params(*flags):
        return _estimator_params(_parser().parse_args(["search", *flags]))
    space = params("--units", "4", "8", "--activations", "relu", "--max-layers", "3")["space"]
    assert isinstance(space, SearchSpace)
    assert space.get_params() == SearchSpace(units=(4, 8), activations=("relu",),
                                             max_layers=3).get_params()
    # on top of a preset: the preset's other choices are kept
    space = params("--space", "extended", "--units", "4", "8")["space"]
    assert space.get_params() == SearchSpace.from_preset("extended").set_params(
        units=(4, 8)).get_params()
    assert params("--space", "extended")["space"] == "extended"
    strategy = params("--baseline", "batch", "--controller-train-steps", "3",
                      "--screen-factor", "2")["strategy"]
    assert isinstance(strategy, Reinforce)
    assert strategy.get_params() == Reinforce(baseline="batch", train_steps=3,
                                              screen_factor=2.0).get_params()
    assert params("--baseline", "0.5")["strategy"].baseline == 0.5
    assert "strategy" not in params() and "space" not in params()


def test_the_finalist_batch_size_flag_is_gone(tmp_path):
    from sknas._cli import _parser
    with pytest.raises(SystemExit):
        _parser().parse_args(["search", "--finalist-batch-size", "64"])
    proc = sknas("search", "--finalist-batch-size", "64", cwd=tmp_path)
    assert proc.returncode == 2 and "--finalist-batch-size" in proc.stderr
    assert "--finalist-batch-size" not in sknas("search", "--help", cwd=tmp_path).stdout


def test_no_subcommand_is_the_reference_protocol_on_the_bundled_data():
    from sknas._cli import WINE_TARGET, _estimator_params, _parser, _read_frame
    args = _parser().parse_args(["search"])
    assert args.data is None and args.test_size == 0.2 and args.top == 5
    # only seed and verbosity are set: every other parameter keeps the estimator's default
    assert _estimator_params(args) == {"random_state": 0, "verbose": 1}
    frame, _ = _read_frame(None)
    assert WINE_TARGET in frame and "quality" not in frame and frame.shape == (4898, 12)


def test_console_script_entry_point_is_main():
    import importlib
    import re
    import shutil
    pyproject = (ROOT / "pyproject.toml").read_text()
    spec = re.search(r'^sknas = "([\w.]+:\w+)"$', pyproject, re.MULTILINE).group(1)
    module, func = spec.split(":")
    main = getattr(importlib.import_module(module), func)
    assert main(["report", "no-such-run"]) == 2  # in-process: same code as the script
    script = shutil.which("sknas", path=str(Path(sys.executable).parent))
    if script is not None:  # installed (pip install .): the script itself answers
        proc = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "{search,report}" in proc.stdout
