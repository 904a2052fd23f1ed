"""Progress output: quiet by default, one line per controller epoch at verbose=1,
one more per candidate at verbose=2, all through one Reporter."""

import re

import numpy as np
import pytest

from sknas import MLPNASClassifier
from sknas._reporting import Reporter
from sknas._trial import Trial

EPOCH_LINE = re.compile(r"^\[sknas\] controller epoch (\d)/2: best so far=0\.\d{4}, "
                        r"mean reward=0\.\d{4}, elapsed=\d+\.\ds$")
CANDIDATE_LINE = re.compile(r"^\[sknas\] \[(\d)/4\] .+ > softmax\(3\); reward=\d\.\d{4}, "
                            r"predicted=\d\.\d{3}; \d+\.\d\ds$")


@pytest.fixture(scope="module")
def fitted_outputs():
    """The stdout of the same tiny search at verbose 0, 1 and 2 (and the last estimator)."""
    import contextlib
    import io

    from sklearn.datasets import load_iris

    from conftest import TINY
    X, y = load_iris(return_X_y=True)
    outputs = {}
    for verbose in (0, 1, 2):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            clf = MLPNASClassifier(**dict(TINY, controller_epochs=2), verbose=verbose).fit(X, y)
        outputs[verbose] = buf.getvalue().splitlines()
    outputs["quiet estimator"] = clf.set_params(verbose=0)
    return outputs


def test_verbose_0_prints_nothing(fitted_outputs):
    assert fitted_outputs[0] == []


def test_verbose_1_prints_one_line_per_controller_epoch(fitted_outputs):
    lines = fitted_outputs[1]
    epochs = [m.group(1) for m in map(EPOCH_LINE.match, lines) if m]
    assert epochs == ["1", "2"]
    assert not any(CANDIDATE_LINE.match(line) for line in lines)
    assert lines[0].startswith("[sknas] searching 2 controller epochs x 2 candidates")
    assert lines[-2] == "[sknas] search ended (completed) after 4 candidates"
    assert lines[-1].startswith("[sknas] served model (the winner, refit on all rows) built in")


def test_verbose_2_adds_one_line_per_candidate_in_order(fitted_outputs):
    lines = fitted_outputs[2]
    candidates = [m.group(1) for m in map(CANDIDATE_LINE.match, lines) if m]
    assert candidates == ["1", "2", "3", "4"]
    # each epoch's line follows its candidates
    assert EPOCH_LINE.match(lines[lines.index(next(x for x in lines if "[2/4]" in x)) + 1])


def _trial(**kw):
    base = dict(index=0, controller_epoch=0, arch=(1,), architecture="8-relu > softmax(3)",
                layers=[], n_params=10, fit_time=0.5)
    return Trial(**dict(base, **kw))


def test_reporter_sends_lines_to_its_sink_and_respects_levels():
    lines = []
    rep = Reporter(verbose=1, sink=lines.append)
    rep.candidate(_trial(status="ok", reward=0.75), n_total=4)
    assert lines == []  # a candidate line needs verbose=2
    rep.epoch({"controller_epoch": 0, "best_reward": 0.75, "mean_reward": 0.5, "n_failed": 1}, 3)
    assert re.match(r"\[sknas\] controller epoch 1/3: best so far=0\.7500, "
                    r"mean reward=0\.5000, 1 failed, elapsed=", lines[0])


def test_failed_candidate_line_shows_the_message_and_omits_missing_prediction():
    lines = []
    Reporter(verbose=2, sink=lines.append).candidate(
        _trial(status="failed", message="ValueError: NaN loss", reward=np.nan), n_total=4)
    assert lines == ["[sknas] [1/4] 8-relu > softmax(3); FAILED (ValueError: NaN loss); 0.50s"]


def test_top_architectures_prints_only_when_verbose(fitted_outputs, capsys):
    clf = fitted_outputs["quiet estimator"]
    top = clf.top_architectures(2)
    assert capsys.readouterr().out == ""
    clf.set_params(verbose=1)
    clf.top_architectures(2)
    out = capsys.readouterr().out
    assert out.startswith("[sknas] top architectures:")
    assert top["architecture"].iloc[0] in out
