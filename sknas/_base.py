"""The search behind both estimators: parameters, fit, results and persistence.

:class:`BaseMLPNAS` runs the architecture search in ``fit``; the classifier
and the regressor (``_estimator.py``) add only what differs: how the target
is checked and encoded, how the validation split is drawn, the output layer
and how predictions are served.
"""

from __future__ import annotations

import inspect
import os
import tempfile
import time
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, _fit_context, is_classifier
from sklearn.model_selection import KFold, check_cv, train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ._controller import Controller
from ._parallel import CandidateExecutor
from ._random_search import RandomStrategy
from ._reporting import Reporter
from ._runlog import keeps_python_random_state
from ._search import Search, SearchBudget, interrupt_guard
from ._space import SearchSpace, _differs
from ._trainer import (BYTES_PER_PARAM, CandidateData, FoldRows, KerasTrainer,
                       PopulationTrainer, available_memory, build_keras_model, initial_weights,
                       n_params)
from ._trial import best_row, history_table, results_table, top_table
from ._weights import SharedWeights

__all__ = ["BaseMLPNAS"]

#: Parameters shared by both estimators, in numpydoc form (their docstrings
#: are assembled from these pieces so the two cannot drift apart).
PARAMETERS_DOC = """    units : tuple of int, default=(8, 16, 32, 64, 128, 256, 512)
        Layer widths of the search space.
    activations : tuple of str, default=('sigmoid', 'tanh', 'relu', 'elu')
        Activations of the search space (Keras names).
    dropout_rate : float, default=0.2
        Rate of the dropout token.
    max_layers : int, default=2
        Maximum number of hidden tokens (a dropout counts as one). The
        tutorial's sequence length 3 includes the output layer.
    space : {'tutorial', 'extended'}, SearchSpace or None, default=None
        The search space as one object, instead of the four parameters
        above (which must then keep their defaults). ``'tutorial'`` is the
        tutorial's space (what ``None`` builds from the defaults);
        ``'extended'`` also searches depth (up to 3 hidden layers), batch
        normalisation and the dropout rate per layer, and each candidate's
        Adam learning rate and weight decay (see :class:`SearchSpace` and
        the :doc:`search-space guide </space>`); a :class:`SearchSpace`
        sets every choice. ``None`` (the default) builds the space from
        ``units``, ``activations``, ``dropout_rate`` and ``max_layers``.
    controller_epochs : int, default=10
        Controller epochs (tutorial: ``CONTROLLER_SAMPLING_EPOCHS``).
    samples_per_epoch : int, default=10
        Candidates per controller epoch (``SAMPLES_PER_CONTROLLER_EPOCH``).
    screen_factor : float, default=1
        Predictor screening. The controller samples
        ``round(screen_factor * samples_per_epoch)`` distinct architectures
        per controller epoch and ``samples_per_epoch`` of them are trained:
        the accuracy predictor's top-ranked ones, except a fifth (at least
        one) drawn uniformly from the rest for exploration. The policy
        gradient weighs each trained candidate by its inverse inclusion
        probability (see the :doc:`algorithm guide </algorithm>`). 1 (the
        default, the tutorial's) trains every sampled architecture. Needs
        ``use_predictor=True`` and ``strategy='reinforce'``. Measured on the
        classification suite, 3 was level with 1 at equal trained candidates: the
        predictor does not rank a controller epoch's candidates, whose
        rewards depend on the shared weights they start from (see the
        :doc:`space guide </space>`).
    controller_train_steps : int, default=10
        Controller gradient steps per controller epoch
        (``CONTROLLER_TRAINING_EPOCHS``).
    controller_units : int, default=100
        Units of the controller's LSTM (``CONTROLLER_LSTM_DIM``).
    controller_learning_rate : float, default=0.01
        Adam learning rate of the controller.
    controller_decay : float, default=0.1
        Inverse time decay of the controller's learning rate per step:
        ``lr / (1 + decay * step)``.
    controller_clipnorm : float, default=1.0
        Per-variable gradient norm clip of the controller's Adam.
    discount : float, default=0.9
        Discount of the per-step returns (``CONTROLLER_LOSS_ALPHA``).
    baseline : 'ema' or float, default='ema'
        Reward baseline: ``'ema'``, an exponential moving average of past
        rewards (Zoph and Le, 2017) started at the first controller epoch's
        mean reward; ``'batch'``, the mean reward of the controller epoch
        being learned from (the advantages are centred); or a constant, such
        as the tutorial's 0.5. The benchmark behind the default, with its
        standard errors, is in ``benchmarks/RESULTS.md``.
    baseline_decay : float, default=0.9
        Decay of the moving-average baseline.
    normalize_advantage : bool, default=True
        Divide the advantages ``R - b`` by a running root mean square of the
        advantages (decay ``baseline_decay``), floored at 0.01 so that nearly
        equal rewards do not give huge advantages. The sign of ``R - b`` is
        kept: better than the baseline is reinforced, worse is discouraged.
    entropy_weight : float, default=0.0
        Weight of the policy-entropy bonus in the controller loss.
    use_predictor : bool, default=True
        Train the reward-predictor head (``CONTROLLER_USE_PREDICTOR``).
    strategy : {'reinforce', 'random'}, default='reinforce'
        ``'random'`` samples architectures uniformly and never learns: the
        baseline strategy for comparisons.
    epochs : int, default=10
        Training epochs per candidate (``ARCHITECTURE_TRAINING_EPOCHS``).
    batch_size : int or 'auto', default='auto'
        Mini-batch size of the search's candidates. ``'auto'``: 32 (the
        tutorial's) below 1,000 training rows, 64 from 1,000 rows on, where
        it halves the search's steps at no loss of accuracy on the
        benchmark tables (see the generalisation guide); ``batch_size_``
        holds the resolved value.
    learning_rate : float, default=0.01
        Adam learning rate of the candidates (``MLP_LEARNING_RATE``).
    early_stopping : 'auto' or bool, default='auto'
        Stop each candidate's training once its validation loss has not
        improved (by more than 1e-4) for ``n_iter_no_change`` epochs, and
        keep the weights of its best epoch; the refit then trains the winner
        for that many epochs (the mean over its folds when finalists are
        cross-validated), not ``epochs``. ``'auto'``: on for sparse ``X``
        (wide text and one-hot tables, where candidates overfit within an
        epoch or two: on two text tables it raised test accuracy by 0.012
        and 0.12), off for dense ``X`` (not measured to help there yet).
    n_iter_no_change : int, default=3
        Patience of ``early_stopping``, in epochs.
    cv : 'auto', int, cross-validation splitter or None, default='auto'
        How the ``n_finalists`` best candidates of the search (by reward) are
        scored again before the winner is chosen: k-fold cross-validation on
        all the training rows, the k folds of every finalist trained side by
        side in one population, each from one fresh initialisation (shared
        weights have seen the rows of every fold). An int is the number of
        folds (stratified and shuffled for the classifier), a splitter (such
        as ``KFold``) is used as given (when its test folds overlap, as
        ``RepeatedStratifiedKFold``'s, a row's out-of-fold output is its mean
        over the folds that held it out; when they miss rows, as
        ``ShuffleSplit``'s, the ensemble is chosen on the rows held out at
        least once), ``None`` keeps the search's holdout
        as the only score (the tutorial's behaviour). ``'auto'``: 5 folds
        when the validation split has fewer than 1,000 rows (too few to rank
        candidates whose scores differ by a point or two), none otherwise.
    n_finalists : int, default=8
        Candidates scored by ``cv``: the ensemble's pool. 8 (it was 5 before
        ``refit='folds'``) gave the suite's best mean with the fold models
        served; with ``refit=True`` 5 and 8 scored the same (see the
        generalisation guide).
    finalist_epochs : int, 'auto' or None, default='auto'
        Training epochs of the finalists' folds, and so of the served winner
        and ensemble members when they were cross-validated (a refit trains
        as long as what was scored). The search ranks its many candidates on
        ``epochs`` (a cheap score); the few finalists train longer.
        ``None``: ``epochs`` (the tutorial's single length). ``'auto'``:
        from 1,000 training rows on, five times ``epochs`` (50 by default),
        with ``finalist_batch_size``'s larger batches; below, three times
        ``epochs`` (30) for :class:`MLPNASClassifier` and ``epochs`` for
        :class:`MLPNASRegressor` (whose small tables overfit with longer
        training). Chosen from measurements (see the generalisation guide);
        ``finalist_epochs_`` holds the resolved value. With early
        stopping a fold stops sooner and the refit trains for its folds'
        mean best epoch. No effect when no finalist is cross-validated
        (``cv=None``, or ``cv='auto'`` on large data without an ensemble).
    finalist_batch_size : int, 'auto' or None, default='auto'
        Mini-batch size of the finalists' folds, and so of the served
        models and of a cross-validated winner's refit. ``'auto'`` and
        ``None``: the search's ``batch_size_`` (with ``batch_size='auto'``,
        64 from 1,000 training rows on and 32 below). With
        ``finalist_epochs='auto'`` the larger tables' finalists then see
        every row 50 times in fewer steps than 30 epochs of batches of 32
        take. ``finalist_batch_size_`` holds the resolved value.
    ensemble_size : int or 'auto', default='auto'
        0 serves the single winner. Otherwise greedy ensemble selection with
        replacement (Caruana et al., 2004) over the cross-validated
        finalists: ``ensemble_size`` times, the finalist whose addition most
        lowers the log loss (squared error for the regressor) of the
        averaged out-of-fold predictions is added; each member's weight is
        the share of picks it got. ``model_`` averages the members' outputs
        with those weights (one Keras model), each member served as ``refit``
        says (its fold models, or refit like the winner). Needs
        cross-validated finalists: with ``cv='auto'`` 5 folds are used
        whatever the data size, ``cv=None`` is an error. ``'auto'``: 10, and
        0 whenever ``cv=None`` or ``refit=False`` (chosen from measurements
        on the benchmark suite, with ``finalist_epochs``: see the
        generalisation guide).
    validation_fraction : float or 'auto', default='auto'
        Fraction of the training rows held out once per fit (stratified for
        the classifier) to score every candidate. ``'auto'``: for
        :class:`MLPNASClassifier` a quarter of the rows, at most 250 rows,
        but never less than a tenth (25% up to 1,000 training rows, 250 rows
        up to 2,500, the tutorial's 10% from there on), so that a small
        table's holdout is large enough to rank candidates; for
        :class:`MLPNASRegressor` the tutorial's 10% (a quarter gained
        nothing on its small tables). Chosen from measurements (see the
        generalisation guide); ``n_validation_`` holds the number of rows
        held out.
    reward : {'weighted', 'last', 'max'}, default='weighted'
        Reward from the per-epoch validation scores (accuracy for the
        classifier, R^2 for the regressor): mean weighted 1, 2, ..., E (the
        tutorial's), the last epoch's, or the best epoch's.
    weight_sharing : bool, default=True
        One-shot weight sharing between candidates (``MLP_ONE_SHOT``).
    trainer : {'population', 'keras'}, default='population'
        ``'population'`` trains a controller epoch of candidates together in
        one compiled graph (fast); ``'keras'`` calls ``model.fit`` per candidate.
    n_jobs : int, default=None
        Parallel workers for candidate training, through the active joblib
        backend. ``None`` means 1 unless in a ``joblib.parallel_backend``
        context; ``-1`` means all cores (``-2`` all but one...). 0 is invalid.
    error_score : 'raise' or float, default=np.nan
        Reward recorded for a candidate that fails; ``'raise'`` re-raises.
        The controller always sees a failed candidate as reward 0, and a
        failed candidate never ranks above a successful one nor counts as
        the best, whatever its ``error_score``.
    max_time : float, default=None
        Seconds after which no new controller epoch starts.
    max_candidates : int, default=None
        Maximum number of candidates to train.
    refit : 'auto', 'folds' or bool, default='auto'
        What ``model_`` serves. ``'folds'``: the models that the finalists'
        cross-validation trained, no training after it: the winner's k fold
        models averaged (or, with an ensemble, every member's, each fold
        weighted by its member's weight divided by k). What is served is
        exactly what was scored, and each of the k models has seen (k-1)/k
        of the rows. Needs cross-validated finalists (``cv=None`` is an
        error); after a Ctrl-C, which skips the cross-validation, the best
        candidate so far is retrained instead, as with True. True: retrain
        the best architecture (and the ensemble members) on all the
        training data, from its folds' fresh initialisation when it won a
        cross-validation, else (like every candidate) from the shared
        weights. False: ``model_`` is the best candidate trained on the
        search's split, as the search trained it, or trained again as its
        folds trained (from their fresh initialisation, for
        ``finalist_epochs``) when cross-validation chose another winner
        than the holdout did; no ensemble. ``'auto'``: ``'folds'`` when the
        finalists are cross-validated, else True (chosen from measurements
        on the benchmark suite: see the generalisation guide).
    log_dir : str or path, default=None
        Each ``fit`` writes a new run folder under this directory: trials as
        JSON lines appended as each candidate ends, controller history,
        parameters, a controller and shared-weights checkpoint (``.npz``) per
        controller epoch and the served model (``model.keras``); see
        :func:`sknas.load_run`. ``None`` writes no files at all.
    resume : str or path, default=None
        Run folder of a killed or interrupted search to continue, with the
        same data: its seed, controller, shared weights and finished
        candidates are restored, and the search appends to that folder.
        Only ``controller_epochs``, ``max_time``, ``max_candidates``,
        ``n_jobs``, ``error_score``, ``refit``, ``verbose`` and what acts
        after the search (``cv``, ``n_finalists``, ``finalist_epochs``,
        ``finalist_batch_size``, ``ensemble_size``) may differ, and the finalists
        are then scored and served anew under this fit's parameters;
        ``random_state`` must be the run's own or ``None`` (the run's seed
        is used either way).
    random_state : int, RandomState instance or None, default=None
        Seeds the whole search (sampling, initialisation, shuffling, dropout).
    verbose : int, default=0
        0 silent, 1 a line per controller epoch, 2 also a line per candidate.

"""

ATTRIBUTES_DOC = """    search_results_ : dict of ndarray
        One row per candidate: ``architecture``, ``layers``, ``n_layers``
        (hidden layers, a dropout counting as one), ``learning_rate`` and
        ``weight_decay`` (the candidate's own, when the space searches them;
        else NaN), ``n_params``, ``controller_epoch``, ``reward``, ``predicted_reward``,
        ``last_score``, ``max_score``, ``fit_time``, ``best_epoch``,
        ``cv_score``, ``cv_std`` and ``split0_score``, ``split1_score``, ...
        (the finalists' cross-validation; NaN for the other rows), ``rank``,
        ``status``, ``message``, ``host``, ``pid``.
        ``pd.DataFrame(search_results_)`` gives the table. ``rank`` 1 is the
        winner: cross-validated finalists rank first, by ``cv_score``, then
        the other candidates by reward; failed rows rank after every
        successful one. ``fit_time`` is the wall time of the population the
        candidate trained in, divided by the number of candidates in it.
    best_index_ : int
        Row of the best candidate in ``search_results_``.
    best_architecture_ : str
        Readable form of the best architecture.
    best_layers_ : list of dict
        Machine form of the best architecture.
    best_score_ : float
        The winner's ``cv_score`` when finalists were cross-validated, else
        its reward (validation accuracy or R^2, as ``reward`` combines the
        epochs).
    model_ : keras.Model
        The served model (see ``refit``): the winner, or with an ensemble one
        Keras model averaging the members' outputs with their weights; with
        ``refit='folds'`` each of them is the average of its k fold models.
{task_attributes}
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features, when X was a DataFrame with string columns.
    controller_history_ : dict of ndarray
        Per controller epoch: ``controller_epoch``, ``started`` (seconds
        into the search), ``loss``, ``baseline``, ``mean_reward``,
        ``entropy``, ``predictor_loss``, ``predictor_spearman`` (Spearman
        rank correlation of the epoch's predicted and observed rewards over
        its successful candidates; NaN with fewer than 3, constant values or
        no predictor), ``n_screened`` (architectures sampled but not
        trained, see ``screen_factor``), ``best_reward``, ``n_failed``,
        ``elapsed``.
    controller_ : Controller or RandomStrategy
        The trained strategy.
    n_candidates_ : int
        Number of candidates the search trained (failed ones included).
    stop_reason_ : str
        ``'completed'``, ``'max_time'``, ``'max_candidates'``, ``'interrupted'``
        or ``'exhausted'``.
    search_time_ : float
        Seconds spent in the search.
    ensemble_weights_ : dict
        Row of ``search_results_`` -> weight of each ensemble member (empty
        with ``ensemble_size=0``); also the ``ensemble_weight`` column. What
        the selection picked is what is served: when every pick is one
        finalist other than the winner, that finalist alone.
    ensemble_score_ : float
        Out-of-fold score (accuracy or R^2) of the selected ensemble, beside
        the winner's ``cv_score`` (only when an ensemble was selected).
    cv_time_ : float
        Seconds spent cross-validating the finalists (0 when ``cv`` did not
        apply).
    refit_epochs_ : int
        Epochs the served winner trained for: as long as it was scored,
        that is ``finalist_epochs`` when it was cross-validated, else
        ``epochs``; with early stopping, its best epoch (the mean over its
        folds when cross-validated).
    n_validation_ : int
        Rows of the validation split that scored every candidate
        (``validation_fraction`` resolved for the training rows given).
    batch_size_ : int
        Mini-batch size of the search's candidates (``batch_size`` with
        ``'auto'`` resolved for the training rows given).
    finalist_epochs_ : int
        Training epochs of the finalists' folds (``finalist_epochs`` with
        ``'auto'`` and ``None`` resolved for the training rows given).
    finalist_batch_size_ : int
        Their mini-batch size (``finalist_batch_size`` resolved likewise).
    refit_ : 'folds' or bool
        How ``model_`` was made: ``refit`` with ``'auto'`` resolved, and True
        where a Ctrl-C left no fold models to serve.
    early_stopping_ : bool
        Whether candidates were early-stopped (``early_stopping`` with
        ``'auto'`` resolved).
    refit_time_ : float
        Seconds spent building ``model_`` (retraining, or only assembling
        the fold models with ``refit='folds'``).
    run_dir_ : pathlib.Path or None
        The run folder written when ``log_dir`` or ``resume`` was given.

"""

NOTES_DOC = """    Notes
    -----
    With the default population trainer, the same ``random_state`` gives the
    same search when candidates run sequentially (``n_jobs=1``; with more
    workers too, as tested). With ``trainer='keras'`` two fits differ:
    ``model.fit`` shuffles and drops out with TensorFlow's global seed, so
    the estimator's ``non_deterministic`` tag is True in that configuration.

    ``fit`` touches global state only where it must, and restores it: a
    SIGINT handler while the search runs (main thread only), Python's
    ``random`` state (Keras draws layer seeds from it), and TensorFlow's
    logger level while a population graph is traced. See
    :ref:`global-side-effects`.

"""


class BaseMLPNAS(BaseEstimator):
    """Base class of :class:`MLPNASClassifier` and :class:`MLPNASRegressor`.

    Subclasses define ``_validate_target`` (the encoded target and what the
    estimator must remember of it), ``_split`` (the validation split),
    ``_head_data`` (the :class:`~sknas._trainer.CandidateData` task fields)
    and ``_finish_model`` (the served Keras model from trained weights).
    """

    _parameter_constraints: dict = {
        "units": ["array-like"],
        "activations": ["array-like"],
        "dropout_rate": [Interval(Real, 0, 1, closed="left")],
        "max_layers": [Interval(Integral, 1, None, closed="left")],
        "space": [None, StrOptions({"tutorial", "extended"}), SearchSpace],
        "controller_epochs": [Interval(Integral, 1, None, closed="left")],
        "samples_per_epoch": [Interval(Integral, 1, None, closed="left")],
        "screen_factor": [Interval(Real, 1, None, closed="left")],
        "controller_train_steps": [Interval(Integral, 1, None, closed="left")],
        "controller_units": [Interval(Integral, 1, None, closed="left")],
        "controller_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "controller_decay": [Interval(Real, 0, None, closed="left")],
        "controller_clipnorm": [Interval(Real, 0, None, closed="neither")],
        "discount": [Interval(Real, 0, 1, closed="both")],
        "baseline": [StrOptions({"ema", "batch"}), Interval(Real, None, None, closed="neither")],
        "baseline_decay": [Interval(Real, 0, 1, closed="left")],
        "normalize_advantage": ["boolean"],
        "entropy_weight": [Interval(Real, 0, None, closed="left")],
        "use_predictor": ["boolean"],
        "strategy": [StrOptions({"reinforce", "random"})],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "cv": [StrOptions({"auto"}), Interval(Integral, 2, None, closed="left"), "cv_object",
               None],
        "n_finalists": [Interval(Integral, 1, None, closed="left")],
        "finalist_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"}),
                            None],
        "finalist_batch_size": [Interval(Integral, 1, None, closed="left"),
                                StrOptions({"auto"}), None],
        "ensemble_size": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither"), StrOptions({"auto"})],
        "reward": [StrOptions({"weighted", "last", "max"})],
        "weight_sharing": ["boolean"],
        "trainer": [StrOptions({"population", "keras"})],
        "n_jobs": [Interval(Integral, None, -1, closed="right"),
                   Interval(Integral, 1, None, closed="left"), None],
        "error_score": [StrOptions({"raise"}), Real],
        "max_time": [Interval(Real, 0, None, closed="neither"), None],
        "max_candidates": [Interval(Integral, 1, None, closed="left"), None],
        "refit": ["boolean", StrOptions({"auto", "folds"})],
        "log_dir": [str, os.PathLike, None],
        "resume": [str, os.PathLike, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, units=(8, 16, 32, 64, 128, 256, 512),
                 activations=("sigmoid", "tanh", "relu", "elu"), dropout_rate=0.2,
                 max_layers=2, space=None, controller_epochs=10, samples_per_epoch=10, screen_factor=1,
                 controller_train_steps=10, controller_units=100,
                 controller_learning_rate=0.01, controller_decay=0.1,
                 controller_clipnorm=1.0, discount=0.9, baseline="ema", baseline_decay=0.9,
                 normalize_advantage=True, entropy_weight=0.0, use_predictor=True,
                 strategy="reinforce", epochs=10, batch_size="auto", learning_rate=0.01,
                 early_stopping="auto", n_iter_no_change=3, cv="auto", n_finalists=8,
                 finalist_epochs="auto", finalist_batch_size="auto", ensemble_size="auto",
                 validation_fraction="auto", reward="weighted", weight_sharing=True,
                 trainer="population", n_jobs=None,
                 error_score=np.nan, max_time=None, max_candidates=None, refit="auto",
                 log_dir=None, resume=None, random_state=None, verbose=0):
        self.units = units
        self.activations = activations
        self.dropout_rate = dropout_rate
        self.max_layers = max_layers
        self.space = space
        self.controller_epochs = controller_epochs
        self.samples_per_epoch = samples_per_epoch
        self.screen_factor = screen_factor
        self.controller_train_steps = controller_train_steps
        self.controller_units = controller_units
        self.controller_learning_rate = controller_learning_rate
        self.controller_decay = controller_decay
        self.controller_clipnorm = controller_clipnorm
        self.discount = discount
        self.baseline = baseline
        self.baseline_decay = baseline_decay
        self.normalize_advantage = normalize_advantage
        self.entropy_weight = entropy_weight
        self.use_predictor = use_predictor
        self.strategy = strategy
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.cv = cv
        self.n_finalists = n_finalists
        self.finalist_epochs = finalist_epochs
        self.finalist_batch_size = finalist_batch_size
        self.ensemble_size = ensemble_size
        self.validation_fraction = validation_fraction
        self.reward = reward
        self.weight_sharing = weight_sharing
        self.trainer = trainer
        self.n_jobs = n_jobs
        self.error_score = error_score
        self.max_time = max_time
        self.max_candidates = max_candidates
        self.refit = refit
        self.log_dir = log_dir
        self.resume = resume
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------ validation
    #: the flat parameters that ``space`` replaces
    _FLAT_SPACE = ("units", "activations", "dropout_rate", "max_layers")

    def _make_space(self):
        """The checked :class:`SearchSpace` of ``space`` or of the flat parameters."""
        if self.space is None:
            space = SearchSpace(self.units, self.activations, self.dropout_rate, self.max_layers)
        else:
            defaults = inspect.signature(type(self).__init__).parameters
            changed = [k for k in self._FLAT_SPACE
                       if _differs(getattr(self, k), defaults[k].default)]
            if changed:
                raise ValueError(
                    f"space={self.space!r} is given, so {', '.join(changed)} must keep "
                    f"{'its default' if len(changed) == 1 else 'their defaults'}: set "
                    f"{'it' if len(changed) == 1 else 'them'} in the space instead, e.g. "
                    f"SearchSpace({changed[0]}=...) (the flat parameters build the space "
                    "only when space=None).")
            space = (SearchSpace.from_preset(self.space) if isinstance(self.space, str)
                     else self.space)
        space.check()
        import keras
        for name in space.activations:
            try:
                keras.activations.get(name)
            except ValueError:
                raise ValueError(f"activations: {name!r} is not a Keras activation "
                                 "(e.g. 'relu', 'tanh', 'sigmoid', 'elu')") from None
        return space

    def _validate_training_data(self, X, y, sample_weight):
        """Checked float32 ``X`` (dense, or CSR), the encoded target and float32 row weights."""
        if sp.issparse(y):
            raise ValueError(f"y is a sparse {type(y).__name__}; {type(self).__name__} needs a "
                             "dense target: pass y.toarray().ravel() (or y.toarray() for "
                             "several regression targets).")
        self._check_target_kind(y)
        try:
            X, y = validate_data(self, X, y, reset=True, dtype=[np.float64, np.float32],
                                 accept_sparse=_SPARSE_FORMATS, ensure_min_samples=2,
                                 **self._target_validation)
        except ValueError as exc:
            if "could not convert" in str(exc):
                raise ValueError(f"{exc}. {type(self).__name__} needs numeric features: encode "
                                 "categorical columns first, e.g. with a ColumnTransformer and "
                                 "a OneHotEncoder in a Pipeline.") from exc
            raise
        y_enc = self._encode_target(y)
        w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        w = self._row_weights(y, w)
        if not w.sum() > 0:
            raise ValueError("sample_weight (times class_weight) sums to zero: no row would count "
                             "in training or in the reward.")
        return _as_float32(X), y_enc, w.astype(np.float32)

    #: keyword arguments of ``validate_data`` for the target
    _target_validation: dict = {}

    def _check_target_kind(self, y):
        """Reject a target of the wrong kind before anything else."""

    def _row_weights(self, y, w):
        """Row weights from ``sample_weight`` (the classifier applies ``class_weight``)."""
        return w

    #: what ``validation_fraction='auto'`` holds out: this share of the rows, at most
    #: this many rows, and never less than this share
    _auto_validation = (0.25, 250, 0.1)

    def _validation_rows(self, n_rows):
        """Rows of the search's validation split for ``n_rows`` training rows."""
        if self.validation_fraction == "auto":
            share, most, least = self._auto_validation
            n_val = max(int(round(least * n_rows)), min(int(round(share * n_rows)), most))
        else:
            n_val = int(round(self.validation_fraction * n_rows))
        return max(self._min_validation_rows, n_val)

    #: the fewest rows the validation split holds (the regressor's R^2 needs two)
    _min_validation_rows = 1

    def _split(self, X, y, w, seed):
        n_val = self._validation_rows(len(y))
        if len(y) - n_val < 1:
            raise ValueError(
                f"Too few samples ({len(y)}) to hold out a validation split of {n_val} "
                f"row{'s' if n_val > 1 else ''} and train on the rest: {type(self).__name__} "
                f"needs at least {n_val + 1} rows.")
        for attempt in range(self._split_attempts):
            parts = train_test_split(X, y, w, test_size=n_val,
                                     stratify=self._stratify(y, n_val),
                                     random_state=(seed + attempt) % (2**31 - 1))
            X_tr, X_val, y_tr, y_val, w_tr, w_val = parts
            if self._scores_candidates(y_val):
                return CandidateData(X_tr, y_tr, w_tr, X_val, y_val, w_val,
                                     **self._task_fields())
        raise ValueError(
            f"Every validation split of {n_val} rows (of {len(y)}) tried held a constant target, "
            "so R^2 cannot score the candidates. Give more rows, a larger "
            "validation_fraction, or a target with more distinct values.")

    #: how many seeds ``_split`` tries for a validation split that can score candidates
    _split_attempts = 20

    def _scores_candidates(self, y_val):
        """Whether a validation split can score the candidates (the first
        split drawn always can, but for a regressor's constant target)."""
        return True

    def _stratify(self, y, n_val):
        """Labels to stratify the validation split by, or None."""
        return None

    # -------------------------------------------------------------- the fit
    def _make_strategy(self, space, seed):
        if self.screen_factor > 1 and (self.strategy == "random" or not self.use_predictor):
            why = ("strategy='random' has no predictor" if self.strategy == "random"
                   else "use_predictor=False")
            raise ValueError(f"screen_factor={self.screen_factor!r} ranks sampled architectures "
                             f"by the controller's accuracy predictor, but {why}: use "
                             "screen_factor=1, or strategy='reinforce' with use_predictor=True.")
        if self.strategy == "random":
            return RandomStrategy(space)
        return Controller(
            space, lstm_units=self.controller_units, learning_rate=self.controller_learning_rate,
            decay=self.controller_decay, clipnorm=self.controller_clipnorm,
            discount=self.discount, baseline=self.baseline, baseline_decay=self.baseline_decay,
            normalize_advantage=self.normalize_advantage, entropy_weight=self.entropy_weight,
            train_steps=self.controller_train_steps, use_predictor=self.use_predictor, seed=seed)

    def _make_trainer(self, epochs=None, early_stopping=None, batch_size=None):
        cls = KerasTrainer if self.trainer == "keras" else PopulationTrainer
        return cls(epochs=self.epochs if epochs is None else epochs,
                   batch_size=self.batch_size_ if batch_size is None else batch_size,
                   learning_rate=self.learning_rate,
                   early_stopping=self.early_stopping_ if early_stopping is None else early_stopping,
                   n_iter_no_change=self.n_iter_no_change)

    # ------------------------------------------------------ cross-validation
    def _cv_splitter(self, y, n_val, seed):
        """The splitter that scores the finalists, or None (checked before any training)."""
        cv = self.cv
        if self._n_members() and cv is None:
            raise ValueError("ensemble_size > 0 selects members on the finalists' out-of-fold "
                             "predictions: set cv (e.g. cv='auto' or cv=5), or ensemble_size=0.")
        if self._n_members() and not self.refit:
            raise ValueError("ensemble_size > 0 serves several finalists: it needs refit='auto', "
                             "'folds' or True.")
        if self.refit == "folds" and cv is None:
            raise ValueError("refit='folds' serves the cross-validated finalists' fold models: "
                             "set cv (e.g. cv='auto' or cv=5), or refit=True.")
        if cv == "auto":
            if n_val >= 1000 and not self._n_members() and self.refit != "folds":
                return None
            cv = min(5, self._max_folds(y))
            if cv < 2:
                return None
        if cv is None:
            return None
        if isinstance(cv, Integral):
            most = self._max_folds(y)
            if cv > most:
                raise ValueError(f"cv={cv} folds need {self._folds_need(cv, y)}. Use "
                                 f"cv={most} or fewer, or cv=None.")
            return self._kfold(int(cv), seed)
        return check_cv(cv, y, classifier=is_classifier(self))

    #: what ``ensemble_size='auto'`` means (see its docstring)
    _auto_ensemble_size = 10

    def _refit_mode(self, has_folds):
        """``refit`` with ``'auto'`` resolved: ``'folds'`` when the winner has
        fold models to serve (``has_folds``), else True; False stays False."""
        if not self.refit:
            return False
        if self.refit in ("auto", "folds") and has_folds:
            return "folds"
        return True

    def _n_members(self):
        """``ensemble_size`` with ``'auto'`` resolved."""
        if self.ensemble_size != "auto":
            return self.ensemble_size
        return self._auto_ensemble_size if self.cv is not None and self.refit else 0

    #: from this many training rows on, ``'auto'`` trains on larger batches and the
    #: finalists train longer
    _large_data_rows = 1000
    #: what ``batch_size='auto'`` means (small data, large)
    _auto_batch_size = (32, 64)
    #: what ``finalist_epochs='auto'`` means: this many times ``epochs`` (small, large)
    _auto_finalist_factor = (3, 5)

    def _training_sizes(self, n_rows):
        """``(batch_size, finalist_epochs, finalist_batch_size)`` for
        ``n_rows`` training rows, with ``'auto'`` and ``None`` resolved."""
        large = int(n_rows >= self._large_data_rows)
        batch = self._auto_batch_size[large] if self.batch_size == "auto" else self.batch_size
        epochs = self.finalist_epochs
        if epochs == "auto":
            epochs = self._auto_finalist_factor[large] * self.epochs
        finalist_batch = self.finalist_batch_size
        if finalist_batch in ("auto", None):
            finalist_batch = batch
        return batch, self.epochs if epochs is None else epochs, finalist_batch

    def _finalist_trainer(self, epochs=None, early_stopping=None):
        """A trainer as the finalists' folds train: ``finalist_epochs_`` (or
        ``epochs``) on batches of ``finalist_batch_size_``."""
        return self._make_trainer(self.finalist_epochs_ if epochs is None else epochs,
                                  early_stopping, self.finalist_batch_size_)

    def _max_folds(self, y):
        """The most folds the target allows (rows, or the smallest class's rows)."""
        return len(y)

    def _folds_need(self, cv, y):
        """What ``cv`` folds need of the target, and what it has, in words."""
        return f"at least {cv} rows; there are {len(y)}"

    def _kfold(self, n_splits, seed):
        return KFold(n_splits, shuffle=True, random_state=seed)

    def _score_finalists(self, search, splitter, X, y, w, seed):
        """Cross-validate the ``n_finalists`` best candidates; their trials get
        ``cv_scores``. Returns the fold models' weights of every finalist whose
        folds all trained, by trial index."""
        ok = [t for t in search.trials if t.status == "ok" and np.isfinite(t.reward)]
        finalists = sorted(ok, key=lambda t: -t.reward)[:self.n_finalists]
        folds = list(splitter.split(X, y if y.ndim == 1 else y[:, 0]))
        search.reporter.message(
            f"cross-validating {len(finalists)} finalists: {len(folds)} folds each, "
            f"{self.finalist_epochs_} epochs on batches of {self.finalist_batch_size_} "
            f"({len(finalists) * len(folds)} networks side by side)")
        data = CandidateData(X, y, w, X, y, w, **self._task_fields())
        fold_rows = self._fold_row_weights(folds, y, w, seed)
        candidates, row_weights = [], []
        for trial in finalists:
            init, rng = self._fresh_start(trial, data, seed)
            net_seed = int(rng.integers(2**31 - 1))
            for _ in folds:
                candidates.append((trial.layers, [tuple(a.copy() for a in layer) for layer in init],
                                   net_seed))
            row_weights.extend(fold_rows)
        results = self._finalist_trainer().train(
            candidates, data, seed, row_weights, val_outputs=bool(self._n_members()))
        results = [self._from_fold_target(r, rows.target) for r, rows in zip(results, row_weights)]
        # a row's out-of-fold output is its mean over the folds that held it out (a
        # repeated splitter holds it out more than once, a shuffle split perhaps never)
        held_out = np.zeros(len(y))
        for _, val in folds:
            held_out[val] += 1
        seen = held_out > 0
        oof, fold_weights = {}, {}
        for i, trial in enumerate(finalists):
            mine = results[i * len(folds):(i + 1) * len(folds)]
            if all(r.status == "ok" for r in mine):
                fold_weights[trial.index] = [r.weights for r in mine]
            trial.cv_scores = [r.val_scores[max(r.best_epoch, 1) - 1]
                               if r.status == "ok" and r.val_scores else np.nan for r in mine]
            epochs = [r.best_epoch for r in mine if r.status == "ok"]
            trial.cv_best_epoch = (int(round(np.mean(epochs))) if epochs
                                   else self.finalist_epochs_)
            if self._n_members() and all(r.status == "ok" for r in mine):
                pred = np.zeros((len(y), data.n_outputs))
                for (_, val), r in zip(folds, mine):
                    pred[val] += r.val_outputs[val]
                oof[trial.index] = pred[seen] / held_out[seen, None]
        for trial in finalists:
            scores = np.asarray(trial.cv_scores, float)
            search.reporter.detail(f"finalist {trial.architecture}: cv_score="
                                   f"{np.nanmean(scores) if np.isfinite(scores).any() else np.nan:.4f}"
                                   f" ± {np.nanstd(scores) if np.isfinite(scores).any() else np.nan:.4f}")
        if self._n_members() and oof:
            held = [np.flatnonzero(np.isin(np.flatnonzero(seen), val)) for _, val in folds]
            self._select_ensemble(search, oof, y[seen], w[seen], held)
        return fold_weights

    #: share of a fold's training rows that early stopping watches (at least one row)
    _stop_share = 0.1

    def _fold_row_weights(self, folds, y, w, seed):
        """Per fold, what its networks train and are scored on
        (:class:`~sknas._trainer.FoldRows`): ``w`` on its training rows and
        on its held-out rows; with early stopping, ``w`` on a tenth of its
        training rows (drawn once per fold, at least one row) that it then
        watches instead of training on them, so that no held-out row chooses
        its best epoch; and the target as the fold's own rows standardise it
        (:meth:`_fold_target`)."""
        rows = []
        for f, (train, val) in enumerate(folds):
            in_train = np.zeros(len(y), np.float32)
            in_train[train] = 1.0
            in_val = np.zeros(len(y), np.float32)
            in_val[val] = 1.0
            in_stop = None
            if self.early_stopping_:
                rng = np.random.default_rng([seed, 2**23, f])
                n_stop = max(1, int(round(self._stop_share * len(train))))
                watched = rng.choice(np.asarray(train), size=min(n_stop, len(train) - 1),
                                     replace=False)
                in_stop = np.zeros(len(y), np.float32)
                in_stop[watched] = 1.0
                in_train = in_train - in_stop
            rows.append(FoldRows(w * in_train, w * in_val, None if in_stop is None else w * in_stop,
                                 self._fold_target(y, train)))
        return rows

    def _fold_target(self, y, train):
        """``(shift, scale)`` standardising the encoded target as the fold's
        training rows ``train`` alone would, or None (the classifier)."""
        return None

    @staticmethod
    def _from_fold_target(result, target):
        """A fold's result in the encoded target's units: its output layer
        and out-of-fold outputs mapped back from the fold's standardisation."""
        if target is None or result.status != "ok":
            return result
        shift, scale = (np.asarray(a, np.float32) for a in target)
        kernel, bias = result.weights[-1][:2]
        result.weights = list(result.weights[:-1]) + [(kernel * scale, bias * scale + shift)]
        if result.val_outputs is not None:
            result.val_outputs = result.val_outputs * scale + shift
        return result

    def _greedy_picks(self, oof, y, w):
        """Greedy selection with replacement (Caruana et al., 2004) of
        ``ensemble_size`` picks among the out-of-fold outputs ``oof``
        (row -> array), each pick the one whose addition most lowers the
        loss of the average on ``y`` weighted by ``w``. Returns the picks
        and the average of their outputs."""
        ids = list(oof)
        total = np.zeros_like(oof[ids[0]])
        picks = []
        for _ in range(self._n_members()):
            losses = [self._oof_loss((total + oof[i]) / (len(picks) + 1), y, w) for i in ids]
            best = ids[int(np.argmin(losses))]  # ties: the earlier, better-rewarded finalist
            picks.append(best)
            total += oof[best]
        return picks, total / len(picks)

    def _select_ensemble(self, search, oof, y, w, held=()):
        """Select the ensemble (:meth:`_greedy_picks`) on the out-of-fold
        outputs of all rows; set the members' ``ensemble_weight``,
        ``ensemble_score_`` (the selection's own score: optimistic, since it
        chose on those rows) and ``ensemble_cv_score_``: for each fold's rows
        (``held``, positions in ``y``), the selection made without them and
        scored on them, pooled over the rows."""
        picks, mean = self._greedy_picks(oof, y, w)
        for i in oof:
            search.trials[i].ensemble_weight = picks.count(i) / len(picks)
        self.ensemble_score_ = self._oof_score(mean, y, w)
        outer = np.zeros_like(mean)
        count = np.zeros(len(y))
        for rows in held:
            rest = np.ones(len(y), bool)
            rest[rows] = False
            if not rest.any() or not len(rows):
                continue
            picks_f, _ = self._greedy_picks({i: p[rest] for i, p in oof.items()}, y[rest], w[rest])
            outer[rows] += sum(oof[i][rows] for i in picks_f) / len(picks_f)
            count[rows] += 1
        scored = count > 0
        self.ensemble_cv_score_ = (
            self._oof_score(outer[scored] / count[scored, None], y[scored], w[scored])
            if scored.any() else float("nan"))
        search.reporter.message(
            f"ensemble of {len(set(picks))} finalists ({len(picks)} picks): selection score "
            f"{self.ensemble_score_:.4f}, its cross-validated estimate {self.ensemble_cv_score_:.4f}")

    def _oof_loss(self, pred, y, w):
        """Weighted loss of averaged out-of-fold outputs (lower is better)."""
        return float(np.average(np.mean((pred - y) ** 2, axis=1), weights=w))

    def _oof_score(self, pred, y, w):
        """The search's score (R^2, averaged over targets) of out-of-fold
        outputs; NaN where a target does not vary over the rows."""
        mean = np.average(y, axis=0, weights=w)
        sse = (w[:, None] * (pred - y) ** 2).sum(axis=0)
        sst = (w[:, None] * (y - mean) ** 2).sum(axis=0)
        if not (sst > 1e-12).all():
            return float("nan")
        return float(np.mean(1 - sse / sst))

    @_fit_context(prefer_skip_nested_validation=True)
    @keeps_python_random_state
    def fit(self, X, y, sample_weight=None):
        """Run the architecture search and build the served model from its best candidates.

        Every fitted attribute comes from the last successful fit. When the
        parameters are refused by the checks of their types and ranges that
        run before any work (scikit-learn's parameter validation), ``fit``
        raises and an earlier fit stays as it was, as scikit-learn's own
        estimators do. Once that check has passed, the earlier fit's
        attributes are removed; if ``fit`` then raises (bad data, a
        parameter combination refused, every candidate failed, a second
        Ctrl-C), the estimator is left unfitted: no fitted attribute of this
        or an earlier fit survives.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric training data.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Class labels (strings, integers, booleans...) for the classifier;
            numeric targets, one or several columns, for the regressor.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights, used in candidate training, the reward and the refit.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._clear_fitted()
        try:
            return self._fit(X, y, sample_weight)
        except BaseException:
            self._clear_fitted()
            raise

    def _clear_fitted(self):
        """Remove every fitted attribute (a name ending in ``_``)."""
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, name)

    def _fit(self, X, y, sample_weight):
        space = self._make_space()
        X, y, w = self._validate_training_data(X, y, sample_weight)
        self.early_stopping_ = (sp.issparse(X) if self.early_stopping == "auto"
                                else bool(self.early_stopping))
        self.batch_size_, self.finalist_epochs_, self.finalist_batch_size_ = (
            self._training_sizes(X.shape[0]))
        seed = self._search_seed()
        data = self._split(X, y, w, seed)
        self.n_validation_ = len(data.y_val)
        self._check_memory(space, data)
        splitter = self._cv_splitter(y, len(data.y_val), seed)
        strategy = self._make_strategy(space, seed)
        store = SharedWeights() if self.weight_sharing else None
        budget = SearchBudget(max_time=self.max_time, max_candidates=self.max_candidates)
        search = Search(space, strategy, CandidateExecutor(self._make_trainer(), self.n_jobs),
                        store, data, controller_epochs=self.controller_epochs,
                        samples_per_epoch=self.samples_per_epoch,
                        screen_factor=self.screen_factor, reward=self.reward,
                        error_score=self.error_score, seed=seed, budget=budget,
                        reporter=Reporter(self.verbose), callbacks=self._callbacks())
        start_epoch = self._restore(search)
        with interrupt_guard(budget):
            search.run(start_epoch)
        self.search_time_ = time.perf_counter() - budget.started
        self.cv_time_ = 0.0
        self.ensemble_score_ = self.ensemble_cv_score_ = float("nan")
        # what acts after the search comes from this fit's parameters, never from
        # a resumed run's record of an earlier fit
        for trial in search.trials:
            trial.cv_scores, trial.cv_best_epoch, trial.ensemble_weight = [], 0, 0.0
        folds = {}
        if splitter is not None and search.stop_reason != "interrupted":
            start = time.perf_counter()
            folds = self._score_finalists(search, splitter, X, y, w, seed)
            self.cv_time_ = time.perf_counter() - start
            search.reporter.message(f"finalists cross-validated in {self.cv_time_:.1f}s")
        self._store_results(search, strategy)
        self._fit_best(search, X, y, w, seed, folds)
        search.reporter.message(
            f"served model ({self._served_kind()}) built in {self.refit_time_:.1f}s; "
            f"winner {self.best_architecture_}, best_score_={self.best_score_:.4f}")
        for cb in search.callbacks:
            cb.on_refit(self, search)
        return self

    def _check_memory(self, space, data):
        """Refuse, before any training, a search of which not even the
        narrowest candidate fits in this machine's memory (in each worker
        process here). Wider candidates that do not fit fail one by one,
        recorded, before they allocate anything (see
        :meth:`PopulationTrainer.train`)."""
        import joblib
        n_in, n_out = data.n_features, data.n_outputs
        units = min(space.dense_tokens)[0]
        candidate = n_params([{"type": "dense", "units": units, "activation": "relu"}],
                             n_in, n_out) * BYTES_PER_PARAM
        workers = 1 if self.n_jobs is None else joblib.effective_n_jobs(self.n_jobs)
        have = available_memory()
        if have is not None and candidate * workers > have:
            gb = 2.0**30
            raise MemoryError(
                f"This search does not fit in memory: on {n_in} features even its narrowest "
                f"candidate ({units} units) needs about {candidate / gb:.1f} GB in "
                f"training{f' in each of {workers} workers' if workers > 1 else ''}, and about "
                f"{have / gb:.1f} GB is available. Use fewer features (e.g. "
                "TfidfVectorizer(max_features=...) or SelectKBest in the pipeline), smaller "
                "`units`, or fewer `n_jobs`.")

    def _search_seed(self):
        """The search's integer seed: from ``random_state``, or the resumed run's."""
        if self.resume is not None:
            from ._runlog import read_meta
            return int(read_meta(self.resume)["seed"])
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    def _callbacks(self):
        """The run log: continue ``resume``, or a new folder under ``log_dir``."""
        from ._runlog import RunLog
        if self.resume is not None:
            log = RunLog.open(self.resume)
        elif self.log_dir is not None:
            log = RunLog.create(self.log_dir)
        else:
            self.run_dir_ = None
            return []
        self.run_dir_ = log.path
        return [log]

    def _restore(self, search):
        """Write a new run's metadata or restore a resumed search; the epoch to start at."""
        from ._runlog import RunLog
        logs = [cb for cb in search.callbacks if isinstance(cb, RunLog)]
        return logs[0].begin(self, search) if logs else 0

    def _store_results(self, search, strategy):
        trials = search.trials
        ok = [t for t in trials if t.status == "ok"]
        if not ok:
            first = trials[0].message if trials else "no candidate was trained"
            where = (f" The run folder {self.run_dir_} keeps the failed trials."
                     if self.run_dir_ is not None else "")
            raise RuntimeError("Every candidate of the search failed; the first error was: "
                               f"{first}.{where}")
        self.search_results_ = results_table(trials)
        self.best_index_ = best_row(self.search_results_)
        best = trials[self.best_index_]
        self.best_architecture_ = best.architecture
        self.best_layers_ = best.layers
        cv_score = self.search_results_["cv_score"][self.best_index_]
        self.best_score_ = float(best.reward if np.isnan(cv_score) else cv_score)
        self.refit_epochs_ = best.cv_best_epoch or best.best_epoch or self.epochs
        self.controller_history_ = history_table(search.history)
        self.controller_ = strategy
        self.stop_reason_ = search.stop_reason
        self.n_candidates_ = len(trials)

    def _fit_best(self, search, X, y, w, seed, folds):
        """Build ``model_``: the fold models of the winner (and members) with
        ``refit='folds'``; otherwise the ensemble the selection picked (see
        :func:`serves_ensemble`), or the single winner."""
        start = time.perf_counter()
        members = {t.index: t.ensemble_weight for t in search.trials if t.ensemble_weight > 0}
        self.ensemble_weights_ = members
        self.refit_ = self._refit_mode(self.best_index_ in folds)
        if self.refit_ == "folds":
            self.model_ = self._folds_model(search, members or {self.best_index_: 1.0}, folds,
                                            X.shape[1])
        elif serves_ensemble(members, self.best_index_):
            self.model_ = self._ensemble_model(search, members, X, y, w, seed)
        else:
            self.model_ = self._winner_model(search, X, y, w, seed)
        self.refit_time_ = time.perf_counter() - start

    def _served_kind(self):
        """What ``model_`` is, in words."""
        members = len(self.ensemble_weights_)
        what = (f"an ensemble of {members} finalists" if serves_ensemble(
            self.ensemble_weights_, self.best_index_) else "the winner")
        how = {"folds": "their fold models" if members > 1 else "its fold models",
               True: "refit on all rows", False: "as the search trained it"}[self.refit_]
        return f"{what}, {how}"

    def _winner_model(self, search, X, y, w, seed):
        """The winner: retrained on all rows if ``refit``, else as the search
        trained it (retrained on the search's split when those weights are
        gone, as after a resume)."""
        store = search.store
        own = search.best_weights
        best = search.trials[self.best_index_]
        if self.refit:
            data = CandidateData(X, y, w, X[:0], y[:0], w[:0], **self._task_fields())
            weights = self._train(best, data, store, seed, self.refit_epochs_)
        elif own is None or own[0] != self.best_index_:
            weights = self._train(best, search.data, store, seed)
        else:
            weights = own[1]
        return build_keras_model(self.best_layers_, X.shape[1], search.data.head,
                                 self._served_weights(weights))

    def _ensemble_model(self, search, members, X, y, w, seed):
        """One Keras model averaging the refit members' outputs with their
        weights (the winner, if a member, refit first as :meth:`_winner_model`
        refits it)."""
        winner = (self._winner_model(search, X, y, w, seed) if self.best_index_ in members
                  else None)
        data = CandidateData(X, y, w, X[:0], y[:0], w[:0], **self._task_fields())
        trained = self._refit_together(
            [search.trials[i] for i in members if i != self.best_index_], data, seed)
        head = search.data.head
        nets = [(winner if index == self.best_index_ else build_keras_model(
                     search.trials[index].layers, X.shape[1], head,
                     self._served_weights(trained[index])), weight)
                for index, weight in members.items()]
        return _weighted_sum_model(X.shape[1], nets)

    def _folds_model(self, search, members, folds, n_features):
        """One Keras model averaging ``members``' fold models: member weight
        divided by its number of folds for each (``refit='folds'``)."""
        head = search.data.head
        nets = [(build_keras_model(search.trials[index].layers, n_features, head,
                                   self._served_weights(weights)), weight / len(folds[index]))
                for index, weight in members.items() for weights in folds[index]]
        return _weighted_sum_model(n_features, nets)

    def _refit_together(self, trials, data, seed):
        """Refit cross-validated ``trials`` on ``data`` as :meth:`_train` refits
        one (from its folds' fresh initialisation, for its folds' mean best
        epoch on their batches, without early stopping), side by side: one population per
        number of epochs, whose row order depends on that number only, so
        with the population trainer a member trains the same with or without
        the others. Returns
        ``{trial.index: weights}``."""
        groups = {}
        for trial in trials:
            groups.setdefault(trial.cv_best_epoch, []).append(trial)
        weights = {}
        for epochs, group in groups.items():
            candidates = []
            for trial in group:
                init, rng = self._fresh_start(trial, data, seed)
                candidates.append((trial.layers, init, int(rng.integers(2**31 - 1))))
            trainer = self._finalist_trainer(epochs=epochs, early_stopping=False)
            order = int(np.random.default_rng([seed, 2**22, epochs]).integers(2**31 - 1))
            results = trainer.train(candidates, data, order)
            for trial, result in zip(group, results):
                if result.status != "ok":
                    raise RuntimeError(f"Refitting {trial.architecture} failed: "
                                       f"{result.message}")
                weights[trial.index] = result.weights
        return weights

    def _served_weights(self, weights):
        """The trained weights as the served model uses them."""
        return weights

    def _fresh_start(self, trial, data, seed):
        """The fresh initialisation (and the generator after drawing it) that a
        finalist's folds, and later its refit, start from."""
        rng = np.random.default_rng([seed, 2**21, trial.index])
        return initial_weights(trial.layers, data.n_features, data.n_outputs, rng), rng

    def _train(self, trial, data, store, seed, epochs=None):
        """Train ``trial``'s architecture again on ``data``: from its folds'
        fresh initialisation when it was cross-validated (shared weights have
        seen every fold), else from the shared weights as every candidate
        starts; for ``epochs`` without early stopping (no validation rows), or,
        when ``epochs`` is None, as its folds trained (cross-validated) or as
        the search trains."""
        if trial.cv_scores:
            weights, rng = self._fresh_start(trial, data, seed)
        else:
            rng = np.random.default_rng([seed, 2**20])
            weights = initial_weights(trial.layers, data.n_features, data.n_outputs, rng, store)
        candidate = (trial.layers, weights, int(rng.integers(2**31 - 1)))
        if trial.cv_scores:  # on its folds' batches: as long as they trained, or ``epochs``
            trainer = (self._finalist_trainer() if epochs is None
                       else self._finalist_trainer(epochs, early_stopping=False))
        elif epochs is not None:
            trainer = self._make_trainer(epochs=epochs, early_stopping=False)
        else:
            trainer = self._make_trainer()
        result = trainer.train([candidate], data, int(rng.integers(2**31 - 1)))[0]
        if result.status != "ok":
            raise RuntimeError(f"Refitting {trial.architecture} failed: {result.message}")
        return result.weights

    # -------------------------------------------------------------- results
    def top_architectures(self, n=5):
        """The ``n`` best candidates of the search (the tutorial's TOP_N report).

        Parameters
        ----------
        n : int, default=5
            Number of rows.

        Returns
        -------
        top : pandas.DataFrame
            Columns ``rank``, ``architecture``, ``reward``, ``predicted_reward``,
            ``n_params``, ``controller_epoch``, ``fit_time``, best first.
            With ``verbose``, the table is also printed.
        """
        check_is_fitted(self, "search_results_")
        top = top_table(self.search_results_, n)
        if self.verbose:
            Reporter(self.verbose).message("top architectures:\n" + top.to_string(index=False))
        return top

    def _model_input(self, X):
        """``X`` checked against what ``fit`` saw, as float32 (dense, or CSR)."""
        check_is_fitted(self, "model_")
        return _as_float32(validate_data(self, X, reset=False, dtype=[np.float64, np.float32],
                                         accept_sparse=_SPARSE_FORMATS))

    def to_html(self, path=None, *, held_out_score=None):
        """Write the report of this fitted search: one self-contained HTML page.

        The same page as ``sknas report RUN_DIR --html`` (see the report
        guide): parameters, data summary, leaderboard, winner, plots and
        controller history, with nothing loaded from a network.

        Parameters
        ----------
        path : str or path-like, default=None
            File to write; ``None`` returns the HTML text instead.
        held_out_score : float or dict of str to float, default=None
            The winner's score on held-out data, shown on the page.

        Returns
        -------
        html_or_path : str or pathlib.Path
        """
        check_is_fitted(self, "search_results_")
        from ._html import estimator_report
        return estimator_report(self, path, held_out_score=held_out_score)

    # ---------------------------------------------------------- persistence
    def __getstate__(self):
        state = self.__dict__.copy()
        model = state.pop("model_", None)
        if model is not None:
            state["_model_keras_bytes"] = _model_to_bytes(model)
        return state

    def __setstate__(self, state):
        data = state.pop("_model_keras_bytes", None)
        self.__dict__.update(state)
        if data is not None:
            self.model_ = _model_from_bytes(data)

    def export_model(self, path):
        """Write the served model as a plain ``.keras`` file.

        The served model is ``model_`` (see ``refit``): by default the
        ensemble of the finalists' fold models, one Keras model averaging
        them with their weights (the winner's fold models alone with
        ``ensemble_size=0``; the refit winner or members with ``refit=True``).
        The file loads with ``keras.models.load_model(path)`` and no custom
        objects. A classifier's outputs are probabilities (one sigmoid unit
        for binary problems) for classes in the order of ``classes_``; a
        regressor's are the targets in their original units (the target's
        standardisation is folded into the output layer).

        Parameters
        ----------
        path : str or path-like
            Destination; should end in ``.keras``.

        Returns
        -------
        path : str
        """
        check_is_fitted(self, "model_")
        path = os.fspath(path)
        self.model_.save(path)
        return path

    def save_model(self, path):
        """Write the served model and its metadata to the folder ``path``, without pickle.

        The folder holds ``model.keras`` and ``sknas_model.json`` (the task,
        classes with their dtype or the targets' shape, feature names,
        architecture, parameters); :func:`sknas.load_model` rebuilds a
        predictor from it that gives the same predictions.

        Parameters
        ----------
        path : str or path-like
            Folder to write (created if needed; its two files are replaced).

        Returns
        -------
        path : pathlib.Path
        """
        from ._io import save_model
        return save_model(self, path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = True
        # the population trainer draws every random number from random_state;
        # model.fit's shuffling and dropout draw from TensorFlow's global seed
        tags.non_deterministic = self.trainer == "keras"
        return tags


def serves_ensemble(members, best_index):
    """Whether the ensemble selection's ``members`` (row -> weight) make an
    ensemble to serve rather than the single winner ``best_index``: several
    members, or one that is not the winner."""
    return bool(members) and set(members) != {best_index}


def _weighted_sum_model(n_features, nets):
    """One Keras model whose output is the sum of ``(net, weight)`` pairs'
    outputs, each scaled by its weight (a ``Rescaling`` layer per net and an
    ``Add``): the served model of an ensemble."""
    import keras
    inputs = keras.Input((n_features,))
    outputs = [keras.layers.Rescaling(float(weight))(net(inputs)) for net, weight in nets]
    return keras.Model(inputs, keras.layers.Add()(outputs) if len(outputs) > 1 else outputs[0])


#: Sparse formats ``fit`` and the predictions take (converted to CSR).
_SPARSE_FORMATS = ("csr", "csc", "coo")


def _as_float32(X):
    """Validated ``X`` as float32: an array, or a CSR matrix in canonical form
    (sorted column indices, duplicates summed), which is what the trainers
    take and what keeps a mini-batch's gather a slice of stored values."""
    if not sp.issparse(X):
        return X.astype(np.float32)
    if X.format == "csr" and X.dtype == np.float32 and X.has_canonical_format:
        return sp.csr_matrix(X)
    X = sp.csr_matrix(X, dtype=np.float32, copy=True)  # the caller's matrix is left alone
    X.sum_duplicates()
    X.sort_indices()
    return X


def _model_to_bytes(model):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        with open(path, "rb") as fh:
            return fh.read()


def _model_from_bytes(data):
    from ._runlog import load_keras
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        with open(path, "wb") as fh:
            fh.write(data)
        return load_keras(path)
