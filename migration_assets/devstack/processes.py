"""Small helpers for the local stack's child processes: free ports, readiness, shutdown."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping


@contextlib.contextmanager
def exported(variables: Mapping[str, str], also_restore: Iterable[str] = ()) -> Iterator[None]:
    """`variables` in this process's environment for the block; afterwards those (and the
    names in `also_restore`, which the block may set) are as they were before."""
    saved = {name: os.environ.get(name) for name in (*variables, *also_restore)}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    ready: Callable[[], bool],
    timeout_s: float,
    what: str,
    process: subprocess.Popen | None = None,
    log_path: str | None = None,
) -> None:
    """Poll `ready` until it is true; fail with the child's log tail if it dies or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}{_tail(log_path)}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} was not ready after {timeout_s:.0f} s{_tail(log_path)}")


def port_accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_pid(pid: int, timeout_s: float = 20.0) -> None:
    """SIGTERM the process group of `pid`, then SIGKILL whatever is left after the timeout."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                finished, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                finished = 0 if pid_alive(pid) else pid
            if finished == pid or not pid_alive(pid):
                return
            time.sleep(0.1)


def _tail(log_path: str | None, lines: int = 15) -> str:
    if not log_path or not os.path.exists(log_path):
        return ""
    with open(log_path, errors="replace") as handle:
        tail = handle.readlines()[-lines:]
    return "\n--- last lines of " + log_path + " ---\n" + "".join(tail)
