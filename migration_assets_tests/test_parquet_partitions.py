"""parquet_partitions against the real moto server: exports round-trip into exact day files.

The expected state of each day is computed here independently of the pipeline: every export
file read back with `json.loads`, changes applied in a plain dict by write time, and typed
values converted one by one with `Decimal` and `datetime`.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
from decimal import Decimal

import dagster as dg
import pyarrow.parquet as pq
import pytest
from dagster_aws.s3 import S3Resource

from migration_assets.defs.resources import DynamoDBResource
from migration_assets.devstack import synthetic
from migration_assets.devstack.seed import ensure_bucket, seed, table_arn
from migration_assets.dynamodb.coverage import completed_exports
from migration_assets.dynamodb.export_writer import (
    encode_full_line,
    encode_incremental_line,
    write_full_export,
    write_incremental_export,
)
from migration_assets.dynamodb.typed_json import to_json_text
from migration_assets.parquet.store import read_manifest, read_partition
from migration_assets.spec import parse_spec
from migration_assets_tests.helpers import assets_named

DAYS = [dt.date(2023, 1, 1), dt.date(2023, 1, 2)]
EXPORT_SIDE = {"dynamodb_export", "parquet_partitions"}
UTC = dt.UTC


@pytest.fixture
def resources(stack):
    return {
        "s3": S3Resource(endpoint_url=stack.aws_endpoint_url, max_attempts=3),
        "dynamodb": DynamoDBResource(endpoint_url=stack.aws_endpoint_url),
    }


def materialize(spec, resources, day: str, **kwargs):
    """dynamodb_export and parquet_partitions for one day (no MySQL in these tests)."""
    assets = assets_named(spec, *EXPORT_SIDE)
    return dg.materialize(assets, partition_key=day, resources=resources, **kwargs)


# --------------------------------------------------------------------------- reference model


def _lines(s3, bucket, key):
    raw = gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return [json.loads(line) for line in raw.splitlines()]


def _value(column, typed):
    if typed is None or "NULL" in typed:
        return None
    kind = column.type.kind
    if column.type.is_integer:
        return int(typed["N"])
    if kind == "decimal":
        return Decimal(typed["N"]).quantize(Decimal(1).scaleb(-column.type.scale))
    if kind == "datetime":
        return dt.datetime.fromtimestamp(int(typed["N"]), UTC)
    if kind == "json":
        return json.loads(to_json_text(typed))
    return typed["S"]


def expected_days(spec, s3, days=DAYS):
    """{day: ({mysql key: row}, {mysql key of deleted rows})} from the exports, in Python."""
    exports = completed_exports(s3, spec.s3.bucket, spec.s3.export_prefix)
    full = next(m for m in exports if not m.summary.is_incremental)
    state = {}  # dynamodb key -> item
    hash_column, range_column = synthetic.table_key_attributes(spec)

    def dynamo_key(image):
        return tuple(json.dumps(image[c.attribute]) for c in (hash_column, range_column) if c)

    for data_file in full.files:
        for line in _lines(s3, spec.s3.bucket, data_file.key):
            state[dynamo_key(line["Item"])] = line["Item"]
    first_state = dict(state)
    changes = []
    for manifest in sorted(
        (m for m in exports if m.summary.is_incremental), key=lambda m: m.summary.export_from_time
    ):
        for data_file in manifest.files:
            changes += _lines(s3, spec.s3.bucket, data_file.key)
    changes.sort(key=lambda c: int(c["Metadata"]["WriteTimestampMicros"]["N"]))
    seen = dict(first_state)
    for change in changes:
        key = dynamo_key(change["Keys"])
        if "NewImage" in change:
            state[key] = seen[key] = change["NewImage"]
        else:
            state.pop(key, None)

    def row(item):
        return {c.column: _value(c, item.get(c.attribute)) for c in spec.columns}

    def mysql_key(values):
        return tuple(values[name] for name in spec.mysql.key)

    result = {}
    for day in days:
        rows = {}
        for item in state.values():
            values = row(item)
            if values[spec.event_time_column.column].date() == day:
                rows[mysql_key(values)] = values
        deleted = {
            mysql_key(row(item))
            for key, item in seen.items()
            if key not in state and row(item)[spec.event_time_column.column].date() == day
        }
        result[day] = (rows, deleted)
    return result


def actual_day(spec, s3, day):
    table = read_partition(s3, spec, day)
    rows, deleted = {}, set()
    for values in table.to_pylist():
        change = values.pop("_change")
        values["attrs"] = json.loads(values["attrs"]) if values["attrs"] else None
        key = tuple(values[name] for name in spec.mysql.key)
        if change == "put":
            assert key not in rows
            rows[key] = values
        else:
            deleted.add(key)
    return rows, deleted


# --------------------------------------------------------------------------- tests


def test_seeded_days_round_trip_exactly(spec, resources, s3_client, dynamodb_client):
    seed(spec, s3=s3_client, dynamodb=dynamodb_client, mysql=None, days=DAYS, items_per_day=600)
    expected = expected_days(spec, s3_client)
    for day in DAYS:
        result = materialize(spec, resources, day.isoformat())
        assert result.success
        meta = result.asset_materializations_for_node("parquet_partitions")[0].metadata
        rows, deleted = actual_day(spec, s3_client, day)
        assert rows == expected[day][0]
        assert deleted == expected[day][1]
        assert meta["rows"].value == len(rows) and meta["deletes"].value == len(deleted)
        assert meta["rejects"].value == 0
    assert expected[DAYS[1]][1], "the seeded changes include deletes on the last day"
    edge_times = {values["created_at"] for values in expected[DAYS[0]][0].values()}
    assert dt.datetime(2023, 1, 1, 23, 59, 59, tzinfo=UTC) in edge_times
    assert dt.datetime(2023, 1, 1, tzinfo=UTC) in edge_times
    big_ids = [k for k in expected[DAYS[0]][0] if k[0] > 2**31 - 1]
    assert big_ids, "ids above INT's range survive"


def test_files_are_typed_sorted_and_rerun_identically(spec, resources, s3_client, dynamodb_client):
    seed(spec, s3=s3_client, dynamodb=dynamodb_client, mysql=None, days=DAYS, items_per_day=300)
    assert materialize(spec, resources, "2023-01-01").success
    first = read_manifest(s3_client, spec, DAYS[0])
    data = s3_client.get_object(Bucket=spec.s3.bucket, Key=first.files[0]["key"])["Body"].read()
    parquet = pq.ParquetFile(io.BytesIO(data))
    schema = parquet.schema_arrow
    assert str(schema.field("customer_id").type) == "int64"
    assert str(schema.field("amount").type) == "decimal128(18, 4)"
    # Parquet has no seconds unit: DATETIME(0) is stored as ms, read back to the spec's type
    assert str(schema.field("created_at").type) == "timestamp[ms, tz=UTC]"
    read_back = read_partition(s3_client, spec, DAYS[0]).schema
    assert str(read_back.field("created_at").type) == "timestamp[s, tz=UTC]"
    assert not schema.field("customer_id").nullable
    assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
    keys = parquet.read(columns=["customer_id", "order_id", "created_at"]).to_pylist()
    assert keys == sorted(keys, key=lambda k: (k["customer_id"], k["order_id"], k["created_at"]))
    assert first.files[0]["key"].startswith(f"{spec.s3.parquet_prefix}/dt=2023-01-01/part-00000-")

    assert materialize(spec, resources, "2023-01-01").success
    again = read_manifest(s3_client, spec, DAYS[0])
    assert again == first  # same files, same names, same bytes (sha256 in the manifest)
    listing = s3_client.list_objects_v2(
        Bucket=spec.s3.bucket, Prefix=f"{spec.s3.parquet_prefix}/dt=2023-01-01/"
    )
    assert sorted(o["Key"] for o in listing["Contents"]) == sorted(
        [
            first.files[0]["key"],
            first.census_key,
            f"{spec.s3.parquet_prefix}/dt=2023-01-01/_manifest.json",
        ]
    )


def test_a_range_run_reads_each_file_once_and_writes_every_day(
    spec, resources, s3_client, dynamodb_client
):
    seed(spec, s3=s3_client, dynamodb=dynamodb_client, mysql=None, days=DAYS, items_per_day=200)
    parquet_only = assets_named(spec, "dynamodb_export", "parquet_partitions")
    result = dg.materialize(
        parquet_only,
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": "2023-01-01",
            "dagster/asset_partition_range_end": "2023-01-02",
        },
    )
    assert result.success
    events = result.asset_materializations_for_node("parquet_partitions")
    materialized = {m.partition: m.metadata for m in events}
    assert sorted(materialized) == ["2023-01-01", "2023-01-02"]
    exports = completed_exports(s3_client, spec.s3.bucket, spec.s3.export_prefix)
    for meta in materialized.values():  # the run's figures on every day of it
        assert meta["files_read"].value == sum(len(m.files) for m in exports)  # once each
        assert meta["run_days"].value == 2
    expected = expected_days(spec, s3_client)
    for partition, meta in materialized.items():  # each day's own figures on its own event
        day = dt.date.fromisoformat(partition)
        assert meta["rows"].value == len(expected[day][0])
        assert (
            meta["partition"].value == f"s3://{spec.s3.bucket}/{spec.s3.parquet_prefix}/dt={day}/"
        )
        assert actual_day(spec, s3_client, day)[0] == expected[day][0]
    exports_meta = {
        m.partition: m.metadata for m in result.asset_materializations_for_node("dynamodb_export")
    }
    assert sorted(exports_meta) == ["2023-01-01", "2023-01-02"]  # dynamodb_export takes ranges
    assert {m["day_complete"].value for m in exports_meta.values()} == {True}


def _edge_spec(bucket: str, on_bad_record: str):
    return parse_spec(
        {
            "name": "edges",
            "partitions": {"start": "2024-01-01"},
            "dynamodb": {
                "table": "edges",
                "event_time": {"attribute": "ts", "unit": "ms"},
                "on_bad_record": on_bad_record,
            },
            "s3": {
                "bucket": bucket,
                "export_prefix": "exports/edges",
                "parquet_prefix": "pq/edges",
            },
            "columns": [
                {"attribute": "pk", "column": "pk", "type": "bigint", "nullable": False},
                {"attribute": "ts", "column": "ts", "type": "datetime(3)", "nullable": False},
                {"attribute": "v", "column": "v", "type": "varchar(8)"},
                {"attribute": "blob", "column": "blob", "type": "blob"},
            ],
            "mysql": {"temp_table": "t", "target_table": "u", "key": ["pk", "ts"]},
        }
    )


def _edge_exports(spec, s3):
    """Items on both edges of 2024-01-02, a BIGINT overflow, an early item, unicode, binary."""
    ensure_bucket(s3, spec.s3.bucket)

    def at(ms):
        return {"N": str(ms)}

    day_start = int(dt.datetime(2024, 1, 2, tzinfo=UTC).timestamp() * 1000)
    items = [
        {"pk": {"N": "1"}, "ts": at(day_start - 1), "v": {"S": "last ms"}},
        {"pk": {"N": "2"}, "ts": at(day_start), "v": {"S": "first ✓"}, "blob": {"B": "AP8="}},
        {"pk": {"N": "3"}, "ts": at(day_start + 5), "v": {"S": "deleted"}},
        {"pk": {"N": str(2**63)}, "ts": at(day_start + 7), "v": {"S": "overflow"}},
        {"pk": {"N": "4"}, "ts": at(day_start - 86_400_000 * 400), "v": {"S": "early"}},
        {"pk": {"N": "5"}, "ts": {"S": "not a time"}},
    ]
    arn = table_arn(spec, "us-east-1")
    export_time = dt.datetime(2024, 1, 3, 1, tzinfo=UTC)
    write_full_export(
        s3,
        bucket=spec.s3.bucket,
        prefix=spec.s3.export_prefix,
        table_arn=arn,
        export_time=export_time,
        lines=[encode_full_line(i) for i in items],
        files=2,
    )
    micros = int(export_time.timestamp() * 1_000_000)
    write_incremental_export(
        s3,
        bucket=spec.s3.bucket,
        prefix=spec.s3.export_prefix,
        table_arn=arn,
        export_from=export_time,
        export_to=export_time + dt.timedelta(hours=1),
        lines=[
            encode_incremental_line({"pk": {"N": "3"}}, micros + 1),  # NEW_IMAGE view delete
            encode_incremental_line(
                {"pk": {"N": "6"}},
                micros + 2,
                new_image={"pk": {"N": "6"}, "ts": at(day_start + 9), "v": {"S": "late"}},
            ),
        ],
    )


def test_edges_deletes_and_quarantined_records(bucket, resources, s3_client):
    spec = _edge_spec(bucket, "quarantine")
    _edge_exports(spec, s3_client)
    for day in ("2024-01-01", "2024-01-02"):
        assert materialize(spec, resources, day).success
    first = read_partition(s3_client, spec, dt.date(2024, 1, 1)).to_pylist()
    second = read_partition(s3_client, spec, dt.date(2024, 1, 2)).to_pylist()
    assert [(r["pk"], r["v"], r["_change"]) for r in first] == [(1, "last ms", "put")]
    assert first[0]["ts"] == dt.datetime(2024, 1, 1, 23, 59, 59, 999000, tzinfo=UTC)
    assert [(r["pk"], r["v"], r["_change"]) for r in second] == [
        (2, "first ✓", "put"),
        (3, "deleted", "delete"),  # keys-only delete, matched to the item's day
        (6, "late", "put"),
    ]
    assert second[0]["blob"] == b"\x00\xff"
    first_manifest = read_manifest(s3_client, spec, dt.date(2024, 1, 1))
    second_manifest = read_manifest(s3_client, spec, dt.date(2024, 1, 2))
    assert first_manifest.rejects == 1  # the item 400 days before partitions.start
    assert second_manifest.rejects == 1  # the BIGINT overflow
    rejects = s3_client.get_object(Bucket=spec.s3.bucket, Key=second_manifest.rejects_key)
    (record,) = [json.loads(line) for line in rejects["Body"].read().splitlines()]
    assert record["line"] > 0 and record["file"].endswith(".json.gz")
    assert "does not fit bigint" in record["reason"] and str(2**63) in record["raw"]
    unplaced = s3_client.list_objects_v2(Bucket=bucket, Prefix="pq/edges/_rejects/unplaced/")
    (unplaced_key,) = [o["Key"] for o in unplaced["Contents"]]
    body = s3_client.get_object(Bucket=bucket, Key=unplaced_key)["Body"].read()
    assert "not a time" in body.decode()


def test_parquet_parity_accounts_for_rejects_and_catches_a_lost_one(bucket, resources, s3_client):
    spec = _edge_spec(bucket, "quarantine")
    _edge_exports(spec, s3_client)
    chain = assets_named(spec, *EXPORT_SIDE, with_checks=True)
    result = dg.materialize(chain, partition_key="2024-01-02", resources=resources)
    (parity,) = result.get_asset_check_evaluations()
    assert parity.passed and parity.metadata["rejects"].value == 1  # the overflow, accounted
    assert parity.metadata["expected_rows"].value == 3  # 2 rows + 1 quarantined record
    manifest = read_manifest(s3_client, spec, dt.date(2024, 1, 2))
    s3_client.put_object(Bucket=bucket, Key=manifest.rejects_key, Body=b"")  # a reject vanishes
    again = dg.materialize(
        chain,
        selection=dg.AssetSelection.checks_for_assets("parquet_partitions"),
        tags={"dagster/partition": "2024-01-02"},
        resources=resources,
        raise_on_error=False,
    )
    (failed,) = again.get_asset_check_evaluations()
    assert not failed.passed
    (mismatch,) = failed.metadata["first_mismatches"].value
    assert (mismatch["expected"], mismatch["observed"]) == (3, 2)  # 3 items in that second
    assert mismatch["second"] == "2024-01-02T00:00:00Z"


def test_on_bad_record_fail_writes_nothing(bucket, resources, s3_client):
    spec = _edge_spec(bucket, "fail")
    _edge_exports(spec, s3_client)
    result = materialize(spec, resources, "2024-01-02", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.event_specific_data.error.to_string()
    assert "does not fit bigint" in message and "line" in message
    assert read_manifest(s3_client, spec, dt.date(2024, 1, 2)) is None


def test_a_full_export_is_split_once_and_later_runs_read_their_days_from_the_split(
    spec, s3_client, dynamodb_client
):
    """The split is an optimisation only: days built from it are byte-identical to days
    built by a run that reads the export itself (when another run holds the split's lease)."""
    import dataclasses

    from migration_assets.dynamodb.coverage import cover_day
    from migration_assets.parquet.coverage_store import save_coverage
    from migration_assets.parquet.day_builder import build_days
    from migration_assets.parquet.split_cache import split_prefix

    days = [dt.date(2023, 1, d) for d in (1, 2, 3, 4)]
    seed(spec, s3=s3_client, dynamodb=dynamodb_client, mysql=None, days=days, items_per_day=120)
    direct = dataclasses.replace(
        spec, s3=dataclasses.replace(spec.s3, parquet_prefix="parquet/direct")
    )
    exports = completed_exports(s3_client, spec.s3.bucket, spec.s3.export_prefix)
    full = next(m for m in exports if not m.summary.is_incremental)
    for each in (spec, direct):
        for day in days:
            save_coverage(s3_client, each, cover_day(day, exports))
    lease = f"{split_prefix(direct, full.summary.export_id)}/_lease.json"
    s3_client.put_object(  # another run is splitting for `direct`: it reads the export itself
        Bucket=spec.s3.bucket, Key=lease, Body=json.dumps({"since": "2999-01-01T00:00:00Z"})
    )

    def reading_done(each):  # days without a manifest when build_days says it has read
        return lambda: calls.append([read_manifest(s3_client, each, d) for d in days].count(None))

    calls: list[int] = []
    first = build_days(s3_client, spec, days[:1], after_reading=reading_done(spec))
    assert first.split_written and first.split_days_read == 0
    assert calls == [4]  # once, before any day of the run was written
    later = build_days(s3_client, spec, days[1:])
    assert not later.split_written and later.split_days_read == 3
    incremental_files = sum(len(m.files) for m in exports if m.summary.is_incremental)
    assert later.files_read == incremental_files  # no full-export file read again
    apart = build_days(s3_client, direct, days, after_reading=reading_done(direct))
    assert apart.split_days_read == 0 and not apart.split_written
    assert calls == [4, 4]
    for day in days:
        ours, theirs = read_manifest(s3_client, spec, day), read_manifest(s3_client, direct, day)
        assert ours.rows == theirs.rows and ours.deletes == theirs.deletes
        assert [f["sha256"] for f in ours.files] == [f["sha256"] for f in theirs.files]
    expected = expected_days(spec, s3_client, days)
    for day in days:
        assert actual_day(spec, s3_client, day) == expected[day]


def test_after_reading_is_called_once_for_days_of_two_export_chains(
    spec, s3_client, dynamodb_client
):
    """Days whose coverage names different exports are built in two groups, each reading
    its own exports; the callback still comes once, before any day is written."""
    from migration_assets.dynamodb.coverage import cover_day
    from migration_assets.parquet.coverage_store import save_coverage
    from migration_assets.parquet.day_builder import build_days

    days = [dt.date(2023, 1, 1), dt.date(2023, 1, 2)]
    seed(spec, s3=s3_client, dynamodb=dynamodb_client, mysql=None, days=days, items_per_day=50)
    exports = completed_exports(s3_client, spec.s3.bucket, spec.s3.export_prefix)
    full = [m for m in exports if not m.summary.is_incremental]
    save_coverage(s3_client, spec, cover_day(days[0], exports))
    save_coverage(s3_client, spec, cover_day(days[1], full))  # another chain: another group
    written: list[int] = []
    stats = build_days(
        s3_client,
        spec,
        days,
        after_reading=lambda: written.append(
            sum(read_manifest(s3_client, spec, day) is not None for day in days)
        ),
    )
    assert written == [0] and len(stats.results) == 2
    assert stats.split_written and stats.split_days_read == 1  # the second group's read
