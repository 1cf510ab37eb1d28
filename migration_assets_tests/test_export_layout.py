"""The export layout reader and writer against the facts in docs/dynamodb-export-format.md.

The doc's byte-exact examples pin the encodings; the writer's output is read back through
a real moto S3 server, and each kind of corruption must fail loudly, naming the object.
"""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from migration_assets.dynamodb.export_writer import (
    encode_full_line,
    encode_incremental_line,
    gzip_member,
    write_full_export,
    write_incremental_export,
    write_started_only,
)
from migration_assets.dynamodb.layout import (
    FILES_MANIFEST_NAME,
    STARTED_NAME,
    SUMMARY_NAME,
    CorruptExportError,
    ExportManifest,
    IncompleteExportError,
    export_root,
    export_start_time,
    exports_folder,
    list_export_ids,
    md5_b64,
    multipart_etag,
    new_export_id,
    parse_files_manifest,
    parse_summary,
    read_manifest,
    require_manifest,
    verify_manifest,
)

TABLE_ARN = "arn:aws:dynamodb:us-east-1:111122223333:table/orders"
PREFIX = "exports/orders"

DOC_FULL_SUMMARY = (
    b'{"version":"2020-06-30","exportArn":"arn:aws:dynamodb:us-east-1:111122223333:table/orders'
    b'/export/01772442005123-9f3c2a1b","startTime":"2026-03-02T09:00:05.123Z","endTime":'
    b'"2026-03-02T09:06:41.870Z","tableArn":"arn:aws:dynamodb:us-east-1:111122223333:table/'
    b'orders","tableId":"4f0c2d7e-8b1a-4c55-9a31-2e6f0b7d9c10","exportTime":'
    b'"2026-03-02T09:00:05.123Z","s3Bucket":"acme-ddb-exports","s3Prefix":"exports/orders",'
    b'"s3SseAlgorithm":"AES256","s3SseKmsKeyId":null,"manifestFilesS3Key":"exports/orders/'
    b'AWSDynamoDB/01772442005123-9f3c2a1b/manifest-files.json","billedSizeBytes":0,'
    b'"itemCount":2,"outputFormat":"DYNAMODB_JSON"}'
)
DOC_FILES_MANIFEST = (
    b'{"itemCount":0,"md5Checksum":"+prFohe1VHvH3U5uiU/hNQ==","etag":'
    b'"70216384d24b089cfcfccbf75ff9781f-1","dataFileS3Key":"exports/orders/AWSDynamoDB/'
    b'01772442005123-9f3c2a1b/data/k2w7c4xq5nbd3rm6yq2tfh7zle.json.gz"}\n'
    b'{"itemCount":2,"md5Checksum":"a3oj/A+cDq6vXQgZU2rPVw==","etag":'
    b'"742f20e8a80c87f3beff080546b840bf-1","dataFileS3Key":"exports/orders/AWSDynamoDB/'
    b'01772442005123-9f3c2a1b/data/3vq7ydxm2ahq5gkjz6c4u3rfbu.json.gz"}\n'
)
DOC_INCREMENTAL_SUMMARY = (
    b'{"version":"2023-08-01","exportArn":"arn:aws:dynamodb:us-east-1:111122223333:table/orders'
    b'/export/01772446811000-0d5e77a4","startTime":"2026-03-02T10:20:11.000Z","endTime":'
    b'"2026-03-02T10:25:52.410Z","tableArn":"arn:aws:dynamodb:us-east-1:111122223333:table/'
    b'orders","tableId":"4f0c2d7e-8b1a-4c55-9a31-2e6f0b7d9c10","exportFromTime":'
    b'"2026-03-02T10:00:00.000Z","exportToTime":"2026-03-02T10:15:00.000Z","s3Bucket":'
    b'"acme-ddb-exports","s3Prefix":"exports/orders","s3SseAlgorithm":"AES256",'
    b'"s3SseKmsKeyId":null,"manifestFilesS3Key":"exports/orders/AWSDynamoDB/'
    b'01772446811000-0d5e77a4/manifest-files.json","billedSizeBytes":10000000,"itemCount":3,'
    b'"outputFormat":"DYNAMODB_JSON","outputView":"NEW_AND_OLD_IMAGES",'
    b'"exportType":"INCREMENTAL_EXPORT"}'
)


def _items(count: int) -> list[bytes]:
    return [
        encode_full_line(
            {
                "customer_id": {"S": f"C#{n}"},
                "order_ts": {"N": str(1767225600 + n)},
                "Passenger ID": {"S": "ünïcode"},
                "paid": {"BOOL": n % 2 == 0},
                "note": {"NULL": True},
                "tags": {"SS": ["gift", "priority"]},
            }
        )
        for n in range(count)
    ]


def _changes(count: int, base_micros: int) -> list[bytes]:
    return [
        encode_incremental_line(
            {"customer_id": {"S": f"C#{n}"}},
            base_micros + n,
            new_image={"customer_id": {"S": f"C#{n}"}, "total": {"N": f"{n}.5"}},
            old_image={"customer_id": {"S": f"C#{n}"}} if n % 2 else None,
        )
        for n in range(count)
    ]


def _get(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _data_lines(s3, bucket: str, manifest: ExportManifest) -> list[bytes]:
    lines: list[bytes] = []
    for data_file in manifest.files:
        text = gzip.decompress(_get(s3, bucket, data_file.key))
        assert text == b"" or text.endswith(b"\n"), data_file.key
        file_lines = text.splitlines(keepends=True)
        assert len(file_lines) == data_file.item_count
        lines.extend(file_lines)
    return lines


# ----------------------------------------------------------------- encodings (no S3)


def test_doc_summary_reencoded_gives_the_doc_md5() -> None:
    decoded = json.loads(DOC_FULL_SUMMARY)  # dicts keep the real field order
    reencoded = json.dumps(decoded, separators=(",", ":")).encode()
    assert reencoded == DOC_FULL_SUMMARY
    assert md5_b64(reencoded) == "Yq/iHSqg9nM/BzGyk2zWWQ=="
    assert md5_b64(DOC_FILES_MANIFEST) == "ouJIxGjK7eA92mbq+DWozQ=="


def test_parse_doc_examples() -> None:
    key = f"{PREFIX}/AWSDynamoDB/01772442005123-9f3c2a1b/{SUMMARY_NAME}"
    full = parse_summary(DOC_FULL_SUMMARY, key)
    assert full.export_id == "01772442005123-9f3c2a1b"
    assert full.export_type == "FULL_EXPORT"  # field absent in real full exports
    assert full.export_time == datetime(2026, 3, 2, 9, 0, 5, 123000, tzinfo=UTC)
    assert full.start_time == export_start_time(full.export_id)
    assert full.export_from_time is None and full.output_view is None
    assert full.s3_prefix == PREFIX and full.item_count == 2 and full.summary_key == key
    files = parse_files_manifest(DOC_FILES_MANIFEST, full.manifest_files_key)
    assert [f.item_count for f in files] == [0, 2]
    assert files[0].etag == "70216384d24b089cfcfccbf75ff9781f-1"

    incremental = parse_summary(DOC_INCREMENTAL_SUMMARY, "k")
    assert incremental.export_type == "INCREMENTAL_EXPORT"
    assert incremental.export_time is None
    assert incremental.export_from_time == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert incremental.export_to_time == datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
    assert incremental.output_view == "NEW_AND_OLD_IMAGES"
    assert incremental.start_time == export_start_time(incremental.export_id)


def test_empty_gzip_member_is_the_real_20_bytes() -> None:
    member = gzip_member(b"")
    assert len(member) == 20
    assert member[:4] == b"\x1f\x8b\x08\x00"
    assert member[4:8] == b"\x00\x00\x00\x00"  # mtime 0
    assert member[9] == 0xFF  # OS byte
    assert gzip.decompress(member) == b""
    # The doc's empty data file (itemCount 0) has exactly these hashes.
    assert md5_b64(member) == "+prFohe1VHvH3U5uiU/hNQ=="
    assert multipart_etag(member) == "70216384d24b089cfcfccbf75ff9781f-1"
    data = b"".join(_items(50))
    assert gzip.decompress(gzip_member(data)) == data


def test_line_encodings_match_real_lines() -> None:
    assert encode_full_line(
        {"pk": {"S": "1"}, "sk": {"S": "3"}, "test2": {"S": "2"}, "test1": {"S": "1"}}
    ) == (b'{"Item":{"pk":{"S":"1"},"sk":{"S":"3"},"test2":{"S":"2"},"test1":{"S":"1"}}}\n')
    keys = {"pk": {"S": "1"}, "sk": {"S": "3"}}
    old = {"pk": {"S": "1"}, "sk": {"S": "3"}, "test1": {"S": "1"}, "test2": {"S": "2"}}
    new = {"bin_update": {"BS": ["0000", "0001"]}, **old}
    assert encode_incremental_line(keys, 1768387673917155, new_image=new, old_image=old) == (
        b'{"Metadata":{"WriteTimestampMicros":{"N":"1768387673917155"}},"Keys":{"pk":{"S":"1"},'
        b'"sk":{"S":"3"}},"OldImage":{"pk":{"S":"1"},"sk":{"S":"3"},"test1":{"S":"1"},"test2":'
        b'{"S":"2"}},"NewImage":{"bin_update":{"BS":["0000","0001"]},"pk":{"S":"1"},"sk":'
        b'{"S":"3"},"test1":{"S":"1"},"test2":{"S":"2"}}}\n'
    )
    assert encode_incremental_line(keys, 5) == (
        b'{"Metadata":{"WriteTimestampMicros":{"N":"5"}},"Keys":{"pk":{"S":"1"},"sk":{"S":"3"}}}\n'
    )
    with pytest.raises(ValueError, match="not DynamoDB-typed"):
        encode_full_line({"pk": "plain"})


def test_export_id_round_trip() -> None:
    assert export_start_time("01668227450456-b6733290") == datetime(
        2022, 11, 12, 4, 30, 50, 456000, tzinfo=UTC
    )
    assert export_start_time("01768385930622-efd1a093") == datetime(
        2026, 1, 14, 10, 18, 50, 622000, tzinfo=UTC
    )
    moment = datetime(2026, 3, 2, 9, 0, 5, 123999, tzinfo=UTC)
    export_id = new_export_id(moment, random.Random(7))
    assert len(export_id) == 23 and export_id[14] == "-"
    assert export_id[:14] == "01772442005123"
    assert export_id[15:] == export_id[15:].lower()
    int(export_id[15:], 16)
    assert export_start_time(export_id) == moment.replace(microsecond=123000)
    assert new_export_id(moment, random.Random(7)) == export_id  # deterministic with rng
    with pytest.raises(ValueError):
        export_start_time("data")
    with pytest.raises(ValueError):
        new_export_id(datetime(2026, 1, 1), random.Random())  # naive
    assert export_root("", "x") == "AWSDynamoDB/x/"
    assert export_root(PREFIX, "x") == "exports/orders/AWSDynamoDB/x/"
    assert exports_folder("") == "AWSDynamoDB/"
    assert exports_folder(PREFIX) == "exports/orders/AWSDynamoDB/"


def test_incremental_window_is_validated() -> None:
    start = datetime(2026, 3, 2, 10, tzinfo=UTC)
    for end in (
        start,
        start - timedelta(hours=1),
        start + timedelta(minutes=14),
        start + timedelta(hours=24, seconds=1),
    ):
        with pytest.raises(ValueError):
            write_incremental_export(
                None,
                bucket="b",
                prefix=PREFIX,
                table_arn=TABLE_ARN,
                export_from=start,
                export_to=end,
                lines=[],
            )


def test_strict_parsing_names_key_field_and_line() -> None:
    summary = json.loads(DOC_FULL_SUMMARY)
    del summary["itemCount"]
    with pytest.raises(CorruptExportError, match=r"'the/key'.*'itemCount'"):
        parse_summary(json.dumps(summary).encode(), "the/key")
    summary = json.loads(DOC_FULL_SUMMARY)
    summary["exportTime"] = "2026-03-02 09:00:05"
    with pytest.raises(CorruptExportError, match=r"'the/key'.*'exportTime'"):
        parse_summary(json.dumps(summary).encode(), "the/key")
    summary = json.loads(DOC_INCREMENTAL_SUMMARY)
    del summary["exportFromTime"]
    with pytest.raises(CorruptExportError, match="exportFromTime"):
        parse_summary(json.dumps(summary).encode(), "the/key")
    lines = DOC_FILES_MANIFEST.splitlines(keepends=True)
    bad = lines[0] + lines[1].replace(b'"itemCount":2', b'"itemCount":"2"')
    with pytest.raises(CorruptExportError, match=r"'m/key', line 2, field 'itemCount'") as err:
        parse_files_manifest(bad, "m/key")
    assert (err.value.key, err.value.line, err.value.field) == ("m/key", 2, "itemCount")
    with pytest.raises(CorruptExportError, match="newline"):
        parse_files_manifest(DOC_FILES_MANIFEST[:-1], "m/key")


# ----------------------------------------------------------------- through moto S3


@pytest.mark.parametrize("prefix", [PREFIX, ""])
def test_full_export_round_trip(s3_client, bucket: str, prefix: str) -> None:
    lines = _items(37)
    written = write_full_export(
        s3_client,
        bucket=bucket,
        prefix=prefix,
        table_arn=TABLE_ARN,
        export_time=datetime(2026, 3, 2, 9, 0, 5, 123456, tzinfo=UTC),
        lines=lines,
        files=4,
        rng=random.Random(1),
        empty_files=1,
    )

    assert list_export_ids(s3_client, bucket, prefix) == [written.export_id]
    manifest = read_manifest(s3_client, bucket, prefix, written.export_id)
    assert manifest is not None and manifest.summary == written
    verify_manifest(s3_client, manifest)

    summary = manifest.summary
    root = export_root(prefix, summary.export_id)
    assert summary.export_type == "FULL_EXPORT" and summary.output_view is None
    assert summary.start_time == summary.export_time == export_start_time(summary.export_id)
    assert summary.export_time == datetime(2026, 3, 2, 9, 0, 5, 123000, tzinfo=UTC)
    assert summary.end_time > summary.start_time
    assert summary.item_count == 37 == sum(f.item_count for f in manifest.files)
    assert summary.s3_prefix == (prefix or None)
    assert summary.export_arn == f"{TABLE_ARN}/export/{summary.export_id}"
    assert summary.manifest_files_key == root + FILES_MANIFEST_NAME
    assert len(manifest.files) == 5
    assert sorted(f.item_count for f in manifest.files) == [0, 9, 9, 9, 10]
    for data_file in manifest.files:
        name = data_file.key.removeprefix(root + "data/")
        assert len(name) == 26 + len(".json.gz") and name.endswith(".json.gz")
        assert name[:26].isalnum() and name[:26] == name[:26].lower()
        body = _get(s3_client, bucket, data_file.key)
        assert md5_b64(body) == data_file.md5_b64
        assert multipart_etag(body) == data_file.etag
        if data_file.item_count == 0:
            assert len(body) == 20
    assert Counter(_data_lines(s3_client, bucket, manifest)) == Counter(lines)

    raw_summary = _get(s3_client, bucket, summary.summary_key)
    decoded = json.loads(raw_summary)
    assert list(decoded) == [
        "version",
        "exportArn",
        "startTime",
        "endTime",
        "tableArn",
        "tableId",
        "exportTime",
        "s3Bucket",
        "s3Prefix",
        "s3SseAlgorithm",
        "s3SseKmsKeyId",
        "manifestFilesS3Key",
        "billedSizeBytes",
        "itemCount",
        "outputFormat",
    ]
    assert decoded["version"] == "2020-06-30" and not raw_summary.endswith(b"\n")
    assert decoded["startTime"] == "2026-03-02T09:00:05.123Z"
    raw_files = _get(s3_client, bucket, summary.manifest_files_key)
    assert raw_files.endswith(b"\n")
    assert list(json.loads(raw_files.splitlines()[0])) == [
        "itemCount",
        "md5Checksum",
        "etag",
        "dataFileS3Key",
    ]
    assert _get(s3_client, bucket, root + "manifest-summary.md5") == md5_b64(raw_summary).encode()
    assert _get(s3_client, bucket, root + "manifest-files.md5") == md5_b64(raw_files).encode()
    assert _get(s3_client, bucket, root + STARTED_NAME) == b""


def test_incrementals_share_one_data_folder(s3_client, bucket: str) -> None:
    rng = random.Random(3)
    full = write_full_export(
        s3_client,
        bucket=bucket,
        prefix=PREFIX,
        table_arn=TABLE_ARN,
        export_time=datetime(2026, 3, 2, 10, tzinfo=UTC),
        lines=_items(5),
        rng=rng,
    )
    windows = [
        datetime(2026, 3, 2, 10, tzinfo=UTC),
        datetime(2026, 3, 2, 10, 15, tzinfo=UTC),
        datetime(2026, 3, 2, 11, 15, tzinfo=UTC),
    ]
    incrementals = []
    for n, (start, end) in enumerate(zip(windows, windows[1:], strict=False)):
        # Equally seeded rngs must still not overwrite each other's shared data files.
        lines = _changes(3 + n, 1772445600000000 + n * 10**9)
        summary = write_incremental_export(
            s3_client,
            bucket=bucket,
            prefix=PREFIX,
            table_arn=TABLE_ARN,
            export_from=start,
            export_to=end,
            lines=lines,
            rng=random.Random(5),
            view="NEW_AND_OLD_IMAGES",
        )
        incrementals.append((summary, lines))

    assert list_export_ids(s3_client, bucket, PREFIX) == sorted(
        [full.export_id] + [s.export_id for s, _ in incrementals]
    )
    shared = exports_folder(PREFIX) + "data/"
    all_keys: set[str] = set()
    for summary, lines in incrementals:
        manifest = require_manifest(s3_client, bucket, PREFIX, summary.export_id)
        verify_manifest(s3_client, manifest)
        assert summary.export_type == "INCREMENTAL_EXPORT"
        assert summary.output_view == "NEW_AND_OLD_IMAGES" and summary.export_time is None
        start = export_start_time(summary.export_id)
        assert start.microsecond == 0 and start > summary.export_to_time
        assert start - summary.export_to_time < timedelta(minutes=10)
        assert summary.start_time == start
        assert all(f.key.startswith(shared) for f in manifest.files)
        assert any(f.item_count == 0 for f in manifest.files)
        # Only this export's files, even though the shared folder holds both exports' files.
        assert Counter(_data_lines(s3_client, bucket, manifest)) == Counter(lines)
        all_keys.update(f.key for f in manifest.files)
        decoded = json.loads(_get(s3_client, bucket, summary.summary_key))
        assert decoded["version"] == "2023-08-01"
        assert decoded["billedSizeBytes"] == 10000000
        assert list(decoded)[-3:] == ["outputFormat", "outputView", "exportType"]
        assert "exportTime" not in decoded
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix=shared)["Contents"]
    assert {obj["Key"] for obj in listed} == all_keys and len(all_keys) == 6
    first, second = incrementals[0][0], incrementals[1][0]
    assert first.export_to_time == second.export_from_time


def test_in_progress_export_has_no_manifest(s3_client, bucket: str) -> None:
    export_id = write_started_only(
        s3_client, bucket, PREFIX, datetime(2026, 3, 2, 9, tzinfo=UTC), random.Random(2)
    )
    assert list_export_ids(s3_client, bucket, PREFIX) == [export_id]
    assert read_manifest(s3_client, bucket, PREFIX, export_id) is None
    with pytest.raises(IncompleteExportError):
        require_manifest(s3_client, bucket, PREFIX, export_id)
    assert list_export_ids(s3_client, bucket, "other") == []


def _written(s3, bucket: str) -> ExportManifest:
    summary = write_full_export(
        s3,
        bucket=bucket,
        prefix=PREFIX,
        table_arn=TABLE_ARN,
        export_time=datetime(2026, 3, 2, 9, tzinfo=UTC),
        lines=_items(12),
        files=3,
        rng=random.Random(11),
    )
    manifest = read_manifest(s3, bucket, PREFIX, summary.export_id)
    assert manifest is not None
    return manifest


def _non_empty(manifest: ExportManifest):
    return next(f for f in manifest.files if f.item_count > 0)


def test_wrong_md5_names_the_data_file(s3_client, bucket: str) -> None:
    manifest = _written(s3_client, bucket)
    victim = _non_empty(manifest)
    s3_client.put_object(Bucket=bucket, Key=victim.key, Body=gzip_member(b"other\n"))
    with pytest.raises(CorruptExportError, match="md5Checksum") as err:
        verify_manifest(s3_client, manifest)
    assert victim.key in str(err.value) and err.value.key == victim.key


def test_item_count_mismatch_names_the_manifest(s3_client, bucket: str) -> None:
    manifest = _written(s3_client, bucket)
    key = manifest.summary.summary_key
    decoded = json.loads(_get(s3_client, bucket, key))
    decoded["itemCount"] += 1
    s3_client.put_object(
        Bucket=bucket, Key=key, Body=json.dumps(decoded, separators=(",", ":")).encode()
    )
    reread = read_manifest(s3_client, bucket, PREFIX, manifest.summary.export_id)
    assert reread is not None
    with pytest.raises(CorruptExportError, match="itemCount") as err:
        verify_manifest(s3_client, reread)
    assert manifest.summary.manifest_files_key in str(err.value)
    assert key in str(err.value)


def test_manifest_line_not_json_names_the_line(s3_client, bucket: str) -> None:
    manifest = _written(s3_client, bucket)
    key = manifest.summary.manifest_files_key
    lines = _get(s3_client, bucket, key).splitlines(keepends=True)
    lines[2] = b"{not json\n"
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"".join(lines))
    with pytest.raises(CorruptExportError, match=r"line 3") as err:
        read_manifest(s3_client, bucket, PREFIX, manifest.summary.export_id)
    assert key in str(err.value) and err.value.line == 3


def test_missing_data_file_names_it(s3_client, bucket: str) -> None:
    manifest = _written(s3_client, bucket)
    victim = manifest.files[-1]
    s3_client.delete_object(Bucket=bucket, Key=victim.key)
    with pytest.raises(CorruptExportError, match="does not exist") as err:
        verify_manifest(s3_client, manifest)
    assert victim.key in str(err.value)


def test_missing_files_manifest_is_corrupt_not_in_progress(s3_client, bucket: str) -> None:
    manifest = _written(s3_client, bucket)
    s3_client.delete_object(Bucket=bucket, Key=manifest.summary.manifest_files_key)
    with pytest.raises(CorruptExportError, match=FILES_MANIFEST_NAME):
        read_manifest(s3_client, bucket, PREFIX, manifest.summary.export_id)


def test_checksum_sidecars_are_optional_but_checked(s3_client, bucket: str) -> None:
    manifest = _written(s3_client, bucket)
    root = export_root(PREFIX, manifest.summary.export_id)
    for name in ("manifest-summary.md5", "manifest-files.md5"):
        s3_client.delete_object(Bucket=bucket, Key=root + name)
    verify_manifest(s3_client, manifest)  # absent sidecars are fine
    s3_client.put_object(
        Bucket=bucket,
        Key=root + "manifest-files.checksum",
        Body=md5_b64(b"something else").encode(),
    )
    with pytest.raises(CorruptExportError, match="manifest-files.checksum"):
        verify_manifest(s3_client, manifest)
    verify_manifest(s3_client, manifest, check_sidecars=False)
