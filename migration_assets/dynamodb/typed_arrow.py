"""DynamoDB typed values parsed by Arrow -> unwrapped JSON text, column-wise (json columns).

Arrow's JSON reader reads a map (`M`) as a struct of typed structs and a list (`L`) as a
list of typed structs. `encode` writes them as the JSON text `typed_json.to_json_text`
makes one value at a time (maps with their keys sorted, numbers with their exported
digits), with array operations: a million maps take a fraction of a second instead of
seconds. A row it cannot vouch for is flagged instead: a typed value with no type key or
two, a type key Arrow read as anything but its DynamoDB shape (a string read as a timestamp,
say), a malformed number, `NULL: false`, an empty set, a non-empty list of nulls. Flagged
rows take the exact per-value path, which also says what is wrong with them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .typed_json import JSON_NUMBER

_NUMBER = f"^(?:{JSON_NUMBER.pattern})$"


@dataclass(frozen=True)
class Encoded:
    text: pa.Array  # string: the value's JSON text ("null" for NULL); null if missing or flagged
    flagged: np.ndarray  # bool: present but not encodable here (the exact path decides)


def encode(typed: pa.Array) -> Encoded:
    """JSON text for each typed value of a struct array (one field per type key)."""
    length = len(typed)
    if not pa.types.is_struct(typed.type):
        return Encoded(pa.nulls(length, pa.string()), _valid(typed))
    texts: list[pa.Array] = []
    keys = np.zeros(length, dtype=np.int8)
    flagged = np.zeros(length, dtype=bool)
    for name, child in zip([f.name for f in typed.type], typed.flatten(), strict=True):
        present = _valid(child)
        keys += present
        leaf = _ENCODERS.get(name)
        if leaf is None:
            flagged |= present
            continue
        encoded = leaf(child)
        texts.append(encoded.text)
        flagged |= encoded.flagged
    flagged |= _valid(typed) & (keys != 1)
    text = pc.coalesce(*texts) if texts else pa.nulls(length, pa.string())
    if flagged.any():
        text = pc.if_else(pa.array(flagged), pa.scalar(None, pa.string()), text)
    return Encoded(text, flagged)


def quote(strings: pa.Array) -> pa.Array:
    """JSON string literals for Arrow strings (control characters take the exact path)."""
    escaped = pc.replace_substring(pc.replace_substring(strings, "\\", "\\\\"), '"', '\\"')
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    control = pc.fill_null(pc.match_substring_regex(strings, r"[\x00-\x1f]"), False)
    if not pc.any(control).as_py():
        return quoted
    rows = np.flatnonzero(control.to_numpy(zero_copy_only=False))
    exact = [json.dumps(s, ensure_ascii=False) for s in strings.take(pa.array(rows)).to_pylist()]
    patch: list[str | None] = [None] * len(strings)
    for row, text in zip(rows.tolist(), exact, strict=True):
        patch[row] = text
    return pc.if_else(control, pa.array(patch, pa.string()), quoted)


def join_lists(lists: pa.Array, items: pa.Array) -> pa.Array:
    """`[a,b,...]` per list, from the already encoded texts of all its items in order."""
    rebased = pc.subtract(lists.offsets, lists.offsets[0])
    joined = pc.binary_join(pa.ListArray.from_arrays(rebased, items, mask=lists.is_null()), ",")
    return pc.binary_join_element_wise("[", joined, "]", "")


def list_items(lists: pa.Array) -> pa.Array:
    """The items of every list, in order (a sliced list array's own window)."""
    start, stop = lists.offsets[0].as_py(), lists.offsets[-1].as_py()
    return lists.values.slice(start, stop - start)


# --------------------------------------------------------------------------- one type key


def _valid(array: pa.Array) -> np.ndarray:
    return array.is_valid().to_numpy(zero_copy_only=False)


def _unexpected(child: pa.Array) -> Encoded:
    return Encoded(pa.nulls(len(child), pa.string()), _valid(child))


def _string(child: pa.Array) -> Encoded:  # S, B (base64 text stays a string)
    if not pa.types.is_string(child.type):  # e.g. a date-like S inferred as a timestamp
        return _unexpected(child)
    return Encoded(quote(child), np.zeros(len(child), dtype=bool))


def _number(child: pa.Array) -> Encoded:
    if not pa.types.is_string(child.type):
        return _unexpected(child)
    ok = pc.fill_null(pc.match_substring_regex(child, _NUMBER), False)
    flagged = _valid(child) & ~ok.to_numpy(zero_copy_only=False)
    return Encoded(pc.if_else(ok, child, pa.scalar(None, pa.string())), flagged)


def _boolean(child: pa.Array) -> Encoded:
    if not pa.types.is_boolean(child.type):
        return _unexpected(child)
    return Encoded(pc.if_else(child, "true", "false"), np.zeros(len(child), dtype=bool))


def _null(child: pa.Array) -> Encoded:
    if not pa.types.is_boolean(child.type):
        return _unexpected(child)
    flagged = _valid(child) & ~child.fill_null(True).to_numpy(zero_copy_only=False)
    return Encoded(pc.if_else(child, "null", pa.scalar(None, pa.string())), flagged)


def _per_list(lists: pa.Array, item_flags: np.ndarray) -> np.ndarray:
    """A row is flagged when any item of its list is."""
    offsets = pc.subtract(lists.offsets, lists.offsets[0]).to_numpy()
    before = np.concatenate(([0], np.cumsum(item_flags, dtype=np.int64)))
    return before[offsets[1:]] > before[offsets[:-1]]


def _set(encode_items, check_numbers: bool = False):
    def encoder(child: pa.Array) -> Encoded:
        if not (pa.types.is_list(child.type) and pa.types.is_string(child.type.value_type)):
            return _unexpected(child)
        items = list_items(child)
        flags = items.is_null().to_numpy(zero_copy_only=False)
        if check_numbers:
            ok = pc.fill_null(pc.match_substring_regex(items, _NUMBER), False)
            flags = flags | ~ok.to_numpy(zero_copy_only=False)
        empty = pc.fill_null(pc.equal(pc.list_value_length(child), 0), False)
        flagged = _per_list(child, flags) | empty.to_numpy(zero_copy_only=False)
        return Encoded(join_lists(child, encode_items(items)), flagged)

    return encoder


def _list(child: pa.Array) -> Encoded:
    if not pa.types.is_list(child.type):
        return _unexpected(child)
    if pa.types.is_null(child.type.value_type):  # only empty lists were seen
        lengths = pc.fill_null(pc.list_value_length(child), 0).to_numpy(zero_copy_only=False)
        text = pc.if_else(child.is_valid(), "[]", pa.scalar(None, pa.string()))
        return Encoded(text, lengths > 0)
    items = encode(list_items(child))
    item_flags = items.flagged | ~_valid(items.text)  # a null item is not a typed value
    return Encoded(join_lists(child, items.text), _per_list(child, item_flags))


def _map(child: pa.Array) -> Encoded:
    if not pa.types.is_struct(child.type):
        return _unexpected(child)
    length = len(child)
    flagged = np.zeros(length, dtype=bool)
    members: list[pa.Array] = []
    fields = dict(zip([f.name for f in child.type], child.flatten(), strict=True))
    for key in sorted(fields):
        value = encode(fields[key])
        flagged |= value.flagged
        prefix = "," + json.dumps(key, ensure_ascii=False) + ":"
        members.append(pc.fill_null(pc.binary_join_element_wise(prefix, value.text, ""), ""))
    if members:
        joined = pc.binary_join_element_wise(*members, "")
        body = pc.utf8_slice_codeunits(joined, 1)  # the first member's leading comma
    else:
        body = pa.array([""] * length, pa.string())
    text = pc.if_else(
        child.is_valid(),
        pc.binary_join_element_wise("{", body, "}", ""),
        pa.scalar(None, pa.string()),
    )
    return Encoded(text, flagged)


_ENCODERS = {
    "S": _string,
    "B": _string,
    "N": _number,
    "BOOL": _boolean,
    "NULL": _null,
    "SS": _set(quote),
    "BS": _set(quote),
    "NS": _set(lambda items: items, check_numbers=True),
    "L": _list,
    "M": _map,
}
