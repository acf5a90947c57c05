"""layerwise.io: checkpoints (safetensors or .npz, never pickle, written atomically) and generator states.

    from layerwise.io import save_checkpoint, load_checkpoint, pack_state, unpack_state, rng_state
    tensors, meta = pack_state({"model": net.state_dict(), "loader": loader.state_dict()})
    save_checkpoint("run/checkpoints/epoch_003.safetensors", tensors, {**meta, "epoch": 3})
    tensors, meta = load_checkpoint("run/checkpoints/epoch_003.safetensors")
    state = unpack_state(meta, tensors)
"""
from .checkpoint import (
                         CheckpointError,
                         find_latest_checkpoint,
                         load_checkpoint,
                         pack_state,
                         read_checkpoint_meta,
                         save_checkpoint,
                         unpack_state,
)
from .rng import rng_state, set_rng_state

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint_meta", "find_latest_checkpoint",
           "pack_state", "unpack_state", "CheckpointError", "rng_state", "set_rng_state"]
