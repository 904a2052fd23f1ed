"""Search an MLP for the wine-quality data and plot the search.

Runs the reference protocol (stratified 80/20 split, ``random_state=0``,
features scaled in a pipeline), prints the top 5 architectures and the
held-out accuracy of the served model (by default an ensemble of the
cross-validated finalists' fold models), and saves the four plots of the
search as PNG files in the current folder.

Set ``SKNAS_EXAMPLE_TINY=1`` for a budget of a few seconds.
"""

import os

import matplotlib

matplotlib.use("Agg")  # write files, no window

from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sknas import (ControllerHistoryDisplay, MLPNASClassifier, PredictorDisplay,  # noqa: E402
                   Reinforce, RewardDistributionDisplay, RewardHistoryDisplay)
from sknas.datasets import load_wine_quality  # noqa: E402

TINY = os.environ.get("SKNAS_EXAMPLE_TINY") == "1"
# The tutorial's budget is the estimator's default; the tiny one is for CI.
budget = dict(controller_epochs=2, samples_per_epoch=3, epochs=2,
              strategy=Reinforce(train_steps=2)) if TINY else {}

X, y = load_wine_quality(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y,
                                                    random_state=0)

search = MLPNASClassifier(random_state=0, verbose=1, **budget)
model = make_pipeline(StandardScaler(), search).fit(X_train, y_train)

search.top_architectures(5)  # verbose: prints the table (the tutorial's TOP_N report)
print(f"best architecture: {search.best_architecture_}")
print(f"held-out test accuracy: {model.score(X_test, y_test):.4f}")

displays = {
    "wine_reward_history.png": RewardHistoryDisplay.from_estimator(search),
    "wine_reward_distribution.png": RewardDistributionDisplay.from_estimator(search),
    "wine_predictor.png": PredictorDisplay.from_estimator(search),
    "wine_controller_history.png": ControllerHistoryDisplay.from_estimator(search),
}
for filename, display in displays.items():
    display.figure_.savefig(filename, dpi=100)
    print(f"wrote {filename}")
