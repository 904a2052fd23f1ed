"""Search strategies as objects the estimators take: what to try next.

:class:`Reinforce` holds the controller's hyperparameters (the tutorial's
LSTM controller trained by REINFORCE), :class:`RandomSearch` samples
uniformly and never learns. An estimator's ``strategy`` is one of them, or
the string ``'reinforce'`` or ``'random'`` for their defaults. They have
``get_params`` and ``set_params`` (they are scikit-learn ``BaseEstimator``
objects), so ``GridSearchCV`` reaches their hyperparameters as
``strategy__learning_rate``, as it reaches a Gaussian process's
``kernel__length_scale``. Each builds the stateful strategy a search runs
(:meth:`Reinforce.build`); it is never changed by a fit.
"""

from __future__ import annotations

from numbers import Integral, Real

from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions

__all__ = ["RandomSearch", "Reinforce", "resolve_strategy"]


class Reinforce(BaseEstimator):
    """The LSTM controller trained by REINFORCE (the tutorial's strategy).

    An autoregressive LSTM samples architectures token by token; after every
    controller epoch its policy is updated with the rewards of the epoch's
    candidates (discounted per-step returns, a baseline, Adam), jointly with
    an accuracy-predictor head on the same LSTM. See the
    :doc:`algorithm guide </algorithm>`.

    Parameters
    ----------
    learning_rate : float, default=0.01
        Adam learning rate of the controller.
    decay : float, default=0.1
        Inverse time decay of the learning rate per step:
        ``learning_rate / (1 + decay * step)``.
    clipnorm : float, default=1.0
        Per-variable gradient norm clip of the controller's Adam.
    discount : float, default=0.9
        Discount of the per-step returns (the tutorial's
        ``CONTROLLER_LOSS_ALPHA``).
    baseline : {'ema', 'batch'} or float, default='ema'
        Reward baseline: ``'ema'``, an exponential moving average of past
        rewards (Zoph and Le, 2017) started at the first controller epoch's
        mean reward; ``'batch'``, the mean reward of the controller epoch
        being learned from; or a constant, such as the tutorial's 0.5.
    baseline_decay : float, default=0.9
        Decay of the moving-average baseline.
    normalize_advantage : bool, default=True
        Divide the advantages ``R - b`` by a running root mean square of the
        advantages (decay ``baseline_decay``), floored at 0.01.
    entropy_weight : float, default=0.0
        Weight of the policy-entropy bonus in the controller loss (measured
        on the suite: no gain, so off by default).
    lstm_units : int, default=100
        Units of the controller's LSTM (``CONTROLLER_LSTM_DIM``).
    train_steps : int, default=10
        Controller gradient steps per controller epoch
        (``CONTROLLER_TRAINING_EPOCHS``).
    use_predictor : bool, default=True
        Train the reward-predictor head (``CONTROLLER_USE_PREDICTOR``).
    screen_factor : float, default=1
        Predictor screening: sample ``round(screen_factor *
        samples_per_epoch)`` distinct architectures per controller epoch and
        train the predictor's top-ranked ones (a fifth, at least one, drawn
        uniformly from the rest), each weighted in the policy gradient by its
        inverse inclusion probability. 1 trains every sampled architecture.
        Needs ``use_predictor=True``. Measured on the classification suite, 3
        was level with 1 at equal trained candidates (see the
        :doc:`space guide </space>`).

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sknas import MLPNASClassifier, Reinforce
    >>> search = GridSearchCV(MLPNASClassifier(), {"strategy__learning_rate": [0.003, 0.01]})
    >>> MLPNASClassifier(strategy=Reinforce(baseline=0.5)).strategy
    Reinforce(baseline=0.5)
    """

    _parameter_constraints: dict = {
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "decay": [Interval(Real, 0, None, closed="left")],
        "clipnorm": [Interval(Real, 0, None, closed="neither")],
        "discount": [Interval(Real, 0, 1, closed="both")],
        "baseline": [StrOptions({"ema", "batch"}), Interval(Real, None, None, closed="neither")],
        "baseline_decay": [Interval(Real, 0, 1, closed="left")],
        "normalize_advantage": ["boolean"],
        "entropy_weight": [Interval(Real, 0, None, closed="left")],
        "lstm_units": [Interval(Integral, 1, None, closed="left")],
        "train_steps": [Interval(Integral, 1, None, closed="left")],
        "use_predictor": ["boolean"],
        "screen_factor": [Interval(Real, 1, None, closed="left")],
    }

    def __init__(self, learning_rate=0.01, decay=0.1, clipnorm=1.0, discount=0.9, baseline="ema",
                 baseline_decay=0.9, normalize_advantage=True, entropy_weight=0.0,
                 lstm_units=100, train_steps=10, use_predictor=True, screen_factor=1):
        self.learning_rate = learning_rate
        self.decay = decay
        self.clipnorm = clipnorm
        self.discount = discount
        self.baseline = baseline
        self.baseline_decay = baseline_decay
        self.normalize_advantage = normalize_advantage
        self.entropy_weight = entropy_weight
        self.lstm_units = lstm_units
        self.train_steps = train_steps
        self.use_predictor = use_predictor
        self.screen_factor = screen_factor

    def check(self):
        """Check the parameters (types, ranges, and that screening has a
        predictor); returns the strategy."""
        self._validate_params()
        if self.screen_factor > 1 and not self.use_predictor:
            raise ValueError(f"screen_factor={self.screen_factor!r} ranks sampled architectures "
                             "by the controller's accuracy predictor, but use_predictor=False: "
                             "use screen_factor=1, or use_predictor=True.")
        return self

    def build(self, space, seed):
        """The :class:`~sknas._controller.Controller` a search runs, after
        checking the parameters (:meth:`check`)."""
        self.check()
        from ._controller import Controller
        settings = self.get_params()
        del settings["screen_factor"]  # the search's, not the controller's
        return Controller(space, seed=seed, **settings)


class RandomSearch(BaseEstimator):
    """Sample architectures uniformly from the space and never learn.

    Every valid architecture is equally likely. The baseline a learned
    strategy is compared with: same budget, same training, no controller.
    """

    screen_factor = 1

    def check(self):
        """Nothing to check; returns the strategy."""
        return self

    def build(self, space, seed):
        """The :class:`~sknas._random_search.RandomStrategy` a search runs."""
        from ._random_search import RandomStrategy
        return RandomStrategy(space)


#: what the strategy strings mean
_NAMED = {"reinforce": Reinforce, "random": RandomSearch}


def resolve_strategy(strategy):
    """The strategy object of an estimator's ``strategy`` (a string means
    its class's defaults)."""
    if isinstance(strategy, str):
        return _NAMED[strategy]()
    return strategy
