"""One-shot weight sharing: a table of dense-layer weights keyed by layer pairs.

A dense layer with batch normalisation is named ``'units-activation-bn'``: it
shares its kernel, bias, scale, offset and moving statistics only with the
same layer with batch normalisation after the same previous layer, and the
layer after it keys on that name too (its input is normalised). Dropout
layers and a candidate's own training settings (learning rate, weight
decay, label smoothing) are transparent: nets that differ only in those
share every layer. Its input transform is not: a first layer that sees the
``'robust'`` input keys on ``'input-robust'``, so it never starts from
weights trained on the raw features, nor hands its own to them. Nor are its
members (``SearchSpace``'s ``members``): the first layer of ``k > 1``
members sees inputs scaled by their adapters and keys on ``'input-k8'``
(``'input-robust-k8'``...), and their output layers, with the adapters, on
``'output-k8'``; the hidden layers between are shared with plain nets.
Learned input scaling (``input_scaling``) keys the same way, on
``'input-scale'`` and ``'output-scale'`` (its scale lives with the output
layer, as a member's adapter does). An embedding's arrays (``'plr'``,
``'pbld'``) have a key of their own, ``('input-plr', 'embedding')``, beside
its first layer's ``'input-plr'``.
"""

from __future__ import annotations

import numpy as np

from ._space import embedding_kind, has_adapters, n_members

__all__ = ["SharedWeights", "embedding_key", "layer_keys"]


_PARTS = ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance")
#: the arrays of the output layer of k > 1 members
_MEMBER_PARTS = ("kernel", "bias", "adapters")
#: the arrays of an embedding (the last of a candidate's output layer), stored
#: under ``('input-plr', 'embedding')`` (``'input-pbld'``...): shared by every
#: candidate that embeds its features so
_EMBEDDING_PARTS = {"input-plr": ("frequencies", "kernel", "bias"),
                    "input-pbld": ("frequencies", "phases", "kernel", "bias")}


def embedding_key(layers):
    """The key of the candidate's embedding arrays in the table."""
    return (f"input-{embedding_kind(layers)}", "embedding")


def _parts(key):
    """Names of the arrays stored under ``key``."""
    if key[1] == "embedding":
        return _EMBEDDING_PARTS[key[0]]
    return _MEMBER_PARTS if key[1].startswith("output-k") else _PARTS


def _name(layer):
    return f"{layer['units']}-{layer['activation']}{'-bn' if layer.get('batch_norm') else ''}"


def layer_keys(layers):
    """Sharing keys of a candidate's dense layers, the output layer last.

    A key is ``(previous, this)``: the previous dense layer's
    ``'units-activation'`` (or ``'input'``, ``'input-robust'`` after the
    robust input transform, ``'input-k8'`` for 8 members, ``'input-scale'``
    with learned input scaling) and this layer's (or ``'output'``,
    ``'output-k8'``, ``'output-scale'``). Dropout layers and the rest of the
    ``'optimizer'`` entry are transparent.
    """
    k = n_members(layers)
    tag = f"-k{k}" if k > 1 else "-scale" if has_adapters(layers) else ""
    keys, prev, output = [], "input", f"output{tag}"
    for layer in layers:
        if layer["type"] == "optimizer":
            if layer.get("input", "none") != "none":
                prev = f"input-{layer['input']}"
            prev += tag
        if layer["type"] == "dense":
            keys.append((prev, _name(layer)))
            prev = _name(layer)
    keys.append((prev, output))
    return keys


def _finite(*arrays):
    """Whether every value of every array in ``arrays`` is finite."""
    return all(np.all(np.isfinite(a)) for a in arrays)


class SharedWeights:
    """In-memory table ``key -> (kernel, bias[, gamma, beta, moving_mean,
    moving_variance])`` of NumPy arrays.

    Every stored value is finite: a NaN or infinite weight would be handed to
    every later candidate that shares the layer, and to the refit.
    """

    def __init__(self):
        self.table = {}

    def __len__(self):
        return len(self.table)

    def __contains__(self, key):
        return tuple(key) in self.table

    def get(self, key, shape):
        """Stored arrays for ``key`` if its kernel has ``shape``."""
        entry = self.table.get(tuple(key))
        if entry is None or entry[0].shape != tuple(shape):
            return None
        return entry

    def put(self, key, *arrays):
        """Store copies of a layer's trained weights (``kernel, bias`` and,
        with batch normalisation, its four arrays; members' adapters after
        their output layer's).

        Raises
        ------
        ValueError
            If an array holds a NaN or infinite value.
        """
        arrays = tuple(np.array(a, np.float32) for a in arrays)
        if not _finite(*arrays):
            raise ValueError(f"the weights of layer pair {tuple(key)} are not all finite; "
                             "they cannot be shared")
        self.table[tuple(key)] = arrays

    def merge(self, layers_list, weights_list):
        """Store the weights of several candidates, in candidate order.

        Parameters
        ----------
        layers_list : list of list of dict
            Hidden layers of each candidate.
        weights_list : list of list of tuple of ndarray
            Trained dense weights of each candidate (output last); ``None``
            entries (failed candidates) are skipped, and so is a candidate
            with any NaN or infinite weight, as a whole (the trainers already
            report such a candidate as failed).
        """
        for layers, weights in zip(layers_list, weights_list):
            if weights is None or not _finite(*(a for pair in weights for a in pair)):
                continue
            weights = list(weights)
            if embedding_kind(layers):  # its arrays, last in the output layer's, have their key
                n = len(_parts(embedding_key(layers)))
                self.put(embedding_key(layers), *weights[-1][-n:])
                weights[-1] = weights[-1][:-n]
            for key, arrays in zip(layer_keys(layers), weights):
                self.put(key, *arrays)

    def to_arrays(self):
        """Flat dict of arrays for ``np.savez`` (keys ``'prev|this|kernel'``)."""
        out = {}
        for (prev, this), arrays in self.table.items():
            for part, a in zip(_parts((prev, this)), arrays):
                out[f"{prev}|{this}|{part}"] = a
        return out

    @classmethod
    def from_arrays(cls, arrays):
        """Inverse of :meth:`to_arrays`.

        A layer pair with a NaN or infinite value (as in a checkpoint written
        before the trainers checked their trained weights) is left out, so
        that layer starts afresh.
        """
        store = cls()
        for name in arrays:
            prev, this, part = name.split("|")
            if part != "kernel":
                continue
            parts = [arrays[f"{prev}|{this}|{p}"] for p in _parts((prev, this))
                     if f"{prev}|{this}|{p}" in arrays]
            if _finite(*parts):
                store.put((prev, this), *parts)
        return store
