"""One entry point for every model source, used by ``layerwise convert`` and the model commands.

    net, meta = load_model("deploy.prototxt", weights="w.caffemodel")   # Caffe
    net, meta = load_model("resnet.onnx")                                # ONNX
    net, meta = load_model("runs/x/checkpoint-epoch0030.safetensors")    # layerwise checkpoint
    save_model(net, meta, "model.onnx") / save_model(net, meta, "model.safetensors")

A checkpoint written here holds the weights under ``model/<name>`` (as training checkpoints do)
and, in its metadata, the architecture: the prototxt text of a Caffe model, or the ONNX graph
of an ONNX model (its weight tensors emptied: they are the checkpoint's tensors).
"""
from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import to_numpy

CAFFE_SUFFIXES = (".prototxt", ".pbtxt")
CHECKPOINT_SUFFIXES = (".safetensors", ".npz")
INTEROP_FORMAT = "layerwise-interop-1"


class ConvertError(ValueError):
    """A conversion that cannot be done: the message names the file and what is possible."""


def is_interop_source(spec: str | Path) -> bool:
    """Whether ``spec`` names a Caffe or ONNX model (rather than a registry name or a checkpoint)."""
    return Path(str(spec)).suffix.lower() in CAFFE_SUFFIXES + (".onnx", ".caffemodel")


def _meta_for(net, kind: str) -> dict[str, Any]:
    shapes = [tuple(net.blob_shapes[n]) for n in net.input_names]
    out = net.blob_shapes[net.output_names[0]]
    return {"format": INTEROP_FORMAT, "interop": {"kind": kind}, "input_shape": list(shapes[0][1:]),
            "input_shapes": [list(s) for s in shapes],
            "model": {"name": net.name, "num_classes": int(out[1]) if len(out) >= 2 else 1},
            "data": {}}


def load_model(spec: str | Path, *, weights: str | Path | None = None, input_shape=None) -> tuple[Any, dict]:
    """Load a model from a Caffe prototxt (+ caffemodel), an ONNX file or a layerwise checkpoint.

    Args:
        spec: ``.prototxt`` (weights from ``weights`` or ``<stem>.caffemodel`` beside it), a
            ``.caffemodel`` (its prototxt as ``<stem>.prototxt`` or ``deploy.prototxt`` beside it),
            ``.onnx``, or a ``.safetensors`` / ``.npz`` checkpoint (training or converted).
        weights: the caffemodel of a prototxt.
        input_shape: per-sample (C, H, W) or full shape, for prototxts that declare none.

    Returns:
        (net in eval mode, meta): meta has ``input_shape`` (per sample) and ``model.num_classes``.
    """
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix == ".caffemodel":
        cands = [path.with_suffix(".prototxt"), path.parent / "deploy.prototxt"]
        proto = next((c for c in cands if c.is_file()), None)
        if proto is None:
            raise FileNotFoundError(f"{path}: no prototxt found beside it (tried {', '.join(map(str, cands))}); "
                                    "pass the .prototxt with --weights this file")
        path, weights, suffix = proto, path, ".prototxt"
    if suffix in CAFFE_SUFFIXES:
        from .caffe import load_caffe
        if weights is None and path.with_suffix(".caffemodel").is_file():
            weights = path.with_suffix(".caffemodel")
        shape = None
        if input_shape is not None:
            shape = tuple(input_shape) if len(input_shape) == 4 else (1, *input_shape)
        net = load_caffe(path, weights, input_shape=shape)
        meta = _meta_for(net, "caffe")
        meta["interop"].update(prototxt=net.source, weights=bool(weights))
        return net, meta
    if suffix == ".onnx":
        from .onnx_import import load_onnx
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model {str(path)!r}: no such file")
        data = path.read_bytes()
        onnx_net = load_onnx(data)
        meta = _meta_for(onnx_net, "onnx")
        meta["interop"]["graph"] = _strip_weights(data)
        return onnx_net, meta
    if suffix in CHECKPOINT_SUFFIXES:
        from ..io import load_checkpoint
        if not path.is_file():
            raise FileNotFoundError(f"no such checkpoint file {str(path)!r}")
        tensors, meta = load_checkpoint(path)
        if meta.get("format") != INTEROP_FORMAT:
            from ..train.build import model_from_checkpoint
            return model_from_checkpoint(path)
        net = _rebuild(meta, path)
        net.load_state_dict({k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")})
        net.eval()
        return net, meta
    raise ConvertError(f"{path}: unknown model format {suffix!r}; use a Caffe .prototxt/.caffemodel, an .onnx file or "
                     "a layerwise checkpoint (.safetensors/.npz)")


def _strip_weights(data: bytes) -> str:
    """The ONNX model with the contents of its large initializers dropped (dims kept), base64."""
    import onnx
    model = onnx.load_model_from_string(data)
    for t in model.graph.initializer:
        if math.prod(t.dims) > 64:
            for f in ("raw_data", "float_data", "double_data", "int32_data", "int64_data"):
                t.ClearField(f)
            t.doc_string = "layerwise:stripped"
    return base64.b64encode(model.SerializeToString()).decode("ascii")


def _restore_graph(text: str) -> bytes:
    import onnx
    from onnx import helper
    model = onnx.load_model_from_string(base64.b64decode(text))
    for t in model.graph.initializer:
        if t.doc_string == "layerwise:stripped":
            dtype = helper.tensor_dtype_to_np_dtype(t.data_type)
            t.raw_data = np.zeros(math.prod(t.dims), dtype).tobytes()
    return model.SerializeToString()


def _rebuild(meta: dict, path: Path):
    info = meta.get("interop") or {}
    if info.get("kind") == "caffe":
        from .caffe import load_caffe
        shapes = meta.get("input_shapes")
        return load_caffe(info["prototxt"], input_shape=tuple(shapes[0]) if shapes else None)
    if info.get("kind") == "onnx":
        from .onnx_import import load_onnx
        return load_onnx(_restore_graph(info["graph"]))
    raise ConvertError(f"{path}: a converted-model checkpoint without its architecture (interop.kind "
                     f"{info.get('kind')!r}); convert the source model again")


def save_model(net, meta: dict, out: str | Path) -> Path:
    """Write ``net`` as ``.onnx`` or as a layerwise checkpoint (``.safetensors`` / ``.npz``)."""
    out = Path(out)
    suffix = out.suffix.lower()
    shapes = meta.get("input_shapes") or [[1, *meta["input_shape"]]]
    if suffix == ".onnx":
        from .onnx_export import export_onnx
        return export_onnx(net, out, [tuple(s) for s in shapes] if len(shapes) > 1 else tuple(shapes[0]))
    if suffix in CHECKPOINT_SUFFIXES:
        from ..io import save_checkpoint
        if meta.get("format") != INTEROP_FORMAT:
            raise ConvertError(f"{out}: a training checkpoint is already a layerwise checkpoint; convert it to .onnx")
        tensors = {f"model/{k}": to_numpy(v) for k, v in net.state_dict().items()}
        return save_checkpoint(out, tensors, meta)
    raise ConvertError(f"{out}: unknown output format {suffix!r}; use .onnx, .safetensors or .npz")
