"""How long a whole migration takes, from CPU costs measured per row.

A run's work splits into two places: the worker that runs it (decoding exports, writing
Parquet, formatting load text, the checks' frames, orchestration) and the MySQL server
(LOAD DATA, the merge, the per-second counts). `bench/bench_e2e.py` measures both as CPU
seconds per row; a deployment is then bounded by whichever side runs out of cores first.
The same rows-left-over-rate arithmetic gives the backfill ETA in metadata (`progress.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .progress import format_duration


@dataclass(frozen=True)
class RowCosts:
    """CPU seconds per row, measured: on the worker, and on the MySQL server."""

    worker_cpu_s: float
    db_cpu_s: float


@dataclass(frozen=True)
class Deployment:
    """Where runs and the database run. A MySQL statement runs on one core, so the database
    works on at most `db_statements` rows at once: the `mysql` pool's limit, one statement
    per step (a lower bound: a new day's merge and the checks' passes use the step's
    `MIGRATION_MYSQL_CONNECTIONS_PER_STEP` connections, a load one). `db_efficiency`
    is the share of a benchmark-machine core's work one database vCPU does (an assumption
    unless measured on that database)."""

    name: str
    worker_cores: float
    db_cores: float
    db_statements: int = 2
    db_efficiency: float = 1.0
    shared: bool = False  # workers and database on the same cores (one machine)

    def _database_rate(self, costs: RowCosts) -> float:
        busy_cores = min(self.db_cores, self.db_statements)
        return busy_cores * self.db_efficiency / costs.db_cpu_s

    def rows_per_second(self, costs: RowCosts) -> float:
        if self.shared:
            return self.worker_cores / (costs.worker_cpu_s + costs.db_cpu_s)
        return min(self.worker_cores / costs.worker_cpu_s, self._database_rate(costs))

    def bound(self, costs: RowCosts) -> str:
        if self.shared:
            return "the machine's cores (workers and database share them)"
        workers = self.worker_cores / costs.worker_cpu_s
        if workers <= self._database_rate(costs):
            return "worker cores"
        if self.db_statements < self.db_cores:
            return "the mysql pool (statements at once)"
        return "database cores"


@dataclass(frozen=True)
class Projection:
    rows: int
    rows_per_second: float

    @property
    def seconds(self) -> float:
        return self.rows / self.rows_per_second if self.rows_per_second > 0 else float("inf")

    def describe(self) -> str:
        if self.rows_per_second <= 0:
            return f"{self.rows:,} rows: no rate measured"
        return (
            f"{self.rows:,} rows at {self.rows_per_second:,.0f} rows/s: "
            f"{format_duration(self.seconds)}"
        )


def project(rows: int, rows_per_second: float) -> Projection:
    return Projection(rows, rows_per_second)
