"""The LSTM controller: policy, accuracy predictor and REINFORCE update."""

from __future__ import annotations

from collections import Counter

import numpy as np
import tensorflow as tf

__all__ = ["Controller", "discounted_returns"]

_EMBEDDING_DIM = 32
_MAX_REDRAWS = 200
_FAILED_REWARD = 0.0


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
    baseline : 'ema' or float
    baseline_decay : float
    normalize_advantage : bool
    entropy_weight : float
    train_steps : int
    use_predictor : bool
    seed : int
        Seed of the weight initialisation.
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
        self.t_max = space.max_layers + 1
        self.baseline_value = None if baseline == "ema" else float(baseline)
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
        self._update_fn = None

    def get_state(self):
        """All controller state as a dict of NumPy arrays (for ``.npz``)."""
        state = {f"var/{n}": x.numpy() for n, x in zip(self._names, self._vars)}
        state.update({f"m/{n}": x.numpy() for n, x in zip(self._names, self._m)})
        state.update({f"v/{n}": x.numpy() for n, x in zip(self._names, self._v)})
        state["iterations"] = np.array(self._iterations.numpy())
        state["baseline"] = np.array(np.nan if self.baseline_value is None else self.baseline_value)
        return state

    def set_state(self, state):
        """Restore what :meth:`get_state` returned."""
        for prefix, group in (("var", self._vars), ("m", self._m), ("v", self._v)):
            for name, var in zip(self._names, group):
                var.assign(np.asarray(state[f"{prefix}/{name}"], np.float32))
        self._iterations.assign(int(state["iterations"]))
        b = float(state["baseline"])
        self.baseline_value = None if np.isnan(b) else b

    def __getstate__(self):
        d = {k: v for k, v in self.__dict__.items()
             if k not in ("_vars", "_m", "_v", "_iterations", "_update_fn", "_names")}
        d["_state"] = self.get_state()
        return d

    def __setstate__(self, d):
        state = d.pop("_state")
        self.__dict__.update(d)
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

    def _sample_batch(self, m, rng, extra_mask=None):
        """Draw ``m`` sequences; returns architectures and predicted rewards."""
        w = self._np_weights()
        space, v = self.space, self.space.vocab_size
        h = np.zeros((m, self.lstm_units), np.float32)
        c = np.zeros_like(h)
        prefixes = [[] for _ in range(m)]
        done = np.zeros(m, bool)
        predicted = np.full(m, np.nan)
        token = np.full(m, v)  # start token
        for t in range(self.t_max + 1):
            h, c = self._np_step(w, w["embedding"][token], h, c)
            ended = (token == space.end_token) & np.isnan(predicted)
            if ended.any():
                predicted[ended] = _sigmoid(h[ended] @ w["predictor_kernel"] + w["predictor_bias"])[:, 0]
            if t == self.t_max:
                break
            logits = h @ w["policy_kernel"] + w["policy_bias"]
            u = rng.random(m)
            for i in np.flatnonzero(~done):
                mask = space.allowed(prefixes[i])
                if extra_mask is not None:
                    mask &= extra_mask(tuple(prefixes[i]))
                p = np.exp(logits[i] - logits[i][mask].max()) * mask
                p /= p.sum()
                tok = min(int(np.searchsorted(np.cumsum(p), u[i] * p.sum(), side="right")), v - 1)
                while not mask[tok]:  # guard against round-off at the edges
                    tok -= 1
                token[i] = tok
                if tok == space.end_token:
                    done[i] = True
                else:
                    prefixes[i].append(tok)
            token[done & (token != space.end_token)] = space.end_token
        return [tuple(p) for p in prefixes], predicted

    def sample(self, n, rng, exclude=()):
        """Sample up to ``n`` distinct architectures not in ``exclude``.

        A duplicate is drawn again; after many redraws the remaining draws
        mask out exhausted sub-trees so that sampling always terminates.
        Fewer than ``n`` come back only when the space is exhausted.

        Returns
        -------
        archs : list of tuple
        predicted : list of float
            The predictor's reward estimate for each (NaN without predictor).
        """
        seen = set(exclude)
        archs, predicted = [], []
        redraws = 0
        while len(archs) < n and len(seen) < self.space.size:
            if redraws < _MAX_REDRAWS:
                batch, pred = self._sample_batch(n - len(archs), rng)
            else:
                batch, pred = self._sample_batch(1, rng, self._unseen_mask(seen))
            for arch, p in zip(batch, pred):
                if arch in seen or len(archs) == n:
                    redraws += 1
                    continue
                seen.add(arch)
                archs.append(arch)
                predicted.append(float(p) if self.use_predictor else np.nan)
        return archs, predicted

    def _unseen_mask(self, seen):
        counts = Counter(a[:k] for a in seen for k in range(len(a) + 1))
        space = self.space

        def mask(prefix):
            out = np.ones(space.vocab_size, bool)
            for tok in range(space.vocab_size):
                if tok == space.end_token:
                    out[tok] = tuple(prefix) not in seen
                else:
                    child = tuple(prefix) + (tok,)
                    if space.allowed(child[:-1])[tok]:
                        out[tok] = counts.get(child, 0) < space.n_completions(child)
            return out
        return mask

    # ------------------------------------------------------------- training
    def _batch_tensors(self, archs):
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
            for t, tok in enumerate(seq):
                actions[k, t] = tok
                inputs[k, t + 1] = tok
                masks[k, t] = space.allowed(arch[:t])
        return inputs, actions, masks, lengths

    def log_probs(self, archs):
        """Log-probability of each architecture under the current policy."""
        inputs, actions, masks, lengths = self._batch_tensors(archs)
        step_mask = (np.arange(self.t_max)[None, :] < lengths[:, None]).astype(np.float32)
        logp, _, _ = self._forward(inputs, actions, masks, lengths)
        return (logp.numpy() * step_mask).sum(axis=1)

    def predict_rewards(self, archs):
        """The accuracy predictor's estimate for each architecture."""
        inputs, actions, masks, lengths = self._batch_tensors(archs)
        return self._forward(inputs, actions, masks, lengths)[2].numpy().astype(float)

    def _forward(self, inputs, actions, masks, lengths):
        w = dict(zip(self._names, self._vars))
        x_all = tf.gather(w["embedding"], inputs)
        b = tf.shape(inputs)[0]
        h = tf.zeros((b, self.lstm_units))
        c = tf.zeros((b, self.lstm_units))
        states = []
        for t in range(self.t_max + 1):
            z = x_all[:, t] @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"]
            i, f, g, o = tf.split(z, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            states.append(h)
        hs = tf.stack(states, axis=1)  # (b, t_max + 1, units)
        logits = hs[:, :-1] @ w["policy_kernel"] + w["policy_bias"]
        logits = tf.where(masks, logits, tf.fill(tf.shape(logits), -1e9))
        log_pi = tf.nn.log_softmax(logits, axis=-1)
        logp = tf.gather(log_pi, actions, batch_dims=2)
        entropy = -tf.reduce_sum(tf.where(masks, tf.exp(log_pi) * log_pi, 0.0), axis=-1)
        h_last = tf.gather(hs, lengths, batch_dims=1)
        pred = tf.sigmoid(h_last @ w["predictor_kernel"] + w["predictor_bias"])[:, 0]
        return logp, entropy, pred

    def _loss(self, inputs, actions, masks, lengths, returns, step_mask, rewards, pred_mask):
        logp, entropy, pred = self._forward(inputs, actions, masks, lengths)
        policy_loss = tf.reduce_mean(-tf.reduce_sum(returns * logp, axis=1))
        mean_entropy = tf.reduce_sum(entropy * step_mask) / tf.reduce_sum(step_mask)
        loss = policy_loss - self.entropy_weight * mean_entropy
        pred_loss = tf.reduce_sum(pred_mask * (pred - rewards) ** 2) / tf.maximum(tf.reduce_sum(pred_mask), 1.0)
        if self.use_predictor:
            loss = loss + pred_loss
        return loss, mean_entropy, pred_loss

    def _make_update_fn(self):
        @tf.function(reduce_retracing=True)
        def update(inputs, actions, masks, lengths, returns, step_mask, rewards, pred_mask):
            with tf.GradientTape() as tape:
                loss, entropy, pred_loss = self._loss(inputs, actions, masks, lengths,
                                                      returns, step_mask, rewards, pred_mask)
            grads = tape.gradient(loss, self._vars)
            self._iterations.assign_add(1)
            step = tf.cast(self._iterations, tf.float32)
            lr = self.learning_rate / (1.0 + self.decay * (step - 1.0))
            for var, m, v, g in zip(self._vars, self._m, self._v, grads):
                if g is None:
                    continue
                g = tf.clip_by_norm(g, self.clipnorm)
                adam_update(var, m, v, g, lr, step)
            return loss, entropy, pred_loss
        return update

    def update(self, archs, rewards, failed=None):
        """One REINFORCE update (``train_steps`` Adam steps) on a controller epoch.

        Parameters
        ----------
        archs : list of tuple
        rewards : array-like of float
            Observed rewards; failed candidates should carry NaN.
        failed : array-like of bool, optional
            Candidates that failed; they get the worst-case reward 0 for the
            policy and are left out of the predictor's loss.

        Returns
        -------
        info : dict
            ``loss``, ``baseline``, ``mean_reward``, ``entropy``, ``predictor_loss``.
        """
        rewards = np.asarray(rewards, np.float64)
        failed = np.isnan(rewards) if failed is None else np.asarray(failed, bool)
        r = np.where(failed, _FAILED_REWARD, rewards)
        if self.baseline == "ema" and self.baseline_value is None:
            self.baseline_value = float(r.mean())
        b = self.baseline_value
        adv = r - b
        if self.normalize_advantage and len(r) > 1:
            adv = adv / (adv.std() + 1e-8)
        inputs, actions, masks, lengths = self._batch_tensors(archs)
        returns = np.zeros((len(archs), self.t_max), np.float32)
        for k, n_steps in enumerate(lengths):
            returns[k, :n_steps] = discounted_returns(n_steps, adv[k], self.discount)
        step_mask = np.arange(self.t_max)[None, :] < lengths[:, None]
        args = (inputs, actions, masks, lengths, returns, step_mask.astype(np.float32),
                r.astype(np.float32), (~failed).astype(np.float32))
        if self._update_fn is None:
            self._update_fn = self._make_update_fn()
        loss = entropy = pred_loss = np.nan
        for _ in range(self.train_steps):
            loss, entropy, pred_loss = self._update_fn(*args)
        if self.baseline == "ema":
            self.baseline_value = self.baseline_decay * b + (1 - self.baseline_decay) * float(r.mean())
        return {"loss": float(loss), "baseline": float(b), "mean_reward": float(np.mean(r)),
                "entropy": float(entropy),
                "predictor_loss": float(pred_loss) if self.use_predictor else np.nan}


def adam_update(var, m, v, grad, lr, step, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Keras' Adam update of one variable, in place (graph-friendly)."""
    m.assign_add((grad - m) * (1 - beta_1))
    v.assign_add((tf.square(grad) - v) * (1 - beta_2))
    alpha = lr * tf.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
    var.assign_sub(alpha * m / (tf.sqrt(v) + epsilon))
