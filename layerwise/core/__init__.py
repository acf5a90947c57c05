"""The layer protocol: Param, Layer, LossLayer, Net, Sequential, and the registry."""
from .fusion import FusedLayer, Step
from .layer import Layer, LayerError, LossLayer, NamedParams
from .net import Net, NetHook, Node, Sequential
from .param import Param
from .registry import build, lookup, register, registered

__all__ = ["Param", "Layer", "LossLayer", "LayerError", "NamedParams", "Net", "NetHook", "Node", "Sequential",
           "FusedLayer", "Step", "register", "lookup", "registered", "build"]
