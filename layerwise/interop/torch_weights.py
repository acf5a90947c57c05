"""PyTorch weights: torchvision's parameter names, safetensors files, and why pickles are refused.

The registry models that mirror torchvision (resnet18/34/50, densenet121/161/169/201) use its
module names, so a torchvision ``state_dict()`` maps key for key. This module adds what users
of torchvision meet in practice: tensors instead of arrays, the ``module.`` prefix of
DataParallel, DenseNet's old ``norm.1``/``conv.2`` names (torchvision's pretrained files before
0.3), absent or extra ``num_batches_tracked``, a net not yet set up, and one error listing
every missing, unexpected and mis-shaped key. ``Model.load_state_dict`` calls
``load_torch_state_dict``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import get_array_module

_LEGACY_DENSE = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|"
                           r"running_var|num_batches_tracked))$")
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".tar")


class StateDictError(ValueError):
    """A state dict that does not fit the net: lists every missing, unexpected and mis-shaped key."""


def _array(v: Any) -> np.ndarray:
    if hasattr(v, "detach"):                                  # a torch tensor (torch is not imported here)
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def read_weights(path: str | Path) -> dict[str, np.ndarray]:
    """Read a weights file without running code: ``.safetensors`` (e.g. written by
    ``safetensors.torch.save_file(model.state_dict(), path)``) or ``.npz``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise StateDictError(
            f"{path}: a pickled PyTorch file; loading it could run arbitrary code, so it is refused. Convert it "
            "once where you trust it: python -c \"import torch, safetensors.torch as st; st.save_file(torch.load("
            f"'{path.name}', weights_only=True), '{path.stem}.safetensors')\" (a checkpoint dict: pass its "
            "'state_dict' entry), then load the .safetensors file")
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r}: no such file")
    if suffix == ".safetensors":
        from safetensors.numpy import load_file
        try:
            return load_file(str(path))
        except Exception as e:  # SafetensorError: truncated or not safetensors
            raise StateDictError(f"{path}: corrupt or truncated safetensors file ({e})") from None
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    raise StateDictError(f"{path}: unknown weights format {suffix!r}; use .safetensors or .npz")


def normalize_state_dict(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """torch tensors -> arrays; drop DataParallel's ``module.``; DenseNet's legacy ``norm.1`` -> ``norm1``."""
    out = {}
    for k, v in state.items():
        if k.startswith("module."):
            k = k[len("module."):]
        m = _LEGACY_DENSE.match(k)
        if m:
            k = m.group(1) + m.group(2)[0] + m.group(2)[1:]    # "norm." + "1.weight" -> "norm1.weight"
        out[k] = _array(v)
    return out


def load_torch_state_dict(net, state: Mapping[str, Any] | str | Path, strict: bool = True) -> None:
    """Load a PyTorch-style state dict (or a .safetensors/.npz file) into ``net``.

    ``num_batches_tracked`` is optional in both directions. With ``strict`` every param and
    buffer must be present and no key may be left over; shapes must always match. The net is
    set up first when it was not (``net.default_input_shape(state)`` where the model has one).

    Raises:
        StateDictError: listing all missing, unexpected and mis-shaped keys at once.
    """
    if isinstance(state, (str, Path)):
        state = read_weights(state)
    state = normalize_state_dict(state)
    if not net.built:
        shape_fn = getattr(net, "default_input_shape", None)
        shape = shape_fn(state) if shape_fn is not None else None
        if shape is None:
            raise StateDictError(f"{net!r}: load_state_dict on a net that is not set up; call "
                                 "net.setup(input_shape) first")
        net.setup(shape)
    params, buffers = net.named_params(), net.named_buffers()
    expected = {k: p.shape for k, p in params.items()}
    expected.update({k: tuple(b.shape) for k, b in buffers.items()})
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = sorted(k for k in expected if k not in state and k not in optional)
    unexpected = sorted(k for k in state if k not in expected and not k.endswith("num_batches_tracked"))
    misshaped = sorted(f"{k}: {tuple(state[k].shape)} vs {expected[k]}" for k in state
                       if k in expected and tuple(state[k].shape) != tuple(expected[k]))
    if misshaped or (strict and (missing or unexpected)):
        parts = [f"{name} ({len(keys)}): {keys[:20]}{' ...' if len(keys) > 20 else ''}"
                 for name, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                    ("mis-shaped keys (file vs net)", misshaped)) if keys]
        raise StateDictError(f"{net!r}: the state dict does not fit: " + "; ".join(parts) +
                             ". Build the matching architecture (same depth, widths and num_classes), or pass "
                             "strict=False to skip missing and unexpected keys")
    for k, v in state.items():
        if k in params:
            p = params[k]
            p.data[...] = get_array_module(p.data).asarray(v, dtype=p.data.dtype)
        elif k in buffers:
            b = buffers[k]
            b[...] = get_array_module(b).asarray(v, dtype=b.dtype)
