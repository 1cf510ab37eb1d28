"""The seeded world parsed back: exports verified, coverage chained, legacy table filled."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import pytest

from migration_assets.devstack import synthetic
from migration_assets.devstack.seed import seed
from migration_assets.dynamodb.coverage import NoCoveringExportError, completed_exports, cover_day
from migration_assets.dynamodb.layout import verify_manifest
from migration_assets.mysql.connection import connection
from migration_assets.spec import load_spec

DAYS = [dt.date(2023, 1, 1), dt.date(2023, 1, 2)]


@pytest.fixture
def seeded(spec, s3_client, dynamodb_client, mysql_db):
    report = seed(
        spec, s3=s3_client, dynamodb=dynamodb_client, mysql=mysql_db, days=DAYS, items_per_day=500
    )
    return report


def test_seeded_exports_verify_and_round_trip(spec, seeded, s3_client, dynamodb_client):
    exports = completed_exports(s3_client, spec.s3.bucket, spec.s3.export_prefix)
    assert [m.summary.export_id for m in exports if not m.summary.is_incremental] == [
        seeded.full_export_id
    ]
    assert len(exports) == 3
    for manifest in exports:
        verify_manifest(s3_client, manifest)  # md5 of every data file, item-count sum
    full = next(m for m in exports if not m.summary.is_incremental)
    assert full.summary.item_count == 1000 == sum(f.item_count for f in full.files)
    assert any(f.item_count == 0 for f in full.files)  # an empty partition file, as AWS writes
    items = []
    for data_file in full.files:
        raw = gzip.decompress(
            s3_client.get_object(Bucket=spec.s3.bucket, Key=data_file.key)["Body"].read()
        )
        assert raw == b"" or raw.endswith(b"\n")
        items += [json.loads(line)["Item"] for line in raw.splitlines()]
    expected = [
        i
        for d in DAYS
        for i in synthetic.dynamodb_items(spec, synthetic.generate_day(spec, d, 500))
    ]
    key = lambda item: (item["customer_id"]["N"], item["order_id"]["N"])  # noqa: E731
    assert sorted(items, key=key) == sorted(expected, key=key)
    # the DynamoDB table itself holds the same items (the real moto API)
    assert dynamodb_client.scan(TableName=spec.dynamodb.table, Select="COUNT")["Count"] == 1000
    description = dynamodb_client.describe_continuous_backups(TableName=spec.dynamodb.table)
    assert (
        description["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"][
            "PointInTimeRecoveryStatus"
        ]
        == "ENABLED"
    )


def test_incrementals_live_in_the_shared_data_folder(spec, seeded, s3_client):
    exports = completed_exports(s3_client, spec.s3.bucket, spec.s3.export_prefix)
    incrementals = [m for m in exports if m.summary.is_incremental]
    assert [m.summary.export_id for m in incrementals] == seeded.incremental_export_ids
    for manifest in incrementals:
        assert all(
            f.key.startswith(f"{spec.s3.export_prefix}/AWSDynamoDB/data/") for f in manifest.files
        )
        for data_file in manifest.files:
            body = s3_client.get_object(Bucket=spec.s3.bucket, Key=data_file.key)["Body"].read()
            for line in gzip.decompress(body).splitlines():
                change = json.loads(line)
                assert list(change)[:2] == ["Metadata", "Keys"]
                assert int(change["Metadata"]["WriteTimestampMicros"]["N"]) // 1_000_000 >= int(
                    manifest.summary.export_from_time.timestamp()
                )


def test_coverage_chains_incrementals_after_the_full_export(spec, seeded, s3_client):
    exports = completed_exports(s3_client, spec.s3.bucket, spec.s3.export_prefix)
    coverage = cover_day(DAYS[0], exports)
    assert coverage.full_export.export_id == seeded.full_export_id
    assert [r.export_id for r in coverage.incrementals] == seeded.incremental_export_ids
    assert coverage.complete and coverage.gap_after is None
    assert coverage.covered_until == "2023-01-03T13:00:00.000Z"  # full at 01:00 + 2 windows of 6 h
    live = cover_day(dt.date(2023, 1, 3), exports)
    assert not live.complete
    with pytest.raises(NoCoveringExportError, match="2023-01-04"):
        cover_day(dt.date(2023, 1, 4), exports)


def test_legacy_table_has_int_ids_and_the_day_rows(spec, seeded, mysql_db):
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT column_name, column_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'table01' ORDER BY ordinal_position",
            (mysql_db.database,),
        )
        types = dict(cur.fetchall())
        cur.execute("SELECT DATE(created_at), COUNT(*), MAX(customer_id) FROM table01 GROUP BY 1")
        per_day = cur.fetchall()
    assert types["id"] == types["customer_id"] == types["order_id"] == "int(11)"
    assert "loyalty_tier" not in types  # merged from DynamoDB later, not in the legacy table
    assert [(d, n) for d, n, _ in per_day] == [
        (DAYS[0], 499),
        (DAYS[1], 499),
    ]  # 1 DynamoDB-only row/day
    assert all(top == 2**31 - 1 for _, _, top in per_day)
    assert seeded.legacy_rows == 998


def test_generator_is_deterministic_and_bursty():
    spec = load_spec()
    first = synthetic.generate_day(spec, DAYS[0], 20_000)
    again = synthetic.generate_day(spec, DAYS[0], 20_000)
    assert first.values == again.values
    offsets = first.seconds - first.seconds.min()
    assert offsets.min() == 0 and offsets.max() == 86_399  # rows on both day edges
    per_second = __import__("numpy").bincount(offsets)
    assert per_second.max() >= 10 * max(1, per_second.mean())  # bursts well above the mean
    ids = first.values["customer_id"]
    assert max(ids) > 2**31 - 1 and 2**31 - 1 in ids
