"""json columns written column-wise (typed_arrow) equal the exact per-value path, always."""

from __future__ import annotations

import gzip
import json
import random

import pytest

from migration_assets.dynamodb import decode, shapes
from migration_assets.dynamodb.decode import decode_full_file, decode_incremental_file
from migration_assets.dynamodb.typed_json import to_json_text
from migration_assets_tests.helpers import BASE_ITEM, decode_spec

KEYS = ["a", "b", "zeta", 'q"uote', "back\\slash", "ünï", "Passenger ID", "10", "2"]
STRINGS = ["x", "", "line\nbreak", "tab\there", 'say "hi"', "\\", "✓", "2024-01-01", "1.5"]
NUMBERS = ["0", "-1", "12345678901234567890123.5", "1E+130", "-0.5"]


def random_value(rng: random.Random, depth: int = 0) -> dict:
    """A well-formed DynamoDB typed value of any kind, nesting maps and lists."""
    kinds = ["S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS"] + (
        ["M", "L"] * 2 if depth < 3 else []
    )
    kind = rng.choice(kinds)
    if kind == "S":
        return {"S": rng.choice(STRINGS)}
    if kind == "N":
        return {"N": rng.choice(NUMBERS)}
    if kind == "B":
        return {"B": rng.choice(["AAEC/w==", "AQI="])}
    if kind == "BOOL":
        return {"BOOL": rng.random() < 0.5}
    if kind == "NULL":
        return {"NULL": True}
    if kind in ("SS", "BS"):
        return {kind: rng.sample(STRINGS, rng.randint(1, 3))}
    if kind == "NS":
        return {"NS": rng.sample(NUMBERS, rng.randint(1, 3))}
    if kind == "M":
        keys = rng.sample(KEYS, rng.randint(0, 4))
        return {"M": {k: random_value(rng, depth + 1) for k in keys}}
    return {"L": [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]}


def lines_of(docs: list[dict | None]) -> bytes:
    records = []
    for number, doc in enumerate(docs, start=1):
        attributes = dict(BASE_ITEM, pk={"N": str(number)})
        if doc is not None:
            attributes["doc"] = doc
        records.append(json.dumps({"Item": attributes}, separators=(",", ":")).encode())
    return gzip.compress(b"\n".join(records) + b"\n")


def expected(doc: dict | None) -> str | None:
    return None if doc is None else to_json_text(doc)


@pytest.fixture
def exact_rows(monkeypatch) -> list[int]:
    """How many values took the exact per-value path (the rest were written column-wise)."""
    counted: list[int] = []
    real = decode._exact_json

    def counting(*args):
        exact = real(*args)

        def count(rows):
            counted.append(len(rows))
            return exact(rows)

        return count

    monkeypatch.setattr(decode, "_exact_json", counting)
    return counted


def test_random_nested_values_equal_the_exact_path(exact_rows):
    rng = random.Random(3)
    # a stable map shape first (as real tables have), then anything at all
    docs: list[dict | None] = [
        {"M": {"channel": {"S": "web"}, "items": {"N": str(i)}, "flags": {"L": []}}}
        for i in range(200)
    ]
    docs += [random_value(rng) for _ in range(3_000)] + [None]
    decoded = decode_full_file(lines_of(docs), "f", decode_spec())
    assert not decoded.rejects
    assert decoded.rows.column("doc").to_pylist() == [expected(d) for d in docs]
    assert sum(exact_rows) == 0  # every value was written column-wise


def test_map_keys_are_sorted_whatever_order_the_export_wrote():
    docs = [
        {"M": {"b": {"N": "1"}, "a": {"S": "x"}}},
        {"M": {"a": {"S": "y"}, "b": {"N": "2"}}},
        {"M": {}},
        {"L": [{"M": {"z": {"BOOL": True}, "y": {"NULL": True}}}]},
    ]
    rows = decode_full_file(lines_of(docs), "f", decode_spec()).rows.column("doc").to_pylist()
    assert rows == [
        '{"a":"x","b":1}',
        '{"a":"y","b":2}',
        "{}",
        '[{"y":null,"z":true}]',
    ]


def test_values_arrow_reads_another_way_take_the_exact_path(exact_rows):
    # a date-like S first seen after the sampled part would be read as a timestamp
    docs: list[dict | None] = [{"M": {"a": {"S": "plain"}}} for _ in range(20_000)]
    docs += [{"M": {"a": {"S": "x"}, "when": {"S": "2024-01-01 10:00:00"}}}]
    decoded = decode_full_file(lines_of(docs), "f", decode_spec())
    assert not decoded.rejects
    assert decoded.rows.column("doc").to_pylist()[-1] == '{"a":"x","when":"2024-01-01 10:00:00"}'
    assert exact_rows == [1]


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"M": {"n": {"N": "12abc"}}}, "doc.M.n.N: expected a number written as a string"),
        ({"M": {"two": {"S": "a", "N": "1"}}}, "doc.M.two: expected one typed value"),
        ({"L": [{"NULL": False}]}, "doc.L[0].NULL: expected true"),
        ({"M": {"s": {"SS": []}}}, "doc.M.s.SS: expected a non-empty array of strings"),
        ({"M": {"odd": {"Q": "1"}}}, "doc.M.odd: unknown DynamoDB type 'Q'"),
        ({"L": [{}]}, "doc.L[0]: expected one typed value"),
    ],
)
def test_a_malformed_nested_value_is_a_bad_record_naming_its_path(doc, reason):
    good = {"M": {"k": {"S": "v"}}}
    decoded = decode_full_file(lines_of([good, doc, good]), "f", decode_spec())
    assert decoded.rows.column("doc").to_pylist() == ['{"k":"v"}', '{"k":"v"}']
    (reject,) = decoded.rejects
    assert reject.line == 2 and reject.file == "f"
    assert reason in reject.reason and "attribute 'doc'" in reject.reason


def test_too_many_distinct_keys_reads_the_plain_way_with_the_same_result(monkeypatch):
    docs = [{"M": {f"user{i}": {"N": str(i)}}} for i in range(300)]
    wide = decode_full_file(lines_of(docs), "f", decode_spec()).rows
    monkeypatch.setattr(shapes, "MAX_FIELDS", 50)
    calls: list[bool] = []
    real_read = decode._read

    def read(text, schema, unexpected="ignore"):
        calls.append(unexpected == "infer")
        return real_read(text, schema, unexpected)

    monkeypatch.setattr(decode, "_read", read)
    plain = decode_full_file(lines_of(docs), "f", decode_spec()).rows
    assert calls == [True, False]  # the sample, then the plain read
    assert plain.column("doc").to_pylist() == wide.column("doc").to_pylist()
    assert plain.column("doc").to_pylist() == [expected(d) for d in docs]


def change(number: int, new: dict | None, old: dict | None = None) -> bytes:
    key = {"pk": {"N": str(number)}, "sk": BASE_ITEM["sk"]}
    line: dict = {"Metadata": {"WriteTimestampMicros": {"N": "1704067200000000"}}, "Keys": key}
    for name, doc in (("NewImage", new), ("OldImage", old)):
        if doc is not None:
            line[name] = dict(BASE_ITEM, **key, doc=doc)
    return json.dumps(line, separators=(",", ":")).encode()


def test_incremental_images_write_maps_column_wise_whatever_their_shapes(exact_rows):
    """Puts carry NewImage, deletes OldImage: Arrow reads each with a type of its own."""
    new = {"M": {"b": {"L": [{"N": "1"}]}, "a": {"SS": ["x"]}}}
    old = {"M": {"gone": {"M": {"deep": {"BOOL": True}}}}}
    lines = [change(1, new), change(2, None, old), change(3, {"L": []}, old)]
    data = gzip.compress(b"\n".join(lines) + b"\n")
    rows = decode_incremental_file(data, "i", decode_spec()).rows.column("doc").to_pylist()
    assert rows == ['{"a":["x"],"b":[1]}', '{"gone":{"deep":true}}', "[]"]
    assert sum(exact_rows) == 0


def test_images_read_into_clashing_types_are_read_again_plainly(exact_rows):
    """A key first seen after the sample, date-like in NewImage and plain in OldImage."""
    filler = [change(n, {"M": {"a": {"S": "plain"}}}) for n in range(1, 12_000)]
    new = {"M": {"x": {"S": "2024-01-01"}}}
    old = {"M": {"x": {"S": "hello"}}}
    lines = [*filler, change(20_000, new, old), change(20_001, None, old)]
    data = gzip.compress(b"\n".join(lines) + b"\n")
    decoded = decode_incremental_file(data, "i", decode_spec())
    assert not decoded.rejects
    docs = decoded.rows.column("doc").to_pylist()
    assert docs[-2:] == ['{"x":"2024-01-01"}', '{"x":"hello"}']
    assert docs[0] == '{"a":"plain"}' and len(docs) == len(lines)
    assert sum(exact_rows) == len(lines)  # the plain read leaves every map to the exact path


def test_a_json_null_where_a_typed_value_belongs_is_a_bad_record_not_a_missing_value():
    """Arrow reads `null` as absent; exports never write one, so it is refused, named."""
    good = {"Item": dict(BASE_ITEM, doc={"M": {"k": {"S": "a:null, [null"}}})}  # only text
    in_map = {"Item": dict(BASE_ITEM, pk={"N": "2"}, doc={"M": {"k": None, "j": {"N": "1"}}})}
    in_scalar = {"Item": dict(BASE_ITEM, pk={"N": "3"}, amount=None)}
    unmapped = {"Item": dict(BASE_ITEM, pk={"N": "4"}, extra=None)}  # not in the spec: ignored
    data = gzip.compress(
        b"\n".join(json.dumps(r).encode() for r in (good, in_map, in_scalar, unmapped)) + b"\n"
    )
    decoded = decode_full_file(data, "f", decode_spec())
    assert decoded.rows.column("pk").to_pylist() == [1, 4]
    assert decoded.rows.column("doc").to_pylist()[0] == '{"k":"a:null, [null"}'
    reasons = {r.line: r.reason for r in decoded.rejects}
    assert set(reasons) == {2, 3}
    assert "Item.doc.M.k: expected one typed value" in reasons[2]
    assert "Item.amount: expected one typed value" in reasons[3]
