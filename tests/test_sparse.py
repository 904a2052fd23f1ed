"""Sparse and wide input: SciPy sparse rows through the search, never densified whole.

The population trainer keeps sparse rows sparse in its graph (a mini-batch
gathers only its rows' stored values; the first layer is a sparse-dense
product, or densifies the mini-batch with ``sparse_product=False``), so a
search on sparse data trains as on the same data dense, up to float
summation order, with Adam. The estimators train the first layer on sparse
rows with lazy Adam instead (a step reads and moves only the kernel rows of
the columns its batch touches, each catching up the steps it missed, so the
result is Adam's up to rounding): ``_DenseAdam`` turns that off to compare
with dense rows.
"""

import os
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline

from conftest import TINY
from sknas import MLPNASClassifier, MLPNASRegressor, load_model, load_run
from sknas._trainer import CandidateData, KerasTrainer, PopulationTrainer, initial_weights

LAYERS = [{"type": "dense", "units": 16, "activation": "relu"}, {"type": "dropout", "rate": 0.2},
          {"type": "dense", "units": 8, "activation": "tanh"}]


class _DenseAdam(MLPNASClassifier):
    """The classifier with Adam's full step on sparse rows too (no lazy Adam)."""

    _lazy_adam = False


class _LazyAdam(MLPNASClassifier):
    """The classifier with lazy Adam on sparse rows whatever share of the columns a
    batch touches (the tiny problems' batches touch most of theirs, where the
    estimators' ``'auto'`` takes Adam's full step)."""

    _lazy_adam = True


def _sparse_problem(n=300, d=200, density=0.05, seed=0):
    """Sparse rows whose label depends on which half of the columns holds more mass."""
    X = sp.random(n, d, density=density, format="csr", dtype=np.float64, random_state=seed)
    y = (X[:, :d // 2].sum(1).A1 > X[:, d // 2:].sum(1).A1).astype(int)
    return X, y


def _signed_sparse_problem(n=300, d=200, density=0.05, seed=0):
    """As :func:`_sparse_problem`, with stored values of either sign (uniform in
    [-1, 1]): a path that dropped the signs would train on another problem."""
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", dtype=np.float64, random_state=seed,
                  data_rvs=lambda k: rng.uniform(-1, 1, k))
    y = (X[:, :d // 2].sum(1).A1 > X[:, d // 2:].sum(1).A1).astype(int)
    return X, y


def _texts(n=240, seed=0):
    """Short documents of two topics sharing half their vocabulary."""
    rng = np.random.default_rng(seed)
    common = [f"w{i}" for i in range(60)]
    topics = [[f"a{i}" for i in range(30)], [f"b{i}" for i in range(30)]]
    y = rng.integers(0, 2, n)
    docs = [" ".join(rng.choice(common, 6).tolist() + rng.choice(topics[c], 2).tolist())
            for c in y]
    return docs, y


def _data(X, y, n_train):
    ones = np.ones(len(y), np.float32)
    y = y.astype(np.int32)
    return CandidateData(X[:n_train], y[:n_train], ones[:n_train], X[n_train:], y[n_train:],
                         ones[n_train:], 2)


def _train(trainer, X, y):
    init = initial_weights(LAYERS, X.shape[1], 1, np.random.default_rng(1))
    return trainer.train([(LAYERS, init, 3)], _data(X, y, 200), 7, val_outputs=True)[0]


@pytest.mark.parametrize("sparse_product", [True, False])
def test_population_trainer_trains_sparse_rows_as_dense_ones(sparse_product):
    X, y = _sparse_problem()
    X = X.astype(np.float32)
    dense = _train(PopulationTrainer(epochs=4), X.toarray(), y)
    sparse = _train(PopulationTrainer(epochs=4, sparse_product=sparse_product), X, y)
    assert dense.status == sparse.status == "ok"
    # same shuffles, dropout masks and Adam steps: equal up to summation order
    np.testing.assert_allclose(sparse.val_scores, dense.val_scores, atol=1e-6)
    for (k1, b1), (k2, b2) in zip(sparse.weights, dense.weights):
        np.testing.assert_allclose(k1, k2, atol=1e-4)
        np.testing.assert_allclose(b1, b2, atol=1e-4)
    np.testing.assert_allclose(sparse.val_outputs, dense.val_outputs, atol=1e-4)
    assert dense.val_scores[-1] > 0.7  # and it learns


#: Nets of every kind a lazy step must index: two learning rates (two flat vectors), weight
#: decay and a schedule, batch normalisation on the first layer, a net with no hidden layer.
LAZY_ARCHS = [
    [{"type": "optimizer", "learning_rate": 0.003, "weight_decay": 0.1, "schedule": "cosine"},
     {"type": "dense", "units": 12, "activation": "relu", "batch_norm": True},
     {"type": "dense", "units": 4, "activation": "tanh"}],
    [{"type": "dense", "units": 7, "activation": "elu"}],
    [{"type": "optimizer", "learning_rate": 0.003, "weight_decay": 0.0},
     {"type": "dense", "units": 5, "activation": "sigmoid"}],
    LAYERS,
]


def _touching(share_rows, n=400, d=500, seed=0):
    """CSR rows of which each holds ``share_rows`` random columns."""
    rng = np.random.default_rng(seed)
    cols = np.concatenate([rng.choice(d, share_rows, replace=False) for _ in range(n)])
    rows = np.repeat(np.arange(n), share_rows)
    return sp.csr_matrix((np.ones(n * share_rows, np.float32), (rows, cols)), shape=(n, d))


def test_batch_column_share_is_what_batches_touch():
    # the closed form against batches drawn as the trainer draws them
    from sknas._population import batch_column_share
    rng = np.random.default_rng(1)
    for per_row, batch in [(2, 32), (10, 32), (25, 64)]:
        X = _touching(per_row)
        drawn = np.mean([np.unique(X[rng.choice(400, batch, replace=False)].indices).size
                         for _ in range(200)]) / 500
        assert batch_column_share(X, batch) == pytest.approx(drawn, abs=0.01)
    assert batch_column_share(_touching(2)[:0], 32) == 0.0


def test_auto_takes_lazy_steps_only_where_batches_touch_few_columns():
    # a batch of 32 rows of 2 columns each touches about 12% of 500 columns: lazy
    # steps; of 10 columns each, about 47%: Adam's full step; dense rows: never lazy
    from sknas._population import LAZY_MAX_SHARE
    y = np.arange(400) % 2
    auto = PopulationTrainer(batch_size=32, lazy_adam="auto")
    few, many = _data(_touching(2), y, 300), _data(_touching(10), y, 300)
    assert auto._lazy(few) and not auto._lazy(many)
    assert not auto._lazy(_data(_touching(2).toarray(), y, 300))
    assert PopulationTrainer(batch_size=32, lazy_adam=True)._lazy(many)
    assert not PopulationTrainer(batch_size=32, lazy_adam=False)._lazy(few)
    # the batch size counts: batches of 4 rows touch few of the 10-column rows' columns
    assert PopulationTrainer(batch_size=4, lazy_adam="auto")._lazy(many)
    assert 0.1 <= LAZY_MAX_SHARE <= 0.3  # the measured crossing is at about 0.28
    # the estimators use the rule
    X = _touching(2)
    clf = MLPNASClassifier(**dict(TINY, batch_size=32)).fit(X, y)
    assert clf._make_trainer()._lazy(_data(X, y, 300))
    assert not clf._make_trainer()._lazy(_data(_touching(10), y, 300))


def test_lazy_adam_is_adam_on_mini_batches():
    # batches of 8 rows touch a few of the 60 columns each; a column's row catches up
    # the steps it missed when a batch next holds it (and every row at the epoch's
    # end), so lazy Adam ends where Adam's full step does, rounding aside; column 7
    # is never touched: it stays, or decays as Adam decays it (the first net's decay)
    X, y = _sparse_problem(d=60, density=0.05)
    X = X.astype(np.float32).tolil()
    X[:, 7] = 0.0
    X = X.tocsr()
    X.eliminate_zeros()
    data = _data(X, y, 200)
    rng = np.random.default_rng(0)
    cands = [(a, initial_weights(a, 60, 1, rng), 20 + k) for k, a in enumerate(LAZY_ARCHS)]
    adam = PopulationTrainer(epochs=3, batch_size=8).train(cands, data, 4, val_outputs=True)
    lazy = PopulationTrainer(epochs=3, batch_size=8, lazy_adam=True).train(
        cands, data, 4, val_outputs=True)
    for a, b, (arch, init, _) in zip(adam, lazy, cands):
        assert a.status == b.status == "ok"
        # a bias before batch normalisation has a gradient of 0 + rounding noise, so it
        # and the moving mean that follows it drift apart, and with them the outputs
        bn = len(a.weights[0]) == 6
        np.testing.assert_allclose(b.val_outputs, a.val_outputs, atol=1e-3 if bn else 1e-4)
        # a validation row whose output sits at the threshold may flip
        np.testing.assert_allclose(b.val_scores, a.val_scores, atol=0.011)
        for la, lb in zip(a.weights, b.weights):
            for j, (wa, wb) in enumerate(zip(la, lb)):
                if len(la) == 6 and j in (1, 4):
                    continue
                np.testing.assert_allclose(wb, wa, atol=1e-5)
        decays = any(layer.get("weight_decay") for layer in arch)
        assert np.array_equal(b.weights[0][0][7], init[0][0][7]) != decays


def _lazy_group(schedule):
    """A real lazy population's one group: a net of 5 units on 4 columns with
    weight decay and ``schedule``."""
    from sknas._nets import _Net
    from sknas._population import _Population
    layers = [{"type": "optimizer", "learning_rate": 0.01, "weight_decay": 0.1,
               "schedule": schedule}, {"type": "dense", "units": 5, "activation": "tanh"}]
    init = initial_weights(layers, 4, 1, np.random.default_rng(0))
    [group] = _Population([_Net(layers, 4, 2, 0)], [init], 0.01, lazy=True).groups
    return group, init


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_a_lazy_rows_catch_up_is_adams_steps_without_a_gradient(schedule):
    # rows last moved after steps 0 to 60 catch up to step 130: 0 to 130 skipped
    # steps, past the 64 whose rates are summed one by one; Adam, step by step
    # (NumPy, float64), with a zero gradient: decay, moments, bias correction, schedule
    import tensorflow as tf
    from sknas._nets import schedule_factor
    group, _ = _lazy_group(schedule)
    rng = np.random.default_rng(1)
    last = np.array([130, 129, 127, 80, 60, 0], np.float32)
    rows = rng.normal(size=(6, 5)).astype(np.float32)
    m = (0.1 * rng.normal(size=(6, 5))).astype(np.float32)
    v = ((0.1 * rng.normal(size=(6, 5))) ** 2).astype(np.float32)
    done, total = 130.0, 400.0
    got = [t.numpy() for t in group._catch_up(*map(tf.constant, (rows, m, v, last)),
                                              tf.constant(done), tf.constant(total))]
    want = [a.astype(np.float64) for a in (rows, m, v)]
    for i, s in enumerate(last.astype(int)):
        for t in range(s + 1, int(done) + 1):
            factor = float(schedule_factor(schedule, tf.constant((t - 1) / total)))
            want[0][i] -= want[0][i] * 0.1 * 0.01 * factor
            want[1][i] *= 0.9
            want[2][i] *= 0.999
            want[0][i] -= (0.01 * factor * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * want[1][i]
                           / (np.sqrt(want[2][i]) + 1e-7))
    np.testing.assert_array_equal(got[0][0], rows[0])  # nothing skipped: as it was
    assert np.abs(want[0] - rows).max(axis=1)[1:].min() > 1e-3  # every other row moved
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-5)


def test_a_lazy_step_reads_and_writes_only_its_columns_rows():
    import tensorflow as tf
    group, init = _lazy_group("constant")
    before = group.rows.numpy()
    group.rows_m.assign(tf.fill(group.rows.shape, 0.05))  # moments from earlier steps
    group.rows_v.assign(tf.fill(group.rows.shape, 0.01))
    cols = tf.constant([1, 3])
    touched = group.touch(cols, tf.constant(5.0), tf.constant(10.0))
    # the touched rows caught up the four steps they missed before this one reads them
    assert np.all(np.abs(touched.rows.numpy() - before[[1, 3]]) > 1e-3)
    # the net's flat gradient pieces: the touched rows' kernel, then bias, kernel, bias
    grads = [[tf.ones([2, 5])] + [tf.zeros([np.size(w)]) for w in init[0][1:] + init[1]]]
    group.apply(grads, tf.constant(0.9**5), tf.constant(0.999**5), touched=touched)
    after = group.rows.numpy()
    np.testing.assert_array_equal(after[[0, 2]], before[[0, 2]])  # wait for their turn
    assert np.all(after[[1, 3]] < touched.rows.numpy())  # a positive gradient: down
    np.testing.assert_array_equal(group.rows_t.numpy(), [0, 5, 0, 5])
    np.testing.assert_array_equal(group.rows_m.numpy()[[0, 2]], np.float32(0.05))


#: Without dropout, so that ``model.fit`` on full batches trains the same net from
#: sparse rows as from dense ones (Keras draws other dropout masks for sparse rows).
PLAIN = [{"type": "dense", "units": 16, "activation": "relu"},
         {"type": "dense", "units": 8, "activation": "tanh"}]


@pytest.mark.parametrize("trainer", [
    PopulationTrainer(epochs=4), PopulationTrainer(epochs=4, sparse_product=False),
    KerasTrainer(epochs=4, batch_size=200)], ids=["population", "densified", "keras"])
def test_negative_values_train_as_the_same_rows_dense(trainer):
    """Guards against a trainer's sparse path dropping the signs of the stored values
    (every other fixture here is non-negative)."""
    X, y = _signed_sparse_problem()
    X = X.astype(np.float32)
    assert 0.4 < (X.data < 0).mean() < 0.6
    init = initial_weights(PLAIN, X.shape[1], 1, np.random.default_rng(1))

    def train(rows):
        return trainer.train([(PLAIN, init, 3)], _data(rows, y, 200), 7, val_outputs=True)[0]
    dense, sparse = train(X.toarray()), train(X)
    assert dense.status == sparse.status == "ok"
    np.testing.assert_allclose(sparse.val_scores, dense.val_scores, atol=1e-6)
    np.testing.assert_allclose(sparse.val_outputs, dense.val_outputs, atol=1e-4)
    for (k1, b1), (k2, b2) in zip(sparse.weights, dense.weights):
        np.testing.assert_allclose(k1, k2, atol=1e-4)
        np.testing.assert_allclose(b1, b2, atol=1e-4)


def test_negative_values_give_the_search_and_predictions_of_the_dense_rows():
    """Guards against the estimator's sparse path (its conversion of the rows, the
    search, the refit, the predictions) dropping the signs of the stored values."""
    X, y = _signed_sparse_problem()
    budget = dict(TINY, early_stopping=False)  # 'auto' would differ between the two
    dense = MLPNASClassifier(**budget).fit(X.toarray(), y)
    sparse = _DenseAdam(**budget).fit(X, y)
    assert list(sparse.search_results_["architecture"]) == \
        list(dense.search_results_["architecture"])
    np.testing.assert_allclose(sparse.search_results_["reward"],
                               dense.search_results_["reward"], atol=1e-6)
    proba = dense.predict_proba(X.toarray())
    np.testing.assert_allclose(sparse.predict_proba(X), proba, atol=1e-4)
    np.testing.assert_allclose(sparse.predict_proba(X.toarray()), proba, atol=1e-4)
    np.testing.assert_allclose(dense.predict_proba(X.tocsc()), proba, atol=1e-5)


def test_keras_trainer_takes_sparse_rows_like_the_population_trainer():
    X, y = _sparse_problem()
    X = X.astype(np.float32)
    pop = _train(PopulationTrainer(epochs=8), X, y)
    ref = _train(KerasTrainer(epochs=8), X, y)
    assert pop.status == ref.status == "ok"
    assert ref.val_outputs.shape == (100, 1)
    assert abs(pop.val_scores[-1] - ref.val_scores[-1]) < 0.1
    assert min(pop.val_scores[-1], ref.val_scores[-1]) > 0.7


def test_populations_split_by_memory_train_as_one():
    X, y = _sparse_problem()
    X = X.astype(np.float32)
    rng = np.random.default_rng(0)
    archs = [[{"type": "dense", "units": u, "activation": "relu"}] for u in (4, 32, 8, 16)]
    cands = [(a, initial_weights(a, X.shape[1], 1, rng), 10 + k) for k, a in enumerate(archs)]
    data = _data(X, y, 200)
    small = PopulationTrainer(epochs=2, max_population_bytes=32 * 200 * 28)
    assert small.populations(cands, data) == [[0], [1], [2, 3]]
    together = PopulationTrainer(epochs=2).train(cands, data, 5)
    apart = small.train(cands, data, 5)
    for a, b in zip(apart, together):
        assert a.val_scores == b.val_scores
        np.testing.assert_array_equal(a.weights[0][0], b.weights[0][0])


def test_tfidf_pipeline_searches_predicts_and_scores():
    docs, y = _texts()
    pipe = make_pipeline(TfidfVectorizer(), MLPNASClassifier(**dict(TINY, epochs=6)))
    pipe.fit(docs[:200], y[:200])
    clf = pipe[-1]
    assert clf.n_features_in_ == len(pipe[0].vocabulary_)
    assert set(clf.search_results_["status"]) == {"ok"}
    proba = pipe.predict_proba(docs[200:])
    assert proba.shape == (40, 2)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)
    assert pipe.score(docs[200:], y[200:]) > 0.7


@pytest.fixture(scope="module")
def dense_reference():
    """The tiny search on the sparse problem's rows, dense."""
    X, y = _sparse_problem()
    return MLPNASClassifier(**TINY).fit(X.toarray(), y)


@pytest.fixture(scope="module")
def csr_reference():
    """The tiny search on the sparse problem's CSR rows (lazy Adam)."""
    X, y = _sparse_problem()
    return _LazyAdam(**TINY).fit(X, y)


@pytest.mark.parametrize("fmt", ["csc", "coo", "csr_array"])
def test_every_sparse_format_gives_the_search_of_the_csr_rows(fmt, csr_reference):
    X, y = _sparse_problem()
    ref = csr_reference
    Xs = sp.csr_array(X) if fmt == "csr_array" else X.asformat(fmt)
    clf = _LazyAdam(**TINY).fit(Xs, y)
    assert list(clf.search_results_["architecture"]) == list(ref.search_results_["architecture"])
    np.testing.assert_allclose(clf.search_results_["reward"], ref.search_results_["reward"],
                               atol=1e-6)
    np.testing.assert_allclose(clf.predict_proba(Xs), ref.predict_proba(X), atol=1e-5)
    np.testing.assert_allclose(clf.predict_proba(X.toarray()), ref.predict_proba(X), atol=1e-4)
    assert Xs.format == ("csr" if fmt == "csr_array" else fmt)  # the caller's matrix untouched
    assert clf.model_.inputs[0].sparse  # served sparse rows as they are (see below)


def test_sparse_rows_with_adam_give_the_search_of_the_dense_rows(dense_reference, csr_reference):
    X, y = _sparse_problem()
    ref = dense_reference
    clf = _DenseAdam(**TINY).fit(X, y)
    assert list(clf.search_results_["architecture"]) == list(ref.search_results_["architecture"])
    np.testing.assert_allclose(clf.search_results_["reward"], ref.search_results_["reward"],
                               atol=1e-6)
    np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(X.toarray()), atol=1e-4)
    assert clf.score(X, y) == pytest.approx(ref.score(X.toarray(), y), abs=0.01)
    # lazy Adam (the default) gives Adam's search too, up to rounding (a validation row
    # whose output sits at the threshold may flip)
    lazy = csr_reference
    assert list(lazy.search_results_["architecture"]) == list(ref.search_results_["architecture"])
    np.testing.assert_allclose(lazy.search_results_["reward"], ref.search_results_["reward"],
                               atol=0.011)
    np.testing.assert_allclose(lazy.predict_proba(X), ref.predict_proba(X.toarray()), atol=1e-3)
    # a fit on sparse rows serves a model of sparse input, whose first layers multiply
    # them as they are (dense rows are converted); a fit on dense rows, of dense input
    assert lazy.model_.inputs[0].sparse and clf.model_.inputs[0].sparse
    assert not ref.model_.inputs[0].sparse
    np.testing.assert_allclose(lazy.predict_proba(X.toarray()), lazy.predict_proba(X),
                               atol=1e-5)


def test_auto_early_stopping_is_on_for_sparse_rows_only(dense_reference):
    X, y = _sparse_problem()
    budget = dict(TINY, epochs=12, learning_rate=0.05)
    clf = MLPNASClassifier(**budget).fit(X, y)
    assert clf.get_params()["early_stopping"] == "auto" and clf.early_stopping_ is True
    # candidates stopped at their best epoch: some before the last one
    assert (clf.search_results_["best_epoch"] < 12).any()
    assert clf.refit_epochs_ == clf.search_results_["best_epoch"][clf.best_index_]
    assert dense_reference.early_stopping_ is False  # dense rows: off
    off = MLPNASClassifier(**budget, early_stopping=False).fit(X, y)
    assert off.early_stopping_ is False and (off.search_results_["best_epoch"] == 12).all()


def test_by_default_a_candidate_stops_one_epoch_after_its_best(tmp_path):
    # n_iter_no_change=1: a candidate trains its best epoch and one more that does not
    # improve on it, or to the last epoch (the run log keeps each epoch's score)
    X, y = _sparse_problem()
    clf = MLPNASClassifier(**dict(TINY, epochs=12, learning_rate=0.05),
                           log_dir=tmp_path).fit(X, y)
    trials = [t for t in load_run(clf.run_dir_).trials if t.status == "ok"]
    assert trials and (clf.search_results_["best_epoch"] < 11).any()
    for t in trials:
        assert len(t.val_scores) == min(t.best_epoch + 1, 12)


def test_regressor_and_finalists_cross_validation_take_sparse_rows():
    X, _ = _sparse_problem()
    target = X[:, :20].sum(1).A1
    reg = MLPNASRegressor(**dict(TINY, epochs=6, cv=3)).fit(X, target)
    assert np.isfinite(reg.search_results_["cv_score"]).sum() >= 1
    assert reg.predict(X).shape == (300,)
    assert reg.score(X, target) > 0.0


def test_sparse_fit_resumes_and_persists(tmp_path):
    X, y = _sparse_problem()
    budget = dict(TINY, controller_epochs=2)
    full = MLPNASClassifier(**budget).fit(X, y)
    # a run folder of the first epoch, resumed on the same sparse rows
    first = MLPNASClassifier(**dict(budget, controller_epochs=1), log_dir=tmp_path).fit(X, y)
    resumed = MLPNASClassifier(**budget, resume=first.run_dir_).fit(X, y)
    assert list(resumed.search_results_["architecture"]) == \
        list(full.search_results_["architecture"])
    # other sparse rows are refused like other dense rows
    with pytest.raises(ValueError, match="data"):
        MLPNASClassifier(**budget, resume=first.run_dir_).fit(X * 2, y)
    # joblib and the saved model predict on sparse rows
    joblib.dump(full, tmp_path / "clf.joblib")
    again = joblib.load(tmp_path / "clf.joblib")
    np.testing.assert_allclose(again.predict_proba(X), full.predict_proba(X), atol=1e-6)
    saved = load_model(full.save_model(tmp_path / "model"))
    np.testing.assert_allclose(saved.predict_proba(X.tocsc()), full.predict_proba(X), atol=1e-6)
    np.testing.assert_array_equal(saved.predict(X), full.predict(X))


def test_n_jobs_2_sparse_search_is_the_sequential_one():
    X, y = _sparse_problem()
    budget = dict(TINY, controller_epochs=2, samples_per_epoch=4)
    seq = MLPNASClassifier(**budget).fit(X, y).search_results_
    par = MLPNASClassifier(**budget, n_jobs=2).fit(X, y).search_results_
    assert list(par["architecture"]) == list(seq["architecture"])
    np.testing.assert_allclose(par["reward"], seq["reward"], atol=1e-6)


def test_a_search_too_big_for_memory_is_refused_before_training(tmp_path):
    # 10^9 columns: even an 8-unit first layer would need over 200 GB in training
    X = sp.csr_matrix((np.ones(20), (np.arange(20), np.arange(20) * 5 * 10**7)),
                      shape=(20, 10**9))
    with pytest.raises(MemoryError, match=r"does not fit in memory.*1000000000 features.*"
                                          r"narrowest.*TfidfVectorizer\(max_features"):
        MLPNASClassifier(log_dir=tmp_path).fit(X, np.arange(20) % 2)
    assert not list(tmp_path.iterdir())  # refused before any run folder or training


def test_a_candidate_too_big_for_the_memory_left_fails_alone(monkeypatch):
    from sknas import _data as data_module
    from sknas import _trainer
    X, y = _sparse_problem()
    data = _data(X.astype(np.float32), y, 200)
    rng = np.random.default_rng(0)
    archs = [[{"type": "dense", "units": u, "activation": "relu"}] for u in (4, 64)]
    cands = [(a, initial_weights(a, 200, 1, rng), k) for k, a in enumerate(archs)]
    # room for the 4-unit net (809 parameters) but not the 64-unit one (12,929)
    monkeypatch.setattr(data_module, "available_memory", lambda: 5000 * _trainer.BYTES_PER_PARAM)
    small, big = PopulationTrainer(epochs=2).train(cands, data, 0)
    assert small.status == "ok" and big.status == "failed"
    assert big.message.startswith("MemoryError: the candidate's 12929 parameters need")
    assert isinstance(big.error, MemoryError)
    alone = PopulationTrainer(epochs=2).train(cands[:1], data, 0)[0]
    assert small.val_scores == alone.val_scores


def test_wide_sparse_data_is_never_densified_whole():
    # 300 rows x 2,000,000 columns: 2.4 GB dense, a few kB stored. A fresh
    # process fits, predicts and scores; its peak memory stays far below
    # what densifying the rows once would take.
    script = textwrap.dedent("""
        import numpy as np, scipy.sparse as sp
        from sknas import MLPNASClassifier, Reinforce, SearchSpace
        rng = np.random.default_rng(0)
        # 10 stored values a row: one of the first 10 columns, 9 anywhere
        # (not sp.random: it draws positions from all rows x columns)
        rows = np.repeat(np.arange(300), 10)
        cols = rng.integers(0, 2_000_000, 3000)
        cols[::10] = rng.integers(0, 10, 300)
        X = sp.csr_matrix((rng.random(3000), (rows, cols)), shape=(300, 2_000_000))
        y = (X[:, :5].sum(1).A1 > 0).astype(int)
        clf = MLPNASClassifier(controller_epochs=1, samples_per_epoch=2, epochs=2,
                               space=SearchSpace(units=(2,), activations=("relu",), max_layers=1),
                               strategy=Reinforce(lstm_units=8), cv=None,
                               random_state=0).fit(X, y)
        # VmHWM: this process's peak (ru_maxrss would carry the parent's over exec)
        peak = next(line.split()[1] for line in open("/proc/self/status")
                    if line.startswith("VmHWM"))
        print(clf.score(X, y), peak)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert out.returncode == 0, out.stderr[-2000:]
    score, peak_kb = out.stdout.split()
    assert 0.0 <= float(score) <= 1.0
    assert int(peak_kb) * 1024 < 2.4e9 * 0.6, f"peak {int(peak_kb) / 2**20:.2f} GB"


def test_cli_keeps_a_high_cardinality_one_hot_table_sparse(tmp_path):
    from test_cli import TINY_FLAGS, sknas
    rng = np.random.default_rng(0)
    n = 400
    city = rng.integers(0, 150, n)
    frame = {"x": rng.normal(size=n), "city": [f"c{c}" for c in city],
             "label": np.where((city % 2 == 0) ^ (rng.random(n) < 0.1), "even", "odd")}
    import pandas as pd
    pd.DataFrame(frame).to_csv(tmp_path / "cities.csv", index=False)
    proc = sknas("search", tmp_path / "cities.csv", "--target", "label", *TINY_FLAGS,
                 "--model-out", "model.joblib", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "held-out" in proc.stdout
    pipe = joblib.load(tmp_path / "model.joblib")
    table = pipe[0].transform(pd.read_csv(tmp_path / "cities.csv").drop(columns="label"))
    assert sp.issparse(table) and table.shape[1] > 100
    assert pipe[-1].n_features_in_ == table.shape[1]


def test_wide_populations_are_freed_before_five_accumulate(monkeypatch):
    # each population's variables live until a full collection frees its graph:
    # big (wide) populations trigger one at once, not after five of them
    import gc

    from sknas import _population
    X, y = _sparse_problem()
    data = _data(X.astype(np.float32), y, 200)
    init = initial_weights(LAYERS, X.shape[1], 1, np.random.default_rng(1))
    full = []

    def seen(phase, info):
        if phase == "start" and info["generation"] == 2:
            full.append(1)
    monkeypatch.setattr(_population, "_GRAPHS_SINCE_GC", 0)
    monkeypatch.setattr(_population, "_PARAMS_SINCE_GC", 0)
    gc.callbacks.append(seen)
    gc.disable()  # only the trainer's own collections are counted
    try:
        monkeypatch.setattr(_population, "_GC_EVERY_PARAMS", 10**9)
        PopulationTrainer(epochs=1).train([(LAYERS, init, 3)], data, 0)
        assert not full  # a small population waits for four more
        monkeypatch.setattr(_population, "_GC_EVERY_PARAMS", 1000)  # ours holds 3,361
        PopulationTrainer(epochs=1).train([(LAYERS, init, 3)], data, 0)
        assert full
    finally:
        gc.enable()
        gc.callbacks.remove(seen)
