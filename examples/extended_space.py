"""Search the extended space: depth, batch normalisation, dropout rates, learning rate
and weight decay, chosen by the controller token by token.

Prints the size of each preset, the five best candidates with the decisions the
controller made for them, the mean reward of the candidates by learning rate and
by whether their first layer had batch normalisation, and the held-out
accuracy of the served model (by default an ensemble of the cross-validated
finalists' fold models).

Set ``SKNAS_EXAMPLE_TINY=1`` for a budget of a few seconds.
"""

import os

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknas import MLPNASClassifier, Reinforce, SearchSpace
from sknas.datasets import load_wine_quality

TINY = os.environ.get("SKNAS_EXAMPLE_TINY") == "1"

X, y = load_wine_quality(return_X_y=True)
if TINY:  # a stratified sample of 600 rows and a search of 6 candidates
    X, _, y, _ = train_test_split(X, y, train_size=600, stratify=y, random_state=0)
    budget = dict(controller_epochs=2, samples_per_epoch=3, epochs=3,
                  strategy=Reinforce(train_steps=1))
else:
    budget = {}
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y,
                                                    random_state=0)

for name in ("tutorial", "extended"):
    print(f"{name} space: {SearchSpace.from_preset(name).size:,} architectures")

search = MLPNASClassifier(space="extended", random_state=0, **budget)
pipe = make_pipeline(StandardScaler(), search).fit(X_train, y_train)

results = pd.DataFrame(search.search_results_)
results["first_layer_bn"] = [bool(layers[1].get("batch_norm")) for layers in results["layers"]]
columns = ["architecture", "reward", "learning_rate", "weight_decay", "n_layers"]
print(results.sort_values("rank")[columns].head(5).to_string(index=False))
print(results.groupby("learning_rate")["reward"].agg(["mean", "count"]).round(4).to_string())
print(results.groupby("first_layer_bn")["reward"].agg(["mean", "count"]).round(4).to_string())
print(f"best architecture: {search.best_architecture_}")
print(f"held-out test accuracy: {pipe.score(X_test, y_test):.4f}")
assert np.isfinite(results["reward"]).any()
