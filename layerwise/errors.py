"""Which failures are the user's, and how each is said in one line (the CLI's error discipline).

A failure the user can cause (a bad config, path, data file, checkpoint, a full disk, a missing
optional package) is reported as one line ``layerwise <command>: error: <what, where, fix>``
with exit status 2; see docs/failures.md. This module holds the two decisions the CLI needs:
:func:`is_user_error` and :func:`describe_error`. It imports nothing heavy (no NumPy), so the
CLI can use it before anything else starts.
"""
from __future__ import annotations

import errno
import os
import signal

_DISK_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def ignore_file_size_signal() -> None:
    """Make a write past ``ulimit -f`` fail with ``OSError(EFBIG)`` instead of killing the process
    with SIGXFSZ, so it can be reported (and the temporary file removed) like a full disk."""
    if hasattr(signal, "SIGXFSZ"):
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        except (ValueError, OSError):  # not the main thread: leave it
            pass


def is_user_error(e: BaseException) -> bool:
    """True for failures that input, paths, files or the environment cause (exit 2), False for
    what looks like a bug in layerwise (exit 1 and a request to report it)."""
    from .distributed.comm import MPIUnavailableError

    if isinstance(e, (OSError, ValueError, KeyError, MemoryError, MPIUnavailableError)):
        return True
    return type(e).__name__ == "CLIError"


def describe_error(e: BaseException) -> str:
    """One line: what went wrong, where, and the fix (an OSError gets a message by its errno)."""
    if isinstance(e, OSError) and e.errno is not None and (e.filename is not None or e.errno in _DISK_FULL):
        text = _describe_os_error(e)
    elif isinstance(e, KeyError) and e.args:
        text = str(e.args[0])
    elif isinstance(e, MemoryError):
        text = f"out of memory ({e or 'allocation failed'}); use a smaller batch_size or model"
    elif isinstance(e, UnicodeDecodeError):
        text = f"{e}; save the file as UTF-8"
    else:
        text = str(e) or type(e).__name__
    return " ".join(text.split())


def _describe_os_error(e: OSError) -> str:
    where = os.fsdecode(e.filename) if e.filename is not None else "a file"
    code = e.errno
    if code in _DISK_FULL:
        return (f"writing {where} failed: {e.strerror} (disk full or a file-size limit); free some space or write "
                "elsewhere (--out DIR); no half-written file was left and earlier checkpoints are intact")
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied: {where}; choose a location you can write to (--out DIR) or fix its permissions"
    if code == errno.EROFS:
        return f"{where} is on a read-only file system; choose a writable location (--out DIR)"
    if code == errno.ENOTDIR:
        return f"{where}: a part of this path is a file, not a directory; choose another path"
    if code == errno.EEXIST:
        return f"{where} already exists and is not a directory; choose another path"
    if code == errno.EISDIR:
        return f"{where} is a directory, not a file; pass a file"
    if code == errno.ENOENT:
        return f"no such file or directory: {where}; check the path"
    return f"{where}: {e.strerror}"


__all__ = ["is_user_error", "describe_error", "ignore_file_size_signal"]
