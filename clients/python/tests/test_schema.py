"""The client's wire types (``exec_server.wire``) against the JSON Schema
the server generates from its Rust types (``schema/exec-server.schema.json``,
committed; a Rust test fails when it is stale).

Every field the client types must exist in the schema with the same type
and the same requiredness, and every field of the methods it calls must be
typed: a server change the client does not follow fails here, by name.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import pytest

from exec_server import wire

from .conftest import REPO

SCHEMA = json.loads((REPO / "schema" / "exec-server.schema.json").read_text())
DEFS: dict[str, Any] = SCHEMA["$defs"]

# Fields the client reads before the committed schema has them: named in
# SPEC section 7 or announced by an issue. Drop an entry once the schema
# has the field; from then on it is checked like the rest. (Empty: the
# schema has every field the client types.)
PENDING: set[tuple[str, str]] = set()

Normal = Any  # a hashable description of a type


def _enum_values(definition: dict[str, Any]) -> frozenset[str] | None:
    if "enum" in definition:
        return frozenset(definition["enum"])
    if "oneOf" in definition and all("const" in option for option in definition["oneOf"]):
        return frozenset(option["const"] for option in definition["oneOf"])
    return None


def schema_type(node: dict[str, Any]) -> Normal:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        values = _enum_values(DEFS[name])
        return ("enum", values) if values is not None else ("ref", name)
    if "anyOf" in node:
        members: set[Normal] = set()
        for option in node["anyOf"]:
            member = schema_type(option)
            members |= member if isinstance(member, frozenset) else {member}
        return frozenset(members)
    kinds = node.get("type")
    if kinds is None:
        raise AssertionError(f"cannot read schema node {node}")
    if isinstance(kinds, list):
        return frozenset(schema_type({**node, "type": kind}) for kind in kinds)
    if kinds == "array":
        return ("array", schema_type(node["items"]))
    if kinds == "object" and isinstance(node.get("additionalProperties"), dict):
        return ("map", schema_type(node["additionalProperties"]))
    if kinds == "string" and "enum" in node:
        return ("enum", frozenset(node["enum"]))
    return (kinds,)


def python_type(annotation: Any) -> Normal:
    origin = get_origin(annotation)
    if annotation is type(None):
        return ("null",)
    if annotation is str:
        return ("string",)
    if annotation is bool:
        return ("boolean",)
    if annotation is int:
        return ("integer",)
    if origin is Literal:
        return ("enum", frozenset(get_args(annotation)))
    if origin is Union or origin is types.UnionType:
        members: set[Normal] = set()
        for arg in get_args(annotation):
            member = python_type(arg)
            members |= member if isinstance(member, frozenset) else {member}
        return frozenset(members)
    if origin is list:
        return ("array", python_type(get_args(annotation)[0]))
    if origin is dict:
        key, value = get_args(annotation)
        assert key is str, annotation
        return ("map", python_type(value))
    if typing.is_typeddict(annotation):
        return ("ref", annotation.__name__)
    raise AssertionError(f"no JSON type for {annotation!r}")


def typed_dicts() -> dict[str, Any]:
    return {name: value for name, value in vars(wire).items() if typing.is_typeddict(value)}


def test_every_typed_dict_is_a_schema_definition() -> None:
    unknown = sorted(set(typed_dicts()) - set(DEFS))
    assert not unknown, f"wire.py types {unknown}, which the schema does not define"


@pytest.mark.parametrize("name", sorted(typed_dicts()))
def test_fields_types_and_requiredness_match_the_schema(name: str) -> None:
    typed = typed_dicts()[name]
    definition = DEFS[name]
    schema_fields: dict[str, Any] = definition.get("properties", {})
    hints = get_type_hints(typed)
    pending = {field for (owner, field) in PENDING if owner == name}
    invented = sorted(set(hints) - set(schema_fields) - pending)
    assert not invented, f"{name}: {invented} are not in the schema"
    untyped = sorted(set(schema_fields) - set(hints))
    assert not untyped, f"{name}: the schema has {untyped}; add them to clients/python/src/exec_server/wire.py"
    required = set(definition.get("required", []))
    assert set(typed.__required_keys__) == required, f"{name}: required keys differ from the schema"
    for field, node in schema_fields.items():
        assert python_type(hints[field]) == schema_type(node), f"{name}.{field}: {hints[field]} vs schema {node}"


@pytest.mark.parametrize(
    ("alias", "definition"),
    [
        (wire.ProcessStream, "ProcessStream"),
        (wire.StdinKind, "StdinKind"),
        (wire.OnDisconnect, "OnDisconnect"),
        (wire.WaitReason, "WaitReason"),
    ],
)
def test_string_enums_match(alias: Any, definition: str) -> None:
    assert frozenset(get_args(alias)) == _enum_values(DEFS[definition])


def _ref(node: dict[str, Any]) -> str:
    return str(node["$ref"].rsplit("/", 1)[1])


def test_methods_and_notifications_use_the_schemas_types() -> None:
    methods = SCHEMA["methods"]
    for method, (params, result) in wire.METHODS.items():
        assert method in methods, f"the schema has no method {method}"
        assert _ref(methods[method]["params"]) == params.__name__, method
        assert _ref(methods[method]["result"]) == result.__name__, method
    notifications = SCHEMA["notifications"]
    for name, params in wire.NOTIFICATIONS.items():
        assert _ref(notifications[name]["params"]) == params.__name__, name


def test_the_client_covers_the_whole_process_api() -> None:
    wanted = {name for name in SCHEMA["methods"] if name.startswith("process/")} | {"initialize"}
    missing = sorted(wanted - set(wire.METHODS))
    assert not missing, f"methods the Python client does not type: {missing}"
    notifications = {name for name in SCHEMA["notifications"] if name.startswith("process/")}
    assert notifications == set(wire.NOTIFICATIONS)
