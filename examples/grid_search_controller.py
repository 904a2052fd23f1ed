"""Tune the controller with GridSearchCV.

``MLPNASClassifier`` is an ordinary scikit-learn estimator, and its controller
is a parameter object (``strategy``, a :class:`sknas.Reinforce`), so the
controller's settings are cross-validated like any hyper-parameter, as
``strategy__<name>``: here its learning rate, and (with the full budget) the
baseline (the moving average or the tutorial's constant 0.5). The default
``strategy='reinforce'`` is turned into ``Reinforce()`` when the grid sets one
of its parameters.

The features are scaled in a pipeline around the grid search, fitted on the
training part only. To refit the scaler within each cross-validation fold as
well, put the pipeline inside ``GridSearchCV`` and prefix the names with the
step's: ``{"search__strategy__learning_rate": [...]}``.

Set ``SKNAS_EXAMPLE_TINY=1`` for a budget of a few seconds.
"""

import os

import pandas as pd
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknas import MLPNASClassifier, Reinforce
from sknas.datasets import load_wine_quality

TINY = os.environ.get("SKNAS_EXAMPLE_TINY") == "1"

X, y = load_wine_quality(return_X_y=True)
if TINY:  # a stratified sample of 600 rows and a search of 2 candidates
    X, _, y, _ = train_test_split(X, y, train_size=600, stratify=y, random_state=0)
    budget = dict(controller_epochs=1, samples_per_epoch=2, epochs=2,
                  strategy=Reinforce(train_steps=1))
    grid = {"strategy__learning_rate": [0.003, 0.01]}
else:
    budget = dict(controller_epochs=5, samples_per_epoch=5, epochs=5)
    grid = {"strategy__learning_rate": [0.003, 0.01], "strategy__baseline": ["ema", 0.5]}

X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y,
                                                    random_state=0)
grid_search = GridSearchCV(MLPNASClassifier(random_state=0, **budget), grid,
                           cv=2 if TINY else 3)
model = make_pipeline(StandardScaler(), grid_search).fit(X_train, y_train)

columns = ["params", "mean_test_score", "std_test_score", "rank_test_score"]
print(pd.DataFrame(grid_search.cv_results_)[columns].to_string(index=False))
print(f"best parameters: {grid_search.best_params_}")
print(f"best strategy: {grid_search.best_estimator_.strategy!r}")
print(f"best architecture: {grid_search.best_estimator_.best_architecture_}")
print(f"held-out test accuracy: {model.score(X_test, y_test):.4f}")
