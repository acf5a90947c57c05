"""Train a small MLP of layerwise layers on the digits set that ships with scikit-learn.

    python examples/mlp_digits.py

Every piece is a layer with a hand-written backward: Linear -> ReLU -> Dropout -> Linear,
softmax cross-entropy as the loss layer that starts back-propagation, and SGD with
Nesterov momentum. Runs in a few seconds on a laptop CPU.
"""
from __future__ import annotations

import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import layerwise as lw


def main(epochs: int = 30, batch_size: int = 32, seed: int = 0) -> float:
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # (1797, 64) pixel intensities in [0, 1]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)

    net = lw.Sequential(lw.Linear(128), lw.ReLU(), lw.Dropout(0.2, seed=seed), lw.Linear(10), seed=seed)
    net.setup((batch_size, 64))
    loss_layer = lw.SoftmaxCrossEntropyLoss()
    solver = lw.SGD(net.named_params(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(len(x_tr))
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            logits = net.forward(x_tr[idx])
            total += float(loss_layer.forward(logits, y_tr[idx])) * len(idx)
            net.backward(loss_layer.backward())
            solver.step()
            net.zero_grad()
        if (epoch + 1) % 10 == 0:
            net.eval()
            acc = float((net.forward(x_te).argmax(1) == y_te).mean())
            print(f"epoch {epoch + 1:3d}  train loss {total / len(x_tr):.4f}  test accuracy {acc:.4f}")
    net.eval()
    acc = float((net.forward(x_te).argmax(1) == y_te).mean())
    print(f"test accuracy {acc:.4f} ({len(y_te)} images) in {time.perf_counter() - t0:.1f} s")
    return acc


if __name__ == "__main__":
    main()
