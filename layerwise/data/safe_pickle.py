"""Read the plain-data pickles of the CIFAR python batches without executing anything.

``pickle.load`` runs code: a pickle can name any importable callable (``os.system``) and ask for it
to be called. This module never imports or calls a global. It walks the opcodes with
``pickletools.genops`` (a disassembler: it only parses) and evaluates them on its own small stack
machine, which knows plain data (None, bools, ints, floats, str, bytes, lists, tuples, dicts) and
recognises by name, without importing anything, exactly the globals that a pickled NumPy array
and a Python-3-written protocol-2 ``bytes`` object consist of:

* ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct`` with
  ``numpy.ndarray`` + BUILD state ``(version, shape, dtype, fortran, raw_bytes)``, rebuilt with
  ``np.frombuffer`` after checking the size;
* ``numpy.dtype`` called with a type string such as ``'u1'`` (object dtypes refused);
* ``_codecs.encode(text, 'latin1')`` (how Python 3 spells ``bytes`` in protocol 2).

Any other global, and opcodes that build arbitrary objects (INST, OBJ, NEWOBJ, persistent ids,
extension codes), are refused with an :class:`UnsafePickleError` before anything happens.
"""
from __future__ import annotations

import pickletools
from typing import Any

import numpy as np

from .dataset import DataError


class UnsafePickleError(DataError):
    """The pickle asks for something other than plain data; nothing was executed."""


class _Global:
    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name


class _ArraySpec:
    """Placeholder for ``_reconstruct(ndarray, (0,), b'b')`` until its BUILD supplies the data."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None


_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
_FROMBUFFER = {("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}
_EMPTY_BYTES = {("__builtin__", "bytes"), ("builtins", "bytes")}   # protocol 0-2 spelling of b""
_ALLOWED = _RECONSTRUCT | _FROMBUFFER | _EMPTY_BYTES | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}
_BYTES_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING"}       # Python 2 ``str`` = bytes
_PUSH_OPS = {"BININT", "BININT1", "BININT2", "INT", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
             "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
             "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"}
_CONSTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False, "EMPTY_DICT": dict, "EMPTY_LIST": list,
           "EMPTY_TUPLE": tuple}


def _build_array(spec: _ArraySpec, state: Any, where: str) -> None:
    if not (isinstance(state, tuple) and len(state) == 5):
        raise DataError(f"{where}: malformed numpy array state in pickle (expected a 5-tuple)")
    _, shape, dtype, fortran, raw = state
    if isinstance(raw, bytearray):
        raw = bytes(raw)
    if not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.names is not None:
        raise UnsafePickleError(f"{where}: pickled array has dtype {dtype!r}; only plain numeric arrays are allowed")
    if isinstance(raw, str):            # a Python-2 str decoded as text by a lenient writer
        raw = raw.encode("latin-1")
    if not isinstance(raw, bytes) or not isinstance(shape, tuple) or not all(isinstance(d, int) for d in shape):
        raise DataError(f"{where}: malformed numpy array in pickle (shape {shape!r}, data {type(raw).__name__})")
    n = int(np.prod(shape, dtype=np.int64))
    if n * dtype.itemsize != len(raw):
        raise DataError(f"{where}: pickled array of shape {shape} {dtype} needs {n * dtype.itemsize} bytes, "
                        f"has {len(raw)}; the file is corrupt")
    spec.array = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


def _reduce(func: Any, args: Any, where: str) -> Any:
    if not isinstance(func, _Global) or not isinstance(args, tuple):
        raise UnsafePickleError(f"{where}: pickle calls something that is not an allowed global")
    key = (func.module, func.name)
    if key in _RECONSTRUCT:
        return _ArraySpec()
    if key in _FROMBUFFER and len(args) == 4:     # protocol 5: _frombuffer(buf, dtype, shape, order)
        spec = _ArraySpec()
        _build_array(spec, (1, args[2], args[1], args[3] == "F", args[0]), where)
        return spec
    if key == ("numpy", "dtype") and args and isinstance(args[0], (str, bytes)):
        code: str = args[0].decode("ascii", "replace") if isinstance(args[0], bytes) else args[0]  # py2 str
        try:
            return np.dtype(code)
        except TypeError:
            raise DataError(f"{where}: unknown numpy dtype {args[0]!r} in pickle") from None
    if key in _EMPTY_BYTES and args == ():
        return b""
    if key == ("_codecs", "encode") and len(args) == 2 and isinstance(args[0], str) \
            and args[1] in ("latin1", "latin-1"):
        return args[0].encode("latin-1")
    raise UnsafePickleError(f"{where}: pickle calls {func.module}.{func.name} with {len(args)} argument(s) "
                            f"({', '.join(type(a).__name__ for a in args[:4])}), which plain data never does")


MAX_DEPTH = 100  # containers nested deeper than this are refused (a CIFAR batch nests 2 levels)


def _resolve(root: Any, where: str, max_depth: int, max_items: int) -> Any:
    """Replace array placeholders by arrays, in one pass over the object graph that is linear in its size.

    A container reached twice (through the memo) is built once and shared, as ``pickle.load``
    shares it. The graph is refused, before anything is expanded, when it refers to itself, nests
    deeper than ``max_depth`` or would expand (counting each reference as a copy, as any code that
    walks the result does) to more than ``max_items`` values: a few hundred bytes of memo references
    can describe 2**100 values.
    """
    done: dict[int, tuple[Any, int]] = {}   # id -> (resolved object, expanded size)
    active: set[int] = set()                 # containers on the current path (a cycle if met again)

    def walk(obj: Any, depth: int) -> tuple[Any, int]:
        if isinstance(obj, _ArraySpec):
            return obj.array, 1
        if not isinstance(obj, (list, tuple, dict)):
            return obj, 1
        key = id(obj)
        if key in done:
            return done[key]
        if key in active:
            raise DataError(f"{where}: the pickle holds a {type(obj).__name__} that contains itself; a data file "
                            "never does: refusing it (the file is corrupt or malicious)")
        if depth >= max_depth:
            raise DataError(f"{where}: containers nested more than {max_depth} levels deep; a data file nests a few "
                            "levels: refusing it (the file is corrupt or malicious)")
        active.add(key)
        total = 1
        parts: list[Any] = []
        for item in (obj.items() if isinstance(obj, dict) else ((v,) for v in obj)):
            for v in item:
                r, n = walk(v, depth + 1)
                parts.append(r)
                total += n
                if total > max_items:
                    raise DataError(f"{where}: the pickle expands to more than {max_items:,} values through shared "
                                    "references (a 'pickle bomb'); refusing it (the file is corrupt or malicious)")
        active.discard(key)
        if isinstance(obj, dict):
            out: Any = dict(zip(parts[::2], parts[1::2]))
        else:
            out = parts if isinstance(obj, list) else tuple(parts)
        done[key] = (out, total)
        return out, total

    return walk(root, 0)[0]


def load_plain_pickle(data: bytes, where: str = "pickle", *, max_depth: int = MAX_DEPTH,
                      max_items: int | None = None) -> Any:
    """Decode a pickle of plain data and NumPy arrays without executing any code.

    Time and memory are linear in ``len(data)``: objects reached through the memo are shared,
    never copied, and self-references, deep nesting and reference "bombs" are refused.

    Args:
        data: the pickle bytes (any protocol 0-5).
        where: the file name, used in every error message.
        max_depth: deepest container nesting accepted.
        max_items: most values the result may expand to, counting every reference (default
            ``max(100_000, 2 * len(data))``: a pickle spends at least 2 bytes per value).

    Raises:
        UnsafePickleError: the pickle names a global other than the few listed in the module
            docstring, or uses an opcode that builds arbitrary objects.
        DataError: the pickle is truncated or malformed, refers to itself, nests deeper than
            ``max_depth`` or expands to more than ``max_items`` values.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DataError(f"{where}: expected the bytes of a pickle, got {type(data).__name__}")
    limit = max(100_000, 2 * len(data)) if max_items is None else int(max_items)
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        if not marks:
            raise DataError(f"{where}: malformed pickle (no MARK on the stack)")
        start = marks.pop()
        items = stack[start:]
        del stack[start:]
        return items

    try:
        for op, op_arg, _pos in pickletools.genops(data):
            name = op.name
            arg: Any = op_arg  # its type is the opcode's: a memo index, a str, bytes, a number
            if name in _PUSH_OPS:
                stack.append(arg)
            elif name in _BYTES_OPS:
                stack.append(arg.encode("latin-1") if isinstance(arg, str) else arg)
            elif name in _CONSTS:
                c = _CONSTS[name]
                stack.append(c() if callable(c) else c)
            elif name in ("PROTO", "FRAME"):
                pass
            elif name == "MARK":
                marks.append(len(stack))
            elif name == "STOP":
                if len(stack) != 1 or marks:
                    raise DataError(f"{where}: malformed pickle ({len(stack)} objects left at STOP)")
                return _resolve(stack.pop(), where, max_depth, limit)
            elif name == "POP":
                if marks and marks[-1] == len(stack):
                    marks.pop()
                else:
                    stack.pop()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(stack[-1])
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo[arg])
            elif name == "APPEND":
                v = stack.pop()
                stack[-1].append(v)
            elif name == "APPENDS":
                items = pop_mark()
                stack[-1].extend(items)
            elif name == "LIST":
                stack.append(pop_mark())
            elif name == "TUPLE":
                stack.append(tuple(pop_mark()))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                k = int(name[-1])
                top = tuple(stack[-k:])
                del stack[-k:]
                stack.append(top)
            elif name in ("DICT", "SETITEMS"):
                items = pop_mark()
                d = {} if name == "DICT" else stack[-1]
                d.update(zip(items[::2], items[1::2]))
                if name == "DICT":
                    stack.append(d)
            elif name == "SETITEM":
                v, k = stack.pop(), stack.pop()
                stack[-1][k] = v
            elif name in ("GLOBAL", "STACK_GLOBAL"):
                if name == "GLOBAL":
                    module, _, attr = arg.partition(" ")
                else:
                    attr, module = stack.pop(), stack.pop()
                if (module, attr) not in _ALLOWED:
                    raise UnsafePickleError(
                        f"{where}: refusing to load: the pickle asks for the global '{module}.{attr}', which a "
                        "data file never needs (only numpy arrays, lists, strings and ints are allowed). The file "
                        "may be malicious or is not a data batch; nothing was executed. Delete it and download "
                        "the data set again from its official location.")
                stack.append(_Global(module, attr))
            elif name == "REDUCE":
                args = stack.pop()
                stack[-1] = _reduce(stack[-1], args, where)
            elif name == "BUILD":
                state = stack.pop()
                target = stack[-1]
                if isinstance(target, _ArraySpec):
                    _build_array(target, state, where)
                elif isinstance(target, np.dtype):
                    order = state[1] if isinstance(state, tuple) and len(state) > 1 else "|"
                    if order in ("<", ">"):
                        stack[-1] = target.newbyteorder("<" if order == "<" else ">")
                else:
                    raise UnsafePickleError(f"{where}: pickle sets the state of a {type(target).__name__}, "
                                            "which plain data never does")
            else:
                raise UnsafePickleError(f"{where}: refusing pickle opcode {name}, which builds arbitrary objects "
                                        "and never occurs in a plain data file; nothing was executed")
    except (UnsafePickleError, DataError):
        raise
    except RecursionError:
        raise DataError(f"{where}: the pickle nests too deeply; refusing it") from None
    except (ValueError, IndexError, KeyError, AttributeError, TypeError, OverflowError, MemoryError) as e:
        raise DataError(f"{where}: corrupt or truncated pickle ({type(e).__name__}: {e}); "
                        "download the file again") from None
    raise DataError(f"{where}: truncated pickle (no STOP opcode); download the file again")
