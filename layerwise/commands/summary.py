"""``layerwise summary``: each layer's output shape, params and forward MACs (``layerwise.tools.summary``)."""
from __future__ import annotations

import argparse

from ._common import add_model_arguments, build_tool_model

HELP = "layers, output shapes, params and FLOPs of a model"
DESCRIPTION = "Print each layer's output shape, parameter count and forward FLOPs, computed from shapes alone."
EXAMPLES = """
    layerwise summary densenet_bc --input 3,32,32
    layerwise summary densenet_bc --arg depth=40 --input 1,8,8 --num-classes 10
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a registered model, or a Caffe .prototxt/.caffemodel or .onnx file")
    add_model_arguments(p)
    p.add_argument("--depth", type=int, default=None, help="levels of nested nets to expand")


def run(args: argparse.Namespace) -> int:
    from ..tools.summary import summary

    net = build_tool_model(args.model, args.arg, args.num_classes)
    print(summary(net, args.input, depth=args.depth))  # no --input: tools.summary.default_input_shape
    return 0
