"""Random search: the controller-free strategy with the same interface."""

from __future__ import annotations

import numpy as np

__all__ = ["RandomStrategy"]


class RandomStrategy:
    """Sample architectures uniformly from the search space, never learn.

    Each valid architecture is equally likely: at every step a token is drawn
    with probability proportional to the number of architectures below it.

    Parameters
    ----------
    space : SearchSpace
    """

    def __init__(self, space):
        self.space = space

    def _draw(self, rng):
        space, prefix = self.space, ()
        while True:
            allowed = space.allowed(prefix)
            counts = np.zeros(space.vocab_size)
            for tok in np.flatnonzero(allowed):
                counts[tok] = 1 if tok == space.end_token else space.n_completions(prefix + (tok,))
            tok = int(rng.choice(space.vocab_size, p=counts / counts.sum()))
            if tok == space.end_token:
                return prefix
            prefix = prefix + (tok,)

    def sample(self, n, rng, exclude=()):
        """Up to ``n`` distinct unseen architectures; predictions are NaN."""
        seen, archs = set(exclude), []
        while len(archs) < n and len(seen) < self.space.size:
            arch = self._draw(rng)
            if arch not in seen:
                seen.add(arch)
                archs.append(arch)
        return archs, [np.nan] * len(archs)

    def update(self, archs, rewards, failed=None, sample_weight=None):
        """No learning; returns the controller-history fields."""
        rewards = np.asarray(rewards, float)
        return {"loss": np.nan, "baseline": np.nan,
                "mean_reward": float(np.nanmean(rewards)) if np.isfinite(rewards).any() else np.nan,
                "entropy": np.nan, "predictor_loss": np.nan}

    def get_state(self):
        """Nothing to save."""
        return {}

    def set_state(self, state):
        """Nothing to restore."""
