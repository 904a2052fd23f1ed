"""sknas: neural architecture search for multilayer perceptrons, the scikit-learn way."""

from ._estimator import MLPNASClassifier
from ._space import SearchSpace

__version__ = "0.1.0"

__all__ = ["MLPNASClassifier", "SearchSpace", "__version__"]
