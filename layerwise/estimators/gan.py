"""A GAN on a 2-D mixture of Gaussians, built from layerwise layers and solvers.

The discriminator ascends the value V(D, G) = E log D(x) + E log(1 - D(G(z)))
(``objectives.gan_value``); the generator descends the non-saturating loss -E log D(G(z))
(``objectives.generator_loss``). The objectives give the gradients with respect to D's logits;
the layers' backward passes carry them to the weights (through D into G for the generator).

    X, _ = ring_of_gaussians(2000, rng=np.random.default_rng(0))
    gan = GAN(seed=0).fit(X, n_iter=2000)
    counts, quality = mode_coverage(gan.sample(2000), ring_centres())
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import objectives as ob

__all__ = ["ring_centres", "ring_of_gaussians", "mode_coverage", "GAN"]


def ring_centres(modes: int = 8, radius: float = 2.0) -> np.ndarray:
    """The (modes, 2) centres of a mixture evenly spaced on a circle."""
    t = 2 * np.pi * np.arange(modes) / modes
    return radius * np.stack([np.cos(t), np.sin(t)], axis=1)


def ring_of_gaussians(n: int, modes: int = 8, radius: float = 2.0, std: float = 0.05,
                      rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """n samples (n, 2) of an equal-weight mixture of isotropic Gaussians on a ring, and their mode."""
    rng = np.random.default_rng(0) if rng is None else rng
    k = rng.integers(modes, size=n)
    return ring_centres(modes, radius)[k] + std * rng.standard_normal((n, 2)), k


def mode_coverage(samples: np.ndarray, centres: np.ndarray, std: float = 0.05, k: float = 3.0):
    """Per-mode counts of samples within k std of that mode, and the share of such "good" samples.

    A mode is covered when its count is a fair share of the good samples (the test asks >= 1/4 of
    an equal split); the share measures quality (samples between modes are bad)."""
    d = np.sqrt(((samples[:, None, :] - centres[None, :, :]) ** 2).sum(-1))          # (n, modes)
    near = d.argmin(axis=1)
    good = d.min(axis=1) <= k * std
    counts = np.bincount(near[good], minlength=len(centres))
    return counts, float(good.mean())


def _mlp(widths, out, slope, seed, name):
    from ..core import Sequential
    from ..layers import Linear, ReLU

    layers = []
    for w in widths:
        layers += [Linear(w), ReLU(negative_slope=slope)]
    return Sequential(*layers, Linear(out), seed=seed, name=name)


@dataclass
class GAN:
    """Generator z (noise_dim) -> MLP -> x (2); discriminator x -> MLP -> logit; Adam for both.

    Args:
        noise_dim: the dimension of z ~ N(0, I).
        hidden: the widths of both MLPs' hidden layers (leaky ReLU, slope 0.2).
        lr, betas: Adam's, for both nets (betas (0.5, 0.999), the usual GAN choice).
        batch_size: real and fake samples per step.
        d_steps: discriminator steps per generator step.
        seed: weights and noise.

    Attributes after ``fit``: generator, discriminator (Sequential), history (rows: iteration,
    V(D, G) on the batch, the generator's loss).
    """

    noise_dim: int = 2
    hidden: tuple[int, ...] = (64, 64)
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 128
    d_steps: int = 1
    seed: int = 0
    history: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        from ..solvers import build_solver

        self.rng = np.random.default_rng(self.seed)
        self.generator = _mlp(self.hidden, 2, 0.2, self.seed, "generator")
        self.discriminator = _mlp(self.hidden, 1, 0.2, self.seed + 1, "discriminator")
        self.generator.setup((self.batch_size, self.noise_dim), dtype=np.float64)
        self.discriminator.setup((2 * self.batch_size, 2), dtype=np.float64)
        self.g_solver = build_solver("adam", self.generator, lr=self.lr, betas=self.betas)
        self.d_solver = build_solver("adam", self.discriminator, lr=self.lr, betas=self.betas)

    def _noise(self, n):
        return self.rng.standard_normal((n, self.noise_dim))

    def step(self, X: np.ndarray) -> tuple[float, float]:
        """One round: ``d_steps`` discriminator ascents on V, then one generator descent."""
        G, D, B = self.generator, self.discriminator, self.batch_size
        for _ in range(self.d_steps):
            real = X[self.rng.integers(len(X), size=B)]
            fake = G.forward(self._noise(B))
            D.zero_grad()
            logits = D.forward(np.concatenate([real, fake]))[:, 0]                   # one pass, both halves
            V, (da, db) = ob.gan_value(logits[:B], logits[B:])
            D.backward(-np.concatenate([da, db])[:, None])                             # ascend V = descend -V
            self.d_solver.step()
        G.zero_grad()
        fake = G.forward(self._noise(B))
        loss, db = ob.generator_loss(D.forward(fake)[:, 0])
        G.backward(D.backward(db[:, None]))                                            # through D into G
        self.g_solver.step()                                                           # D's grads: dropped
        return V, loss

    def fit(self, X: np.ndarray, n_iter: int = 2000) -> GAN:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != 2:
            raise ValueError(f"GAN.fit: expected data of shape (N, 2), got {X.shape}")
        start = len(self.history)
        for it in range(n_iter):
            V, loss = self.step(X)
            self.history.append((start + it, V, loss))
        return self

    def sample(self, n: int) -> np.ndarray:
        """n generator samples (n, 2) (eval mode: nothing cached)."""
        self.generator.eval()
        try:
            return np.asarray(self.generator.forward(self._noise(n)))
        finally:
            self.generator.train()
