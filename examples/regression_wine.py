"""Search an MLP regressor for the wine-quality scores.

The bundled wine data with the raw ``quality`` score (integers 3 to 9) as a
numeric target instead of its three classes. A plain 80/20 split
(``random_state=0``; a regression target is not stratified), the features
scaled in a pipeline, a small search budget; prints the top 5
architectures, then the held-out R^2 and RMSE of the served model (by
default an ensemble of the cross-validated finalists' fold models) next to
those of predicting the training mean.

Set ``SKNAS_EXAMPLE_TINY=1`` for a budget of a few seconds.
"""

import os

import numpy as np
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknas import MLPNASRegressor, Reinforce
from sknas.datasets import load_wine_quality

TINY = os.environ.get("SKNAS_EXAMPLE_TINY") == "1"
if TINY:
    budget = dict(controller_epochs=1, samples_per_epoch=2, epochs=2,
                  strategy=Reinforce(train_steps=1))
else:
    budget = dict(controller_epochs=3, samples_per_epoch=5)

X, y = load_wine_quality(return_X_y=True, target="quality")
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)

search = MLPNASRegressor(random_state=0, verbose=1, **budget)
model = make_pipeline(StandardScaler(), search).fit(X_train, y_train)

search.top_architectures(5)  # verbose: prints the table
print(f"best architecture: {search.best_architecture_}")
pred = model.predict(X_test)  # in quality points: the target's standardisation is undone
mean = np.full(len(y_test), y_train.mean())
print(f"held-out test R^2: {r2_score(y_test, pred):.4f}, "
      f"RMSE: {np.sqrt(mean_squared_error(y_test, pred)):.4f}")
print(f"predicting the training mean: R^2 {r2_score(y_test, mean):.4f}, "
      f"RMSE {np.sqrt(mean_squared_error(y_test, mean)):.4f}")
