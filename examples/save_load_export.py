"""Save, load and export the model a search serves.

Three ways to keep a fitted search:

1. ``joblib.dump`` the whole pipeline (the estimator pickles its Keras model
   as a ``.keras`` archive) and ``joblib.load`` it back;
2. ``export_model`` writes the served model (by default the ensemble of the
   finalists' fold models, averaged inside one Keras model; with
   ``ensemble_size=0`` the winner's fold models) as a plain ``.keras`` file that
   loads with ``keras.models.load_model`` and no sknas at all; its outputs
   are the class probabilities in the order of ``classes_`` (one sigmoid unit
   for a binary problem), and it expects the features already scaled;
3. ``save_model`` writes that Keras file beside ``sknas_model.json``, which
   names the classes, the winner's architecture and what is served (the
   ensemble's members, their weights and fold models); ``load_model`` reads
   both back, without pickle, as a predictor with the labels.

Set ``SKNAS_EXAMPLE_TINY=1`` for a budget of a few seconds.
"""

import os

import joblib
import keras
import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknas import MLPNASClassifier, Reinforce, load_model
from sknas.datasets import load_wine_quality

TINY = os.environ.get("SKNAS_EXAMPLE_TINY") == "1"
if TINY:
    budget = dict(controller_epochs=1, samples_per_epoch=2, epochs=2,
                  strategy=Reinforce(train_steps=1))
else:
    budget = dict(controller_epochs=3, samples_per_epoch=5)

X, y = load_wine_quality(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y,
                                                    random_state=0)
model = make_pipeline(StandardScaler(), MLPNASClassifier(random_state=0, **budget))
model.fit(X_train, y_train)
search = model[-1]
print(f"best architecture: {search.best_architecture_}")

# 1. the whole pipeline, with joblib
joblib.dump(model, "wine_search.joblib")
loaded = joblib.load("wine_search.joblib")
same = np.array_equal(loaded.predict(X_test), model.predict(X_test))
print(f"wine_search.joblib: reloaded predictions identical: {same}")

# 2. the served model alone, as a plain Keras file
search.export_model("wine_winner.keras")
keras_model = keras.models.load_model("wine_winner.keras")
X_scaled = model[0].transform(X_test).astype("float32")
proba = np.asarray(keras_model.predict(X_scaled, verbose=0))
labels = search.classes_[proba.argmax(axis=1)]
agree = np.mean(labels == model.predict(X_test))
print(f"wine_winner.keras: {keras_model.count_params()} parameters, "
      f"agrees with the pipeline on {agree:.1%} of the test rows")

# 3. the served model and its description, without pickle
search.save_model("wine_model")
shipped = load_model("wine_model")
same = np.array_equal(shipped.predict(X_scaled), model.predict(X_test))
print(f"wine_model: winner {shipped.architecture_}; serves the {shipped.served_} "
      f"(refit={shipped.refit_!r}): " + ", ".join(
          f"{m['architecture']} (weight {m['weight']:.2f}, {m['n_fold_models']} fold models)"
          for m in shipped.members_) + f"; predictions identical: {same}")
print(f"held-out test accuracy: {model.score(X_test, y_test):.4f}")
