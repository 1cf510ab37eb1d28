"""DynamoDB typed JSON (`{"S": ...}`, `{"N": ...}`, `{"M": {...}}`...) checked and unwrapped.

Two jobs the vectorized decoder cannot do itself: proving that one line's typed values are
well formed (so a poisoned line is rejected with the attribute named, instead of failing a
whole file), and turning nested values (`M`, `L`, sets) into the JSON text a MySQL `JSON`
column stores, with the type wrappers removed (docs/design.md section 3): `M` becomes an object,
`L` and sets arrays, `N` a JSON number written exactly as exported, `B` a base64 string.
"""

from __future__ import annotations

import json
import re
from typing import Any

TYPE_KEYS = frozenset({"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"})
# JSON's number grammar; DynamoDB writes N in this form (e.g. "12", "-0.5", "1E+130").
JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_MAX_DEPTH = 32  # DynamoDB allows 32 levels of nesting


class TypedValueError(ValueError):
    """A typed value is malformed; the message says where (`attrs.M.items.L[2]`)."""


def check_typed_value(value: Any, path: str, depth: int = 0) -> None:
    """Raise TypedValueError unless `value` is one well-formed DynamoDB typed value."""
    if depth > _MAX_DEPTH:
        raise TypedValueError(f"{path}: nested deeper than {_MAX_DEPTH} levels")
    if not isinstance(value, dict) or len(value) != 1:
        raise TypedValueError(
            f'{path}: expected one typed value like {{"S": ...}}, got {_preview(value)}'
        )
    ((kind, inner),) = value.items()
    where = f"{path}.{kind}"
    if kind not in TYPE_KEYS:
        raise TypedValueError(f"{path}: unknown DynamoDB type {kind!r}")
    if kind in ("S", "B"):
        _expect(isinstance(inner, str), where, "a string", inner)
    elif kind == "N":
        _expect(
            isinstance(inner, str) and JSON_NUMBER.fullmatch(inner),
            where,
            "a number written as a string",
            inner,
        )
    elif kind == "BOOL":
        _expect(isinstance(inner, bool), where, "true or false", inner)
    elif kind == "NULL":
        _expect(inner is True, where, "true", inner)
    elif kind == "M":
        _expect(isinstance(inner, dict), where, "an object", inner)
        for key, item in inner.items():
            check_typed_value(item, f"{where}.{key}", depth + 1)
    elif kind == "L":
        _expect(isinstance(inner, list), where, "an array", inner)
        for index, item in enumerate(inner):
            check_typed_value(item, f"{where}[{index}]", depth + 1)
    else:  # SS, NS, BS: non-empty arrays of strings
        _expect(
            isinstance(inner, list) and inner and all(isinstance(v, str) for v in inner),
            where,
            "a non-empty array of strings",
            inner,
        )
        if kind == "NS":
            for index, item in enumerate(inner):
                _expect(JSON_NUMBER.fullmatch(item), f"{where}[{index}]", "a number", item)


def _expect(ok: Any, where: str, expected: str, got: Any) -> None:
    if not ok:
        raise TypedValueError(f"{where}: expected {expected}, got {_preview(got)}")


def _preview(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


_string = json.encoder.encode_basestring  # type: ignore[attr-defined]  # C, keeps unicode


def to_json_text(value: dict[str, Any]) -> str | None:
    """The unwrapped JSON text of a well-formed typed value; None for `{"NULL": true}`.

    Numbers keep their exported digits (no float round trip); map keys are sorted, so a
    map's text does not depend on the order an export happened to write its keys in
    (MySQL's JSON type keeps no key order either). `typed_arrow.encode` writes the same.
    """
    if "NULL" in value:
        return None
    return _json(value)


def _json(value: dict[str, Any]) -> str:
    ((kind, inner),) = value.items()
    if kind == "N":
        return inner
    if kind in ("S", "B"):
        return _string(inner)
    if kind == "BOOL":
        return "true" if inner else "false"
    if kind == "NULL":
        return "null"
    if kind == "M":
        return "{" + ",".join(f"{_string(k)}:{_json(v)}" for k, v in sorted(inner.items())) + "}"
    if kind == "L":
        return "[" + ",".join(_json(v) for v in inner) + "]"
    if kind == "NS":
        return "[" + ",".join(inner) + "]"
    return "[" + ",".join(_string(v) for v in inner) + "]"  # SS, BS
