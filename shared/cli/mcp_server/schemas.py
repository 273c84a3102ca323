"""JSON Schemas of the tools' outputs, derived from the msgspec structs they return.

msgspec's own generator refuses untagged unions of structs (`StatusReport | UnreadableRun` in a
listing), so this walks the structs' fields itself. A schema says only what msgspec will encode:
required fields are those without a default, `UNSET` fields may be absent, extra keys are allowed
(a newer expd may add fields), so a client that validates results never rejects a real one.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import msgspec

_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    bytes: {"type": "string"},
}


def output_schema(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """An object schema for `struct` (its definition at the root, nested structs in `$defs`)."""
    defs: dict[str, Any] = {}
    root = _struct(struct, defs)
    own = defs.pop(struct.__name__)
    if defs:
        own = {**own, "$defs": defs}
    assert root == {"$ref": f"#/$defs/{struct.__name__}"}
    return own


def _struct(struct: type[msgspec.Struct], defs: dict[str, Any]) -> dict[str, Any]:
    name = struct.__name__
    ref = {"$ref": f"#/$defs/{name}"}
    if name in defs:
        return ref
    defs[name] = {}  # placeholder: a struct that refers to itself stops here
    properties: dict[str, Any] = {}
    required: list[str] = []
    config = struct.__struct_config__
    if config.tag_field is not None:
        properties[config.tag_field] = {"const": config.tag}
        required.append(config.tag_field)
    for field in msgspec.structs.fields(struct):
        properties[field.encode_name] = _type(field.type, defs)
        if field.required:
            required.append(field.encode_name)
    body: dict[str, Any] = {"type": "object", "title": name, "properties": properties}
    if required:
        body["required"] = required
    doc = (struct.__doc__ or "").strip()
    if doc:
        body["description"] = " ".join(doc.split())
    defs[name] = body
    return ref


def _type(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    if tp in _SCALARS:
        return dict(_SCALARS[tp])
    if tp is Any or tp is object:
        return {}
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return _struct(tp, defs)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _type(args[0], defs)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in args if a is not msgspec.UnsetType]
        if len(arms) == 1:
            return _type(arms[0], defs)
        return {"anyOf": [_type(a, defs) for a in arms]}
    if origin in (list, tuple, set, frozenset):
        items = [a for a in args if a is not Ellipsis]
        return {"type": "array", "items": _type(items[0], defs) if len(items) == 1 else {}}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type(args[1], defs) if args else {}}
    if tp in (list, tuple, set):
        return {"type": "array"}
    if tp is dict:
        return {"type": "object"}
    return {}  # anything else msgspec can encode: described as any value
