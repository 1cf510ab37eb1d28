"""A throwaway MariaDB/MySQL server with its own data directory on a free loopback port.

Used when `MIGRATION_MYSQL_URL` is not set, so the demo and the tests never depend on a
system service being up, and never touch a database the user cares about.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..mysql.connection import MySQLSettings, open_connection
from .processes import free_loopback_port, wait_until

SERVER_BINARIES = ("mariadbd", "mysqld")
INSTALL_DB_BINARIES = ("mariadb-install-db", "mysql_install_db")
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])

MISSING_SERVER_HELP = (
    "No MySQL-compatible server found (looked for mariadbd and mysqld) and "
    "MIGRATION_MYSQL_URL is not set. Install one, e.g. `sudo apt-get install -y mariadb-server`, "
    "or point MIGRATION_MYSQL_URL at an existing server."
)


# The row-based binlog that change capture reads (mysql/binlog.py): every row change with its
# full before and after images and the column names, as a replica would see them.
BINLOG_ARGS = (
    "--server-id=1",
    "--binlog-format=ROW",
    "--binlog-row-image=FULL",
    "--binlog-row-metadata=FULL",
    "--max-binlog-size=256M",
)


@dataclass(frozen=True)
class ThrowawayMySQL:
    pid: int
    port: int
    data_dir: Path

    def settings(self, database: str = "migration") -> MySQLSettings:
        return MySQLSettings(host="127.0.0.1", port=self.port, user="root", database=database)


def find_server_binary() -> str | None:
    for name in SERVER_BINARIES:
        found = shutil.which(name, path=_SEARCH_PATH)
        if found:
            return found
    return None


def _find_install_db() -> str | None:
    for name in INSTALL_DB_BINARIES:
        found = shutil.which(name, path=_SEARCH_PATH)
        if found:
            return found
    return None


def start_throwaway_mysql(
    root: Path,
    port: int | None = None,
    extra_args: Sequence[str] = (),
    *,
    binlog: bool = True,
) -> ThrowawayMySQL:
    """Initialise a data directory under `root` (unless it exists) and start the server on
    `port` (default: a free one; the same port restarts a server on its data, e.g. after a
    crash in the fault-injection tests). `extra_args` go last on the server's command line
    (they override the defaults above them, e.g. MySQL 8.0's sql_mode for a test module);
    `binlog=False` only to test change capture's refusal."""
    server = find_server_binary()
    if server is None:
        raise RuntimeError(MISSING_SERVER_HELP)
    root.mkdir(parents=True, exist_ok=True)
    data_dir = root / "data"
    log_path = root / "mysqld.log"
    user_args = ["--user=root"] if os.geteuid() == 0 else []
    if not (data_dir / "mysql").exists():
        _initialise(server, data_dir, root, user_args)
    port = port or free_loopback_port()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                server,
                "--no-defaults",
                f"--datadir={data_dir}",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                f"--socket={root / 'mysqld.sock'}",
                f"--pid-file={root / 'mysqld.pid'}",
                "--skip-name-resolve",
                "--local-infile=1",
                "--innodb-buffer-pool-size=512M",
                "--innodb-log-file-size=256M",
                "--innodb-flush-log-at-trx-commit=2",
                "--max-connections=200",
                "--default-time-zone=+00:00",
                "--character-set-server=utf8mb4",
                *((*BINLOG_ARGS, f"--log-bin={root / 'binlog'}") if binlog else ()),
                *user_args,
                *extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server_info = ThrowawayMySQL(pid=process.pid, port=port, data_dir=data_dir)

    def ready() -> bool:
        try:
            open_connection(server_info.settings(), database=False).close()
            return True
        except Exception:
            return False

    wait_until(ready, 90, "throwaway MySQL server", process, str(log_path))
    return server_info


def _initialise(server: str, data_dir: Path, root: Path, user_args: list[str]) -> None:
    install_db = _find_install_db()
    log_path = root / "install-db.log"
    if install_db is not None:
        command = [
            install_db,
            "--no-defaults",
            f"--datadir={data_dir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *user_args,
        ]
    else:  # MySQL 8 initialises through the server binary itself
        command = [
            server,
            "--no-defaults",
            "--initialize-insecure",
            f"--datadir={data_dir}",
            *user_args,
        ]
    with open(log_path, "wb") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"initialising the MySQL data directory failed ({' '.join(command[:1])} exited "
            f"{result.returncode}); see {log_path}"
        )
