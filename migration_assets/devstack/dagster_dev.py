"""`dagster dev` (webserver + daemon) on the code location, started and stopped cleanly.

For the UI test and the backfill benchmark: a workspace of its own in `work` (not the
repository, whose `.env` would override the environment given), a log file, its own
process group, and a stop that leaves none of its processes behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from .processes import pid_alive


def default_signals() -> None:
    # a shell's background job (e.g. CI) starts with SIGINT ignored; dagster dev needs it
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def start_dagster_dev(work: Path, env: dict[str, str], port: int) -> tuple[subprocess.Popen, Path]:
    """`dagster dev` on 127.0.0.1:`port` with `env`; returns the process and its log."""
    workspace = work / "workspace.yaml"
    location = {
        "module_name": "migration_assets.definitions",
        "location_name": "migration_assets",
        "working_directory": str(work),
    }
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": location}]}))
    log_path = work / "dagster-dev.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-w", str(workspace)]
            + ["-h", "127.0.0.1", "-p", str(port)],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=default_signals,
        )
    return process, log_path


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_dagster_dev(process: subprocess.Popen) -> None:
    """SIGINT (dagster dev's clean shutdown), then SIGKILL whatever of its tree is left."""
    tree = descendants(process.pid)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    for pid in tree:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
