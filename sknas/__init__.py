"""sknas: neural architecture search for multilayer perceptrons, the scikit-learn way."""

from ._estimator import MLPNASClassifier
from ._plotting import (ControllerHistoryDisplay, PredictorDisplay, RewardDistributionDisplay,
                        RewardHistoryDisplay)
from ._space import SearchSpace

__version__ = "0.1.0"

__all__ = ["ControllerHistoryDisplay", "MLPNASClassifier", "PredictorDisplay",
           "RewardDistributionDisplay", "RewardHistoryDisplay", "SearchSpace", "__version__"]
