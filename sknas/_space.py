"""The search space: token vocabulary, validity rules and architecture forms.

An architecture is a tuple of hidden-layer token ids (1 to ``max_layers`` of
them); the end token, which appends the output layer, is implicit in the
tuple and explicit in the controller's token sequences.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

__all__ = ["SearchSpace"]

_DENSE_RE = re.compile(r"^(\d+)-([A-Za-z_]+)$")
_DROPOUT_RE = re.compile(r"^dropout\(([0-9.eE+-]+)\)$")
_OUTPUT_RE = re.compile(r"^(softmax|sigmoid|linear)\((\d+)\)$")


class SearchSpace:
    """Vocabulary and rules of the MLP search space.

    Token ids: ``0 .. n_dense - 1`` are the ``(units, activation)`` pairs in
    ``units`` x ``activations`` order, ``n_dense`` is the dropout token and
    ``n_dense + 1`` the end token.

    Parameters
    ----------
    units : sequence of int
        Layer widths.
    activations : sequence of str
        Keras activation names.
    dropout_rate : float
        Rate of the dropout token.
    max_layers : int
        Maximum number of hidden tokens (a dropout counts as one).
    """

    def __init__(self, units, activations, dropout_rate, max_layers):
        self.units = tuple(int(u) for u in units)
        self.activations = tuple(str(a) for a in activations)
        self.dropout_rate = float(dropout_rate)
        self.max_layers = int(max_layers)
        self.dense_tokens = [(u, a) for u in self.units for a in self.activations]
        self.n_dense = len(self.dense_tokens)
        self.dropout_token = self.n_dense
        self.end_token = self.n_dense + 1
        self.vocab_size = self.n_dense + 2

    # ------------------------------------------------------------------ rules
    def allowed(self, prefix):
        """Boolean mask of the tokens allowed after ``prefix`` (hidden tokens).

        Parameters
        ----------
        prefix : sequence of int
            Hidden tokens placed so far.

        Returns
        -------
        mask : ndarray of shape (vocab_size,), dtype=bool
        """
        mask = np.zeros(self.vocab_size, dtype=bool)
        t = len(prefix)
        if t >= self.max_layers:
            mask[self.end_token] = True
            return mask
        mask[: self.n_dense] = True
        if t >= 1:
            mask[self.end_token] = True
            mask[self.dropout_token] = prefix[-1] != self.dropout_token
        return mask

    def is_valid(self, arch):
        """Whether ``arch`` (a tuple of hidden tokens) obeys every rule."""
        arch = tuple(arch)
        if not 1 <= len(arch) <= self.max_layers:
            return False
        for t, tok in enumerate(arch):
            if not 0 <= tok < self.vocab_size or not self.allowed(arch[:t])[tok]:
                return False
        return True

    def sequence(self, arch):
        """The controller's token sequence for ``arch``: hidden tokens + end."""
        return tuple(arch) + (self.end_token,)

    @property
    def size(self):
        """Number of distinct valid architectures."""
        return self.n_completions(())

    def n_completions(self, prefix):
        """Number of valid architectures that start with ``prefix``."""
        prev_dropout = bool(prefix) and prefix[-1] == self.dropout_token
        return _count(len(prefix), prev_dropout, self.n_dense, self.max_layers)

    # ------------------------------------------------------------------ forms
    def layers(self, arch):
        """Machine form: a list of layer dicts for the hidden layers."""
        out = []
        for tok in arch:
            if tok == self.dropout_token:
                out.append({"type": "dropout", "rate": self.dropout_rate})
            else:
                units, act = self.dense_tokens[tok]
                out.append({"type": "dense", "units": units, "activation": act})
        return out

    def encode(self, layers):
        """Architecture (tuple of tokens) from its machine form.

        Raises
        ------
        ValueError
            If a layer is not in this search space or the rules are broken.
        """
        arch = []
        for layer in layers:
            kind = layer.get("type")
            if kind == "dropout":
                if not np.isclose(layer.get("rate"), self.dropout_rate):
                    raise ValueError(f"dropout rate {layer.get('rate')} is not the space's {self.dropout_rate}")
                arch.append(self.dropout_token)
            elif kind == "dense":
                key = (int(layer["units"]), str(layer["activation"]))
                if key not in self.dense_tokens:
                    raise ValueError(f"dense layer {key} is not in the search space")
                arch.append(self.dense_tokens.index(key))
            else:
                raise ValueError(f"unknown layer type {kind!r}; expected 'dense' or 'dropout'")
        arch = tuple(arch)
        if not self.is_valid(arch):
            raise ValueError(f"architecture {layers} breaks the search-space rules")
        return arch

    def describe(self, arch, output):
        """Readable form, e.g. ``'64-relu > dropout(0.2) > 32-elu > softmax(3)'``.

        ``output`` is the number of classes, or the output layer's readable
        name (such as ``'linear(1)'`` for a regressor).
        """
        return describe_layers(self.layers(arch), output)

    def parse(self, text):
        """Architecture (tuple of tokens) from its readable form."""
        return self.encode(parse_layers(text))


def output_layer_name(n_classes):
    """Readable name of the output layer for ``n_classes`` classes."""
    return "sigmoid(1)" if n_classes == 2 else f"softmax({n_classes})"


def describe_layers(layers, output):
    """Readable form of a list of hidden-layer dicts plus the output layer
    (``output``: a number of classes or the output layer's name)."""
    parts = []
    for layer in layers:
        if layer["type"] == "dropout":
            parts.append(f"dropout({layer['rate']:g})")
        else:
            parts.append(f"{layer['units']}-{layer['activation']}")
    parts.append(output if isinstance(output, str) else output_layer_name(output))
    return " > ".join(parts)


def parse_layers(text):
    """Hidden-layer dicts from a readable architecture string."""
    layers = []
    for part in (p.strip() for p in text.split(">")):
        if m := _DENSE_RE.match(part):
            layers.append({"type": "dense", "units": int(m.group(1)), "activation": m.group(2)})
        elif m := _DROPOUT_RE.match(part):
            layers.append({"type": "dropout", "rate": float(m.group(1))})
        elif _OUTPUT_RE.match(part):
            continue
        else:
            raise ValueError(f"cannot read layer {part!r} in {text!r}")
    return layers


@lru_cache(maxsize=None)
def _count(t, prev_dropout, n_dense, max_layers):
    if t >= max_layers:
        return 1
    total = n_dense * _count(t + 1, False, n_dense, max_layers)
    if t >= 1:
        total += 1  # end here
        if not prev_dropout:
            total += _count(t + 1, True, n_dense, max_layers)
    return total
