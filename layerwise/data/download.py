"""Fetch a data set's files from their official location, verify the published MD5, rename atomically.

``download("mnist", root)`` puts the four IDX files in ``root/mnist/``; ``download("cifar10", root)``
puts ``cifar-10-python.tar.gz`` in ``root/cifar10/`` and extracts ``cifar-10-batches-py/`` next
to it. A file already present with the right checksum is not fetched again. Each file is
streamed into a hidden temporary file in the target directory, hashed on the way, and renamed
into place only when the checksum matches, so an interrupted or corrupted download never leaves
a file that looks complete. Without network the error lists the files to fetch by hand and where
to put them.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .dataset import DataError
from .datasets import canonical_name, default_root


@dataclass(frozen=True)
class Resource:
    """One published file: its name, the URLs to try in order, and its published MD5."""

    filename: str
    urls: tuple[str, ...]
    md5: str
    extract: bool = False


def _idx(base: tuple[str, ...], md5s: tuple[str, ...]) -> list[Resource]:
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    return [Resource(n, tuple(b + n for b in base), m) for n, m in zip(names, md5s)]


# The published MD5 sums (MNIST: as listed with the files; Fashion-MNIST: its README;
# CIFAR: https://www.cs.toronto.edu/~kriz/cifar.html).
SOURCES: dict[str, list[Resource]] = {
    "mnist": _idx(("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
                  ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                   "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")),
    "fashion_mnist": _idx(("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
                          ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                           "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")),
    "cifar10": [Resource("cifar-10-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                         "c58f30108f718f92721af3b95e74349a", extract=True)],
    "cifar100": [Resource("cifar-100-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
                          "eb9058c3a382ffc7106e4002c42a8d85", extract=True)],
}
CHUNK = 1 << 20
TIMEOUT_S = 30.0


class DownloadError(DataError):
    """The files could not be fetched or failed their checksum; the message says what to do by hand."""


def file_md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _manual_help(name: str, target: Path) -> str:
    lines = [f"To install {name} by hand, download these files on a machine with network access and put them in "
             f"{target}/ :"]
    for r in SOURCES[name]:
        lines.append(f"  {target / r.filename}    from {r.urls[0]}    (md5 {r.md5})")
    if any(r.extract for r in SOURCES[name]):
        lines.append("  (the archive can stay packed: the loader reads it directly, or extract it there)")
    return "\n".join(lines)


def _fetch(url: str, dest: Path, md5: str, progress: bool) -> None:
    """Stream ``url`` into a temp file next to ``dest``, check the MD5, then rename atomically."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        h = hashlib.md5()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            bar = None
            if progress:
                from tqdm import tqdm
                bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=None, leave=False)
            try:
                for block in iter(lambda: resp.read(CHUNK), b""):
                    out.write(block)
                    h.update(block)
                    if bar is not None:
                        bar.update(len(block))
            finally:
                if bar is not None:
                    bar.close()
            out.flush()
            os.fsync(out.fileno())
        if h.hexdigest() != md5:
            raise DownloadError(f"{dest.name} from {url} failed its checksum: md5 {h.hexdigest()}, expected {md5}. "
                                "The download is corrupt or the server sent something else (an error page?); "
                                "nothing was kept. Try again later or fetch it by hand.")
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _extract(archive: Path, target: Path) -> None:
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(target, filter="data")    # 'data' refuses absolute paths, '..', devices, links out
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DownloadError(f"cannot extract {archive} ({e}); delete it and download again") from None


def _extracted(archive: Path, target: Path) -> bool:
    """True when the archive's top-level folder (e.g. cifar-10-batches-py) already exists."""
    top = archive.name.replace("-python.tar.gz", "-batches-py" if "cifar-10-" in archive.name else "-python")
    return (target / top).is_dir()


def download(name: str, root: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Download data set ``name`` into ``root/<name>/`` (see the module docstring).

    Args:
        name: 'mnist', 'fashion_mnist', 'cifar10' or 'cifar100' ('digits' ships with scikit-learn).
        root: the data directory (default :func:`layerwise.data.datasets.default_root`).
        progress: show a byte-progress bar (only when stderr is a terminal).

    Returns:
        The directory holding the files.

    Raises:
        DownloadError: no network, HTTP error or checksum mismatch; the message says which files to
            put where by hand.
        ValueError: a data set with nothing to download.
    """
    key = canonical_name(name)
    if key == "digits":
        raise ValueError("download: 'digits' ships with scikit-learn; there is nothing to download")
    if key not in SOURCES:
        raise ValueError(f"download: no official files for {name!r}; downloadable: {', '.join(sorted(SOURCES))}")
    target = (Path(root).expanduser() if root is not None else default_root()) / key
    target.mkdir(parents=True, exist_ok=True)
    for res in SOURCES[key]:
        dest = target / res.filename
        if dest.is_file() and file_md5(dest) == res.md5:
            if res.extract and not _extracted(dest, target):
                _extract(dest, target)
            continue
        errors = []
        for url in res.urls:
            try:
                _fetch(url, dest, res.md5, progress)
                break
            except DownloadError as e:
                errors.append(str(e))
            except (urllib.error.URLError, OSError, ValueError) as e:   # no network, HTTP 404, timeout
                errors.append(f"{url}: {getattr(e, 'reason', None) or e}")
        else:
            raise DownloadError(f"download {key}: could not fetch {res.filename}:\n  " + "\n  ".join(errors)
                                + "\n" + _manual_help(key, target))
        if res.extract:
            _extract(dest, target)
    return target


__all__ = ["download", "DownloadError", "SOURCES", "Resource", "file_md5"]
