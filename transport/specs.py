"""Field specs: the validating decoder and the encoder of every message, compiled from annotations.

``spec_for(cls)`` reads a message or struct class's annotations (see ``schema.py``) once and
returns a ``StructSpec``; the codec calls its ``decode(value, ctx)`` on the msgpack body and its
``encode(value, frames)`` to build one. Spec objects are data (tests derive hypothesis
strategies from them; docs could be generated from them).

Each ``StructSpec`` also generates, with ``exec``, a straight-line decoder and encoder for its
class: scalar checks inlined, one call per nested struct or list. The generated fast path only
decides *whether* a field is valid; when it is not, the field's spec object decodes it again to
produce the error, so the error messages have one source.

Errors: a failing spec raises ``SpecError`` (internal) carrying the reason and the path from the
failing field up; the codec turns it into ``InvalidRequestError("Produce.topics[0].acks: ...")``.
Pure: no I/O; compiled specs are immutable and shared by all threads.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Sequence

from kbroker.transport.schema import INT64_MAX, INT64_MIN, PAYLOAD, TEXT_MAX, Buffer, MaxLen, OneOf, Range

__all__ = [
    "SpecError",
    "DecodeContext",
    "IntSpec",
    "BoolSpec",
    "StrSpec",
    "OptionalSpec",
    "TupleSpec",
    "PayloadSpec",
    "StructSpec",
    "spec_for",
    "describe",
]


class SpecError(Exception):
    """A field failed validation; enclosing specs add their path component as it propagates."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []  # innermost first

    def where(self, root: str) -> str:
        out = root
        for part in reversed(self.path):
            out += part if part.startswith("[") else "." + part
        return out


class DecodeContext:
    """The frames of the message being decoded, and which payload frames the body used."""

    __slots__ = ("frames", "used")

    def __init__(self, frames: list[Buffer]) -> None:
        self.frames = frames
        self.used = [False] * len(frames)


_KIND_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    str: "a string",
    bytes: "binary data",
    tuple: "an array",
    list: "an array",
    dict: "a map",
    type(None): "nil",
}


def describe(value: object) -> str:
    """How a msgpack value reads in an error message: ``an integer (5)``, ``a map``, ``nil``."""
    kind = _KIND_NAMES.get(type(value))
    if kind is None:
        return type(value).__name__
    if type(value) in (bool, int):
        return f"{kind} ({value!r})"
    return kind


class IntSpec:
    """An integer in ``[lo, hi]`` or in ``choices``; bools are rejected."""

    __slots__ = ("lo", "hi", "choices")
    plain = True

    def __init__(self, lo: int, hi: int, choices: tuple[int, ...] | None = None) -> None:
        self.lo, self.hi, self.choices = lo, hi, choices

    def decode(self, value: Any, ctx: DecodeContext) -> int:
        if type(value) is not int:
            raise SpecError(f"expected an integer, got {describe(value)}")
        if self.choices is not None:
            if value not in self.choices:
                raise SpecError(f"must be one of {', '.join(map(str, self.choices))}, got {value}")
        elif value < self.lo or value > self.hi:
            raise SpecError(f"must be between {self.lo} and {self.hi}, got {value}")
        return value

    def invalid_expr(self, var: str, consts: dict[str, Any]) -> str:
        if self.choices is not None:
            name = f"_choices{len(consts)}"
            consts[name] = frozenset(self.choices)
            return f"type({var}) is not int or {var} not in {name}"
        return f"type({var}) is not int or {var} < {self.lo} or {var} > {self.hi}"


class BoolSpec:
    __slots__ = ()
    plain = True

    def decode(self, value: Any, ctx: DecodeContext) -> bool:
        if type(value) is not bool:
            raise SpecError(f"expected a boolean, got {describe(value)}")
        return value

    def invalid_expr(self, var: str, consts: dict[str, Any]) -> str:
        return f"type({var}) is not bool"


class StrSpec:
    __slots__ = ("max_len",)
    plain = True

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len

    def decode(self, value: Any, ctx: DecodeContext) -> str:
        if type(value) is not str:
            raise SpecError(f"expected a string, got {describe(value)}")
        if len(value) > self.max_len:
            raise SpecError(f"{len(value)} characters, more than the limit of {self.max_len}")
        return value

    def invalid_expr(self, var: str, consts: dict[str, Any]) -> str:
        return f"type({var}) is not str or len({var}) > {self.max_len}"


class OptionalSpec:
    __slots__ = ("inner", "plain")

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.plain = inner.plain

    def decode(self, value: Any, ctx: DecodeContext) -> Any:
        return None if value is None else self.inner.decode(value, ctx)

    def encode(self, value: Any, frames: list[Buffer]) -> Any:
        return None if value is None else self.inner.encode(value, frames)

    def invalid_expr(self, var: str, consts: dict[str, Any]) -> str | None:
        inner = getattr(self.inner, "invalid_expr", None)
        if inner is None:
            return None
        expr = inner(var, consts)
        return None if expr is None else f"{var} is not None and ({expr})"


class TupleSpec:
    __slots__ = ("item", "plain", "_all_valid")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.plain = item.plain
        self._all_valid = _generate_all_valid(item)

    def decode(self, value: Any, ctx: DecodeContext) -> tuple[Any, ...]:
        if type(value) is not tuple:
            raise SpecError(f"expected an array, got {describe(value)}")
        if self._all_valid is not None and self._all_valid(value):
            return value
        decode_item = self.item.decode
        i = 0
        try:
            if self.plain:  # items decode to themselves: validate and keep the tuple
                for i, item in enumerate(value):
                    decode_item(item, ctx)
                return value
            out = []
            for i, item in enumerate(value):
                out.append(decode_item(item, ctx))
            return tuple(out)
        except SpecError as bad:
            bad.path.append(f"[{i}]")
            raise

    def encode(self, value: Sequence[Any], frames: list[Buffer]) -> list[Any]:
        encode_item = self.item.encode
        return [encode_item(item, frames) for item in value]


class PayloadSpec:
    """A raw frame: its index on the wire, a buffer in memory."""

    __slots__ = ()
    plain = False

    def decode(self, value: Any, ctx: DecodeContext) -> Buffer:
        if type(value) is not int:
            raise SpecError(f"expected a frame index, got {describe(value)}")
        count = len(ctx.frames)
        if value < 1 or value >= count:
            raise SpecError(
                f"frame index {value} out of range: the message has {count - 1} payload frame(s)"
                + (f" (indexes 1..{count - 1})" if count > 1 else "")
            )
        if ctx.used[value]:
            raise SpecError(f"frame {value} is referenced twice")
        ctx.used[value] = True
        return ctx.frames[value]

    def encode(self, value: Buffer, frames: list[Buffer]) -> int:
        frames.append(value)
        return len(frames) - 1


class StructSpec:
    """A dataclass as a map with exactly its field names."""

    __slots__ = ("cls", "name", "fields", "names", "decode", "encode")
    plain = False

    def __init__(self, cls: type, fields: tuple[tuple[str, Any], ...]) -> None:
        self.cls = cls
        self.name = cls.__name__
        self.fields = fields
        self.names = frozenset(name for name, _ in fields)
        self.decode, self.encode = _generate(self)

    def field_error(self, index: int, value: Any, ctx: DecodeContext) -> SpecError:
        """The error for field ``index`` (called by the fast path once it saw the field is bad)."""
        name, spec = self.fields[index]
        try:
            spec.decode(value, ctx)
            bad = SpecError("invalid value")  # unreachable unless a fast path disagrees with its spec
        except SpecError as exc:
            bad = exc
        bad.path.append(name)
        return bad

    def shape_error(self, value: Any) -> SpecError:
        if type(value) is not dict:
            return SpecError(f"expected a map, got {describe(value)}")
        for name, _ in self.fields:
            if name not in value:
                bad = SpecError("required field is missing")
                bad.path.append(name)
                return bad
        extra = sorted(repr(k) if type(k) is not str else k for k in value.keys() - self.names)
        bad = SpecError(f"unknown field (fields of {self.name}: {', '.join(n for n, _ in self.fields) or 'none'})")
        bad.path.append(extra[0])
        return bad


def _generate_all_valid(item: Any) -> Any:
    """For arrays of scalars: a generated ``all_valid(value)`` with the item check inlined."""
    check = getattr(item, "invalid_expr", None)
    consts: dict[str, Any] = {}
    expr = check("x", consts) if check is not None else None
    if expr is None:
        return None
    source = f"def all_valid(value):\n    for x in value:\n        if {expr}:\n            return False\n    return True"
    exec(compile(source, "<kbroker array check>", "exec"), consts)
    return consts["all_valid"]


def _generate(spec: StructSpec) -> tuple[Any, Any]:
    """Straight-line ``decode(value, ctx)`` and ``encode(value, frames)`` for one struct."""
    consts: dict[str, Any] = {"_cls": spec.cls, "_names": spec.names, "_spec": spec, "SpecError": SpecError}
    dec = [
        "def decode(value, ctx):",
        "    if type(value) is not dict or value.keys() != _names:",
        "        raise _spec.shape_error(value)",
    ]
    enc_items = []
    args = []
    for index, (name, field) in enumerate(spec.fields):
        var = f"f{index}"
        args.append(var)
        dec.append(f"    {var} = value[{name!r}]")
        check = getattr(field, "invalid_expr", None)
        expr = check(var, consts) if check is not None else None
        if expr is not None:
            dec.append(f"    if {expr}:")
            dec.append(f"        raise _spec.field_error({index}, {var}, ctx)")
        else:
            consts[f"_decode{index}"] = field.decode
            dec += [
                "    try:",
                f"        {var} = _decode{index}({var}, ctx)",
                "    except SpecError as bad:",
                f"        bad.path.append({name!r})",
                "        raise",
            ]
        if field.plain:
            enc_items.append(f"{name!r}: value.{name}")
        else:
            consts[f"_encode{index}"] = field.encode
            enc_items.append(f"{name!r}: _encode{index}(value.{name}, frames)")
    dec.append(f"    return _cls({', '.join(args)})")
    enc = ["def encode(value, frames):", f"    return {{{', '.join(enc_items)}}}"]
    namespace = dict(consts)
    exec(compile("\n".join(dec + enc), f"<kbroker codec for {spec.name}>", "exec"), namespace)
    return namespace["decode"], namespace["encode"]


# --- Compiling annotations into specs -------------------------------------------------------

_SPECS: dict[type, StructSpec] = {}


def _compile(tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(tp)
        if PAYLOAD in meta:
            return PayloadSpec()
        if base is int:
            for item in meta:
                if isinstance(item, Range):
                    return IntSpec(item.lo, item.hi)
                if isinstance(item, OneOf):
                    return IntSpec(min(item.values), max(item.values), item.values)
            return IntSpec(INT64_MIN, INT64_MAX)
        if base is str:
            return StrSpec(next((m.n for m in meta if isinstance(m, MaxLen)), TEXT_MAX))
        return _compile(base, where)
    if tp is bool:
        return BoolSpec()
    if tp is int:
        return IntSpec(INT64_MIN, INT64_MAX)
    if tp is str:
        return StrSpec(TEXT_MAX)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return OptionalSpec(_compile(args[0], where))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return TupleSpec(_compile(args[0], where))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return spec_for(tp)
    raise TypeError(f"{where}: cannot put {tp!r} on the wire")


def spec_for(cls: type) -> StructSpec:
    """The compiled spec of a message or struct class (cached; not thread-safe to build, so the
    codec builds every registered message's spec at import)."""
    spec = _SPECS.get(cls)
    if spec is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        fields = tuple((f.name, _compile(hints[f.name], f"{cls.__name__}.{f.name}")) for f in dataclasses.fields(cls))
        spec = _SPECS[cls] = StructSpec(cls, fields)
    return spec
