"""sknas: neural architecture search for multilayer perceptrons, the scikit-learn way."""

from ._estimator import MLPNASClassifier
from ._io import SavedModel, load_model
from ._plotting import (ControllerHistoryDisplay, PredictorDisplay, RewardDistributionDisplay,
                        RewardHistoryDisplay)
from ._runlog import Run, RunFormatError, load_run
from ._space import SearchSpace

__version__ = "0.1.0"

__all__ = ["ControllerHistoryDisplay", "MLPNASClassifier", "PredictorDisplay",
           "RewardDistributionDisplay", "RewardHistoryDisplay", "Run", "RunFormatError", "SavedModel",
           "SearchSpace", "__version__", "load_model", "load_run"]
