"""layerwise.data: data sets in their published formats, a seeded prefetching loader, batch transforms.

    from layerwise.data import load_dataset, DataLoader, Compose, RandomCrop, RandomHorizontalFlip, Normalize
    train = load_dataset("digits", split="train")          # embedded in scikit-learn, no download
    loader = DataLoader(train, batch_size=64, seed=0, transform=Compose([RandomCrop(8, padding=1)]))
    for xb, yb in loader:                                    # one epoch
        ...
    x = read_samples("seven.png", (1, 8, 8))                 # an image (or .npy/.npz) as a model's batch

Data feeds arrays, not layers: nothing here imports a layer or the trainer. See docs/data.md.
"""
from .cifar import CIFAR10_CLASSES, read_cifar_batch
from .dataset import ArrayDataset, DataError, stratified_split
from .datasets import FASHION_CLASSES, available_datasets, canonical_name, default_root, load_dataset
from .download import SOURCES, DownloadError, Resource, download
from .idx import read_idx, write_idx
from .images import IMAGE_SUFFIXES, read_image, read_samples
from .loader import DataLoader
from .safe_pickle import UnsafePickleError, load_plain_pickle
from .transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip

__all__ = [
    "ArrayDataset", "DataError", "stratified_split",
    "load_dataset", "available_datasets", "canonical_name", "default_root", "read_cifar_batch",
    "CIFAR10_CLASSES", "FASHION_CLASSES",
    "download", "DownloadError", "SOURCES", "Resource",
    "read_idx", "write_idx",
    "read_image", "read_samples", "IMAGE_SUFFIXES",
    "DataLoader",
    "load_plain_pickle", "UnsafePickleError",
    "Normalize", "RandomCrop", "RandomHorizontalFlip", "Compose",
]
