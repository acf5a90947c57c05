"""Models in and out: Caffe (.prototxt + .caffemodel), ONNX (export and import), PyTorch weights.

    net = load_caffe("deploy.prototxt", "weights.caffemodel")
    export_onnx(net, "model.onnx", input_shape=(1, 3, 32, 32))
    net = load_onnx("model.onnx")

The file formats are read with well-kept libraries (``protobuf`` for Caffe, ``onnx`` for ONNX,
``safetensors`` for weights; ``pip install 'layerwise[interop]'``), imported only when used.
"""
from .caffe import CaffeError, CaffeNet, load_caffe, load_caffe_solver

__all__ = ["load_caffe", "load_caffe_solver", "CaffeNet", "CaffeError"]
from .onnx_export import ExportError, export_onnx, to_onnx
from .onnx_import import OnnxImportError, OnnxNet, load_onnx

__all__ += ["export_onnx", "to_onnx", "ExportError", "load_onnx", "OnnxNet", "OnnxImportError"]
