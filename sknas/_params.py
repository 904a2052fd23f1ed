"""The estimators' parameters: names and defaults (written once), their
documentation, and where the parameters that left the signature went."""

from __future__ import annotations

import inspect

import numpy as np

__all__ = ["ATTRIBUTES_DOC", "ESTIMATOR_PARAMETERS", "MOVED_PARAMETERS", "NOTES_DOC",
           "PARAMETERS_DOC"]

#: Parameters shared by both estimators, in numpydoc form (their docstrings
#: are assembled from these pieces so the two cannot drift apart).
PARAMETERS_DOC = """    space : {'tutorial', 'extended', 'modern'} or SearchSpace, default='tutorial'
        The search space: what the controller chooses among. ``'tutorial'``
        is the tutorial's (7 widths x 4 activations, one dropout rate, at
        most two hidden tokens: 840 architectures); ``'extended'`` also
        searches depth (up to 3 hidden layers), batch normalisation and the
        dropout rate per layer, and each candidate's Adam learning rate and
        weight decay; ``'modern'`` also each candidate's input transform (a
        robust, smoothly clipped input), label smoothing and the SELU and
        SiLU activations (dense ``X``; see the :doc:`modern guide
        </modern>`); a :class:`SearchSpace` sets every choice (widths,
        activations, dropout rates, depth, TabM-style members...). See the
        :doc:`search-space guide </space>`. ``GridSearchCV`` reaches the
        space's parameters as ``space__max_layers`` and the like (a preset's
        name is then turned into its :class:`SearchSpace`).
    strategy : {'reinforce', 'random'}, Reinforce or RandomSearch, default='reinforce'
        How the next candidates are chosen: :class:`Reinforce`, the
        tutorial's LSTM controller trained by REINFORCE, holds the
        controller's hyperparameters (learning rate, discount, baseline,
        LSTM units, screening...); :class:`RandomSearch` samples uniformly
        and never learns (the baseline strategy for comparisons). A string
        means that class's defaults. ``GridSearchCV`` reaches the
        strategy's hyperparameters as ``strategy__learning_rate`` and the
        like (``'reinforce'`` is then turned into ``Reinforce()``).
    controller_epochs : int, default=10
        Controller epochs (tutorial: ``CONTROLLER_SAMPLING_EPOCHS``).
    samples_per_epoch : int, default=10
        Candidates per controller epoch (``SAMPLES_PER_CONTROLLER_EPOCH``).
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
    n_iter_no_change : int, default=1
        Patience of ``early_stopping``, in epochs (as Keras's
        ``EarlyStopping(patience=...)``): 1 stops a candidate after the
        first epoch that does not improve its validation loss. On the text
        tables of the benchmarks, where early stopping is on by default, 1
        was level with 3 (the default until 2026-12-07) in accuracy for
        0.46 times the fit time on the tuning seeds and 0.75 times on the
        report seeds (see the sparse-input guide).
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
        as the only score (the tutorial's behaviour). ``'auto'``: 3 folds
        below 1,000 training rows and 5 from 1,000 on (fewer if a class has
        fewer rows), when the validation split has fewer than 1,000 rows (too
        few to rank candidates whose scores differ by a point or two) or an
        ensemble needs them; none otherwise. Until 2026-12-07 it was 5 folds
        at every size: 3 were level or better on the small tables for 0.85
        times the fit time, and lost 0.010 on wine-quality (see the
        generalisation guide).
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
        on the search's batches (64 from 1,000 rows); below, ``epochs``
        (longer training bought the classifier nothing on small tables, and
        overfit the regressor's). Chosen from measurements (see the
        generalisation guide);
        ``finalist_epochs_`` holds the resolved value. With early
        stopping a fold stops sooner and the refit trains for its folds'
        mean best epoch. No effect when no finalist is cross-validated
        (``cv=None``, or ``cv='auto'`` on large data without an ensemble).
    ensemble_size : int or 'auto', default='auto'
        0 serves the single winner. Otherwise greedy ensemble selection with
        replacement (Caruana et al., 2004) over the cross-validated
        finalists: ``ensemble_size`` times, the finalist whose addition most
        lowers the log loss (squared error for the regressor) of the
        averaged out-of-fold predictions is added; each member's weight is
        the share of picks it got. ``model_`` averages the members' outputs
        with those weights (one Keras model), each member served as ``refit``
        says (its fold models, or refit like the winner). Needs
        cross-validated finalists: with ``cv='auto'`` the finalists are
        cross-validated whatever the data size, ``cv=None`` is an error. ``'auto'``: 10, and
        0 whenever ``cv=None`` or ``refit=False`` (chosen from measurements
        on the benchmark suite, with ``finalist_epochs``: see the
        generalisation guide).
    validation_fraction : float, default=0.1
        Fraction of the training rows held out once per fit (stratified for
        the classifier) to score every candidate: the tutorial's tenth
        (at least one row, two for the regressor). Until 2026-12-06 the
        classifier's default (``'auto'``) held out a quarter of a small
        table; on the benchmark suite's report seeds that was level with a
        tenth (see the generalisation guide). ``n_validation_`` holds the
        number of rows held out.
    weight_sharing : bool, default=True
        One-shot weight sharing between candidates (``MLP_ONE_SHOT``).
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
        ``ensemble_size``) may differ, and the finalists
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
        its reward (validation accuracy or R^2, the epochs' scores weighted
        1, 2, ..., E).
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
        trained, see :class:`Reinforce`'s ``screen_factor``), ``best_reward``, ``n_failed``,
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
    input_stats_ : dict or None
        Per input transform the space can choose (``'none'`` aside), the
        ``(shift, variance)`` arrays it standardises with, over the training
        rows: for ``'robust'``, ``'plr'`` and ``'pbld'`` each feature's median
        and robust scale squared, for ``'ple'`` each bin's lower edge and squared width
        (see :class:`SearchSpace`'s ``input_transforms``); None when the
        space can choose none.
    batch_size_ : int
        Mini-batch size of the search's candidates (``batch_size`` with
        ``'auto'`` resolved for the training rows given).
    finalist_epochs_ : int
        Training epochs of the finalists' folds (``finalist_epochs`` with
        ``'auto'`` and ``None`` resolved for the training rows given).
    finalist_batch_size_ : int
        Their mini-batch size: the search's ``batch_size_``.
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
    workers too, as tested). The ``model.fit`` reference trainer that the
    tests and benchmarks select in a subclass (``_trainer_kind = 'keras'``)
    shuffles and drops out with TensorFlow's global seed instead, so two of
    its fits differ, and its ``non_deterministic`` tag is True.

    On sparse ``X`` the first layer trains with lazy Adam where a mini-batch
    touches at most a fifth of the columns on average (text, one-hot codes):
    a step moves only the kernel rows of the columns its mini-batch touches,
    each first catching up the steps it missed (see the sparse input guide),
    so a fit on sparse rows is the fit on the same rows dense up to
    rounding, at a fraction of its cost. Denser sparse rows take Adam's full
    step, which is cheaper there; a subclass with ``_lazy_adam = False``
    (or ``True``) takes one or the other always.

    ``fit`` touches global state only where it must, and restores it: a
    SIGINT handler while the search runs (main thread only), Python's
    ``random`` state (Keras draws layer seeds from it), and TensorFlow's
    logger level while a population graph is traced. See
    :ref:`global-side-effects`.

"""


#: The estimators' parameters and their defaults, in signature order: the one place
#: they are written (:func:`_estimator_init` makes the constructors from it).
ESTIMATOR_PARAMETERS = {
    "space": "tutorial", "strategy": "reinforce", "controller_epochs": 10,
    "samples_per_epoch": 10, "epochs": 10, "batch_size": "auto", "learning_rate": 0.01,
    "early_stopping": "auto", "n_iter_no_change": 1, "cv": "auto", "n_finalists": 8,
    "finalist_epochs": "auto", "ensemble_size": "auto", "validation_fraction": 0.1,
    "weight_sharing": True, "n_jobs": None, "error_score": np.nan, "max_time": None,
    "max_candidates": None, "refit": "auto", "log_dir": None, "resume": None,
    "random_state": None, "verbose": 0,
}


#: Parameters that moved into an object (or out of the public API), with where they went.
MOVED_PARAMETERS = {
    **{name: f"space=SearchSpace({name}=...)" for name in ("units", "activations", "max_layers")},
    "dropout_rate": "space=SearchSpace(dropout_rates=...)",
    **{old: f"strategy=Reinforce({new}=...)" for old, new in (
        ("controller_units", "lstm_units"), ("controller_train_steps", "train_steps"),
        ("controller_learning_rate", "learning_rate"), ("controller_decay", "decay"),
        ("controller_clipnorm", "clipnorm"), ("discount", "discount"), ("baseline", "baseline"),
        ("baseline_decay", "baseline_decay"), ("normalize_advantage", "normalize_advantage"),
        ("entropy_weight", "entropy_weight"), ("use_predictor", "use_predictor"),
        ("screen_factor", "screen_factor"))},
    "reward": "no parameter: 'weighted' (the tutorial's) is fixed; a subclass sets _reward",
    "trainer": "no parameter: the population trainer is fixed; a subclass sets "
               "_trainer_kind = 'keras' for the model.fit reference",
    "finalist_batch_size": "no parameter: the finalists train on the search's batch size; a "
                           "subclass sets _finalist_batch_size",
}


def _refuse_moved(estimator, names):
    """A clear error for parameters that moved (see :data:`MOVED_PARAMETERS`)."""
    moved = [k for k in names if k in MOVED_PARAMETERS]
    if moved:
        raise TypeError(f"{estimator} has no parameter {', '.join(map(repr, moved))} any more: "
                        + "; ".join(f"{k}: use {MOVED_PARAMETERS[k]}" for k in moved)
                        + " (see the search-space guide and sknas.Reinforce).")


def _estimator_init(defaults):
    """An ``__init__`` taking ``defaults``' parameters as keywords and storing
    them untouched, with the signature scikit-learn's ``get_params`` and
    ``clone`` read (so the signature is written once, in ``defaults``)."""

    def __init__(self, **params):
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            _refuse_moved(type(self).__name__, unknown)
            raise TypeError(f"{type(self).__name__}.__init__() got an unexpected keyword "
                            f"argument {unknown[0]!r}")
        for name, default in defaults.items():
            setattr(self, name, params.get(name, default))

    __init__.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
           for name, default in defaults.items()])
    return __init__
