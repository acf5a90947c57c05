"""The layer protocol: Param, Layer, LossLayer, Net, Sequential, and the registry."""
from .layer import Layer, LayerError, LossLayer
from .net import Net, Node, Sequential
from .param import Param
from .registry import build, lookup, register, registered

__all__ = ["Param", "Layer", "LossLayer", "LayerError", "Net", "Node", "Sequential",
           "register", "lookup", "registered", "build"]
