"""The bad-input corpus (issue 10) as one suite, each entry through the real pipeline.

Once per module a good day is seeded on the local stack (moto server, MariaDB) and the
whole graph is materialized for it: the baseline. Each entry then publishes a poisoned
export in the exact AWS layout (a new incremental export chained after the seeded ones, or
a new full export), or a poisoned configuration, and materializes the whole graph again:

- `fail` (and every corrupt file, whatever the mode): the run fails naming the S3 key, the
  line and the attribute or key, and the day is left as it was: its MySQL rows, its
  committed Parquet manifest and every object under the day's folder and `_rejects/`, and
  every MySQL table's checksum;
- `quarantine`: the bad record is kept in a rejects file with its file, line and reason,
  the good records of the same export reach the target, and all nine checks pass;
- a bad spec or a wrong password: refused before anything is written, the password
  nowhere (exception, event log, run record, job snapshot).

After each entry the bucket and the database are put back to the baseline, so entries
never see each other's poison.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
import runpy
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster_aws.s3 import S3Resource

from migration_assets.definitions import build_assets
from migration_assets.devstack import synthetic
from migration_assets.devstack.export_writer import (
    encode_full_line,
    encode_incremental_line,
    write_full_export,
    write_incremental_export,
)
from migration_assets.devstack.seed import WINDOW, seed, table_arn
from migration_assets.dynamodb.coverage import completed_exports
from migration_assets.dynamodb.layout import ExportSummary, md5_b64, multipart_etag
from migration_assets.mysql.connection import MySQLSettings, connection, ensure_database
from migration_assets.mysql.legacy import copied_days_table
from migration_assets.parquet_store import manifest_key, read_manifest
from migration_assets.resources import DynamoDBResource, MySQLResource, default_resources
from migration_assets.spec import EXAMPLE_SPEC, MigrationSpec, SpecError, parse_spec

pytestmark = pytest.mark.reliability  # docs/RELIABILITY.md

DAY = dt.date(2023, 1, 2)
ITEMS = 300
GOOD = 5  # good changes published next to each poisoned line
REGION = "us-east-1"


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    """The seeded, materialized baseline and what the entries need to poison and compare."""

    spec: MigrationSpec
    settings: MySQLSettings
    resources: dict[str, Any]
    s3: Any
    base_database: str  # a copy of every table as the baseline left it
    objects: dict[str, bytes]  # every object of the bucket as the baseline left it
    rows: list[tuple]  # the target's rows of DAY
    full_lines: list[bytes]  # the seeded full export's lines
    full_time: dt.datetime
    chain_end: dt.datetime  # where the seeded incremental chain stops

    @property
    def bucket(self) -> str:
        return self.spec.s3.bucket


def fetch(settings: MySQLSettings, sql: str, params: tuple = ()) -> list[tuple]:
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return [tuple(row) for row in cur.fetchall()]


def day_rows(world_spec: MigrationSpec, settings: MySQLSettings) -> list[tuple]:
    """Every column of the target's rows of DAY, in key order."""
    names = ", ".join(f"`{c.column}`" for c in world_spec.columns)
    event = world_spec.event_time_column.column
    start = dt.datetime.combine(DAY, dt.time())
    return fetch(
        settings,
        f"SELECT {names} FROM `{world_spec.mysql.target_table}` WHERE `{event}` >= %s"
        f" AND `{event}` < %s ORDER BY {', '.join(f'`{k}`' for k in world_spec.mysql.key)}",
        (start, start + dt.timedelta(days=1)),
    )


def tables(settings: MySQLSettings, database: str) -> list[str]:
    return [
        name
        for (name,) in fetch(
            settings,
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
            " ORDER BY TABLE_NAME",
            (database,),
        )
    ]


def checksums(settings: MySQLSettings, database: str) -> dict[str, int]:
    names = tables(settings, database)
    if not names:
        return {}
    rows = fetch(settings, "CHECKSUM TABLE " + ", ".join(f"`{database}`.`{n}`" for n in names))
    return {name.split(".", 1)[1]: value for name, value in rows}


def database_state(settings: MySQLSettings, database: str, spec: MigrationSpec) -> dict[str, Any]:
    """Every table's checksum; for the legacy copy's log of copied days, its rows without
    `copied_at` (the copy re-runs for the day whatever the DynamoDB side does: it reads only
    the legacy table, and idempotently)."""
    state: dict[str, Any] = checksums(settings, database)
    log = copied_days_table(spec)
    if log in state:
        state[log] = fetch(
            settings,
            f"SELECT `day`, `source_rows`, `source_max_id` FROM `{database}`.`{log}` ORDER BY 1",
        )
    return state


def bucket_objects(s3: Any, bucket: str) -> dict[str, bytes]:
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", [])
    ]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def copy_tables(settings: MySQLSettings, source: str, target: str) -> None:
    """Make `target` hold exactly `source`'s tables and rows (few hundred rows: cheap)."""
    wanted = set(tables(settings, source))
    with connection(settings, database=False) as conn, conn.cursor() as cur:
        cur.execute("SET FOREIGN_KEY_CHECKS = 0")
        for name in tables(settings, target):
            if name not in wanted:
                cur.execute(f"DROP TABLE `{target}`.`{name}`")
        present = set(tables(settings, target))
        for name in sorted(wanted):
            if name not in present:
                cur.execute(f"CREATE TABLE `{target}`.`{name}` LIKE `{source}`.`{name}`")
            cur.execute(f"DELETE FROM `{target}`.`{name}`")
            cur.execute(f"INSERT INTO `{target}`.`{name}` SELECT * FROM `{source}`.`{name}`")
        conn.commit()


def restore(world: World) -> None:
    """Put the bucket and the database back to the baseline."""
    now = bucket_objects(world.s3, world.bucket)
    extra = [{"Key": key} for key in now if key not in world.objects]
    for start in range(0, len(extra), 1000):
        world.s3.delete_objects(
            Bucket=world.bucket, Delete={"Objects": extra[start : start + 1000]}
        )
    for key, body in world.objects.items():
        if now.get(key) != body:
            world.s3.put_object(Bucket=world.bucket, Key=key, Body=body)
    if checksums(world.settings, world.settings.database) != checksums(
        world.settings, world.base_database
    ):
        copy_tables(world.settings, world.base_database, world.settings.database)


def all_checks_pass(result: dg.ExecuteInProcessResult) -> bool:
    evaluations = result.get_asset_check_evaluations()
    return len(evaluations) == 9 and all(e.passed for e in evaluations)


@pytest.fixture(scope="module")
def world(stack, s3_client, dynamodb_client) -> Iterator[World]:
    bucket = f"bad-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["s3"]["bucket"] = bucket
    data["dynamodb"]["table"] = f"orders_{bucket[-8:]}"
    data["dynamodb"]["on_bad_record"] = "fail"
    spec = parse_spec(data)
    settings = stack.mysql.with_database(f"t_{uuid.uuid4().hex[:12]}")
    base_database = settings.database + "_base"
    ensure_database(settings)
    ensure_database(settings.with_database(base_database))
    try:
        report = seed(
            spec, s3=s3_client, dynamodb=dynamodb_client, mysql=settings, days=[DAY],
            items_per_day=ITEMS,
        )  # fmt: skip
        resources = {
            "s3": S3Resource(endpoint_url=stack.aws_endpoint_url, max_attempts=3),
            "dynamodb": DynamoDBResource(endpoint_url=stack.aws_endpoint_url),
            "mysql": MySQLResource(url=settings.url),
        }
        baseline = dg.materialize(
            build_assets(spec), partition_key=DAY.isoformat(), resources=resources
        )
        assert baseline.success and all_checks_pass(baseline)
        copy_tables(settings, settings.database, base_database)
        exports = completed_exports(s3_client, bucket, spec.s3.export_prefix)
        full = next(m for m in exports if m.summary.export_id == report.full_export_id)
        full_lines = [
            line + b"\n"
            for data_file in full.files
            for line in gzip.decompress(
                s3_client.get_object(Bucket=bucket, Key=data_file.key)["Body"].read()
            ).splitlines()
        ]
        assert full.summary.export_time is not None
        yield World(
            spec=spec,
            settings=settings,
            resources=resources,
            s3=s3_client,
            base_database=base_database,
            objects=bucket_objects(s3_client, bucket),
            rows=day_rows(spec, settings),
            full_lines=full_lines,
            full_time=full.summary.export_time,
            chain_end=full.summary.export_time + len(report.incremental_export_ids) * WINDOW,
        )
    finally:
        with connection(settings, database=False) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{settings.database}`")
            cur.execute(f"DROP DATABASE IF EXISTS `{base_database}`")


@pytest.fixture
def fresh(world: World) -> Iterator[World]:
    """The world as the baseline left it; restored again after the entry."""
    try:
        yield world
    finally:
        restore(world)


# --------------------------------------------------------------------------- poison


def new_items(spec: MigrationSpec, count: int, seed_value: int) -> list[dict]:
    """Items of DAY that the seeded day does not hold (ids far above the day's own)."""
    batch = synthetic.generate_day(spec, DAY, count, seed=seed_value)
    items = synthetic.dynamodb_items(spec, batch)
    _, range_column = synthetic.table_key_attributes(spec)
    assert range_column is not None
    for item in items:
        item[range_column.attribute] = {
            "N": str(int(item[range_column.attribute]["N"]) + 50_000_000)
        }
    return items


def put_line(spec: MigrationSpec, item: dict, micros: int) -> bytes:
    return encode_incremental_line(synthetic.item_keys(spec, item), micros, new_image=item)


def with_attribute(item: dict, name: str, value: dict | None) -> dict:
    changed = {k: v for k, v in item.items() if k != name}
    if value is not None:
        changed[name] = value
    return changed


@dataclass
class Published:
    summary: ExportSummary
    data_key: str  # the one data file
    bad_line: int | None  # the poisoned line's number in it
    good: list[dict]  # the good items published with it


def _data_entries(world: World, summary: ExportSummary) -> list[dict]:
    raw = world.s3.get_object(Bucket=world.bucket, Key=summary.manifest_files_key)["Body"].read()
    return [json.loads(line) for line in raw.splitlines()]


def _put_json(world: World, key: str, obj: Any, newline: bool) -> None:
    """Rewrite a manifest as AWS writes it (compact JSON) and its `.md5` sidecar."""
    if isinstance(obj, list):
        body = b"".join(json.dumps(o, separators=(",", ":")).encode() + b"\n" for o in obj)
    else:
        body = json.dumps(obj, separators=(",", ":")).encode() + (b"\n" if newline else b"")
    world.s3.put_object(Bucket=world.bucket, Key=key, Body=body)
    world.s3.put_object(
        Bucket=world.bucket, Key=key.removesuffix(".json") + ".md5", Body=md5_b64(body).encode()
    )


def publish(
    world: World, kind: str, bad: list[bytes], *, position: int = 2, name: str = "poison"
) -> Published:
    """A completed export holding good changes of DAY and the `bad` lines at `position`.

    incremental: a 6 h window chained right after the seeded ones, holding GOOD new items.
    full: a full export one second after the seeded one, holding the same items (so the
    day's good state is unchanged) plus the bad lines; the seeded incrementals follow it.
    """
    spec = world.spec
    rng = random.Random(name)
    arn = table_arn(spec, REGION)
    if kind == "incremental":
        good = new_items(spec, GOOD, seed_value=rng.randrange(1000, 9999))
        micros = int(world.chain_end.timestamp() * 1_000_000)
        lines = [put_line(spec, item, micros + 1000 * i) for i, item in enumerate(good)]
        lines[position:position] = bad
        summary = write_incremental_export(
            world.s3, bucket=world.bucket, prefix=spec.s3.export_prefix, table_arn=arn,
            export_from=world.chain_end, export_to=world.chain_end + WINDOW, lines=lines,
            files=1, empty_files=0, rng=rng,
        )  # fmt: skip
    else:
        good = []
        lines = list(world.full_lines)
        lines[position:position] = bad
        summary = write_full_export(
            world.s3, bucket=world.bucket, prefix=spec.s3.export_prefix, table_arn=arn,
            export_time=world.full_time + dt.timedelta(seconds=1), lines=lines, files=1,
            empty_files=0, rng=rng,
        )  # fmt: skip
    (entry,) = _data_entries(world, summary)
    return Published(summary, entry["dataFileS3Key"], position + 1 if bad else None, good)


def truncate_gzip(world: World, published: Published) -> None:
    """The data file ends half-way; its manifest entry hashes the cut bytes (as if DynamoDB
    wrote it so), so only the gzip stream itself is wrong."""
    body = world.s3.get_object(Bucket=world.bucket, Key=published.data_key)["Body"].read()
    cut = body[: len(body) // 2]
    world.s3.put_object(Bucket=world.bucket, Key=published.data_key, Body=cut)
    entries = _data_entries(world, published.summary)
    entries[0].update(md5Checksum=md5_b64(cut), etag=multipart_etag(cut))
    _put_json(world, published.summary.manifest_files_key, entries, newline=True)


def wrong_md5(world: World, published: Published) -> None:
    entries = _data_entries(world, published.summary)
    entries[0]["md5Checksum"] = md5_b64(b"some other bytes")
    _put_json(world, published.summary.manifest_files_key, entries, newline=True)


def _summary(world: World, published: Published) -> dict:
    key = published.summary.summary_key
    return json.loads(world.s3.get_object(Bucket=world.bucket, Key=key)["Body"].read())


def count_off_in_file(world: World, published: Published) -> None:
    """The file's itemCount and the summary agree with each other, not with the file."""
    entries = _data_entries(world, published.summary)
    entries[0]["itemCount"] += 1
    _put_json(world, published.summary.manifest_files_key, entries, newline=True)
    summary = _summary(world, published)
    summary["itemCount"] += 1
    _put_json(world, published.summary.summary_key, summary, newline=False)


def count_off_in_summary(world: World, published: Published) -> None:
    summary = _summary(world, published)
    summary["itemCount"] += 1
    _put_json(world, published.summary.summary_key, summary, newline=False)


# --------------------------------------------------------------------------- the corpus


def at_line(published: Published) -> list[str]:
    return [published.data_key, f"line {published.bad_line}:"]


def in_data_file(published: Published) -> list[str]:
    return [published.data_key]


def in_files_manifest(published: Published) -> list[str]:
    return [published.summary.manifest_files_key]


def in_day(published: Published) -> list[str]:
    """Rows that clash only once the day is assembled no longer carry their file and line:
    named by the day, its exports and (in the reason) the key."""
    return [f"dt={DAY.isoformat()} built from exports {published.summary.export_id}"]


@dataclass(frozen=True)
class Entry:
    """One bad input: how to publish it and what the user must be told."""

    name: str
    kind: str  # "incremental" or "full": the export that carries it
    bad: Callable[[World], list[bytes]]  # the poisoned lines
    says: tuple[str, ...]  # what the message must say, besides where
    names: Callable[[Published], list[str]] = at_line  # where: what the message must name
    tamper: Callable[[World, Published], None] | None = None
    quarantinable: bool = True  # a bad record (not a bad file): quarantine keeps it
    placed: bool = True  # its event time is readable: kept in the day's rejects file
    records: int = 1  # bad records it makes


def _bad_item(world: World, attribute: str, value: dict | None, keys_too: bool = False) -> bytes:
    (item,) = new_items(world.spec, 1, seed_value=4242)
    bad = with_attribute(item, attribute, value)
    keys = synthetic.item_keys(world.spec, item)
    if keys_too:
        keys = with_attribute(keys, attribute, value)
    micros = int(world.chain_end.timestamp() * 1_000_000) + 999
    return encode_incremental_line(keys, micros, new_image=bad)


def _cut_line(world: World) -> list[bytes]:
    (item,) = new_items(world.spec, 1, seed_value=4343)
    line = put_line(world.spec, item, int(world.chain_end.timestamp() * 1_000_000))
    return [line[: len(line) // 2] + b"\n"]  # a line cut short: not JSON


def _duplicate(world: World) -> list[bytes]:
    """The same item twice in a full export, the copy with another tier: two rows for one
    MySQL key of the day."""
    original = json.loads(world.full_lines[10])["Item"]
    return [encode_full_line(with_attribute(original, "tier", {"S": "copy"}))]


CORPUS = [
    Entry(
        "truncated_gzip", "incremental", lambda w: [], ("gzip data ends early",),
        in_data_file, tamper=truncate_gzip, quarantinable=False,
    ),
    Entry("not_json", "incremental", _cut_line, ("not valid JSON",), placed=False),
    Entry(
        "wrong_md5_in_manifest", "incremental", lambda w: [], ("md5Checksum", "does not match"),
        in_data_file, tamper=wrong_md5, quarantinable=False,
    ),
    Entry(
        "item_count_of_a_file", "incremental", lambda w: [], ("itemCount", f"holds {GOOD} lines"),
        in_data_file, tamper=count_off_in_file, quarantinable=False,
    ),
    Entry(
        "item_count_of_the_summary", "incremental", lambda w: [],
        ("itemCount values sum to", "manifest-summary.json"), in_files_manifest,
        tamper=count_off_in_summary, quarantinable=False,
    ),
    Entry(
        "number_with_40_digits", "incremental",
        lambda w: [_bad_item(w, "amount", {"N": "1" * 40})], ("'amount'", "decimal(18,4)"),
    ),
    Entry(
        "bigint_overflow", "incremental",
        lambda w: [_bad_item(w, "customer_id", {"N": str(2**63)}, keys_too=True)],
        ("'customer_id'", "does not fit bigint"),
    ),
    Entry(
        "missing_not_null_key_attribute", "incremental",
        lambda w: [_bad_item(w, "order_id", None, keys_too=True)], ("'order_id'",),
    ),
    Entry(
        "wrong_type", "incremental", lambda w: [_bad_item(w, "amount", {"S": "12.50"})],
        ("'amount'",),
    ),
    Entry(
        "duplicate_key_in_a_day", "full", _duplicate, ("duplicate MySQL key (customer_id=",),
        in_day, records=2,
    ),
]  # fmt: skip

CASES = [
    pytest.param(entry, mode, id=f"{entry.name}-{mode}")
    for entry in CORPUS
    for mode in ("fail", "quarantine")
    # an export's own checks (md5s, the summary's count) run in dynamodb_export whatever
    # the mode; once is enough
    if mode == "fail" or entry.tamper not in (wrong_md5, count_off_in_summary)
]


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures, "the run failed without a step failure"
    return "\n".join(e.event_specific_data.error.to_string() for e in failures)


def assert_day_as_before(world: World, before: dict[str, Any]) -> None:
    """The day's target rows, its committed manifest, every object of the day's folder and of
    `_rejects/`, and every table (`database_state`) are what the baseline left."""
    assert day_rows(world.spec, world.settings) == world.rows
    key = manifest_key(world.spec, DAY)
    assert world.s3.get_object(Bucket=world.bucket, Key=key)["Body"].read() == world.objects[key]
    day_folder = key.rsplit("/", 1)[0] + "/"
    rejects = f"{world.spec.s3.parquet_prefix}/_rejects/"
    now = bucket_objects(world.s3, world.bucket)
    for prefix in (day_folder, rejects):
        assert {k: v for k, v in now.items() if k.startswith(prefix)} == {
            k: v for k, v in world.objects.items() if k.startswith(prefix)
        }, prefix
    assert database_state(world.settings, world.settings.database, world.spec) == before


@pytest.mark.slow
@pytest.mark.parametrize(("entry", "mode"), CASES)
def test_a_bad_input_is_named_and_never_half_applied(fresh: World, entry: Entry, mode: str):
    world = fresh
    spec = replace(world.spec, dynamodb=replace(world.spec.dynamodb, on_bad_record=mode))
    before = database_state(world.settings, world.base_database, world.spec)
    published = publish(world, entry.kind, entry.bad(world), name=entry.name)
    if entry.tamper:
        entry.tamper(world, published)
    result = dg.materialize(
        build_assets(spec), partition_key=DAY.isoformat(), resources=world.resources,
        raise_on_error=False,
    )  # fmt: skip
    if mode == "fail" or not entry.quarantinable:
        assert not result.success
        message = failure_text(result)
        for fragment in [*entry.names(published), *entry.says]:
            assert fragment in message, (fragment, message)
        assert_day_as_before(world, before)
        return
    assert result.success and all_checks_pass(result)
    manifest = read_manifest(world.s3, spec, DAY)
    assert manifest is not None
    if entry.placed:
        body = world.s3.get_object(Bucket=world.bucket, Key=manifest.rejects_key)["Body"].read()
    else:
        unplaced = world.s3.list_objects_v2(
            Bucket=world.bucket, Prefix=f"{spec.s3.parquet_prefix}/_rejects/unplaced/"
        )
        (key,) = [o["Key"] for o in unplaced["Contents"]]
        body = world.s3.get_object(Bucket=world.bucket, Key=key)["Body"].read()
    shown = [  # each kept record as the fail mode's message shows it
        (f"{r['file']} line {r['line']}: " if r["line"] else f"{r['file']}: ") + r["reason"]
        for r in map(json.loads, body.splitlines())
    ]
    ours = [s for s in shown if all(f in s for f in [*entry.names(published), *entry.says])]
    assert len(ours) == entry.records, shown
    rows = day_rows(spec, world.settings)
    if entry.kind == "full":  # the same items again: the day is exactly as it was
        assert rows == world.rows
        return
    assert len(rows) == len(world.rows) + len(published.good)
    keys = {(r[0], r[1]) for r in rows}
    for item in published.good:
        assert (int(item["customer_id"]["N"]), int(item["order_id"]["N"])) in keys


# --------------------------------------------------------------------------- configuration


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """An edit of the spec's YAML data at a dotted path (`columns.3.type`)."""

    def edit(data: dict) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[int(last) if isinstance(target, list) else last] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        pytest.param(
            _set("columns.3.type", "money"), ("columns[3].type", "unknown type 'money'"),
            id="unknown_column_type",
        ),
        pytest.param(
            _set("mysql.target_table", "orders`; DROP TABLE table01; --"),
            ("mysql.target_table", "not a safe SQL identifier"),
            id="sql_injection_in_table_name",
        ),
        pytest.param(
            _set("columns.4.column", "loyalty_tier` TEXT); DROP TABLE table01; --"),
            ("columns[4].column", "not a safe SQL identifier"),
            id="sql_injection_in_column_name",
        ),
    ],
)  # fmt: skip
def test_a_bad_spec_is_refused_before_anything_is_written(
    fresh: World, tmp_path, monkeypatch, edit, says
):
    """The code location itself refuses to load (what `dagster dev` and the CLI run), so no
    asset can start: no table, no object."""
    world = fresh
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["s3"]["bucket"], data["dynamodb"]["table"] = world.bucket, world.spec.dynamodb.table
    edit(data)
    spec_path = tmp_path / "orders.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("MIGRATION_SPEC", str(spec_path))
    monkeypatch.setenv("MIGRATION_MYSQL_URL", world.settings.url)
    before = checksums(world.settings, world.settings.database)
    with pytest.raises(SpecError) as excinfo:
        runpy.run_module("migration_assets.definitions")
    message = str(excinfo.value)
    assert message.startswith(f"{spec_path}: ")
    for fragment in says:
        assert fragment in message, message
    assert checksums(world.settings, world.settings.database) == before
    assert bucket_objects(world.s3, world.bucket) == world.objects


def test_a_wrong_password_is_refused_and_never_shown(fresh: World, monkeypatch):
    """Through the production resources (`MIGRATION_MYSQL_URL` read by `EnvVar`): the run
    fails at the first MySQL step, and the password is in no exception, no event of the
    run's log, not in the run record nor its job snapshot."""
    world = fresh
    secret = f"Wr0ng-{uuid.uuid4().hex[:12]}"
    user = f"bad_{uuid.uuid4().hex[:8]}"
    settings = world.settings
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, uuid.uuid4().hex))
        cur.execute(f"GRANT ALL ON `{settings.database}`.* TO %s@'%%'", (user,))
    url = f"mysql://{user}:{secret}@{settings.host}:{settings.port}/{settings.database}"
    monkeypatch.setenv("MIGRATION_MYSQL_URL", url)
    before = database_state(settings, settings.database, world.spec)
    instance = dg.DagsterInstance.ephemeral()
    try:
        with pytest.raises(Exception) as excinfo:  # whatever Dagster raises
            dg.materialize(
                build_assets(world.spec), partition_key=DAY.isoformat(),
                resources=default_resources(), instance=instance,
            )  # fmt: skip
    finally:
        with connection(settings) as conn, conn.cursor() as cur:
            cur.execute("DROP USER IF EXISTS %s@'%%'", (user,))
    texts = ["".join(traceback.format_exception(excinfo.value))]
    chain, seen = [excinfo.value], set()
    while chain:  # every cause and context (Dagster's wrappers can refer to each other)
        error = chain.pop()
        if error is not None and id(error) not in seen:
            seen.add(id(error))
            texts += [str(error), repr(error)]
            chain += [error.__cause__, error.__context__]
    (run,) = instance.get_runs()
    logs = instance.all_logs(run.run_id)
    texts += [dg.serialize_value(entry) for entry in logs]
    texts += [
        dg.serialize_value(run),
        dg.serialize_value(instance.get_job_snapshot(run.job_snapshot_id)),
        dg.serialize_value(instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)),
    ]
    assert not [text for text in texts if secret in text]
    failures = [
        entry.dagster_event.event_specific_data.error.to_string()
        for entry in logs
        if entry.dagster_event is not None and entry.dagster_event.is_step_failure
    ]
    assert failures and all(f"mysql://{user}:***@" in failure for failure in failures)
    assert all("Access denied" in failure for failure in failures)
    assert_day_as_before(world, before)
