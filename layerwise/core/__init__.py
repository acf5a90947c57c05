"""The layer protocol: Param, Layer, LossLayer, Net, Sequential, and the registry."""
from .layer import Layer, LayerError, LossLayer
from .fusion import FusedLayer, Step
from .net import Net, NetHook, Node, Sequential
from .param import Param
from .registry import build, lookup, register, registered

__all__ = ["Param", "Layer", "LossLayer", "LayerError", "Net", "NetHook", "Node", "Sequential", "FusedLayer", "Step",
           "register", "lookup", "registered", "build"]
