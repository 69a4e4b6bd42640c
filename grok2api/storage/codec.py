"""How a :class:`TokenRecord` is flattened for backends that store one value per field.

Redis keeps every field as a string in a hash; SQL keeps every field in its own column.
Both derive their layout from ``TokenRecord.model_fields`` through :data:`FIELDS`, so a
field added to the record is stored by every backend without touching them.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from grok2api.storage.base import CorruptDataError, TokenRecord, TokenUpdate

Kind = Literal["int", "bool", "str", "json"]


@dataclass(frozen=True)
class FieldSpec:
    """One record field: its name, storage kind and whether ``None`` is a legal value."""

    name: str
    kind: Kind
    optional: bool


def _spec(name: str, annotation: Any) -> FieldSpec:
    optional = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        annotation = args[0] if len(args) == 1 else Any
    kind: Kind
    if annotation is bool:
        kind = "bool"
    elif annotation is int:
        kind = "int"
    elif annotation is str or (isinstance(annotation, type) and issubclass(annotation, str)):
        kind = "str"
    else:
        kind = "json"
    return FieldSpec(name, kind, optional)


FIELDS: tuple[FieldSpec, ...] = tuple(_spec(n, f.annotation) for n, f in TokenRecord.model_fields.items())
FIELD_BY_NAME: dict[str, FieldSpec] = {f.name: f for f in FIELDS}


def plain(value: Any) -> Any:
    """A value with enums replaced by their plain value (what drivers and JSON accept)."""
    return value.value if isinstance(value, Enum) else value


def to_text(spec: FieldSpec, value: Any) -> str:
    """The string form of a non-``None`` field value (Redis hash field)."""
    value = plain(value)
    if spec.kind == "bool":
        return "1" if value else "0"
    if spec.kind == "json":
        return orjson.dumps(value).decode()
    return str(value)


def to_column(spec: FieldSpec, value: Any) -> Any:
    """The SQL parameter for a field value (``None`` stays ``None``)."""
    if value is None:
        return None
    value = plain(value)
    if spec.kind == "json":
        return orjson.dumps(value).decode()
    if spec.kind == "bool":
        return bool(value)
    return value


def record_columns(record: TokenRecord) -> dict[str, Any]:
    """Every field of ``record`` as SQL parameters, in :data:`FIELDS` order."""
    return {f.name: to_column(f, getattr(record, f.name)) for f in FIELDS}


def record_text_fields(record: TokenRecord) -> dict[str, str]:
    """Every non-``None`` field of ``record`` as strings (a Redis hash)."""
    out: dict[str, str] = {}
    for f in FIELDS:
        value = getattr(record, f.name)
        if value is not None:
            out[f.name] = to_text(f, value)
    return out


def decode_record(raw: dict[str, Any], where: str) -> TokenRecord:
    """Build a record from stored values (strings or driver types).

    Unusable data raises :class:`CorruptDataError` naming ``where``.

    A missing or ``NULL`` value of a non-optional field falls back to the field's default,
    so records written before a field existed still load.
    """
    data: dict[str, Any] = {}
    try:
        for f in FIELDS:
            value = raw.get(f.name)
            if value is None:
                if f.optional:
                    data[f.name] = None
                continue
            if f.kind == "json" and isinstance(value, (str, bytes)):
                value = orjson.loads(value)
            elif f.kind == "bool" and isinstance(value, str):
                value = value not in ("0", "", "false", "False")
            data[f.name] = value
        return TokenRecord.model_validate(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptDataError(where, None, f"undecodable JSON field: {exc.msg}") from None
    except ValidationError as exc:
        raise CorruptDataError(where, None, describe_validation(exc)) from None


def describe_validation(exc: ValidationError) -> str:
    """A validation error as text that never echoes the input (it may hold a secret)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ())) or "record"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def combined_assignments(update: TokenUpdate) -> tuple[dict[str, Any], dict[str, int]]:
    """``(set, incr)`` with fields present in both folded into ``set`` (set first, then add)."""
    sets = dict(update.set)
    incr: dict[str, int] = {}
    for name, delta in update.incr.items():
        if name in sets:
            sets[name] = int(sets[name] or 0) + delta
        else:
            incr[name] = delta
    return sets, incr


_NAMESPACE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


def check_namespace(namespace: str) -> str:
    """``namespace`` if usable as a Redis key prefix and an SQL table-name prefix, else ``ValueError``."""
    if not _NAMESPACE.match(namespace):
        raise ValueError(
            f"invalid storage namespace {namespace!r}: use a letter then up to 39 of [A-Za-z0-9_]"
        )
    return namespace
