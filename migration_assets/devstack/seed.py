"""Seed the local stack: a DynamoDB table, exports in the real AWS layout, a legacy table.

Timeline of the seeded world (UTC), for days D1..Dn:
- the DynamoDB table holds every day's items (put through the real moto API when small);
- a full export taken at Dn+1 01:00 covers D1..Dn;
- `incremental_windows` chained incremental exports of 6 h each follow it, `[from, to)`,
  with updates, deletes and late-arriving inserts on the last day (NEW_AND_OLD_IMAGES);
- the legacy MySQL table (INT(11) ids) holds the same rows, except the few that exist only
  in DynamoDB (ids above 2^31);
- with `mode: update_only`, the target exists already: a row for each item but the few that
  exist only in DynamoDB, holding placeholder values (`seeded`) the merge must replace, plus
  rows DynamoDB does not cover at all (`mysql_only`, keys above UNCOVERED_OFFSET), which the
  merge must leave untouched (`existing_target_summary`).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

from ..dynamodb.export_writer import (
    encode_full_line,
    encode_incremental_line,
    write_full_export,
    write_incremental_export,
)
from ..identifiers import quote_identifier, quote_identifiers
from ..mysql.connection import MySQLSettings, connection
from ..mysql.ddl import ensure_tables
from ..spec import MigrationSpec
from . import synthetic

ACCOUNT_ID = "111122223333"
WINDOW = dt.timedelta(hours=6)
TABLE_LOAD_LIMIT = 20_000  # items put through the DynamoDB API; above it only exports are written


@dataclass
class SeedReport:
    days: list[str]
    items_per_day: int
    full_export_id: str = ""
    full_export_items: int = 0
    incremental_export_ids: list[str] = field(default_factory=list)
    incremental_changes: int = 0
    table_items: int = 0
    legacy_rows: int = 0
    existing_covered: int = 0  # update_only: the existing target's rows DynamoDB covers
    existing_uncovered: int = 0  # ... and those it does not
    existing_uncovered_checksum: int = 0


def table_arn(spec: MigrationSpec, region: str) -> str:
    return f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{spec.dynamodb.table}"


def ensure_bucket(s3: Any, bucket: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=bucket)


def ensure_dynamodb_table(spec: MigrationSpec, dynamodb: Any) -> None:
    """Create the source table (composite key, PITR on) if it is missing."""
    hash_column, range_column = synthetic.table_key_attributes(spec)
    names = {
        t for page in dynamodb.get_paginator("list_tables").paginate() for t in page["TableNames"]
    }
    if spec.dynamodb.table in names:
        return
    keys = [(hash_column, "HASH")] + ([(range_column, "RANGE")] if range_column else [])
    dynamodb.create_table(
        TableName=spec.dynamodb.table,
        KeySchema=[{"AttributeName": c.attribute, "KeyType": kind} for c, kind in keys],
        AttributeDefinitions=[
            {"AttributeName": c.attribute, "AttributeType": "N" if c.type.is_integer else "S"}
            for c, _ in keys
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_continuous_backups(
        TableName=spec.dynamodb.table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )


def put_items(dynamodb: Any, table: str, items: list[dict]) -> int:
    """BatchWriteItem in 25s, retrying unprocessed items (boto3's batch_writer has no backoff)."""
    written = 0
    for start in range(0, len(items), 25):
        pending = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        attempt = 0
        while pending:
            response = dynamodb.batch_write_item(RequestItems={table: pending})
            pending = response.get("UnprocessedItems", {}).get(table, [])
            attempt += 1
            if attempt > 8:
                raise RuntimeError(f"BatchWriteItem kept {len(pending)} items unprocessed")
        written += min(25, len(items) - start)
    return written


def incremental_lines(
    spec: MigrationSpec,
    batch: synthetic.DayBatch,
    window_start: dt.datetime,
    rng: random.Random,
    window_index: int,
) -> list[bytes]:
    """Changes inside one window: ~1% tier updates, ~0.3% deletes, ~0.3% late inserts."""
    items = synthetic.dynamodb_items(spec, batch)
    count = len(items)
    update_columns = [spec.column(name) for name in spec.mysql.update_columns]
    micros = int(window_start.timestamp() * 1_000_000)
    lines: list[bytes] = []
    chosen = rng.sample(range(count), k=min(count, max(1, count // 75)))
    for position, index in enumerate(chosen):
        old = items[index]
        keys = synthetic.item_keys(spec, old)
        write_micros = micros + rng.randint(0, int(WINDOW.total_seconds() * 1_000_000) - 1)
        if position % 4 == 3:  # delete
            lines.append(encode_incremental_line(keys, write_micros, old_image=old))
            continue
        new = dict(old)
        for column in update_columns:  # a new value of the column's type
            if column.type.kind in ("varchar", "text"):
                text = f"tier-w{window_index}-{position % 5}"[: column.type.length or 32]
                new[column.attribute] = {"S": text}
            elif column.type.is_integer or column.type.kind == "decimal":
                new[column.attribute] = {"N": str(window_index * 10 + position % 5)}
        lines.append(encode_incremental_line(keys, write_micros, new_image=new, old_image=old))
    late = synthetic.generate_day(spec, batch.day, max(1, count // 300), seed=1000 + window_index)
    offset = 10_000_000 + window_index * 100_000  # late ids never collide with the day's own
    hash_column, range_column = synthetic.table_key_attributes(spec)
    for item in synthetic.dynamodb_items(spec, late):
        for column in (range_column or hash_column,):
            if column.type.is_integer:
                item[column.attribute] = {"N": str(int(item[column.attribute]["N"]) + offset)}
        write_micros = micros + rng.randint(0, int(WINDOW.total_seconds() * 1_000_000) - 1)
        lines.append(
            encode_incremental_line(synthetic.item_keys(spec, item), write_micros, new_image=item)
        )
    return lines


def create_legacy_table(spec: MigrationSpec, conn: Any) -> None:
    assert spec.legacy_copy is not None
    columns = synthetic.legacy_columns(spec)
    id_column = columns[0][0]
    definition = ",\n  ".join(f"{quote_identifier(name)} {sql}" for name, sql in columns)
    with conn.cursor() as cur:
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {quote_identifier(spec.legacy_copy.source_table)} (\n"
            f"  {definition},\n  PRIMARY KEY ({quote_identifier(id_column)}),\n"
            f"  KEY `by_time` ({quote_identifier(spec.legacy_copy.time_column)})\n"
            ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        )


def seed_legacy_day(spec: MigrationSpec, conn: Any, batch: synthetic.DayBatch) -> int:
    """Replace the legacy table's rows of one day (idempotent); ids continue from the max."""
    assert spec.legacy_copy is not None
    table = quote_identifier(spec.legacy_copy.source_table)
    time_column = quote_identifier(spec.legacy_copy.time_column)
    names = [name for name, _ in synthetic.legacy_columns(spec)]
    start = dt.datetime.combine(batch.day, dt.time())
    with conn.cursor() as cur:
        cur.execute(
            f"DELETE FROM {table} WHERE {time_column} >= %s AND {time_column} < %s",
            (start, start + dt.timedelta(days=1)),
        )
        cur.execute(f"SELECT COALESCE(MAX({quote_identifier(names[0])}), 0) FROM {table}")
        first_id = int(cur.fetchone()[0]) + 1
        rows = synthetic.legacy_rows(spec, batch, first_id)
        placeholders = ", ".join(["%s"] * len(names))
        sql = f"INSERT INTO {table} ({quote_identifiers(names)}) VALUES ({placeholders})"
        for chunk in range(0, len(rows), 5_000):
            cur.executemany(sql, rows[chunk : chunk + 5_000])
    conn.commit()
    return len(rows)


UNCOVERED_OFFSET = 1_000_000_000  # key offset of the existing target's rows DynamoDB lacks
SEEDED, MYSQL_ONLY = "seeded", "mysql_only"


def _uncovered_filter(spec: MigrationSpec) -> str:
    """SQL condition of the existing target's rows DynamoDB does not cover."""
    integer_keys = [c for c in spec.key_columns if c.type.is_integer]
    return f"{quote_identifier(integer_keys[-1].column)} >= {UNCOVERED_OFFSET}"


def seed_existing_target(spec: MigrationSpec, conn: Any, batch: synthetic.DayBatch) -> tuple:
    """The update_only target as it stood before the migration, for one day: every item's
    row but DynamoDB-only ones, update columns holding a placeholder, plus every fifth row
    again under a key DynamoDB never had. Returns (covered, uncovered) rows written."""
    names = [c.column for c in spec.columns]
    update = set(spec.mysql.update_columns)
    integer_keys = [c for c in spec.key_columns if c.type.is_integer]
    shifted = integer_keys[-1].column
    strings = [c.column for c in spec.columns if c.column in update and c.type.length]

    def plain(value: object) -> object:
        if value is synthetic.MISSING:
            return None
        return value.replace(tzinfo=None) if isinstance(value, dt.datetime) else value

    covered, uncovered = [], []
    for index in range(len(batch)):
        row = {name: plain(value) for name, value in batch.row(index).items()}
        if not batch.dynamodb_only[index]:
            covered.append(
                tuple(SEEDED if n in strings else None if n in update else row[n] for n in names)
            )
        if index % 5 == 0:
            other = {**row, shifted: row[shifted] + UNCOVERED_OFFSET}
            uncovered.append(tuple(MYSQL_ONLY if n in strings else other[n] for n in names))
    sql = (
        f"REPLACE INTO {quote_identifier(spec.mysql.target_table)} ({quote_identifiers(names)}) "
        f"VALUES ({', '.join(['%s'] * len(names))})"
    )
    with conn.cursor() as cur:
        for chunk in range(0, len(covered + uncovered), 5_000):
            cur.executemany(sql, (covered + uncovered)[chunk : chunk + 5_000])
    conn.commit()
    return len(covered), len(uncovered)


def existing_target_summary(conn: Any, spec: MigrationSpec) -> dict[str, int]:
    """The update_only target after the merge: covered rows still holding the placeholder
    (0 when every covered row was updated), and the uncovered rows with their checksum
    (unchanged when the merge left them alone)."""
    table = quote_identifier(spec.mysql.target_table)
    uncovered = _uncovered_filter(spec)
    update = [c.column for c in spec.columns if c.column in spec.mysql.update_columns]
    strings = [c for c in spec.columns if c.column in update and c.type.length]
    placeholder = " AND ".join(f"{quote_identifier(c.column)} <=> %s" for c in strings) or "FALSE"
    columns = ", ".join(f"QUOTE({quote_identifier(c.column)})" for c in spec.columns)
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT SUM(NOT ({uncovered})), SUM(NOT ({uncovered}) AND {placeholder}), "
            f"SUM({uncovered}), CAST(COALESCE(SUM(IF({uncovered}, CRC32(CONCAT_WS(',', "
            f"{columns})), 0)), 0) AS UNSIGNED) FROM {table}",
            [SEEDED] * len(strings),
        )
        covered, placeholders, rows, checksum = (int(v or 0) for v in cur.fetchone())
    return {
        "covered_rows": covered,
        "covered_rows_not_updated": placeholders,
        "uncovered_rows": rows,
        "uncovered_checksum": checksum,
    }


def seed(
    spec: MigrationSpec,
    *,
    s3: Any,
    dynamodb: Any,
    mysql: MySQLSettings | None,
    days: list[dt.date],
    items_per_day: int,
    incremental_windows: int = 2,
    region: str = "us-east-1",
    seed_value: int = 7,
) -> SeedReport:
    """Write the whole seeded world for `days` (see the module docstring); deterministic."""
    rng = random.Random(seed_value)
    report = SeedReport([d.isoformat() for d in days], items_per_day)
    batches = [synthetic.generate_day(spec, day, items_per_day, seed_value) for day in days]
    ensure_bucket(s3, spec.s3.bucket)
    ensure_dynamodb_table(spec, dynamodb)
    if items_per_day * len(days) <= TABLE_LOAD_LIMIT:
        for batch in batches:
            report.table_items += put_items(
                dynamodb, spec.dynamodb.table, synthetic.dynamodb_items(spec, batch)
            )
    arn = table_arn(spec, region)
    export_time = dt.datetime.combine(max(days) + dt.timedelta(days=1), dt.time(1), dt.UTC)
    lines = (
        encode_full_line(item)
        for batch in batches
        for item in synthetic.dynamodb_items(spec, batch)
    )
    full = write_full_export(
        s3,
        bucket=spec.s3.bucket,
        prefix=spec.s3.export_prefix,
        table_arn=arn,
        export_time=export_time,
        lines=lines,
        files=4,
        rng=rng,
    )
    report.full_export_id, report.full_export_items = full.export_id, full.item_count
    window_start = export_time
    for window_index in range(incremental_windows):
        change_lines = incremental_lines(spec, batches[-1], window_start, rng, window_index)
        incremental = write_incremental_export(
            s3,
            bucket=spec.s3.bucket,
            prefix=spec.s3.export_prefix,
            table_arn=arn,
            export_from=window_start,
            export_to=window_start + WINDOW,
            lines=change_lines,
            rng=rng,
        )
        report.incremental_export_ids.append(incremental.export_id)
        report.incremental_changes += incremental.item_count
        window_start += WINDOW
    if mysql is not None and spec.legacy_copy is not None:
        with connection(mysql) as conn:
            create_legacy_table(spec, conn)
            for batch in batches:
                report.legacy_rows += seed_legacy_day(spec, conn, batch)
    if mysql is not None and spec.mysql.mode == "update_only" and spec.legacy_copy is None:
        with connection(mysql) as conn:
            ensure_tables(conn, spec)
            for batch in batches:
                covered, uncovered = seed_existing_target(spec, conn, batch)
                report.existing_covered += covered
                report.existing_uncovered += uncovered
            summary = existing_target_summary(conn, spec)
            report.existing_uncovered_checksum = summary["uncovered_checksum"]
    return report
