"""``layerwise convert``: Caffe / ONNX / checkpoint in, ONNX / checkpoint out (``layerwise.interop.convert``)."""
from __future__ import annotations

import argparse

from ._common import shape_arg

HELP = "convert models: Caffe / ONNX / checkpoint in, ONNX / checkpoint out"
DESCRIPTION = ("Convert a Caffe model (.prototxt + .caffemodel), an ONNX file or a layerwise checkpoint into an .onnx "
               "file or a layerwise checkpoint (.safetensors/.npz). test, predict, summary and time also take a Caffe "
               "or ONNX model directly. See docs/interop.md.")
EXAMPLES = """
    layerwise convert deploy.prototxt model.onnx --weights bvlc.caffemodel
    layerwise convert resnet18.onnx resnet18.safetensors
    layerwise convert runs/digits/checkpoint-epoch0030.safetensors digits.onnx
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help=".prototxt / .caffemodel, .onnx, or .safetensors / .npz checkpoint")
    p.add_argument("out", help=".onnx, .safetensors or .npz")
    p.add_argument("--weights", help="the .caffemodel of a prototxt (default: <stem>.caffemodel beside it)")
    p.add_argument("--input", type=shape_arg, default=None, metavar="C,H,W",
                   help="one sample's shape, for prototxts that declare none (train_val data layers)")


def run(args: argparse.Namespace) -> int:
    from ..interop.convert import load_model, save_model

    net, meta = load_model(args.source, weights=args.weights, input_shape=args.input)
    out = save_model(net, meta, args.out)
    print(f"{args.source} -> {out}: {len(net.nodes) if hasattr(net, 'nodes') else 1} layers, "
          f"{net.num_params():,} params, input {tuple(meta.get('input_shape') or ())}")
    return 0
