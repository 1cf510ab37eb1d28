"""Typed decoding of export data files: exact values, every type, bad records named."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from decimal import Decimal

import pytest

from migration_assets.dynamodb.decode import (
    DELETE,
    KEYS_ONLY,
    OP,
    PUT,
    WRITE_MICROS,
    decode_full_file,
    decode_incremental_file,
)
from migration_assets.dynamodb.export_writer import encode_incremental_line
from migration_assets.dynamodb.layout import CorruptExportError
from migration_assets_tests.helpers import BASE_ITEM, decode_spec

UTC = dt.UTC


def gz_lines(*records: dict | bytes) -> bytes:
    raw = b"".join(
        (r if isinstance(r, bytes) else json.dumps(r, separators=(",", ":")).encode()) + b"\n"
        for r in records
    )
    return gzip.compress(raw)


def item(**attributes) -> dict:
    return {"Item": attributes}


def test_every_type_decodes_exactly():
    spec = decode_spec()
    full = dict(
        BASE_ITEM,
        small={"N": "-2147483648"},
        amount={"N": "1234567890123456.1234"},
        ratio={"N": "0.1"},
        flag={"BOOL": True},
        name={"S": 'naïve ✓ "quoted" \\ back'},
        sig={"B": "AAEC/w=="},
        born={"S": "1999-12-31"},
        seen={"S": "2024-01-01T01:00:00+01:00"},
        doc={
            "M": {
                "n": {"N": "12345678901234567890123.5"},
                "l": {"L": [{"S": "x"}, {"NULL": True}, {"BOOL": False}, {"B": "AQI="}]},
                "ss": {"SS": ["a", 'b"c']},
                "ns": {"NS": ["1", "2.5"]},
                "when": {"S": "2024-01-01 00:00:00"},
            }
        },
        **{"Passenger ID": {"S": "P-1"}},
    )
    # attribute order is not stable in real exports: reverse it
    reordered = dict(reversed(list(full.items())))
    decoded = decode_full_file(gz_lines(item(**full), item(**reordered)), "f1", spec)
    assert not decoded.rejects
    first, second = decoded.rows.drop_columns(["_line"]).to_pylist()
    assert first == second
    assert first["pk"] == 1 and first["sk"] == "a"
    assert first["ts"] == dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert first["small"] == -(2**31)
    assert first["amount"] == Decimal("1234567890123456.1234")
    assert first["ratio"] == 0.1
    assert first["flag"] is True
    assert first["name"] == 'naïve ✓ "quoted" \\ back'
    assert first["sig"] == b"\x00\x01\x02\xff"
    assert first["born"] == dt.date(1999, 12, 31)
    assert first["seen"] == dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert first["passenger_id"] == "P-1"
    doc = json.loads(first["doc"], parse_float=Decimal, parse_int=Decimal)
    assert doc == {
        "n": Decimal("12345678901234567890123.5"),  # exact: no float round trip
        "l": ["x", None, False, "AQI="],
        "ss": ["a", 'b"c'],
        "ns": [Decimal(1), Decimal("2.5")],
        "when": "2024-01-01 00:00:00",  # a date-like string stays the exact string
    }


def test_scalar_json_values_missing_and_null_attributes():
    spec = decode_spec()
    lines = [
        item(**BASE_ITEM, doc={"S": "text"}),
        item(**BASE_ITEM, doc={"N": "7"}),
        item(**BASE_ITEM, doc={"BOOL": False}),
        item(**BASE_ITEM, doc={"NULL": True}, name={"NULL": True}),
        item(**BASE_ITEM),  # every optional attribute missing
        item(**BASE_ITEM, doc={"SS": ["a\nb"]}),
    ]
    rows = decode_full_file(gz_lines(*lines), "f", spec).rows.to_pylist()
    assert [r["doc"] for r in rows] == ['"text"', "7", "false", None, None, '["a\\nb"]']
    assert rows[3]["name"] is None and rows[4]["amount"] is None and rows[4]["flag"] is None


def test_nineteen_digit_numbers_and_overflow_are_exact():
    spec = decode_spec()
    max_bigint = str(2**63 - 1)
    lines = [
        item(**dict(BASE_ITEM, pk={"N": max_bigint})),
        item(**dict(BASE_ITEM, pk={"N": str(2**63)})),  # overflows BIGINT
        item(**dict(BASE_ITEM, pk={"N": "-" + str(2**63)})),  # the smallest BIGINT
        item(**BASE_ITEM, small={"N": str(2**31)}),  # overflows INT
        item(**BASE_ITEM, small={"N": "1E+3"}),  # exponent form, still a whole number
        item(**BASE_ITEM, small={"N": "1.5"}),
        item(**BASE_ITEM, amount={"N": "1.23456"}),  # more decimals than the column keeps
        item(**BASE_ITEM, amount={"N": "1.2340000"}),
        item(**BASE_ITEM, amount={"N": "9" * 40}),  # 40 digits
        item(**BASE_ITEM, small={"N": "0x10"}),  # not a DynamoDB number, whatever Arrow thinks
        item(**BASE_ITEM, ratio={"N": "1.5e400"}),  # beyond a double
    ]
    decoded = decode_full_file(gz_lines(*lines), "data/f.json.gz", spec)
    rows = {r["_line"]: r for r in decoded.rows.to_pylist()}
    rejects = {r.line: r for r in decoded.rejects}
    assert rows[1]["pk"] == 2**63 - 1
    assert rows[3]["pk"] == -(2**63)
    assert rows[5]["small"] == 1000
    assert rows[8]["amount"] == Decimal("1.234")
    assert set(rejects) == {2, 4, 6, 7, 9, 10, 11}
    assert "does not fit bigint" in rejects[2].reason and "'pk'" in rejects[2].reason
    assert "does not fit int" in rejects[4].reason
    assert "not a whole number" in rejects[6].reason
    assert "decimal(20,4)" in rejects[7].reason
    assert rejects[9].file == "data/f.json.gz" and rejects[9].raw.startswith('{"Item"')
    assert rejects[2].day == dt.date(2024, 1, 1)


@pytest.mark.parametrize(
    ("unit", "value", "expected"),
    [
        ("s", {"N": "1704153599"}, dt.datetime(2024, 1, 1, 23, 59, 59, tzinfo=UTC)),
        ("ms", {"N": "1704153599999"}, dt.datetime(2024, 1, 1, 23, 59, 59, 999000, tzinfo=UTC)),
        ("us", {"N": "1704153600000000"}, dt.datetime(2024, 1, 2, tzinfo=UTC)),
        (
            "iso8601",
            {"S": "2024-01-01T23:59:59.999Z"},
            dt.datetime(2024, 1, 1, 23, 59, 59, 999000, tzinfo=UTC),
        ),
        ("iso8601", {"S": "2024-01-02T00:00:00.000+00:00"}, dt.datetime(2024, 1, 2, tzinfo=UTC)),
        ("iso8601", {"S": "2024-01-01T23:59:59"}, dt.datetime(2024, 1, 1, 23, 59, 59, tzinfo=UTC)),
        (
            "s",
            {"N": "1704153599.9999999"},
            dt.datetime(2024, 1, 1, 23, 59, 59, 999999, tzinfo=UTC),
        ),  # floored, never rounded up
    ],
)
def test_event_time_units_and_day_edges(unit, value, expected):
    spec = decode_spec(unit)
    decoded = decode_full_file(gz_lines(item(**dict(BASE_ITEM, ts=value))), "f", spec)
    assert not decoded.rejects, decoded.rejects
    assert decoded.rows.column("ts")[0].as_py() == expected


def test_bad_lines_are_named_and_good_lines_survive():
    spec = decode_spec()
    lines = [
        item(**BASE_ITEM),
        b"this is not json",
        item(**dict(BASE_ITEM, pk={"N": 5})),  # N must be a string
        item(**dict(BASE_ITEM, sk={"N": "2"}), small={"S": "x"}),  # wrong type for an int
        item(**{"sk": {"S": "a"}, "ts": {"N": "1704067200"}}),  # NOT NULL key missing
        item(**dict(BASE_ITEM, ts={"S": "yesterday"})),
        item(**dict(BASE_ITEM, sk={"S": "x" * 41})),
        item(**dict(BASE_ITEM, pk={"N": "2"})),
    ]
    decoded = decode_full_file(gz_lines(*lines), "f", spec)
    assert [r["pk"] for r in decoded.rows.to_pylist()] == [1, 2]
    reasons = {r.line: r.reason for r in decoded.rejects}
    assert set(reasons) == {2, 3, 4, 5, 6, 7}
    assert "not valid JSON" in reasons[2]
    assert "Item.pk.N" in reasons[3]
    assert "'small'" in reasons[4] and "other than N" in reasons[4]
    assert "'pk'" in reasons[5] and "NOT NULL" in reasons[5]
    assert "'ts'" in reasons[6]
    assert "longer than 40" in reasons[7]
    unreadable_day = {r.line: r.day for r in decoded.rejects}
    assert unreadable_day[2] is None and unreadable_day[6] is None
    assert unreadable_day[4] == dt.date(2024, 1, 1)


def test_a_run_over_some_days_converts_only_their_rows_and_keeps_placeless_records():
    spec = decode_spec()
    day = 86_400
    jan1 = 1704067200  # 2024-01-01, the first partition
    lines = [
        item(**BASE_ITEM, doc={"M": {"a": {"N": "1"}}}),  # 2024-01-01, a map (the costly path)
        item(**dict(BASE_ITEM, pk={"N": "2"}, ts={"N": str(jan1 + day)}), doc={"M": {}}),  # 01-02
        item(**dict(BASE_ITEM, pk={"N": "3"}, ts={"N": str(jan1 + day)}), small={"S": "x"}),  # bad
        item(**dict(BASE_ITEM, pk={"N": "4"}, ts={"S": "yesterday"})),  # no readable day
        item(**dict(BASE_ITEM, pk={"N": "5"}, ts={"N": str(jan1 - day)})),  # before the partitions
        b"this is not json",
    ]
    every = decode_full_file(gz_lines(*lines), "f", spec)
    jan1_number = (dt.date(2024, 1, 1) - dt.date(1970, 1, 1)).days
    only_jan1 = decode_full_file(gz_lines(*lines), "f", spec, days=frozenset({jan1_number}))
    assert [r["pk"] for r in every.rows.to_pylist()] == [1, 2, 5]
    assert [r["pk"] for r in only_jan1.rows.to_pylist()] == [1, 5]  # 5 is routed to 01-01
    assert only_jan1.rows.to_pylist()[0] == every.rows.to_pylist()[0]
    assert only_jan1.lines == every.lines == 6  # itemCount is still checked on every line
    assert {r.line for r in every.rejects} == {3, 4, 6}
    assert {r.line for r in only_jan1.rejects} == {4, 6}  # 01-02's bad record is 01-02's


def test_empty_and_damaged_files():
    spec = decode_spec()
    empty = decode_full_file(gzip.compress(b""), "empty.json.gz", spec)
    assert empty.lines == 0 and empty.rows.num_rows == 0
    whole = gz_lines(item(**BASE_ITEM))
    with pytest.raises(CorruptExportError, match="truncated.*|ends early") as err:
        decode_full_file(whole[:-6], "cut.json.gz", spec)
    assert "cut.json.gz" in str(err.value)
    with pytest.raises(CorruptExportError, match="trailing newline"):
        decode_full_file(gzip.compress(b'{"Item":{}}'), "nl.json.gz", spec)
    with pytest.raises(CorruptExportError, match="not valid gzip"):
        decode_full_file(b"plain text", "plain.json.gz", spec)


def test_incremental_lines_puts_deletes_and_keys_only_deletes():
    spec = decode_spec()
    keys = {"pk": {"N": "1"}, "sk": {"S": "a"}}
    old = dict(BASE_ITEM, name={"S": "old"})
    new = dict(BASE_ITEM, name={"S": "new"}, doc={"M": {"k": {"N": "1"}}})
    raw = b"".join(
        [
            encode_incremental_line(keys, 10, new_image=new, old_image=old),
            encode_incremental_line(keys, 20, old_image=old),  # delete, NEW_AND_OLD_IMAGES
            encode_incremental_line({"pk": {"N": "2"}, "sk": {"S": "b"}}, 30),  # NEW_IMAGE delete
            b'{"Metadata":{"WriteTimestampMicros":{"N":"x"}},"Keys":{"pk":{"N":"3"}}}\n',
        ]
    )
    decoded = decode_incremental_file(gzip.compress(raw), "inc", spec)
    assert decoded.key_attributes == ("pk", "sk")
    rows = decoded.rows.to_pylist()
    assert [(r[OP], r[WRITE_MICROS], r[KEYS_ONLY]) for r in rows] == [
        (PUT, 10, False),
        (DELETE, 20, False),
        (DELETE, 30, True),
    ]
    assert rows[0]["name"] == "new" and json.loads(rows[0]["doc"]) == {"k": 1}
    assert rows[1]["name"] == "old"
    assert rows[2]["pk"] == 2 and rows[2]["ts"] is None
    assert [r.line for r in decoded.rejects] == [4]
    assert "WriteTimestampMicros" in decoded.rejects[0].reason


def test_a_key_column_changed_within_the_day_leaves_a_delete_for_the_old_key():
    import pyarrow as pa

    from migration_assets.dynamodb.changes import ORDER, Changes, apply_changes

    spec = decode_spec()  # MySQL key (pk, sk, ts): ts is part of the key
    old = dict(BASE_ITEM)
    new = dict(BASE_ITEM, ts={"N": "1704067260"})  # same item, event time moved a minute later
    snapshot = decode_full_file(gz_lines(item(**old)), "full", spec).rows.drop_columns(["_line"])
    line = encode_incremental_line({"pk": {"N": "1"}, "sk": {"S": "a"}}, 10, new, old)
    decoded = decode_incremental_file(gzip.compress(line), "inc", spec)
    table = decoded.rows.append_column(ORDER, pa.array([0], pa.int32()))
    changes = Changes(table, ("pk", "sk"))
    rows, deletes = apply_changes(dt.date(2024, 1, 1), snapshot, changes, "ts", ("pk", "sk", "ts"))
    assert [r["ts"].minute for r in rows.to_pylist()] == [1]  # the new key is the row
    assert [r["ts"].minute for r in deletes.to_pylist()] == [0]  # the old key is deleted
