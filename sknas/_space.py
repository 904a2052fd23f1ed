"""The search space: token vocabulary, validity rules and architecture forms.

An architecture is a tuple of token ids: the candidate's own decisions
(learning rate, weight decay) when the space searches them, then its hidden
layers (a dense token, followed by a batch-normalisation token when the
space decides that per layer, or a dropout token), 1 to ``max_layers`` of
them. The end token, which appends the output layer, is implicit in the
tuple and explicit in the controller's token sequences.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import numpy as np

__all__ = ["INPUT_TRANSFORMS", "LR_SCHEDULES", "PRESETS", "SearchSpace"]

_DENSE_RE = re.compile(r"^(\d+)-([A-Za-z_]+?)(-bn)?$")
_DROPOUT_RE = re.compile(r"^dropout\(([0-9.eE+-]+)\)$")
_OUTPUT_RE = re.compile(r"^(softmax|sigmoid|linear)\((\d+)\)$")
_OPTIMIZER_RE = re.compile(r"^adam\((.*)\)$")
_SHORT = {"input": "in", "learning_rate": "lr", "weight_decay": "wd", "schedule": "sched",
          "label_smoothing": "ls", "members": "k", "scaling": "scale"}
#: the input transforms a candidate can take (see ``SearchSpace``'s ``input_transforms``)
INPUT_TRANSFORMS = ("none", "robust", "ple", "plr", "pbld")
#: the learning-rate schedules a candidate can take (see ``SearchSpace``'s ``lr_schedules``)
LR_SCHEDULES = ("constant", "cosine", "coslog4")
#: settings whose values are names, not numbers
_NAMED = {"input": INPUT_TRANSFORMS, "schedule": LR_SCHEDULES}
#: settings whose values are whole numbers
_INTEGER = {"members", "scaling"}

_PARAMS = ("units", "activations", "dropout_rates", "max_layers", "batch_norm",
           "learning_rates", "weight_decays", "label_smoothings", "input_transforms",
           "lr_schedules", "members", "input_scaling")

#: Named spaces (the estimators' ``space`` parameter): keyword arguments of
#: :class:`SearchSpace`.
PRESETS = {
    # the tutorial's: 28 dense tokens, one dropout rate, two hidden tokens, 840 architectures
    "tutorial": {},
    # depth, per-layer batch normalisation and dropout rates, and each candidate's Adam
    # learning rate and weight decay, all decided by the controller; widths up to 256 and
    # three hidden layers keep a trained candidate's time near the tutorial's (with 512
    # and four layers it took 3 to 12 times as long on the suite, benchmarks/RESULTS.md)
    "extended": {"units": (8, 16, 32, 64, 128, 256), "dropout_rates": (0.1, 0.3, 0.5),
                 "max_layers": 3, "batch_norm": (False, True),
                 "learning_rates": (0.001, 0.003, 0.01, 0.03),
                 "weight_decays": (0.0, 0.01, 0.1)},
    # the extended space with ingredients of the strongest tabular nets of 2022-2025 as
    # decisions: a robust, smoothly clipped input (RealMLP), label smoothing (RealMLP-TD's
    # 0.1) and two newer activations (SELU, SiLU) beside the tutorial's
    "modern": {"units": (8, 16, 32, 64, 128, 256), "dropout_rates": (0.1, 0.3, 0.5),
               "activations": ("sigmoid", "tanh", "relu", "elu", "selu", "silu"),
               "max_layers": 3, "batch_norm": (False, True),
               "learning_rates": (0.001, 0.003, 0.01, 0.03),
               "weight_decays": (0.0, 0.01, 0.1),
               "label_smoothings": (0.0, 0.1), "input_transforms": ("none", "robust"),
               "lr_schedules": ("constant", "cosine")},
}


class SearchSpace:
    """Vocabulary and rules of the MLP search space.

    The controller builds a candidate token by token: first the candidate's
    own decisions (its input transform, its Adam learning rate, its weight
    decay, its learning-rate schedule and its label smoothing, each only
    when the space searches it),
    then its hidden layers, then the end token.
    A hidden layer is a dense token (a width and an activation), followed by
    a batch-normalisation token (on or off) when the space leaves that
    choice to the controller, or a dropout token (one per rate; not first,
    not twice in a row). Each kind of decision has its own tokens, so its
    own embeddings and its own mask.

    With the defaults the space is the tutorial's: 7 widths x 4 activations,
    one dropout rate, at most two hidden tokens: 840 architectures. The
    preset ``SearchSpace.from_preset('extended')`` searches depth (up to 3),
    batch normalisation, dropout rates, learning rate and weight decay;
    ``'modern'`` adds the input transform, the learning-rate schedule, label
    smoothing and the SELU and SiLU activations.

    Parameters are stored as given and checked when the space is first used
    (or by :meth:`check`), as scikit-learn does; the space has
    ``get_params`` and ``set_params``, so an estimator's ``space`` can be
    tuned by ``GridSearchCV`` (``space__max_layers``...).

    Token ids: ``0 .. n_dense - 1`` are the ``(units, activation)`` pairs in
    ``units`` x ``activations`` order, then one dropout token per rate, then
    the end token, then (when searched) the batch-normalisation tokens (off,
    on), the input-transform tokens, the learning-rate tokens, the
    weight-decay tokens, the schedule tokens, the label-smoothing tokens,
    the members tokens and the input-scaling tokens.

    Parameters
    ----------
    units : sequence of int, default=(8, 16, 32, 64, 128, 256, 512)
        Layer widths.
    activations : sequence of str, default=('sigmoid', 'tanh', 'relu', 'elu')
        Keras activation names.
    dropout_rates : float or sequence of float, default=0.2
        Rates of the dropout tokens (one token per rate).
    max_layers : int, default=2
        Maximum number of hidden layers (a dropout counts as one).
    batch_norm : bool or sequence of bool, default=False
        ``False``: no batch normalisation; ``True``: every dense layer is
        followed by one; ``(False, True)``: the controller decides per
        dense layer.
    learning_rates : sequence of float or None, default=None
        Adam learning rates the controller chooses from per candidate; None
        trains every candidate with the estimator's ``learning_rate``.
    weight_decays : sequence of float or None, default=None
        Decoupled weight decays (Keras' ``Adam(weight_decay=...)``, on the
        kernels) the controller chooses from per candidate; None: no decay.
    label_smoothings : sequence of float or None, default=None
        Label smoothing of a classifier's training loss (Keras'
        ``label_smoothing``: the one-hot target becomes ``(1 - e) * onehot +
        e / n_classes``, a binary one ``(1 - e) * y + e / 2``) the controller
        chooses from per candidate; None: none. Only the training loss
        changes: the reward is still the validation accuracy. A regressor
        needs None or ``(0.0,)``.
    input_transforms : sequence of {'none', 'robust', 'ple', 'plr', 'pbld'} or None, default=None
        What a candidate does to its input features before its first layer,
        chosen per candidate: ``'none'`` takes them as given; ``'robust'``
        centres each feature on its median, divides it by its robust scale
        (interquartile range / 1.349, else half its range, else 1; computed
        on the fit's training rows) and clips it smoothly, ``x -> 3 *
        tanh(x / 3)``, so that heavy tails and outliers reach the first
        layer tamed (after RealMLP's robust scaling and smooth clipping).
        ``'ple'``: each feature becomes 16 features, its piecewise-linear
        encoding on 16 bins between its quantiles (bin ``t`` of a value is
        0 below the bin, 1 above it and linear inside; Gorishniy et al.,
        2022), so the first layer can bend each feature's effect.
        ``'plr'``: the robust, smoothly clipped features, each then embedded
        in 8 learned numbers: the cosines and sines of 16 learned
        frequencies of the feature, a linear layer shared by the features,
        and a ReLU (the periodic embeddings of Gorishniy et al., 2022, in
        their "lite" form), trained at a tenth of the net's learning rate.
        ``'pbld'``: RealMLP's variant of it, each robust, clipped feature
        kept beside 3 learned numbers: the cosines of 16 learned
        frequencies and phases of the feature, then a linear layer of its
        own (no activation), also at a tenth of the learning rate.
        The statistics are the fit's training rows';
        the served Keras model holds the transform as built-in layers and
        Keras operations. Dense ``X`` only. None: ``'none'``.
    lr_schedules : sequence of {'constant', 'cosine', 'coslog4'} or None, default=None
        How a candidate's learning rate moves over its training, chosen per
        candidate: ``'constant'``; ``'cosine'`` decays it to 0 along a half
        cosine over the training's planned steps (Keras' ``CosineDecay``);
        ``'coslog4'`` is RealMLP's: four cosine cycles, each twice as long
        as the last, from 0 up to the rate and back (``0.5 * (1 - cos(2 * pi
        * log2(1 + 15 * t)))`` at the fraction ``t`` of the steps taken). The
        decoupled weight decay follows the rate. The finalists and the refit
        run their own schedule over their own epochs. None: ``'constant'``.
    members : sequence of int or None, default=None
        How many members a candidate's network holds, chosen per candidate
        (after TabM-mini, Gorishniy et al., 2025): ``k > 1`` members share
        every hidden layer, each multiplies the input features by its own
        vector (its adapter, initialised to random signs) and has its own
        output layer; they train together, each on its own loss (the loss
        is their mean), and the candidate predicts their mean probability
        (or mean value). ``1`` is a plain MLP. Dense ``X`` only. None: 1.
    input_scaling : bool or sequence of bool, default=False
        Whether a candidate multiplies its input features (after its input
        transform) by a learned vector, one scale per feature, initialised
        to ones and trained with the net, without weight decay (RealMLP's
        parametric scaling layer, Holzmüller et al., 2024): it lets the net
        weigh each feature before the first layer mixes them. ``(False,
        True)``: the controller decides per candidate. It is the input
        adapter of a net of one member, so a space does not search it with
        ``members`` above 1 (whose adapters scale each feature per member
        already). Dense ``X`` only.

    Attributes
    ----------
    size : int
        Number of distinct valid architectures.
    vocab_size : int
        Number of tokens.
    max_length : int
        Length of the longest token sequence (the end token included).
    """

    def __init__(self, units=(8, 16, 32, 64, 128, 256, 512),
                 activations=("sigmoid", "tanh", "relu", "elu"), dropout_rates=0.2,
                 max_layers=2, batch_norm=False, learning_rates=None, weight_decays=None,
                 label_smoothings=None, input_transforms=None, lr_schedules=None,
                 members=None, input_scaling=False):
        self.units = units
        self.activations = activations
        self.dropout_rates = dropout_rates
        self.max_layers = max_layers
        self.batch_norm = batch_norm
        self.learning_rates = learning_rates
        self.weight_decays = weight_decays
        self.label_smoothings = label_smoothings
        self.input_transforms = input_transforms
        self.lr_schedules = lr_schedules
        self.members = members
        self.input_scaling = input_scaling

    @classmethod
    def from_preset(cls, name):
        """The named space: ``'tutorial'``, ``'extended'`` or ``'modern'`` (see
        :data:`PRESETS`)."""
        if name not in PRESETS:
            raise ValueError(f"unknown search-space preset {name!r}; the presets are "
                             f"{', '.join(repr(k) for k in PRESETS)}")
        return cls(**PRESETS[name])

    # ------------------------------------------------------------ parameters
    def get_params(self, deep=True):
        """The constructor's parameters, as given."""
        return {k: getattr(self, k) for k in _PARAMS}

    def set_params(self, **params):
        """Set constructor parameters; returns the space."""
        for k, v in params.items():
            if k not in _PARAMS:
                raise ValueError(f"Invalid parameter {k!r} for SearchSpace; valid parameters "
                                 f"are {', '.join(_PARAMS)}")
            setattr(self, k, v)
        return self

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if name in _PARAMS:
            self.__dict__.pop("_g", None)

    def __repr__(self):
        defaults = SearchSpace.__init__.__defaults__
        given = [f"{k}={getattr(self, k)!r}" for k, d in zip(_PARAMS, defaults)
                 if _differs(getattr(self, k), d)]
        return f"SearchSpace({', '.join(given)})"

    def __eq__(self, other):
        return isinstance(other, SearchSpace) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def _key(self):
        g = self._grammar
        return (g.units, g.activations, g.dropout_rates, g.max_layers, g.batch_norm,
                g.learning_rates, g.weight_decays, g.label_smoothings, g.input_transforms,
                g.lr_schedules, g.members, g.scalings)

    def __getstate__(self):
        return {k: getattr(self, k) for k in _PARAMS}

    def __setstate__(self, state):
        for k, v in state.items():
            setattr(self, k, v)

    def check(self):
        """Check the parameters; returns the space.

        Raises
        ------
        ValueError
            Naming the parameter to fix: an empty choice set, a repeated
            value, a width that is not a positive integer, a dropout rate
            outside ``[0, 1)``, a learning rate that is not positive, a
            negative weight decay, a label smoothing outside ``[0, 1)``, an
            unknown input transform or schedule, a number of members that is
            not a positive integer, ``input_scaling`` with members above 1,
            ``max_layers`` below 1.
        """
        self._grammar  # noqa: B018 -- builds (and checks) the grammar
        return self

    @property
    def _grammar(self):
        g = self.__dict__.get("_g")
        if g is None:
            g = _Grammar(self)
            self.__dict__["_g"] = g
        return g

    def __getattr__(self, name):
        # derived attributes (vocabulary, tokens) come from the checked grammar
        if name.startswith("__") or name in _PARAMS or name in ("_g", "_grammar"):
            raise AttributeError(name)
        g = self._grammar
        if name in _Grammar.PUBLIC:
            return getattr(g, name)
        raise AttributeError(f"'SearchSpace' object has no attribute {name!r}")

    # ------------------------------------------------------------------ rules
    def allowed(self, prefix):
        """Boolean mask of the tokens allowed after ``prefix``.

        Parameters
        ----------
        prefix : sequence of int
            Tokens placed so far.

        Returns
        -------
        mask : ndarray of shape (vocab_size,), dtype=bool
        """
        g = self._grammar
        mask = np.zeros(g.vocab_size, dtype=bool)
        t = len(prefix)
        if t < g.n_pre:
            mask[g.pre[t][1]] = True
            return mask
        body = prefix[g.n_pre:]
        if g.bn_tokens and body and body[-1] < g.n_dense:
            mask[g.bn_tokens] = True
            return mask
        n_layers, last = g.layer_state(body)
        if n_layers >= g.max_layers:
            mask[g.end_token] = True
            return mask
        mask[: g.n_dense] = True
        if n_layers >= 1:
            mask[g.end_token] = True
            if last not in g.dropout_tokens:
                mask[g.dropout_tokens] = True
        return mask

    def is_valid(self, arch):
        """Whether ``arch`` (a tuple of tokens, end left out) obeys every rule."""
        arch = tuple(arch)
        g = self._grammar
        for t, tok in enumerate(arch):
            if not 0 <= tok < g.vocab_size or tok == g.end_token or not self.allowed(arch[:t])[tok]:
                return False
        return bool(self.allowed(arch)[g.end_token]) and len(arch) > g.n_pre

    def sequence(self, arch):
        """The controller's token sequence for ``arch``: its tokens + end."""
        return tuple(arch) + (self.end_token,)

    @property
    def size(self):  # noqa: D401 -- documented in the class's Attributes
        return self.n_completions(())

    def n_completions(self, prefix):
        """Number of valid architectures that start with ``prefix``."""
        g = self._grammar
        t = len(prefix)
        if t < g.n_pre:
            return math.prod(len(tokens) for _, tokens in g.pre[t:]) * g.count(0, False)
        body = tuple(prefix[g.n_pre:])
        n_layers, last = g.layer_state(body)
        if g.bn_tokens and body and body[-1] < g.n_dense:
            return len(g.bn_tokens) * g.count(n_layers, False)
        return g.count(n_layers, last in g.dropout_tokens)

    @property
    def max_length(self):  # documented in the class's Attributes
        g = self._grammar
        return g.n_pre + g.max_layers * (2 if g.bn_tokens else 1) + 1

    # ------------------------------------------------------------------ forms
    def layers(self, arch):
        """Machine form: a list of dicts, the candidate's settings first.

        A ``{'type': 'optimizer', 'learning_rate': ..., 'weight_decay': ...}``
        entry (also ``'input'``, ``'schedule'``, ``'label_smoothing'``, ``'members'`` and
        ``'scaling'`` (0 or 1): the candidate's own settings) leads when the space searches any of them (with the
        keys it searches); then ``{'type': 'dense', 'units', 'activation'}`` (plus
        ``'batch_norm': True`` when the layer has it) and
        ``{'type': 'dropout', 'rate'}`` entries.
        """
        g = self._grammar
        out = []
        if g.settings:
            settings = {"type": "optimizer"}
            settings.update((name, values[0]) for name, values in g.settings.items())
            for t, (name, tokens) in enumerate(g.pre):
                settings[name] = g.settings[name][tokens.index(arch[t])]
            out.append(settings)
        for tok in arch[g.n_pre:]:
            if tok in g.dropout_tokens:
                out.append({"type": "dropout", "rate": g.dropout_rates[tok - g.n_dense]})
            elif tok in g.bn_tokens:
                if g.batch_norm[g.bn_tokens.index(tok)]:
                    out[-1]["batch_norm"] = True
            else:
                units, act = g.dense_tokens[tok]
                layer = {"type": "dense", "units": units, "activation": act}
                if g.batch_norm == (True,):
                    layer["batch_norm"] = True
                out.append(layer)
        return out

    def encode(self, layers):
        """Architecture (tuple of tokens) from its machine form.

        Raises
        ------
        ValueError
            If a layer or setting is not in this search space or the rules
            are broken.
        """
        g = self._grammar
        layers = list(layers)
        arch = []
        searched = bool(g.settings)
        settings = layers[0] if layers and layers[0].get("type") == "optimizer" else None
        if searched and settings is None:
            raise ValueError("the architecture has no 'optimizer' entry (its own settings: "
                             "learning rate, weight decay...) but this search space searches them")
        if settings is not None:
            if not searched:
                raise ValueError("the architecture has an 'optimizer' entry but this search "
                                 "space searches no candidate settings (learning rate, weight "
                                 "decay, label smoothing, input transform)")
            layers = layers[1:]
            for name in _SHORT:
                values = g.settings.get(name)
                if (values is None) != (name not in settings):
                    raise ValueError(f"the architecture's {name} does not match the space's")
                if values is None:
                    continue
                k = (values.index(settings[name]) if name in _NAMED and settings[name] in values
                     else None if name in _NAMED else _index_close(values, settings[name]))
                if k is None:
                    raise ValueError(f"{name} {settings[name]} is not in the space's {values}")
                tokens = dict(g.pre).get(name)
                if tokens is not None:
                    arch.append(tokens[k])
        for layer in layers:
            kind = layer.get("type")
            if kind == "dropout":
                k = _index_close(g.dropout_rates, layer.get("rate"))
                if k is None:
                    raise ValueError(f"dropout rate {layer.get('rate')} is not in the space's "
                                     f"{g.dropout_rates}")
                arch.append(g.dropout_tokens[k])
            elif kind == "dense":
                key = (int(layer["units"]), str(layer["activation"]))
                if key not in g.dense_tokens:
                    raise ValueError(f"dense layer {key} is not in the search space")
                arch.append(g.dense_tokens.index(key))
                bn = bool(layer.get("batch_norm", False))
                if bn not in g.batch_norm:
                    raise ValueError(f"batch_norm={bn} is not in the space's {g.batch_norm}")
                if g.bn_tokens:
                    arch.append(g.bn_tokens[g.batch_norm.index(bn)])
            else:
                raise ValueError(f"unknown layer type {kind!r}; expected 'dense' or 'dropout' "
                                 "(and an 'optimizer' entry first)")
        arch = tuple(arch)
        if not self.is_valid(arch):
            raise ValueError(f"architecture {layers} breaks the search-space rules")
        return arch

    def describe(self, arch, output):
        """Readable form, e.g. ``'64-relu > dropout(0.2) > 32-elu > softmax(3)'``.

        ``output`` is the number of classes, or the output layer's readable
        name (such as ``'linear(1)'`` for a regressor). A dense layer with
        batch normalisation reads ``'64-relu-bn'``; searched training
        settings lead, as ``'adam(lr=0.003, wd=0.01)'`` (with ``in=robust``,
        ``sched=cosine``, ``ls=0.1``, ``k=8`` and ``scale=1`` for an input
        transform, a schedule, a label smoothing, a number of members and the
        input scaling).
        """
        return describe_layers(self.layers(arch), output)

    def parse(self, text):
        """Architecture (tuple of tokens) from its readable form."""
        return self.encode(parse_layers(text))


class _Grammar:
    """The checked, derived form of a :class:`SearchSpace`."""

    PUBLIC = {"dense_tokens", "n_dense", "dropout_token", "dropout_tokens", "end_token",
              "bn_tokens", "vocab_size", "n_pre", "pre", "dropout_rate"}

    def __init__(self, space):
        self.units = _ints(space.units)
        self.label_smoothings = (None if space.label_smoothings is None else
                                 _floats(space.label_smoothings, "label_smoothings", lo=0.0,
                                         hi=1.0))
        self.input_transforms = _names(space.input_transforms, "input_transforms",
                                       INPUT_TRANSFORMS)
        self.lr_schedules = _names(space.lr_schedules, "lr_schedules", LR_SCHEDULES)
        self.members = (None if space.members is None else
                        _ints(space.members, "members", "a number of members"))
        scaling = _bools(space.input_scaling, "input_scaling")
        self.scalings = None if scaling == (False,) else tuple(int(b) for b in scaling)
        if self.scalings and max(self.scalings) and max(self.members or (1,)) > 1:
            raise ValueError(
                f"input_scaling={space.input_scaling!r} with members={space.members!r}: a net of "
                "members scales each feature per member already (its adapters), so a space "
                "searches one or the other; use input_scaling=False, or members=None")
        self.activations = _strs(space.activations)
        self.dropout_rates = _floats(space.dropout_rates, "dropout_rates", lo=0.0, hi=1.0)
        self.max_layers = _max_layers(space.max_layers)
        self.batch_norm = _bools(space.batch_norm, "batch_norm")
        self.learning_rates = (None if space.learning_rates is None else
                               _floats(space.learning_rates, "learning_rates", lo=0.0,
                                       lo_open=True))
        self.weight_decays = (None if space.weight_decays is None else
                              _floats(space.weight_decays, "weight_decays", lo=0.0))
        self.dense_tokens = [(u, a) for u in self.units for a in self.activations]
        self.n_dense = len(self.dense_tokens)
        self.dropout_tokens = list(range(self.n_dense, self.n_dense + len(self.dropout_rates)))
        self.dropout_token = self.dropout_tokens[0]
        self.dropout_rate = self.dropout_rates[0]
        self.end_token = self.n_dense + len(self.dropout_rates)
        nxt = self.end_token + 1
        self.bn_tokens = []
        if len(self.batch_norm) > 1:
            n_bn = len(self.batch_norm)
            self.bn_tokens, nxt = list(range(nxt, nxt + n_bn)), nxt + n_bn
        # the candidate's own training settings the space searches: name -> values
        self.settings = {name: values for name, values in (
            ("input", self.input_transforms), ("learning_rate", self.learning_rates),
            ("weight_decay", self.weight_decays), ("schedule", self.lr_schedules),
            ("label_smoothing", self.label_smoothings), ("members", self.members),
            ("scaling", self.scalings))
            if values is not None}
        self.pre = []  # (name, tokens) of the candidate's own decisions, in order
        for name, values in self.settings.items():
            if len(values) > 1:
                self.pre.append((name, list(range(nxt, nxt + len(values)))))
                nxt += len(values)
        self.n_pre = len(self.pre)
        self.vocab_size = nxt

    def layer_state(self, body):
        """Layers placed in ``body`` (hidden tokens) and the last layer token."""
        layer_tokens = [t for t in body if t < self.end_token]
        return len(layer_tokens), (layer_tokens[-1] if layer_tokens else None)

    def count(self, t, prev_dropout):
        return _count(t, prev_dropout, self.n_dense * max(1, len(self.bn_tokens)),
                      len(self.dropout_rates), self.max_layers)


def _differs(a, b):
    """Whether a parameter value ``a`` differs from its default ``b`` (lists and tuples
    of equal items are equal)."""
    try:
        a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
        return a.shape != b.shape or bool(np.any(a != b))
    except (TypeError, ValueError):
        return True


def _index_close(values, x):
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    for k, v in enumerate(values):
        if np.isclose(v, x, rtol=1e-6, atol=1e-12):
            return k
    return None


def _ints(values, name="units", item="a width"):
    """A non-empty tuple of distinct positive ints (``name``'s values, each ``item``)."""
    try:
        arr = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.size == 0 or not all(float(u).is_integer() and u >= 1 for u in arr):
        raise ValueError(f"{name} must be a non-empty sequence of positive integers; "
                         f"got {values!r}")
    if len(set(arr.tolist())) != arr.size:
        raise ValueError(f"{name} must not repeat {item}; got {values!r}")
    return tuple(int(u) for u in arr)


def _bools(value, name):
    """``(value,)`` for a bool, else a non-empty tuple of distinct bools."""
    try:
        out = ((bool(value),) if isinstance(value, (bool, np.bool_)) else
               tuple(bool(b) for b in value))
    except TypeError:
        out = ()
    if not out or len(set(out)) != len(out):
        raise ValueError(f"{name} must be True, False or a sequence of distinct bools "
                         f"such as (False, True); got {value!r}")
    return out


def _strs(activations):
    names = [str(a) for a in np.asarray(activations, dtype=object).ravel()]
    if not names or len(set(names)) != len(names):
        raise ValueError("activations must be a non-empty sequence of distinct Keras activation "
                         f"names; got {activations!r}")
    return tuple(names)


def _floats(values, name, lo=None, hi=None, lo_open=False):
    """A non-empty tuple of distinct floats in ``[lo, hi)`` (``(lo, hi)`` if ``lo_open``)."""
    try:
        arr = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        arr = np.zeros(0)
    ok = arr.size > 0 and bool(np.all(np.isfinite(arr)))
    if ok and lo is not None:
        ok = bool(np.all(arr > lo) if lo_open else np.all(arr >= lo))
    if ok and hi is not None:
        ok = bool(np.all(arr < hi))
    if not ok:
        rng = (f"{'(' if lo_open else '['}{lo:g}, {'inf' if hi is None else f'{hi:g}'})")
        raise ValueError(f"{name} must be a non-empty sequence of numbers in {rng}; "
                         f"got {values!r}")
    if len(set(arr.tolist())) != arr.size:
        raise ValueError(f"{name} must not repeat a value; got {values!r}")
    return tuple(float(v) for v in arr)


def _names(values, name, allowed):
    """None, or a non-empty tuple of distinct names among ``allowed``."""
    if values is None:
        return None
    names = ([values] if isinstance(values, str) else
             [str(v) for v in np.asarray(values, dtype=object).ravel()])
    if not names or len(set(names)) != len(names) or set(names) - set(allowed):
        raise ValueError(f"{name} must be None or a non-empty sequence of distinct names "
                         f"among {allowed}; got {values!r}")
    return tuple(names)


def _max_layers(value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"max_layers must be an int of at least 1; got {value!r}")
    return int(value)


def candidate_settings(layers):
    """The candidate's own settings from its ``'optimizer'`` entry (see
    :meth:`SearchSpace.layers`): a dict with ``input``, ``learning_rate``,
    ``weight_decay``, ``schedule``, ``label_smoothing``, ``members`` and
    ``scaling``, each None where the candidate has none."""
    entry = next((layer for layer in layers if layer["type"] == "optimizer"), {})
    values = {name: entry.get(name) for name in _SHORT}
    return {name: v if v is None or name in _NAMED else int(v) if name in _INTEGER else float(v)
            for name, v in values.items()}


def n_members(layers):
    """The candidate's number of members (see ``SearchSpace``'s ``members``): 1
    for a plain MLP."""
    return candidate_settings(layers)["members"] or 1


def has_adapters(layers):
    """Whether the candidate multiplies its input features by learned vectors
    before its first layer: a net of ``k > 1`` members (one adapter per
    member) or of learned input scaling (one; see ``SearchSpace``'s
    ``input_scaling``)."""
    return n_members(layers) > 1 or bool(candidate_settings(layers)["scaling"])


#: the input transforms that embed each feature with learned parameters
EMBEDDINGS = ("plr", "pbld")


def embedding_kind(layers):
    """The candidate's embedding of its features before its first layer, with
    learned parameters (the ``'plr'`` or ``'pbld'`` input transform); None
    without one."""
    transform = candidate_settings(layers)["input"]
    return transform if transform in EMBEDDINGS else None


def optimizer_settings(layers):
    """The candidate's own ``(learning_rate, weight_decay)`` (see
    :func:`candidate_settings`): each None where the candidate has none."""
    own = candidate_settings(layers)
    return own["learning_rate"], own["weight_decay"]


def output_layer_name(n_classes):
    """Readable name of the output layer for ``n_classes`` classes."""
    return "sigmoid(1)" if n_classes == 2 else f"softmax({n_classes})"


def describe_layers(layers, output):
    """Readable form of a list of hidden-layer dicts plus the output layer
    (``output``: a number of classes or the output layer's name)."""
    parts = []
    for layer in layers:
        if layer["type"] == "optimizer":
            parts.append("adam(" + ", ".join(
                f"{_SHORT[k]}={layer[k]}" if k in _NAMED else f"{_SHORT[k]}={layer[k]:g}"
                for k in _SHORT if k in layer) + ")")
        elif layer["type"] == "dropout":
            parts.append(f"dropout({layer['rate']:g})")
        else:
            bn = "-bn" if layer.get("batch_norm") else ""
            parts.append(f"{layer['units']}-{layer['activation']}{bn}")
    parts.append(output if isinstance(output, str) else output_layer_name(output))
    return " > ".join(parts)


def parse_layers(text):
    """Hidden-layer dicts (and the optimizer entry) from a readable architecture string."""
    layers = []
    long = {v: k for k, v in _SHORT.items()}
    for part in (p.strip() for p in text.split(">")):
        if m := _DENSE_RE.match(part):
            layer = {"type": "dense", "units": int(m.group(1)), "activation": m.group(2)}
            if m.group(3):
                layer["batch_norm"] = True
            layers.append(layer)
        elif m := _DROPOUT_RE.match(part):
            layers.append({"type": "dropout", "rate": float(m.group(1))})
        elif m := _OPTIMIZER_RE.match(part):
            entry = {"type": "optimizer"}
            for item in filter(None, (s.strip() for s in m.group(1).split(","))):
                key, _, value = item.partition("=")
                if key.strip() not in long:
                    raise ValueError(f"cannot read setting {item!r} in {text!r}")
                name = long[key.strip()]
                entry[name] = (value.strip() if name in _NAMED else int(float(value))
                               if name in _INTEGER else float(value))
            layers.append(entry)
        elif _OUTPUT_RE.match(part):
            continue
        else:
            raise ValueError(f"cannot read layer {part!r} in {text!r}")
    return layers


@lru_cache(maxsize=None)
def _count(t, prev_dropout, n_dense, n_dropout, max_layers):
    """Completions after ``t`` layers (``n_dense`` counts a dense token with
    each of its batch-normalisation choices)."""
    if t >= max_layers:
        return 1
    total = n_dense * _count(t + 1, False, n_dense, n_dropout, max_layers)
    if t >= 1:
        total += 1  # end here
        if not prev_dropout:
            total += n_dropout * _count(t + 1, True, n_dense, n_dropout, max_layers)
    return total
