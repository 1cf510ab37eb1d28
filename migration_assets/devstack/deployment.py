"""Dagster as it is deployed: a code server, a webserver and a daemon, each its own process.

`dagster dev` runs all three under one parent that shuts everything down when one of them
exits, so a daemon crash cannot be tried with it. Here each is started on its own (its own
process group, log file in `work`), the webserver and the daemon reach the code through the
code server's gRPC port, and the runs' workers are that code server's child processes (the
default run launcher), as with a code-server deployment. For the chaos benchmark and test:
the daemon can be killed and started again, and a run's worker killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .dagster_dev import default_signals, descendants
from .processes import free_loopback_port, pid_alive, port_accepts, wait_until

LOCATION = "migration_assets"


def _parent(pid: int) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return None


class Deployment:
    """The three processes in `work` with `env` (which names DAGSTER_HOME and the code's
    variables); the webserver on `port`."""

    def __init__(self, work: Path, env: dict[str, str], port: int) -> None:
        self.work, self.env, self.port = work, env, port
        self.grpc_port = free_loopback_port()
        self.workspace = work / "workspace.yaml"
        server = {"host": "127.0.0.1", "port": self.grpc_port, "location_name": LOCATION}
        self.workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": server}]}))
        self.processes: dict[str, subprocess.Popen] = {}
        self.daemon_starts = 0

    def _start(self, name: str, command: list[str]) -> subprocess.Popen:
        log_path = self.work / f"{name}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                cwd=self.work,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=default_signals,
            )
        self.processes[name] = process
        return process

    def start(self, timeout_s: float = 300) -> None:
        dagster = [sys.executable, "-m", "dagster"]
        code = self._start(
            "code-server",
            [*dagster, "code-server", "start", "-m", "migration_assets.definitions"]
            + ["-h", "127.0.0.1", "-p", str(self.grpc_port), "--location-name", LOCATION],
        )
        wait_until(
            lambda: port_accepts(self.grpc_port),
            timeout_s,
            "code server",
            code,
            str(self.work / "code-server.log"),
        )
        web = self._start(
            "webserver",
            [sys.executable, "-m", "dagster_webserver", "-w", str(self.workspace)]
            + ["-h", "127.0.0.1", "-p", str(self.port)],
        )
        wait_until(
            lambda: port_accepts(self.port),
            timeout_s,
            "webserver",
            web,
            str(self.work / "webserver.log"),
        )
        self.start_daemon()

    def start_daemon(self) -> None:
        self.daemon_starts += 1
        self._start(
            "daemon", [sys.executable, "-m", "dagster._daemon", "run", "-w", str(self.workspace)]
        )

    def kill_daemon(self) -> int:
        """SIGKILL the daemon (no chance to clean up, like a lost host); returns its pid."""
        daemon = self.processes["daemon"]
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=30)
        return daemon.pid

    def run_workers(self) -> list[int]:
        """The live run worker processes: the gRPC server's multiprocessing children (not
        their own children, e.g. a step's process pool)."""

        def command(pid: int) -> bytes:
            with contextlib.suppress(OSError):
                return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            return b""

        tree = descendants(self.processes["code-server"].pid)
        servers = {pid for pid in tree if b" api grpc " in command(pid)}
        return [pid for pid in tree if _parent(pid) in servers and b"spawn_main" in command(pid)]

    def worker_of(self, run_id: str) -> int | None:
        """The worker of run `run_id` while one of its steps runs (the step's compute log
        capture, a child of the worker, names the run in its command line)."""
        for worker in self.run_workers():
            for child in descendants(worker):
                with contextlib.suppress(OSError):
                    if run_id.encode() in Path(f"/proc/{child}/cmdline").read_bytes():
                        return worker
        return None

    def kill_worker(self, pid: int) -> list[int]:
        """SIGKILL a run worker and what it started (a dead container takes all of it)."""
        tree = [pid, *descendants(pid)]
        for each in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(each, signal.SIGKILL)
        return tree

    def stop(self) -> None:
        """SIGTERM each process group (daemon first), then SIGKILL whatever is left."""
        trees = {name: descendants(p.pid) for name, p in self.processes.items()}
        for name in ("daemon", "webserver", "code-server"):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        time.sleep(0.5)
        for pid in (pid for tree in trees.values() for pid in tree):
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
