"""The whole-migration projection: rows over the rate the scarcer side allows."""

import pytest

from migration_assets.projection import Deployment, RowCosts, project

COSTS = RowCosts(worker_cpu_s=20e-6, db_cpu_s=10e-6)


def test_one_machine_shares_its_cores_between_worker_and_database():
    machine = Deployment("laptop", worker_cores=2, db_cores=2, shared=True)
    assert machine.rows_per_second(COSTS) == pytest.approx(2 / 30e-6)
    assert "share" in machine.bound(COSTS)


def test_separate_machines_are_bound_by_the_scarcer_side():
    workers_short = Deployment("few workers", worker_cores=4, db_cores=16, db_statements=16)
    assert workers_short.rows_per_second(COSTS) == pytest.approx(4 / 20e-6)
    assert workers_short.bound(COSTS) == "worker cores"
    database_short = Deployment(
        "small database", worker_cores=64, db_cores=8, db_statements=16, db_efficiency=0.5
    )
    assert database_short.rows_per_second(COSTS) == pytest.approx(8 * 0.5 / 10e-6)
    assert database_short.bound(COSTS) == "database cores"
    pool_short = Deployment("pool of 2", worker_cores=64, db_cores=32, db_statements=2)
    assert pool_short.rows_per_second(COSTS) == pytest.approx(2 / 10e-6)
    assert pool_short.bound(COSTS) == "the mysql pool (statements at once)"


def test_a_projection_of_two_and_a_half_billion_rows():
    projection = project(2_500_000_000, 100_000)
    assert projection.seconds == 25_000
    assert projection.describe() == "2,500,000,000 rows at 100,000 rows/s: 6h 56m"
    assert project(10, 0).seconds == float("inf")
    assert project(10, 0).describe() == "10 rows: no rate measured"
