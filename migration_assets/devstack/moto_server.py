"""Start a real moto server (S3, DynamoDB over HTTP) on a free loopback port."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .processes import free_loopback_port, wait_until


@dataclass(frozen=True)
class MotoServer:
    pid: int
    port: int

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _moto_command() -> list[str]:
    beside_python = Path(sys.executable).with_name("moto_server")
    if beside_python.exists():
        return [str(beside_python)]
    found = shutil.which("moto_server")
    if found:
        return [found]
    if importlib.util.find_spec("moto") is None:
        raise RuntimeError(
            "the local stack needs moto's server, which the development install brings: "
            "pip install -c requirements.lock -e '.[dev]' (make demo and make dev do this)"
        )
    return [sys.executable, "-m", "moto.server"]


def start_moto(log_dir: Path) -> MotoServer:
    """Launch moto in its own session (so a stop kills only it) and wait for HTTP."""
    port = free_loopback_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "moto.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [*_moto_command(), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "MOTO_S3_DEFAULT_MAX_KEYS": "1000"},
        )
    url = f"http://127.0.0.1:{port}/moto-api/"

    def ready() -> bool:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200

    wait_until(ready, 60, "moto server", process, str(log_path))
    return MotoServer(pid=process.pid, port=port)
