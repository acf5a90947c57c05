"""A small reader of proto2 schema text (.proto) into protobuf message classes, with no protoc.

It reads what schema files such as caffe.proto use: ``syntax``, ``package``, nested ``message``
and ``enum`` blocks, ``optional``/``repeated``/``required`` fields of scalar, enum or message
type, and the field options ``default`` and ``packed``. The result is a FileDescriptorProto,
added to a private DescriptorPool, from which the protobuf runtime makes the message classes.
"""
from __future__ import annotations

import re
from pathlib import Path

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[A-Za-z_][\w.]*|[-+]?[\d.]+(?:[eE][-+]?\d+)?|\S')
_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_SCALARS = {"double": 1, "float": 2, "int64": 3, "uint64": 4, "int32": 5, "fixed64": 6, "fixed32": 7,
            "bool": 8, "string": 9, "bytes": 12, "uint32": 13, "sfixed32": 15, "sfixed64": 16,
            "sint32": 17, "sint64": 18}
_LABELS = {"optional": 1, "required": 2, "repeated": 3}


class ProtoSyntaxError(ValueError):
    """The schema text is not in the supported proto2 subset; the message names the token."""


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(_COMMENT.sub(" ", text))


def parse_proto(text: str, filename: str = "schema.proto"):
    """Parse proto2 schema text into a ``FileDescriptorProto`` (types left to resolve by scope)."""
    from google.protobuf import descriptor_pb2

    toks = _tokens(text)
    pos = 0
    fdp = descriptor_pb2.FileDescriptorProto(name=filename, syntax="proto2")

    def take(expect: str | None = None) -> str:
        nonlocal pos
        if pos >= len(toks):
            raise ProtoSyntaxError(f"{filename}: unexpected end of file (expected {expect or 'more'})")
        t = toks[pos]
        pos += 1
        if expect is not None and t != expect:
            raise ProtoSyntaxError(f"{filename}: expected {expect!r}, got {t!r} (token {pos})")
        return t

    def enum_body(e) -> None:
        e.name = take()
        take("{")
        while toks[pos] != "}":
            if toks[pos] == "option":
                while take() != ";":
                    pass
                continue
            v = e.value.add(name=take())
            take("=")
            v.number = int(take())
            if toks[pos] == "[":
                while take() != "]":
                    pass
            take(";")
        take("}")

    def message_body(m) -> None:
        m.name = take()
        take("{")
        while toks[pos] != "}":
            t = take()
            if t == "message":
                message_body(m.nested_type.add())
            elif t == "enum":
                enum_body(m.enum_type.add())
            elif t in ("option", "reserved", "extensions"):
                while take() != ";":
                    pass
            elif t in _LABELS:
                f = m.field.add(label=_LABELS[t])
                typ = take()
                f.name = take()
                take("=")
                f.number = int(take())
                if typ in _SCALARS:
                    f.type = _SCALARS[typ]
                else:
                    f.type_name = typ          # resolved below (message or enum, by scope)
                if toks[pos] == "[":
                    take("[")
                    while True:
                        key = take()
                        take("=")
                        val = take()
                        if key == "default":
                            f.default_value = val.strip("\"'") if val[0] in "\"'" else val
                        elif key == "packed":
                            f.options.packed = val == "true"
                        if take() == "]":
                            break
                take(";")
            else:
                raise ProtoSyntaxError(f"{filename}: unsupported token {t!r} in message {m.name}")
        take("}")

    while pos < len(toks):
        t = take()
        if t == "syntax":
            take("=")
            if take().strip("\"'") != "proto2":
                raise ProtoSyntaxError(f"{filename}: only proto2 schemas are supported")
            take(";")
        elif t == "package":
            fdp.package = take()
            take(";")
        elif t == "message":
            message_body(fdp.message_type.add())
        elif t == "enum":
            enum_body(fdp.enum_type.add())
        elif t in ("option", "import"):
            while take() != ";":
                pass
        else:
            raise ProtoSyntaxError(f"{filename}: unsupported top-level token {t!r}")
    _resolve(fdp)
    return fdp


def _resolve(fdp) -> None:
    """Turn bare type names into fully qualified ones and mark each as message or enum."""
    pkg = f".{fdp.package}" if fdp.package else ""
    kinds: dict[str, int] = {}

    def collect(scope: str, msgs, enums) -> None:
        for e in enums:
            kinds[f"{scope}.{e.name}"] = 14                       # TYPE_ENUM
        for m in msgs:
            kinds[f"{scope}.{m.name}"] = 11                       # TYPE_MESSAGE
            collect(f"{scope}.{m.name}", m.nested_type, m.enum_type)

    collect(pkg, fdp.message_type, fdp.enum_type)

    def fix(scope: str, msgs) -> None:
        for m in msgs:
            inner = f"{scope}.{m.name}"
            for f in m.field:
                if f.type_name and not f.type:
                    s = inner
                    while True:                                   # innermost scope first, as protoc
                        cand = f"{s}.{f.type_name}"
                        if cand in kinds:
                            f.type_name, f.type = cand, kinds[cand]
                            break
                        if not s:
                            raise ProtoSyntaxError(f"{fdp.name}: unknown type {f.type_name!r} of field "
                                                   f"{m.name}.{f.name}")
                        s = s.rsplit(".", 1)[0] if "." in s else ""
            fix(inner, m.nested_type)

    fix(pkg, fdp.message_type)


def load_proto(path: str | Path) -> dict[str, type]:
    """Compile a .proto file; returns its top-level message classes by name."""
    from google.protobuf import descriptor_pool, message_factory

    path = Path(path)
    fdp = parse_proto(path.read_text(), filename=path.name)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    prefix = f"{fdp.package}." if fdp.package else ""
    return {m.name: message_factory.GetMessageClass(pool.FindMessageTypeByName(prefix + m.name))
            for m in fdp.message_type}
