"""Solvers (the update rules) and learning-rate policies.

    solver = SGD(net.named_params(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    solver = build_solver("Adam", net, base_lr=1e-3, momentum=0.9, lr_policy="step", gamma=0.1, stepsize=1000)

Policies: ``build_policy(name, base_lr, **kw)`` or the classes in ``layerwise.solvers.lr_policy``.
Caffe's names (``base_lr``, ``stepsize``, ``momentum2``...) and the defaults they bring are in
``layerwise.solvers.caffe_names`` (Caffe's Adam without ``momentum`` has beta1 = 0).
See docs/solvers.md for every formula and the Caffe vs PyTorch differences.
"""
from . import caffe_names as caffe_names
from . import lr_policy as lr_policy
from .adadelta import AdaDelta, Adadelta
from .adagrad import AdaGrad, Adagrad
from .adam import Adam, AdamW
from .base import Solver, build_solver
from .lr_policy import build_policy
from .rmsprop import RMSProp, RMSprop
from .sgd import SGD, Nesterov

__all__ = ["Solver", "build_solver", "SGD", "Nesterov", "AdaGrad", "Adagrad", "AdaDelta", "Adadelta",
           "RMSProp", "RMSprop", "Adam", "AdamW", "build_policy"]
# The policy classes (Fixed, Step, MultiStep, Exp, Inv, Poly, Sigmoid, Cosine, Warmup) stay in
# layerwise.solvers.lr_policy: re-exporting them at the top level would shadow the Sigmoid layer.
