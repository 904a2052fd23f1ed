"""One-shot weight sharing: a table of dense-layer weights keyed by layer pairs."""

from __future__ import annotations

import numpy as np

__all__ = ["SharedWeights", "layer_keys"]


def _name(layer):
    return f"{layer['units']}-{layer['activation']}"


def layer_keys(layers):
    """Sharing keys of a candidate's dense layers, the output layer last.

    A key is ``(previous, this)``: the previous dense layer's
    ``'units-activation'`` (or ``'input'``) and this layer's (or ``'output'``).
    Dropout layers are transparent.
    """
    keys, prev = [], "input"
    for layer in layers:
        if layer["type"] == "dense":
            keys.append((prev, _name(layer)))
            prev = _name(layer)
    keys.append((prev, "output"))
    return keys


class SharedWeights:
    """In-memory table ``key -> (kernel, bias)`` of NumPy arrays."""

    def __init__(self):
        self.table = {}

    def __len__(self):
        return len(self.table)

    def __contains__(self, key):
        return tuple(key) in self.table

    def get(self, key, shape):
        """Stored ``(kernel, bias)`` for ``key`` if its kernel has ``shape``."""
        entry = self.table.get(tuple(key))
        if entry is None or entry[0].shape != tuple(shape):
            return None
        return entry

    def put(self, key, kernel, bias):
        """Store copies of a layer's trained weights."""
        self.table[tuple(key)] = (np.array(kernel, np.float32), np.array(bias, np.float32))

    def merge(self, layers_list, weights_list):
        """Store the weights of several candidates, in candidate order.

        Parameters
        ----------
        layers_list : list of list of dict
            Hidden layers of each candidate.
        weights_list : list of list of (kernel, bias)
            Trained dense weights of each candidate (output last); ``None``
            entries (failed candidates) are skipped.
        """
        for layers, weights in zip(layers_list, weights_list):
            if weights is None:
                continue
            for key, (kernel, bias) in zip(layer_keys(layers), weights):
                self.put(key, kernel, bias)

    def to_arrays(self):
        """Flat dict of arrays for ``np.savez`` (keys ``'prev|this|kernel'``)."""
        out = {}
        for (prev, this), (kernel, bias) in self.table.items():
            out[f"{prev}|{this}|kernel"] = kernel
            out[f"{prev}|{this}|bias"] = bias
        return out

    @classmethod
    def from_arrays(cls, arrays):
        """Inverse of :meth:`to_arrays`."""
        store = cls()
        for name in arrays:
            prev, this, part = name.split("|")
            if part == "kernel":
                store.put((prev, this), arrays[name], arrays[f"{prev}|{this}|bias"])
        return store
