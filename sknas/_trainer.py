"""Candidate trainers: how an architecture is built, trained and scored.

Two trainers share one interface, ``trainer.train(candidates, data, seed)``:

* :class:`~sknas._population.PopulationTrainer` (the default) trains a whole
  population of candidates side by side in one compiled TensorFlow graph
  whose loop over epochs and mini-batches runs inside the graph, so the
  per-step framework overhead is paid once per population instead of once
  per candidate.
* :class:`~sknas._keras.KerasTrainer` builds a ``keras.Sequential`` per
  candidate and calls ``model.fit``: the plain Keras loop, kept as a
  reference and for users who want it.

Both start each dense layer from the given initial weights and return the
per-epoch validation accuracies and the trained weights. Both take SciPy
sparse rows (CSR) as well as dense ones.

The code lives in one module per idea; this one only gathers their names
(public and private) under the name they always had, so that ``from
sknas._trainer import X`` keeps working:

* :mod:`sknas._data`: the data and results every trainer shares
  (:class:`~sknas._data.Head`, :class:`~sknas._data.CandidateData`,
  :class:`~sknas._data.FoldRows`, :class:`~sknas._data.CandidateResult`),
  a candidate's shapes and initial weights, the memory check and
  :func:`~sknas._data.dense_batches`; no TensorFlow;
* :mod:`sknas._nets`: a candidate inside the population graph (forward and
  backward passes by hand, batch-normalisation rounds, losses);
* :mod:`sknas._population`: the population's state, its graph cache and
  garbage collection, and the :class:`~sknas._population.PopulationTrainer`;
* :mod:`sknas._keras`: the Keras model builder and the
  :class:`~sknas._keras.KerasTrainer`.

A test that patches a name patches it in the module whose code reads it
(``sknas._data.available_memory``, ``sknas._population._GC_EVERY_PARAMS``).
"""

from __future__ import annotations

from ._data import (_NAN_MESSAGE, _NONFINITE_WEIGHTS_MESSAGE, BN_EPSILON, BN_MOMENTUM,
                    BYTES_PER_PARAM, CandidateData, CandidateResult, FoldRows, Head, _all_finite,
                    _failed, _fold_inputs, _message, _quiet_retracing, _too_big, available_memory,
                    batch_norm_flags, dense_batches, dense_shapes, initial_weights, n_params)
from ._keras import KerasTrainer, _epoch_scores, build_keras_model, keras_optimizer, keras_weights
from ._nets import (_BN_ALIGN, _FUSED_ACTIVATIONS, _activation, _activation_grad, _batch_norm,
                    _batch_norm_grad, _batch_norm_inference, _BatchNormRound, _bn_padding,
                    _dense_grads, _drive, _graph_rows, _loss_and_grads, _matmul, _Net, _output,
                    _RowSource, backward_passes, forward_passes)
from ._population import (_ALIGN, _GC_EVERY, _GC_EVERY_PARAMS, _GRAPHS, _collect_graphs,
                          _GraphCache, _Group, _Population, PopulationTrainer)
from ._space import optimizer_settings

__all__ = ["CandidateData", "CandidateResult", "FoldRows", "Head", "PopulationTrainer",
           "KerasTrainer",
           "batch_norm_flags", "build_keras_model", "dense_batches", "dense_shapes",
           "initial_weights", "n_params", "optimizer_settings"]
