"""Image files and sample files into arrays: the one image decoder of layerwise (Pillow).

    x = read_image("seven.png", mode="L", size=(8, 8))          # (1, 8, 8) float32 in [0, 1]
    batch = read_samples("seven.png", (1, 8, 8), invert=True)    # (1, 1, 8, 8): what `layerwise predict` feeds

Both the ``folder`` data set and ``layerwise predict`` decode images here, so a model trained on a
folder of images sees a predicted image exactly as it saw its training images (same channel
conversion, same resize filter).
"""
from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .dataset import DataError

if TYPE_CHECKING:
    from PIL import Image as PILImage

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
_GRAY_MODES = ("1", "L", "I", "I;16", "I;16L", "I;16B", "F")
_MODE_CHANNELS = {"L": 1, "RGB": 3}


def open_image(path: str | os.PathLike[str]) -> PILImage.Image:
    """The image at ``path``, decoded by Pillow into memory.

    Raises:
        DataError: the file is missing, not an image Pillow can decode, damaged, or a
            decompression bomb; the message names the file.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except FileNotFoundError:
        raise DataError(f"no such image file {str(path)!r}") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError, SyntaxError) as e:
        raise DataError(f"cannot read image {path} ({type(e).__name__}: {e}); expected an image file Pillow "
                        f"can decode ({', '.join(s[1:] for s in IMAGE_SUFFIXES)}) that is not damaged") from None


def image_mode(im: PILImage.Image) -> str:
    """``"L"`` for a grayscale image (1-, 8-, 16-bit, float), ``"RGB"`` for anything else."""
    return "L" if im.mode in _GRAY_MODES else "RGB"


def read_image(image: str | os.PathLike[str] | PILImage.Image, *, mode: str | None = None,
               size: Sequence[int] | None = None) -> np.ndarray:
    """Decode an image into a float32 array (C, H, W) with values in [0, 1].

    Args:
        image: a file path, or an image :func:`open_image` returned.
        mode: ``"L"`` (one channel; colour becomes luma 0.299 R + 0.587 G + 0.114 B, Pillow's rule)
            or ``"RGB"`` (three channels; grayscale is repeated, alpha dropped, palettes expanded).
            None: ``"L"`` for grayscale files, ``"RGB"`` otherwise.
        size: (H, W) to resize to with Pillow's bilinear filter (which averages over the source
            pixels when shrinking); None keeps the file's size.

    8-bit channels are divided by 255; 16-bit grayscale files keep their precision (divided by 65535).

    Raises:
        DataError: the file cannot be read (see :func:`open_image`).
        ValueError: an unknown mode or a size that is not two positive integers.

    Example:
        >>> from PIL import Image
        >>> im = Image.new("RGB", (4, 2), (255, 0, 0))           # 4 wide, 2 high, pure red
        >>> x = read_image(im, mode="L", size=(1, 2))
        >>> x.shape, round(float(x[0, 0, 0]), 3)
        ((1, 1, 2), 0.298)
    """
    from PIL import Image

    if mode is not None and mode not in _MODE_CHANNELS:
        raise ValueError(f"read_image: mode must be 'L', 'RGB' or None, got {mode!r}")
    hw: tuple[int, int] | None = None
    if size is not None:
        dims = tuple(int(d) for d in size)
        if len(dims) != 2 or min(dims) < 1:
            raise ValueError(f"read_image: size must be (H, W) with positive sizes, got {tuple(size)!r}")
        hw = (dims[0], dims[1])
    im = image if isinstance(image, Image.Image) else open_image(image)
    mode = mode or image_mode(im)
    if im.mode.startswith("I;16"):  # 16-bit grayscale: Pillow's convert("L") would clip at 255
        planes = [np.asarray(im, dtype=np.float32) / np.float32(65535)] * _MODE_CHANNELS[mode]
    else:
        a = np.asarray(im.convert(mode), dtype=np.float32) / np.float32(255)
        planes = [a] if a.ndim == 2 else [a[..., c] for c in range(a.shape[2])]
    if hw is not None and planes[0].shape != hw:
        planes = [np.asarray(Image.fromarray(p, mode="F").resize((hw[1], hw[0]), Image.Resampling.BILINEAR))
                  for p in planes]
    return np.stack(planes).astype(np.float32, copy=False)


def read_samples(path: str | os.PathLike[str], sample_shape: Sequence[int], *, invert: bool = False) -> np.ndarray:
    """One sample or a batch of samples of ``sample_shape`` (C, H, W), as a float32 batch (N, C, H, W).

    ``.npy`` / ``.npz`` files hold samples (C, H, W) or batches (N, C, H, W) in the data set's own
    scale (an ``.npz`` its array ``x``, else its first array); they are never unpickled. Any other
    file is an image, read by :func:`read_image` into [0, 1] with the model's channels (1: ``"L"``,
    3: ``"RGB"``) and size; ``invert`` maps an image's v to 1 - v (dark ink on light paper -> the
    digits' scale).

    Raises:
        DataError: the file is missing or unreadable, holds objects, or its samples are not of
            ``sample_shape``; the message names the file.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.npy"
        >>> np.save(f, np.zeros((2, 1, 8, 8)))
        >>> read_samples(f, (1, 8, 8)).shape
        (2, 1, 8, 8)
    """
    path = Path(path)
    shape = tuple(int(d) for d in sample_shape)
    if not path.is_file():
        raise DataError(f"no such file {str(path)!r}")
    x: np.ndarray
    if path.suffix.lower() in (".npy", ".npz"):
        x = _load_array(path)
    else:
        if len(shape) != 3 or shape[0] not in (1, 3):
            raise DataError(f"{path}: the model takes samples of shape {shape}, not images (C, H, W) with 1 or 3 "
                            "channels; pass a .npy or .npz file of samples")
        x = read_image(path, mode="L" if shape[0] == 1 else "RGB", size=shape[1:])
        if invert:
            x = 1.0 - x
    if x.ndim == len(shape) - 1:
        x = x[None]
    if x.ndim == len(shape):
        x = x[None]
    if tuple(x.shape[1:]) != shape:
        raise DataError(f"{path}: expected samples of shape {shape} (or a batch of them), got {x.shape}")
    return x


def _load_array(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npy":
            return np.asarray(np.load(path, allow_pickle=False), dtype=np.float32)
        with np.load(path, allow_pickle=False) as z:
            if not z.files:
                raise DataError(f"{path}: the .npz file holds no arrays")
            key = "x" if "x" in z.files else z.files[0]
            return np.asarray(z[key], dtype=np.float32)
    except DataError:
        raise
    except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: cannot read the samples ({e}); expected a .npy/.npz of numbers "
                        "(object arrays would need pickle, which layerwise never loads)") from None


__all__ = ["IMAGE_SUFFIXES", "open_image", "image_mode", "read_image", "read_samples"]
