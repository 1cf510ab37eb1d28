"""End to end through the Dagster UI: real `dagster dev`, real headless Chromium, local stack.

A person materializes a day by clicking; this test does the same clicks on a code location of
two migrations (`orders` with its legacy copy, `shipments` update_only into an existing table):
the global asset lineage, "Materialize all…" over both, one partition picked by typing it; it
waits for the run in the UI, then checks MySQL against the seed and every check's
per-partition result in the instance, and each target's checks in their partition views (the
second migration's too).

Needs Debian's `chromium` (`/usr/bin/chromium`, or `MIGRATION_CHROMIUM`) and the `playwright`
package (never `playwright install`). Without them the test skips, unless
`MIGRATION_REQUIRE_UI_TEST=1` (set by `.ci/run`) makes that a failure.
`MIGRATION_UI_SCREENSHOTS=docs` also writes the screenshots there (how docs/ was made).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import re
import shutil
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from migration_assets.defs.location import build_assets
from migration_assets.defs.naming import Naming
from migration_assets.devstack import synthetic
from migration_assets.devstack.dagster_dev import start_dagster_dev, stop_dagster_dev
from migration_assets.devstack.instance import InstanceDir, create_instance, remove_instance
from migration_assets.devstack.processes import free_loopback_port, wait_until
from migration_assets.devstack.seed import SeedReport, existing_target_summary, seed
from migration_assets.devstack.stack import StackState
from migration_assets.mysql.connection import MySQLSettings, connection
from migration_assets.spec import EXAMPLE_SPEC, MigrationSpec, parse_spec

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
except ImportError:  # _require_browser skips the test (or fails it in CI)
    PlaywrightError = Exception
    sync_playwright = None

pytestmark = [pytest.mark.ui, pytest.mark.slow]

CHROMIUM = Path(os.environ.get("MIGRATION_CHROMIUM", "/usr/bin/chromium"))
REQUIRE_ENV = "MIGRATION_REQUIRE_UI_TEST"
SCREENSHOTS_ENV = "MIGRATION_UI_SCREENSHOTS"
# root in CI/containers needs --no-sandbox; /dev/shm is small in containers
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
SEEDED_DAYS = [dt.date(2023, 1, 1), dt.date(2023, 1, 2), dt.date(2023, 1, 3)]
DAY = SEEDED_DAYS[1]  # a middle day: neighbours exist, so rows leaking across days would show
ITEMS_PER_DAY = 300
MIGRATIONS = ("orders", "shipments")  # the example specs; the second one's key is clicked too
TARGETS = [f"{name}/target_table" for name in MIGRATIONS]
STARTUP_TIMEOUT_S = 240  # `dagster dev` plus the code location on a busy 2-core machine
RUN_TIMEOUT_S = 300
UI_TIMEOUT_MS = 60_000


def _require_browser() -> None:
    """Skip (dev machine) or fail (CI) when Chromium or Playwright is missing."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install -c requirements.lock -e .[dev])")
    if not missing:
        return
    reason = "UI test needs " + " and ".join(missing)
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}; {REQUIRE_ENV}=1 says it must run here")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _browser_or_skip() -> None:
    """Decide before the stack and `dagster dev` are started for nothing."""
    _require_browser()


@dataclass
class DagsterUI:
    base_url: str
    instance: InstanceDir
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"\n--- last lines of {self.log_path} ---\n" + "\n".join(text)


def _graphql(base_url: str, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base_url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


def _target_loaded(base_url: str) -> bool:
    """True once the code location has loaded (the webserver answers long before that)."""
    path = json.dumps(TARGETS[-1].split("/"))
    query = f"{{ assetNodeOrError(assetKey: {{path: {path}}}) {{ __typename }} }}"
    return _graphql(base_url, query)["assetNodeOrError"]["__typename"] == "AssetNode"


@pytest.fixture
def ui_spec(tmp_path: Path, bucket: str) -> tuple[Path, list[MigrationSpec]]:
    """The two example specs on this test's bucket and tables, as a folder (MIGRATION_SPEC)."""
    folder = tmp_path / "specs"
    folder.mkdir()
    specs = []
    for name in MIGRATIONS:
        data = yaml.safe_load((EXAMPLE_SPEC.parent / f"{name}.yaml").read_text())
        data["s3"]["bucket"] = bucket
        data["dynamodb"]["table"] = f"{name}_{bucket[-8:]}"
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        specs.append(parse_spec(data, source=str(path)))
    return folder, specs


@pytest.fixture
def dagster_ui(
    stack: StackState,
    mysql_db: MySQLSettings,
    ui_spec: tuple[Path, list[MigrationSpec]],
    tmp_path: Path,
) -> Iterator[DagsterUI]:
    """`dagster dev` on a free port with a throwaway instance (the repo's dagster.yaml; in a
    fresh PostgreSQL database when a server answers, as `make dev`)."""
    instance = create_instance(tmp_path / "dagster_home")
    env = {
        **os.environ,
        **stack.environment(),
        "MIGRATION_MYSQL_URL": mysql_db.url,
        "MIGRATION_SPEC": str(ui_spec[0]),
        **instance.environment(),
    }
    port = free_loopback_port()
    process, log_path = start_dagster_dev(tmp_path, env, port)
    ui = DagsterUI(f"http://127.0.0.1:{port}", instance, log_path)
    try:
        wait_until(
            lambda: _target_loaded(ui.base_url),
            STARTUP_TIMEOUT_S,
            "dagster dev with the migration_assets code location",
            process,
            str(log_path),
        )
        yield ui
    finally:
        stop_dagster_dev(process)
        remove_instance(instance)


def _everything(specs: list[MigrationSpec]) -> tuple[set[str], set[dg.AssetCheckKey]]:
    """Every asset of both migrations and their checks, as the code defines them."""
    definitions = [d for s in specs for d in build_assets(s, None, Naming(s.name))]
    keys = {k for d in definitions if not isinstance(d, dg.AssetChecksDefinition) for k in d.keys}
    checks = {
        check
        for d in definitions
        if isinstance(d, dg.AssetChecksDefinition)
        for check in d.check_keys
    }
    return {k.to_user_string() for k in keys}, checks


def _save_screenshot(page: Any, path: Path) -> None:
    page.screenshot(path=str(path))
    extra = os.environ.get(SCREENSHOTS_ENV)
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / path.name)


def _materialize_day_through_ui(page: Any, base_url: str, day: str, assets: int) -> str:
    """Every partitioned asset of both migrations, one partition, launched by clicks from the
    global asset lineage (filtered to leave out each migration's unpartitioned proof, which
    would turn one partition's run into a backfill); returns the run id."""
    page.goto(f"{base_url}/asset-groups")
    page.locator(".CodeMirror").filter(visible=True).first.click()
    page.keyboard.type('not key:"*migration_proof"')
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Materialize all…").click()  # U+2026
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    dialog.get_by_text(f"Launch runs to materialize {assets} assets").wait_for()
    # the dialog offers only the last 90 days; the seeded days are years older
    dialog.get_by_role("button", name="Show all partitions").click()
    partitions = dialog.get_by_role("textbox").first
    partitions.fill(day)
    partitions.press("Enter")
    dialog.get_by_text("1 partition", exact=True).wait_for()
    dialog.get_by_role("button", name="Launch 1 run").click()  # one key: a plain run
    try:
        toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}")).first
        short_id = toast.inner_text(timeout=30_000).split()[-1]
    except PlaywrightError:  # the toast lasts seconds; this instance has only this run
        short_id = ""
    # open the run from the Runs list (the toast's own View button may be gone already)
    page.goto(f"{base_url}/runs")
    page.locator(f'a[href^="/runs/{short_id}"]').first.click()
    page.wait_for_url(re.compile(rf"/runs/{short_id}[0-9a-f-]{{{36 - len(short_id)}}}"))
    return page.url.split("/runs/")[1].split("?")[0]


def _wait_for_run_in_ui(page: Any, base_url: str, run_id: str) -> str:
    """The run page's status tag once the run has finished (reloads if the live feed stalls)."""
    final = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        try:
            final.wait_for(timeout=20_000)
            return final.inner_text()
        except PlaywrightError:
            if time.monotonic() > deadline:
                raise
            page.goto(f"{base_url}/runs/{run_id}")


def _check_passed_in_partition_view(
    page: Any, base_url: str, asset: str, check: str, day: str
) -> None:
    """The check's own per-partition view says Passed for the day."""
    page.goto(f"{base_url}/assets/{asset}?view=checks&checkDetail={check}")
    page.locator("button[role=tab]#partitions").click()
    # the partition list is virtualised: filter it down instead of scrolling
    page.get_by_placeholder("Filter by partition").fill(day)
    page.get_by_text(day, exact=True).filter(visible=True).first.click()
    page.get_by_text("Passed", exact=True).filter(visible=True).first.wait_for()


def _fetch_sorted(
    settings: MySQLSettings, table: str, columns: list[str], where: str, params: tuple
) -> list[tuple]:
    names = ", ".join(f"`{c}`" for c in columns)
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {names} FROM `{table}` WHERE {where}", params)
        return sorted(tuple(row) for row in cur.fetchall())


def _assert_target_matches_seed(settings: MySQLSettings, spec: MigrationSpec) -> None:
    """The target holds exactly the day's seeded items (key and merged columns), as staged.

    Only the merged columns: rows that bigint_table_copy brought from the legacy table keep
    their other values (the merge updates `update_columns` only).
    """
    columns = [*spec.mysql.key, *spec.mysql.update_columns]
    event = spec.event_time_column.column
    batch = synthetic.generate_day(spec, DAY, ITEMS_PER_DAY)  # what seed() wrote for the day
    expected = sorted(
        tuple(
            None
            if batch.values[c][i] is synthetic.MISSING
            else batch.values[c][i].replace(tzinfo=None)  # MySQL DATETIME: naive UTC
            if c == event
            else batch.values[c][i]
            for c in columns
        )
        for i in range(len(batch))
    )
    target = _fetch_sorted(settings, spec.mysql.target_table, columns, "TRUE", ())
    staged = _fetch_sorted(
        settings, spec.mysql.temp_table, columns, "`_day` = %s AND `_change` = 'put'", (DAY,)
    )
    assert len(target) == ITEMS_PER_DAY  # the day only: nothing of the other seeded days
    assert target == expected
    assert staged == target


def _assert_existing_target_updated(
    settings: MySQLSettings, spec: MigrationSpec, report: SeedReport
) -> None:
    """update_only into the existing table: the day's covered rows updated (the other seeded
    days' still hold the placeholder), the rows DynamoDB does not cover untouched."""
    with connection(settings) as conn:
        after = existing_target_summary(conn, spec)
    per_day = report.existing_covered // len(SEEDED_DAYS)
    assert after["covered_rows"] == report.existing_covered == per_day * len(SEEDED_DAYS)
    assert after["covered_rows_not_updated"] == per_day * (len(SEEDED_DAYS) - 1)
    assert after["uncovered_rows"] == report.existing_uncovered > 0
    assert after["uncovered_checksum"] == report.existing_uncovered_checksum


def test_materialize_a_day_by_clicking_through_the_ui(
    dagster_ui: DagsterUI,
    ui_spec: tuple[Path, list[MigrationSpec]],
    mysql_db: MySQLSettings,
    s3_client: Any,
    dynamodb_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    specs = ui_spec[1]
    reports = [
        seed(
            spec,
            s3=s3_client,
            dynamodb=dynamodb_client,
            mysql=mysql_db,  # the legacy table, and the update_only spec's existing target
            days=SEEDED_DAYS,
            items_per_day=ITEMS_PER_DAY,
        )
        for spec in specs
    ]
    day = DAY.isoformat()
    assets, checks = _everything(specs)
    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.set_default_navigation_timeout(2 * UI_TIMEOUT_MS)
        try:
            run_id = _materialize_day_through_ui(page, dagster_ui.base_url, day, len(assets))
            status = _wait_for_run_in_ui(page, dagster_ui.base_url, run_id)
            assert status == "Success", f"run {run_id} ended {status}"
            for target in TARGETS:  # the first migration's and the second's
                url = f"{dagster_ui.base_url}/assets/{target}?view=partitions&partition={day}"
                page.goto(url)
                page.get_by_text("Materialized", exact=True).filter(visible=True).first.wait_for()
                page.get_by_text("rows_staged").wait_for()
                name = target.replace("/", "-").replace("_", "-")
                _save_screenshot(page, tmp_path / f"ui-{name}-partitions.png")
                key = dg.AssetKey(target.split("/"))
                for check in sorted(c.name for c in checks if c.asset_key == key):
                    _check_passed_in_partition_view(page, dagster_ui.base_url, target, check, day)
                    if check == "per_second_count_parity":
                        _save_screenshot(page, tmp_path / f"ui-{name}-check-partition.png")
        except Exception as exc:
            page.screenshot(path=str(tmp_path / "failure.png"))
            raise AssertionError(
                f"UI step failed at {page.url} (screenshot {tmp_path / 'failure.png'}): {exc}"
                f"{dagster_ui.log_tail()}"
            ) from exc
        finally:
            browser.close()
    print(f"UI flow took {time.monotonic() - started:.1f} s")

    for name, value in dagster_ui.instance.environment().items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags.get("dagster/partition") == day
        assert {k.to_user_string() for k in run.asset_selection or ()} == assets
        assert set(run.asset_check_selection or ()) == checks
        infos = instance.event_log_storage.get_asset_check_partition_info(
            list(checks), partition_keys=[day]
        )
        results = {
            i.check_key: (i.latest_execution_status.value, i.latest_planned_run_id, i.is_current)
            for i in infos
        }
        assert results == {check: ("SUCCEEDED", run_id, True) for check in checks}
    _assert_target_matches_seed(mysql_db, specs[0])
    _assert_existing_target_updated(mysql_db, specs[1], reports[1])
