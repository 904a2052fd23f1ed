"""Tune the controller with GridSearchCV.

``MLPNASClassifier`` is an ordinary scikit-learn estimator, so its controller
settings can be cross-validated like any hyper-parameter: here the baseline
(the moving average or the tutorial's constant 0.5) and the entropy bonus,
inside a pipeline that scales the features.

Set ``SKNAS_EXAMPLE_TINY=1`` for a budget of a few seconds.
"""

import os

import pandas as pd
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sknas import MLPNASClassifier
from sknas.datasets import load_wine_quality

TINY = os.environ.get("SKNAS_EXAMPLE_TINY") == "1"

X, y = load_wine_quality(return_X_y=True)
if TINY:  # a stratified sample of 600 rows and a search of 2 candidates
    X, _, y, _ = train_test_split(X, y, train_size=600, stratify=y, random_state=0)
    budget = dict(controller_epochs=1, samples_per_epoch=2, epochs=2, controller_train_steps=1)
    grid = {"search__baseline": ["ema", 0.5]}
else:
    budget = dict(controller_epochs=5, samples_per_epoch=5, epochs=5)
    grid = {"search__baseline": ["ema", 0.5], "search__entropy_weight": [0.0, 0.01]}

X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y,
                                                    random_state=0)
pipe = Pipeline([("scale", StandardScaler()),
                 ("search", MLPNASClassifier(random_state=0, **budget))])
grid_search = GridSearchCV(pipe, grid, cv=2 if TINY else 3).fit(X_train, y_train)

columns = ["params", "mean_test_score", "std_test_score", "rank_test_score"]
print(pd.DataFrame(grid_search.cv_results_)[columns].to_string(index=False))
print(f"best parameters: {grid_search.best_params_}")
print(f"best architecture: {grid_search.best_estimator_['search'].best_architecture_}")
print(f"held-out test accuracy: {grid_search.score(X_test, y_test):.4f}")
