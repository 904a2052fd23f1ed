"""The LSTM controller: policy, accuracy predictor and REINFORCE update."""

from __future__ import annotations

from collections import Counter, OrderedDict

import numpy as np
import tensorflow as tf

__all__ = ["Controller", "discounted_returns"]

_EMBEDDING_DIM = 32
_FAILED_REWARD = 0.0
#: Floor of the running advantage scale: reward gaps below about one point of
#: accuracy are not blown up to unit size (see ``Controller.advantages``).
MIN_ADVANTAGE_SCALE = 0.01
#: Truncation of the per-candidate importance weight in the reused-batch steps.
MAX_IMPORTANCE_WEIGHT = 2.0
#: Floor of the reward spread the predictor's targets are divided by.
MIN_PREDICTOR_SCALE = 0.01


def discounted_returns(n_steps, advantage, discount):
    """Per-step returns of one candidate: ``discount ** (T - 1 - t) * A``.

    Parameters
    ----------
    n_steps : int
        Number of controller decisions ``T`` (hidden tokens plus end).
    advantage : float
        The candidate's advantage ``R - b``.
    discount : float
        Discount factor.

    Returns
    -------
    returns : ndarray of shape (n_steps,)
    """
    t = np.arange(n_steps)
    return advantage * discount ** (n_steps - 1 - t)


def _glorot(rng, shape):
    limit = np.sqrt(6.0 / (shape[0] + shape[-1]))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class Controller:
    """Autoregressive LSTM policy over a :class:`~sknas._space.SearchSpace`.

    Parameters
    ----------
    space : SearchSpace
    lstm_units : int
    learning_rate, decay, clipnorm : float
        Adam learning rate, inverse time decay rate (per step) and per-variable
        gradient norm clip.
    discount : float
    baseline : 'ema', 'batch' or float
        ``'ema'``: moving average of past controller epochs' mean rewards;
        ``'batch'``: the mean reward of the controller epoch being learned
        from (the advantages are centred); a float: that constant.
    baseline_decay : float
        Decay of the moving-average baseline and of the running advantage
        scale.
    normalize_advantage : bool
        Divide the advantages by a running root mean square of past
        advantages, floored at :data:`MIN_ADVANTAGE_SCALE`.
    entropy_weight : float
    train_steps : int
    use_predictor : bool
        Train the accuracy predictor: a linear head on the LSTM state after
        the end token, fitted in standard units (see
        :meth:`predictor_targets`) to every successful candidate so far.
    seed : int
        Seed of the weight initialisation.

    Notes
    -----
    The gradient matches how the batch was drawn. :meth:`sample` draws one
    architecture at a time with the policy's softmax restricted, at every
    step, to the tokens that still lead to an architecture not yet tried (in
    this search or earlier in the batch); the update uses the log-probability
    under exactly those masks. The batch is reused for ``train_steps``
    gradient steps: from the second step on each candidate's term is
    weighted by ``pi_new(arch) / pi_sampled(arch)`` (not differentiated,
    truncated at :data:`MAX_IMPORTANCE_WEIGHT`), so every step estimates the
    gradient of the current policy. Neglected: that an earlier sample of the
    batch changes the masks of later ones (it only matters once a sub-tree
    of the space is exhausted). Screening passes per-candidate weights to
    :meth:`update` (inverse inclusion probabilities, see
    ``docs/algorithm.rst``); the policy loss is then their weighted mean.
    """

    def __init__(self, space, *, lstm_units=100, learning_rate=0.01, decay=0.1,
                 clipnorm=1.0, discount=0.9, baseline="ema", baseline_decay=0.9,
                 normalize_advantage=True, entropy_weight=0.0, train_steps=10,
                 use_predictor=True, seed=0):
        self.space = space
        self.lstm_units = lstm_units
        self.learning_rate = learning_rate
        self.decay = decay
        self.clipnorm = clipnorm
        self.discount = discount
        self.baseline = baseline
        self.baseline_decay = baseline_decay
        self.normalize_advantage = normalize_advantage
        self.entropy_weight = entropy_weight
        self.train_steps = train_steps
        self.use_predictor = use_predictor
        self.t_max = space.max_length
        self.baseline_value = None if baseline in ("ema", "batch") else float(baseline)
        self.advantage_scale = None  # running root mean square of the advantages
        self.replay_archs = []  # every (architecture, reward) the predictor learns from
        self.replay_rewards = []
        self._sampled_masks = {}
        self._init_variables(np.random.default_rng(seed))

    # ------------------------------------------------------------ variables
    def _init_variables(self, rng):
        v, e, h = self.space.vocab_size, _EMBEDDING_DIM, self.lstm_units
        bias = np.zeros(4 * h, np.float32)
        bias[h:2 * h] = 1.0  # forget gate, as Keras' unit_forget_bias
        init = {
            "embedding": rng.uniform(-0.05, 0.05, (v + 1, e)).astype(np.float32),
            "kernel": _glorot(rng, (e, 4 * h)),
            "recurrent_kernel": _glorot(rng, (h, 4 * h)),
            "bias": bias,
            "policy_kernel": _glorot(rng, (h, v)),
            "policy_bias": np.zeros(v, np.float32),
            "predictor_kernel": _glorot(rng, (h, 1)),
            "predictor_bias": np.zeros(1, np.float32),
        }
        self._names = list(init)
        self._vars = [tf.Variable(init[k], name=k) for k in self._names]
        self._m = [tf.Variable(tf.zeros_like(x)) for x in self._vars]
        self._v = [tf.Variable(tf.zeros_like(x)) for x in self._vars]
        self._iterations = tf.Variable(0, dtype=tf.int64)

    def get_state(self):
        """All controller state as a dict of NumPy arrays (for ``.npz``)."""
        state = {f"var/{n}": x.numpy() for n, x in zip(self._names, self._vars)}
        state.update({f"m/{n}": x.numpy() for n, x in zip(self._names, self._m)})
        state.update({f"v/{n}": x.numpy() for n, x in zip(self._names, self._v)})
        state["iterations"] = np.array(self._iterations.numpy())
        state["baseline"] = np.array(np.nan if self.baseline_value is None else self.baseline_value)
        state["advantage_scale"] = np.array(
            np.nan if self.advantage_scale is None else self.advantage_scale)
        replay = np.full((len(self.replay_archs), self.space.max_length - 1), -1, np.int64)
        for k, arch in enumerate(self.replay_archs):
            replay[k, :len(arch)] = arch
        state["replay_archs"] = replay
        state["replay_rewards"] = np.asarray(self.replay_rewards, np.float64)
        return state

    def set_state(self, state):
        """Restore what :meth:`get_state` returned."""
        for prefix, group in (("var", self._vars), ("m", self._m), ("v", self._v)):
            for name, var in zip(self._names, group):
                var.assign(np.asarray(state[f"{prefix}/{name}"], np.float32))
        self._iterations.assign(int(state["iterations"]))
        b = float(state["baseline"])
        self.baseline_value = None if np.isnan(b) else b
        s = float(state["advantage_scale"])
        self.advantage_scale = None if np.isnan(s) else s
        replay = np.asarray(state.get("replay_archs", np.zeros((0, 0))), np.int64)
        self.replay_archs = [tuple(int(t) for t in row if t >= 0) for row in replay]
        self.replay_rewards = [float(r) for r in state.get("replay_rewards", ())]

    def __getstate__(self):
        d = {k: v for k, v in self.__dict__.items()
             if k not in ("_vars", "_m", "_v", "_iterations", "_names",
                          "_sampled_masks")}
        d["_state"] = self.get_state()
        return d

    def __setstate__(self, d):
        state = d.pop("_state")
        self.__dict__.update(d)
        self._sampled_masks = {}
        self._init_variables(np.random.default_rng(0))
        self.set_state(state)

    # ------------------------------------------------------------- sampling
    def _np_weights(self):
        return {n: x.numpy() for n, x in zip(self._names, self._vars)}

    @staticmethod
    def _np_step(w, x, h, c):
        z = x @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"]
        i, f, g, o = np.split(z, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        return h, c

    def _sample_one(self, w, rng, tried):
        """Draw one architecture among those not in ``tried``.

        Returns the architecture, the predictor's estimate and the masks used
        at each step (``(t_max, vocab_size)``, the end token allowed on the
        padding steps, as :meth:`_batch_tensors` pads).
        """
        space, v = self.space, self.space.vocab_size
        h = np.zeros((1, self.lstm_units), np.float32)
        c = np.zeros_like(h)
        masks = np.zeros((self.t_max, v), bool)
        masks[:, space.end_token] = True
        prefix, token = (), v  # start token
        for t in range(self.t_max):
            h, c = self._np_step(w, w["embedding"][[token]], h, c)
            logits = (h @ w["policy_kernel"] + w["policy_bias"])[0]
            mask = tried.open_tokens(prefix)
            masks[t] = mask
            p = np.exp(logits - logits[mask].max()) * mask
            cum = np.cumsum(p)
            tok = min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), v - 1)
            while not mask[tok]:  # guard against round-off at the edges
                tok -= 1
            token = tok
            if tok == space.end_token:
                break
            prefix = prefix + (tok,)
        h, c = self._np_step(w, w["embedding"][[space.end_token]], h, c)
        z = float((h @ w["predictor_kernel"] + w["predictor_bias"])[0, 0])
        return prefix, self._from_standard(z), masks

    def sample(self, n, rng, exclude=()):
        """Sample up to ``n`` distinct architectures not in ``exclude``.

        Each draw masks out, step by step, the tokens below which every
        architecture has been tried (``exclude`` and the batch's earlier
        draws), so no draw is wasted on a duplicate and the update knows the
        exact distribution each architecture was drawn from. Fewer than ``n``
        come back only when the space is exhausted.

        Returns
        -------
        archs : list of tuple
        predicted : list of float
            The predictor's reward estimate for each (NaN without predictor).
        """
        tried = _TriedSet(self.space, exclude)
        w = self._np_weights()
        archs, predicted = [], []
        self._sampled_masks = {}
        while len(archs) < n and tried.open_tokens(()).any():
            arch, p, masks = self._sample_one(w, rng, tried)
            tried.add(arch)
            archs.append(arch)
            predicted.append(p if self.use_predictor else np.nan)
            self._sampled_masks[arch] = masks
        return archs, predicted

    # ------------------------------------------------------------- training
    def _batch_tensors(self, archs):
        """Inputs, actions, masks and lengths of ``archs``: the masks they were
        sampled with when :meth:`sample` drew them, else the space's rules."""
        space, t_max = self.space, self.t_max
        b = len(archs)
        inputs = np.full((b, t_max + 1), space.end_token, np.int32)
        inputs[:, 0] = space.vocab_size  # start token
        actions = np.full((b, t_max), space.end_token, np.int32)
        masks = np.zeros((b, t_max, space.vocab_size), bool)
        masks[:, :, space.end_token] = True
        lengths = np.zeros(b, np.int32)
        for k, arch in enumerate(archs):
            seq = space.sequence(arch)
            lengths[k] = len(seq)
            sampled = self._sampled_masks.get(tuple(arch))
            for t, tok in enumerate(seq):
                actions[k, t] = tok
                inputs[k, t + 1] = tok
                masks[k, t] = space.allowed(arch[:t]) if sampled is None else sampled[t]
        return inputs, actions, masks, lengths

    def log_probs(self, archs):
        """Log-probability of each architecture under the current policy.

        For the architectures of the last :meth:`sample` call, the
        probability of drawing them as they were drawn (with that call's
        masks); for any other, under the space's rules alone.
        """
        inputs, actions, masks, lengths = self._batch_tensors(archs)
        step_mask = (np.arange(self.t_max)[None, :] < lengths[:, None]).astype(np.float32)
        logp, _, _ = self._forward(inputs, actions, masks, lengths)
        return (logp.numpy() * step_mask).sum(axis=1)

    def predict_rewards(self, archs):
        """The accuracy predictor's estimate for each architecture."""
        inputs, actions, masks, lengths = self._batch_tensors(archs)
        z = self._forward(inputs, actions, masks, lengths)[2].numpy().astype(float)
        return self._from_standard(z)

    # ----------------------------------------------------------- predictor
    def predictor_targets(self):
        """Centre and spread of the rewards the predictor has seen.

        The predictor regresses ``(R - centre) / spread`` over its replay
        (every successful candidate so far): the mean reward and the
        standard deviation floored at :data:`MIN_PREDICTOR_SCALE`; before
        any reward, 0.5 and 0.1.
        """
        if not self.replay_rewards:
            return 0.5, 0.1
        r = np.asarray(self.replay_rewards, np.float64)
        return float(r.mean()), max(float(r.std()), MIN_PREDICTOR_SCALE)

    def _from_standard(self, z):
        """The predictor head's output in reward units, clipped to [0, 1]."""
        centre, spread = self.predictor_targets()
        return np.clip(centre + spread * np.asarray(z, np.float64), 0.0, 1.0)[()]

    def _weights(self):
        return dict(zip(self._names, self._vars))

    def _states(self, inputs):
        """The LSTM's output after each input token: ``(b, t_max + 1, units)``."""
        return _lstm_states(self._weights(), inputs, self.t_max)

    def _forward(self, inputs, actions, masks, lengths):
        return _policy_forward(self._weights(), inputs, actions, masks, lengths, self.t_max)

    def _refit_predictor_head(self, inputs, lengths, targets):
        """Set the predictor head to the ridge regression of the standardised
        replay rewards on the LSTM's final states (the features the shared
        update left), its penalty chosen by leave-one-out error over a grid."""
        hs = self._states(tf.constant(inputs))
        H = tf.gather(hs, tf.constant(lengths), batch_dims=1).numpy().astype(np.float64)
        y = np.asarray(targets, np.float64)
        h_mean, y_mean = H.mean(axis=0), y.mean()
        Hc, yc = H - h_mean, y - y_mean
        U, sv, Vt = np.linalg.svd(Hc, full_matrices=False)
        Uy = U.T @ yc
        best = None
        for alpha in _RIDGE_ALPHAS:
            shrink = sv**2 / (sv**2 + alpha)
            fitted = U @ (shrink * Uy)
            leverage = (U**2) @ shrink + 1.0 / len(y)
            loo = np.mean(((yc - fitted) / np.maximum(1.0 - leverage, 1e-6)) ** 2)
            if best is None or loo < best[0]:
                best = (loo, alpha)
        alpha = best[1]
        kernel = Vt.T @ (sv / (sv**2 + alpha) * Uy)
        bias = y_mean - h_mean @ kernel
        self._vars[self._names.index("predictor_kernel")].assign(
            kernel[:, None].astype(np.float32))
        self._vars[self._names.index("predictor_bias")].assign(np.array([bias], np.float32))

    def advantages(self, rewards, sample_weight=None):
        """Baseline and advantages of a controller epoch, without updating anything.

        ``A = R - b``; with ``normalize_advantage``, divided by the running
        root mean square of the advantages seen so far (this epoch's
        included), floored at :data:`MIN_ADVANTAGE_SCALE`. Dividing by a
        running spread keeps the sign of ``R - b`` (better than the baseline
        is pushed up, worse is pushed down) and a floor keeps the advantages
        bounded when an epoch's rewards are (nearly) equal.

        Parameters
        ----------
        rewards : array-like of float
            Rewards the policy learns from (failed candidates already 0).
        sample_weight : array-like of float, default=None
            Weight of each candidate in the epoch's means (the screening's
            inclusion weights, see :meth:`update`); ``None`` weighs all alike.

        Returns
        -------
        baseline : float
        advantages : ndarray
        scale : float or None
            The running scale after this epoch (``None`` without
            normalisation).
        """
        r = np.asarray(rewards, np.float64)
        if self.baseline == "batch":
            b = _mean(r, sample_weight)
        elif self.baseline_value is None:  # 'ema' starts at the first epoch's mean
            b = _mean(r, sample_weight)
        else:
            b = self.baseline_value
        adv = r - b
        scale = None
        if self.normalize_advantage:
            mean_square = _mean(adv ** 2, sample_weight)
            if self.advantage_scale is not None:
                mean_square = (self.baseline_decay * self.advantage_scale ** 2
                               + (1 - self.baseline_decay) * mean_square)
            scale = float(np.sqrt(mean_square))
            adv = adv / max(scale, MIN_ADVANTAGE_SCALE)
        return b, adv, scale

    def update(self, archs, rewards, failed=None, sample_weight=None):
        """One REINFORCE update (``train_steps`` Adam steps) on a controller epoch.

        The predictor learns, in the same steps, from every successful
        candidate so far (its replay, to which this epoch's are added first).

        Parameters
        ----------
        archs : list of tuple
        rewards : array-like of float
            Observed rewards; failed candidates should carry NaN.
        failed : array-like of bool, optional
            Candidates that failed; they get the worst-case reward 0 for the
            policy and are left out of the predictor's replay.
        sample_weight : array-like of float, default=None
            Weight of each candidate's policy-gradient term (and in the
            baseline's and the advantage scale's means); the policy loss is
            the weighted mean. Screening passes inverse inclusion
            probabilities (see ``docs/algorithm.rst``); ``None`` weighs all
            alike.

        Returns
        -------
        info : dict
            ``loss``, ``baseline``, ``mean_reward``, ``entropy``,
            ``predictor_loss`` (the predictor's mean squared error in reward
            units over its replay, before the last step).
        """
        rewards = np.asarray(rewards, np.float64)
        failed = np.isnan(rewards) if failed is None else np.asarray(failed, bool)
        r = np.where(failed, _FAILED_REWARD, rewards)
        sw = None if sample_weight is None else np.asarray(sample_weight, np.float64)
        b, adv, scale = self.advantages(r, sw)
        inputs, actions, masks, lengths = self._batch_tensors(archs)
        returns = np.zeros((len(archs), self.t_max), np.float32)
        for k, n_steps in enumerate(lengths):
            returns[k, :n_steps] = discounted_returns(n_steps, adv[k], self.discount)
        step_mask = (np.arange(self.t_max)[None, :] < lengths[:, None]).astype(np.float32)
        logp, _, _ = self._forward(inputs, actions, masks, lengths)
        sampled_logp = (logp.numpy() * step_mask).sum(axis=1)
        if self.use_predictor:
            self.replay_archs += [tuple(a) for a, f in zip(archs, failed) if not f]
            self.replay_rewards += [float(x) for x, f in zip(r, failed) if not f]
        centre, spread = self.predictor_targets()
        replay_inputs, _, _, replay_lengths = self._batch_tensors(self.replay_archs)
        targets = (np.asarray(self.replay_rewards, np.float64) - centre) / spread
        args = (inputs, actions, masks, lengths, returns, step_mask,
                (np.ones(len(archs)) if sw is None else sw).astype(np.float32),
                sampled_logp.astype(np.float32), replay_inputs, replay_lengths,
                targets.astype(np.float32), np.float32(spread ** 2))
        update = _update_fn(self._names, self.t_max, self.use_predictor, self._vars, args)
        hyper = np.array([self.learning_rate, self.decay, self.clipnorm, self.entropy_weight],
                         np.float32)
        loss = entropy = pred_loss = np.nan
        for _ in range(self.train_steps):
            loss, entropy, pred_loss = update(self._vars, self._m, self._v, self._iterations,
                                              hyper, *args)
        if self.use_predictor and len(self.replay_rewards) >= 3:
            self._refit_predictor_head(replay_inputs, replay_lengths, targets)
        if self.baseline == "ema":
            self.baseline_value = (self.baseline_decay * b
                                   + (1 - self.baseline_decay) * _mean(r, sw))
        self.advantage_scale = scale
        self._sampled_masks = {}
        return {"loss": float(loss), "baseline": float(b), "mean_reward": float(np.mean(r)),
                "entropy": float(entropy),
                "predictor_loss": (float(pred_loss) * spread ** 2
                                   if self.use_predictor and self.replay_rewards else np.nan)}


def _mean(x, weights=None):
    """``x.mean()``, or its weighted mean."""
    return float(x.mean() if weights is None else np.average(x, weights=weights))


class _TriedSet:
    """Architectures tried so far, and which tokens still lead to an untried one."""

    def __init__(self, space, archs=()):
        self.space = space
        self.archs = set()
        self.below = Counter()  # prefix -> number of tried architectures that extend it
        for arch in archs:
            self.add(tuple(arch))

    def add(self, arch):
        if arch in self.archs:
            return
        self.archs.add(arch)
        for k in range(1, len(arch) + 1):
            self.below[arch[:k]] += 1

    def open_tokens(self, prefix):
        """The space's mask after ``prefix`` less the tokens whose sub-tree is all tried."""
        space, prefix = self.space, tuple(prefix)
        mask = space.allowed(prefix)
        if mask[space.end_token] and prefix in self.archs:
            mask[space.end_token] = False
        for tok in np.flatnonzero(mask):
            child = prefix + (int(tok),)
            if tok != space.end_token and self.below.get(child, 0) >= space.n_completions(child):
                mask[tok] = False
        return mask


#: Penalties the predictor head's ridge regression chooses from (leave-one-out).
_RIDGE_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0)


# --------------------------------------------------- the graph, as functions
# The controller's forward pass, loss and update are functions of its variables
# (``w``: name -> variable), not methods: the update is traced once per process
# for every controller of one shape (see :func:`_update_fn`), so a second fit, a
# GridSearchCV candidate or a cross-validation fold does not trace it again.

def _lstm_states(w, inputs, t_max):
    """The LSTM's output after each input token: ``(b, t_max + 1, units)``."""
    x_all = tf.gather(w["embedding"], inputs)
    b = tf.shape(inputs)[0]
    units = w["recurrent_kernel"].shape[0]
    h = tf.zeros((b, units))
    c = tf.zeros((b, units))
    states = []
    for t in range(t_max + 1):
        z = x_all[:, t] @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"]
        i, f, g, o = tf.split(z, 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        states.append(h)
    return tf.stack(states, axis=1)


def _predict_standard(w, hs, lengths):
    """The predictor head on the state after the end token (standardised units)."""
    h_last = tf.gather(hs, lengths, batch_dims=1)
    return (h_last @ w["predictor_kernel"] + w["predictor_bias"])[:, 0]


def _policy_forward(w, inputs, actions, masks, lengths, t_max):
    """Per-step log-probabilities of ``actions``, per-step entropies and the
    predictor's standardised estimate."""
    hs = _lstm_states(w, inputs, t_max)
    logits = hs[:, :-1] @ w["policy_kernel"] + w["policy_bias"]
    logits = tf.where(masks, logits, tf.fill(tf.shape(logits), -1e9))
    log_pi = tf.nn.log_softmax(logits, axis=-1)
    logp = tf.gather(log_pi, actions, batch_dims=2)
    entropy = -tf.reduce_sum(tf.where(masks, tf.exp(log_pi) * log_pi, 0.0), axis=-1)
    return logp, entropy, _predict_standard(w, hs, lengths)


def _loss(w, t_max, use_predictor, entropy_weight, inputs, actions, masks, lengths, returns,
          step_mask, sample_weight, sampled_logp, replay_inputs, replay_lengths,
          replay_targets, pred_weight):
    """The REINFORCE loss (plus the predictor's, in reward units), the mean
    entropy and the predictor's mean squared error in standard units."""
    logp, entropy, _ = _policy_forward(w, inputs, actions, masks, lengths, t_max)
    seq_logp = tf.reduce_sum(logp * step_mask, axis=1)
    weight = sample_weight * tf.stop_gradient(
        tf.minimum(tf.exp(seq_logp - sampled_logp), MAX_IMPORTANCE_WEIGHT))
    policy_loss = (tf.reduce_sum(-weight * tf.reduce_sum(returns * logp, axis=1))
                   / tf.reduce_sum(sample_weight))
    mean_entropy = tf.reduce_sum(entropy * step_mask) / tf.reduce_sum(step_mask)
    loss = policy_loss - entropy_weight * mean_entropy
    pred_loss = tf.constant(0.0)
    if use_predictor:
        pred = _predict_standard(w, _lstm_states(w, replay_inputs, t_max), replay_lengths)
        n_replay = tf.cast(tf.size(replay_targets), tf.float32)
        pred_loss = tf.reduce_sum((pred - replay_targets) ** 2) / tf.maximum(n_replay, 1.0)
        # weighted back to reward units (pred_weight = spread ** 2): the shared LSTM
        # is then driven by the policy as in the tutorial, while Adam's per-parameter
        # scaling leaves the head's own steps as they are in standard units
        loss = loss + pred_weight * pred_loss
    return loss, mean_entropy, pred_loss


#: Traced controller updates, by shape (names, t_max, predictor on, variable shapes,
#: argument ranks and dtypes); the least recently used is dropped past the bound.
_UPDATE_FNS = OrderedDict()
_MAX_UPDATE_FNS = 16


def _update_fn(names, t_max, use_predictor, variables, args):
    """The traced Adam step on the controller loss for controllers of this shape.

    Called as ``fn(vars, m, v, iterations, hyper, *args)`` with ``hyper`` =
    ``[learning_rate, decay, clipnorm, entropy_weight]`` (float32): the
    hyperparameters are inputs, not constants, so one trace serves every
    controller of the same shape. Every dimension of ``args`` is left open:
    the batch and the predictor's replay grow from one controller epoch to the
    next.
    """
    names = tuple(names)
    arg_specs = [tf.TensorSpec([None] * np.ndim(a), tf.as_dtype(np.asarray(a).dtype))
                 for a in args]
    key = (names, t_max, bool(use_predictor), tuple(tuple(x.shape) for x in variables),
           tuple((s.shape.rank, s.dtype) for s in arg_specs))
    if key in _UPDATE_FNS:
        _UPDATE_FNS.move_to_end(key)
        return _UPDATE_FNS[key]

    def update(params, m_vars, v_vars, iterations, hyper, *args):
        learning_rate, decay, clipnorm, entropy_weight = tf.unstack(hyper)
        with tf.GradientTape() as tape:
            loss, entropy, pred_loss = _loss(dict(zip(names, params)), t_max, use_predictor,
                                             entropy_weight, *args)
        grads = tape.gradient(loss, params)
        iterations.assign_add(1)
        step = tf.cast(iterations, tf.float32)
        lr = learning_rate / (1.0 + decay * (step - 1.0))
        for var, m, v, g in zip(params, m_vars, v_vars, grads):
            if g is None:
                continue
            g = tf.clip_by_norm(g, clipnorm)
            adam_update(var, m, v, g, lr, step)
        return loss, entropy, pred_loss

    fn = tf.function(update, autograph=False)  # plain Python: autograph would double the trace
    # one trace with every argument dimension open (the variables by their shapes)
    def like():
        return [tf.Variable(tf.zeros(x.shape, x.dtype)) for x in variables]
    fn.get_concrete_function(like(), like(), like(), tf.Variable(0, dtype=tf.int64),
                             tf.TensorSpec([4], tf.float32), *arg_specs)
    _UPDATE_FNS[key] = fn
    while len(_UPDATE_FNS) > _MAX_UPDATE_FNS:
        _UPDATE_FNS.popitem(last=False)
    return fn


def adam_update(var, m, v, grad, lr, step, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Keras' Adam update of one variable, in place (graph-friendly)."""
    m.assign_add((grad - m) * (1 - beta_1))
    v.assign_add((tf.square(grad) - v) * (1 - beta_2))
    alpha = lr * tf.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
    var.assign_sub(alpha * m / (tf.sqrt(v) + epsilon))
