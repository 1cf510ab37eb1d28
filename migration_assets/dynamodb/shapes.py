"""Arrow types for reading DynamoDB JSON lines with their maps and lists.

Arrow's JSON reader infers a type for each nested value, but not always the DynamoDB one: a
date-like `S` becomes a timestamp, an empty `L` a list of nulls, and two images of one line
(`NewImage`, `OldImage`) get types of their own. `pinned` fixes the types a sample showed to
their DynamoDB shapes; `common_type` and `conform` bring arrays of differing inferred struct
types to one type, so they can be combined row by row.
"""

from __future__ import annotations

import pyarrow as pa

from .convert import KEY_TYPES

MAX_FIELDS = 2_000  # more (maps keyed by data, not by name): a struct per key costs rows x keys


def pinned(inferred: pa.Schema) -> pa.Schema | None:
    """Each top-level struct as attributes of typed values, leaves pinned; None when the
    shapes hold more than `MAX_FIELDS` fields."""
    schema = pa.schema([pa.field(f.name, _attributes(f.type) or f.type) for f in inferred])
    return schema if _field_count(schema) <= MAX_FIELDS else None


def _attributes(struct: pa.DataType) -> pa.DataType | None:
    """An item or map: a struct of attribute name -> typed value shape."""
    if not pa.types.is_struct(struct):
        return None
    fields = [(f.name, _typed(f.type)) for f in struct]
    return pa.struct([pa.field(name, shape) for name, shape in fields if shape is not None])


def _typed(struct: pa.DataType) -> pa.DataType | None:
    """A typed value (`{"S": ...}`): each type key pinned to its JSON type; type keys whose
    shape the sample does not fix (an empty list, an unknown key) are left to inference."""
    if not pa.types.is_struct(struct):
        return None
    fields = []
    for key in struct:
        shape: pa.DataType | None = KEY_TYPES.get(key.name)
        if key.name == "M":
            shape = _attributes(key.type)
        elif key.name == "L" and pa.types.is_list(key.type):
            item = _typed(key.type.value_type)
            shape = pa.list_(item) if item is not None else None
        if shape is not None:
            fields.append(pa.field(key.name, shape))
    return pa.struct(fields)


def _field_count(schema: pa.Schema | pa.DataType) -> int:
    """Fields at every depth: what a widened read costs per row."""
    if isinstance(schema, pa.Schema):
        return sum(1 + _field_count(f.type) for f in schema)
    return sum(1 + _field_count(schema.field(i).type) for i in range(schema.num_fields))


def common_type(first: pa.DataType, second: pa.DataType) -> pa.DataType | None:
    """The type both conform to: structs take the union of their fields, lists the common
    item type, null any type; None when two leaves differ (e.g. string and timestamp)."""
    if first == second or pa.types.is_null(second):
        return first
    if pa.types.is_null(first):
        return second
    if pa.types.is_struct(first) and pa.types.is_struct(second):
        merged = {f.name: f.type for f in first}
        for field in second:
            shape = (
                common_type(merged[field.name], field.type) if field.name in merged else field.type
            )
            if shape is None:
                return None
            merged[field.name] = shape
        return pa.struct([pa.field(name, shape) for name, shape in merged.items()])
    if pa.types.is_list(first) and pa.types.is_list(second):
        item = common_type(first.value_type, second.value_type)
        return pa.list_(item) if item is not None else None
    return None


def conform(array: pa.Array, shape: pa.DataType) -> pa.Array:
    """`array` as `shape` (a `common_type` of its type): missing struct fields become nulls."""
    if array.type == shape:
        return array
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), shape)
    mask = array.is_null() if array.null_count else None
    if pa.types.is_struct(shape):
        present = {array.type.field(i).name for i in range(array.type.num_fields)}
        children = [
            conform(array.field(f.name), f.type)
            if f.name in present
            else pa.nulls(len(array), f.type)
            for f in shape
        ]
        return pa.StructArray.from_arrays(children, fields=list(shape), mask=mask)
    offsets = array.offsets  # of this slice, into the whole child array
    return pa.ListArray.from_arrays(offsets, conform(array.values, shape.value_type), mask=mask)
