"""sknas: neural architecture search for multilayer perceptrons, the scikit-learn way."""

from ._io import SavedModel, load_model
from ._plotting import (ControllerHistoryDisplay, PredictorDisplay, RewardDistributionDisplay,
                        RewardHistoryDisplay)
from ._runlog import Run, RunFormatError, load_run
from ._space import SearchSpace
from ._strategy import RandomSearch, Reinforce
from ._version import __version__

__all__ = ["ControllerHistoryDisplay", "MLPNASClassifier", "MLPNASRegressor", "PredictorDisplay",
           "RandomSearch", "Reinforce", "RewardDistributionDisplay", "RewardHistoryDisplay", "Run",
           "RunFormatError", "SavedModel", "SearchSpace", "__version__", "load_model", "load_run"]


def __getattr__(name):
    # The estimator imports TensorFlow (seconds, and log lines on stderr): it
    # loads on first use, so ``import sknas`` and the command line's input
    # checks stay fast and quiet.
    if name in ("MLPNASClassifier", "MLPNASRegressor"):
        from . import _estimator
        globals()[name] = getattr(_estimator, name)
        return globals()[name]
    raise AttributeError(f"module 'sknas' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
