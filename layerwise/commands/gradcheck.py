"""``layerwise gradcheck``: finite differences against a layer's, a loss's or a model's backward pass."""
from __future__ import annotations

import argparse
import time
from typing import Any

from ._common import CLIError, add_model_arguments, build_tool_model, parse_kwargs

HELP = "finite-difference check of a layer's, loss's or model's backward pass"
DESCRIPTION = ("Compare a layer's (or a model's) backward pass with central finite differences in float64, for the "
               "input and every parameter. A loss is checked for d loss / d prediction on random predictions and "
               "targets of its kind (class labels for classification losses, same-shape targets for regression "
               "ones; --input is one sample's prediction shape, classes first).")
EXAMPLES = """
    layerwise gradcheck Conv2d --arg out_channels=4 --arg kernel_size=3 --input 3,6,6
    layerwise gradcheck densenet_bc --arg depth=10 --arg growth_rate=4 --input 1,8,8
    layerwise gradcheck SoftmaxCrossEntropyLoss --input 5 --arg label_smoothing=0.1
    layerwise gradcheck EuclideanLoss --input 3,4,4
"""

# the sample shape when --input is not given (small: every element costs two forward passes)
DEFAULT_INPUT = {"model": (3, 8, 8), "layer": (3, 6, 6), "loss": (4,)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="LAYER|LOSS|MODEL")
    add_model_arguments(p, default_help=", ".join(f"{','.join(map(str, s))} for a {k}" for k, s in
                                                  DEFAULT_INPUT.items()))
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--eps", type=float, default=1e-6)
    p.add_argument("--max-elements", type=int, default=None, help="elements checked per tensor (random subset)")
    p.add_argument("--eval", action="store_true", help="check the layer in eval mode")
    p.add_argument("--seed", type=int, default=0)


def _build(cls: Any, kind: str, name: str, kwargs: dict[str, Any]) -> Any:
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise CLIError(f"{kind} {name!r}: {e}") from None


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..core.registry import lookup, registered
    from ..testing import GradcheckError, gradcheck, loss_inputs

    name = args.target
    rng = np.random.default_rng(args.seed)
    if name.lower() in registered("model"):
        layer = build_tool_model(name, args.arg, args.num_classes)
        layer.eval(grad=True)  # BN on running stats, no dropout: deterministic
        shape = args.input or DEFAULT_INPUT["model"]
        max_el = args.max_elements or 4
        inputs = [rng.standard_normal((args.batch, *shape))]
    elif name.lower() in registered("loss"):
        kwargs = parse_kwargs(args.arg)
        if args.num_classes is not None:
            kwargs.setdefault("num_classes", args.num_classes)  # CenterLoss
        layer = _build(lookup("loss", name), "loss", name, kwargs)
        layer.eval(grad=True)  # the same gradient; CenterLoss's backward leaves its centres alone
        shape = args.input or DEFAULT_INPUT["loss"]
        max_el = args.max_elements or 300
        try:
            inputs = loss_inputs(layer, shape, args.batch, rng)
        except TypeError as e:
            raise CLIError(f"loss {name!r}: {e}") from None
    else:
        try:
            cls = lookup("layer", name)
        except KeyError:
            raise CLIError(f"{name!r} is neither a layer nor a model nor a loss; layers: "
                           f"{', '.join(registered('layer'))}; losses: {', '.join(registered('loss'))}; "
                           f"models: {', '.join(registered('model'))}") from None
        layer = _build(cls, "layer", name, parse_kwargs(args.arg))
        if args.eval:
            layer.eval(grad=True)
        shape = args.input or DEFAULT_INPUT["layer"]
        max_el = args.max_elements or 300
        inputs = [rng.standard_normal((args.batch, *shape))]
        n_inputs = getattr(layer, "num_inputs", 1)
        if n_inputs not in (1, None):  # Eltwise, Concat: that many inputs of one shape
            inputs = [rng.standard_normal((args.batch, *shape)) for _ in range(int(n_inputs))]
    t0 = time.perf_counter()
    try:
        report = gradcheck(layer, *inputs, eps=args.eps, max_elements=max_el, seed=args.seed, raise_on_fail=False)
    except (GradcheckError, ValueError) as e:
        raise CLIError(str(e)) from None
    print(report)
    print(f"({time.perf_counter() - t0:.1f}s, float64, eps {args.eps:g}, input shape {tuple(inputs[0].shape)})")
    return 0 if report.ok else 1
