"""Center loss, seen (Wen et al., ECCV 2016, Fig. 3): 2-D deep features of the digits trained
with softmax loss alone and with softmax + lambda * center loss, coloured by class.

    runs = train_center_loss(lambdas=(0.0, 0.01, 0.1, 1.0))
    layerwise plot center-loss --out cl.png

The network is an MLP whose last hidden layer has TWO units, so the features can be drawn as
they are: x (64 pixels) -> Linear(64) -> PReLU -> Linear(2) = f -> Linear(10) = logits.
The objective is  L = L_softmax(logits, y) + lambda * L_center(f, y)  with the center loss's
own centre update (alpha = 0.5, the paper's Algorithm 1); every lambda starts from the same
weights and sees the same batches. Softmax alone makes the classes separable (radial
"spokes"); the center loss pulls each class towards its centre, and the more so the larger
lambda: the intra-class spread reported for each panel shrinks.

Spread measures (on the test split's features):
    within  = sqrt(mean_i ||f_i - c_{y_i}||^2), c_j the mean feature of class j;
    ratio   = within^2 / total^2, total^2 = mean_i ||f_i - mean f||^2, the share of the feature
              variance that is within the classes (scale-free: softmax alone can shrink or grow
              the whole picture).
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["CenterLossRun", "spread", "train_center_loss", "plot_center_loss", "main"]


@dataclass
class CenterLossRun:
    lam: float
    features: np.ndarray      # (n_test, 2)
    labels: np.ndarray        # (n_test,)
    within: float             # intra-class spread (RMS distance to the class mean)
    ratio: float              # within-class share of the feature variance
    accuracy: float           # test accuracy of the softmax head


def spread(features: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(within, ratio) of the module docstring for features (n, d) and integer labels (n,)."""
    f = np.asarray(features, np.float64)
    y = np.asarray(labels)
    classes, inv = np.unique(y, return_inverse=True)
    sums = np.zeros((len(classes), f.shape[1]))
    np.add.at(sums, inv, f)
    means = sums / np.bincount(inv)[:, None]
    within2 = float(np.mean(np.sum((f - means[inv]) ** 2, axis=1)))
    total2 = float(np.mean(np.sum((f - f.mean(axis=0)) ** 2, axis=1)))
    return float(np.sqrt(within2)), within2 / total2 if total2 > 0 else 0.0


def _digits(n_train: int | None, seed: int):
    from ..data import load_dataset

    tr, te = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    xtr, ytr = tr.x.reshape(len(tr.x), -1).astype(np.float32), np.asarray(tr.y)
    if n_train is not None and n_train < len(ytr):
        keep = np.random.default_rng(seed).permutation(len(ytr))[:n_train]
        xtr, ytr = xtr[keep], ytr[keep]
    return xtr, ytr, te.x.reshape(len(te.x), -1).astype(np.float32), np.asarray(te.y)


def _train_one(lam: float, data, epochs: int, batch_size: int, lr: float, seed: int) -> CenterLossRun:
    from ..core import Sequential
    from ..layers import Linear, PReLU
    from ..losses import CenterLoss, SoftmaxCrossEntropyLoss
    from ..solvers import build_solver

    xtr, ytr, xte, yte = data
    trunk = Sequential(Linear(64), PReLU(), Linear(2), seed=seed)          # x -> 2-D feature f
    head = Linear(10)
    trunk.setup((batch_size, xtr.shape[1]))
    head.setup((batch_size, 2), rng=np.random.default_rng(seed + 1))
    softmax, center = SoftmaxCrossEntropyLoss(), CenterLoss(10, alpha=0.5, loss_weight=lam)
    params = {**trunk.named_params("trunk."), **head.named_params("head.")}
    solver = build_solver("sgd", params, lr=lr, momentum=0.9, weight_decay=5e-4)
    order_rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = order_rng.permutation(len(ytr))
        for i in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[i:i + batch_size]
            f = trunk.forward(xtr[idx])                                   # (B, 2)
            softmax.forward(head.forward(f), ytr[idx])
            df = head.backward(softmax.backward())
            if lam > 0:
                center.forward(f, ytr[idx])
                df = df + center.backward()                              # lambda * dL_c/df; moves the centres
            trunk.backward(df)
            solver.step()
            trunk.zero_grad()
            head.zero_grad()
    trunk.eval()
    head.eval()
    f = np.asarray(trunk.forward(xte), np.float64)
    acc = float((np.asarray(head.forward(f.astype(np.float32))).argmax(1) == yte).mean())
    within, ratio = spread(f, yte)
    return CenterLossRun(float(lam), f, yte, within, ratio, acc)


def train_center_loss(lambdas: Sequence[float] = (0.0, 0.01, 0.1, 1.0), *, epochs: int = 30,
                      batch_size: int = 64, lr: float = 0.05, n_train: int | None = None,
                      seed: int = 0) -> list[CenterLossRun]:
    """Train one network per lambda (0: softmax alone) from the same start; return their test features.

    Args:
        lambdas: center-loss weights, each >= 0.
        epochs, batch_size, lr: SGD with momentum 0.9 and weight decay 5e-4.
        n_train: use this many training images (None: all 1438).
        seed: the weights, the batch order and the subset.
    """
    lams = [float(v) for v in lambdas]
    if not lams or min(lams) < 0:
        raise ValueError(f"center loss plot: lambdas must be >= 0 (0 = softmax alone), got {list(lambdas)}")
    if epochs < 1:
        raise ValueError(f"center loss plot: epochs must be >= 1, got {epochs}")
    data = _digits(n_train, seed)
    return [_train_one(lam, data, epochs, batch_size, lr, seed) for lam in lams]


def plot_center_loss(out: str = "center_loss.png", *, dpi: int = 90, **kw) -> list[CenterLossRun]:
    """Train as ``train_center_loss(**kw)`` and draw one scatter panel per lambda to ``out``."""
    from .common import new_figure, save_figure

    runs = train_center_loss(**kw)
    fig = new_figure(3.3 * len(runs), 3.75)
    colors = [f"C{i}" for i in range(10)]
    for i, r in enumerate(runs):
        ax = fig.add_subplot(1, len(runs), i + 1)
        for c in range(10):
            pts = r.features[r.labels == c]
            ax.scatter(pts[:, 0], pts[:, 1], s=5, color=colors[c], alpha=0.75, lw=0, label=str(c))
        name = "softmax only" if r.lam == 0 else f"softmax + {r.lam:g} x center"
        ax.set_title(f"{name}\nspread {r.within:.3g}, within/total {r.ratio:.3f}, acc {100 * r.accuracy:.1f}%",
                     fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_aspect("equal", adjustable="datalim")
    fig.axes[-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=2.5,
                        frameon=False, title="digit", title_fontsize=7)
    fig.suptitle("2-D features of the digits test set (Wen et al. 2016, Fig. 3): the center loss "
                 "shrinks each class as lambda grows", fontsize=9)
    fig.subplots_adjust(left=0.04, right=0.95, bottom=0.08, top=0.78, wspace=0.3)
    save_figure(fig, out, dpi, "plot center-loss")
    return runs


def main(argv: list[str] | None = None) -> int:
    """``layerwise plot center-loss --out cl.png``."""
    parser = argparse.ArgumentParser(
        prog="layerwise plot center-loss",
        description="Train a net with a 2-D feature layer on digits with softmax alone and with softmax + "
                    "lambda * center loss, and draw the test features coloured by class.")
    parser.add_argument("--out", default="center_loss.png", help="output image (default: center_loss.png)")
    parser.add_argument("--lambdas", default="0,0.01,0.1,1", help="comma-separated weights; 0 = softmax alone")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dpi", type=int, default=90)
    args = parser.parse_args(argv)
    try:
        lambdas = [float(v) for v in args.lambdas.split(",") if v.strip()]
    except ValueError:
        parser.error(f"--lambdas must be comma-separated numbers, got {args.lambdas!r}")
    try:
        runs = plot_center_loss(args.out, dpi=args.dpi, lambdas=lambdas, epochs=args.epochs, seed=args.seed)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    for r in runs:
        print(f"lambda {r.lam:<6g} intra-class spread {r.within:8.4f}  within/total variance {r.ratio:.4f}  "
              f"test accuracy {100 * r.accuracy:.1f}%")
    print(f"wrote {args.out}")
    return 0
