"""`python -m migration_assets.devstack up|down|env|seed|demo|dev`: the local stack's one command.

- `up`    starts moto and (unless MIGRATION_MYSQL_URL is set) a throwaway MariaDB, seeds a few
          days, writes `.env` for `dagster dev` and the CLI; the servers keep running.
- `down`  stops what `up` started, removes the throwaway data directory and drops the Dagster
          instance's PostgreSQL database.
- `env`   prints `export` lines for a shell (`eval "$(python -m migration_assets.devstack env)"`).
- `demo`  up, seed, materialize every registered asset for the seeded days, then (with change
          capture) update and delete copied legacy rows and show them reach the new table
          through `bigint_change_capture`, summary, down.
- `dev`   up, seed, run `dagster dev` until Ctrl-C, then down.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..aws import aws_client, retry_config
from ..defs.naming import Naming
from ..migrations import load_migrations
from ..spec import MigrationSpec
from .instance import (
    InstanceDir,
    InstanceStorageError,
    create_instance,
    masked,
    postgres_server,
    remove_instance,
)
from .seed import seed
from .stack import StackState, load_state, save_state, start_stack, stop_stack, write_env_file

REPO_ROOT = Path(__file__).resolve().parents[2]
WORK_DIR = REPO_ROOT / ".devstack"
STATE_PATH = WORK_DIR / "state.json"
ENV_PATH = REPO_ROOT / ".env"
DAGSTER_HOME = REPO_ROOT / "dagster_home"


def _say(message: str) -> None:
    print(f"[devstack] {message}", flush=True)


def _instance(state: StackState) -> InstanceDir:
    """The stack's Dagster instance: its own PostgreSQL database when `up` found a server,
    else SQLite in the shipped `dagster_home/`."""
    if state.dagster_home and state.dagster_database:
        server = postgres_server("postgres")
        return InstanceDir(Path(state.dagster_home), state.dagster_database, server)
    return InstanceDir(DAGSTER_HOME)


def _environment(state: StackState) -> dict[str, str]:
    env = state.environment()
    env.update(_instance(state).environment())
    if "MIGRATION_SPEC" in os.environ:
        env["MIGRATION_SPEC"] = str(Path(os.environ["MIGRATION_SPEC"]).resolve())
    return env


def _start_instance(state: StackState) -> None:
    server = postgres_server()
    if server is None:
        _say(f"Dagster instance: SQLite in {DAGSTER_HOME} (no PostgreSQL answered)")
        return
    shutil.rmtree(WORK_DIR / "dagster_home", ignore_errors=True)  # a crashed stack's
    instance = create_instance(WORK_DIR / "dagster_home", "postgres")
    state.dagster_home, state.dagster_database = str(instance.home), instance.database
    _say(f"Dagster instance: database {instance.database} on {masked(server)}")


def cmd_up(args: argparse.Namespace) -> StackState:
    state = load_state(STATE_PATH)
    if state is not None:
        _say(f"already running (AWS at {state.aws_endpoint_url}, MySQL at {state.mysql})")
    else:
        state = start_stack(WORK_DIR)
        _say(f"moto server at {state.aws_endpoint_url}")
        origin = "MIGRATION_MYSQL_URL" if state.mysql_pid is None else "throwaway MariaDB"
        _say(f"MySQL ({origin}) at {state.mysql}")
        try:
            _start_instance(state)
        except BaseException:
            stop_stack(state)
            raise
        save_state(state, STATE_PATH)
    write_env_file(ENV_PATH, _environment(state))
    _say(f"environment written to {ENV_PATH.relative_to(REPO_ROOT)}")
    if args.days > 0:
        cmd_seed(args, state)
    return state


def cmd_seed(args: argparse.Namespace, state: StackState | None = None) -> None:
    """Seed every migration of the code location (`MIGRATION_SPEC`: a file or a folder)."""
    state = state or load_state(STATE_PATH)
    if state is None:
        sys.exit("the local stack is not running; start it with `make stack-up`")
    specs = load_migrations().specs
    os.environ.update(state.environment())
    first = dt.date.fromisoformat(args.first_day) if args.first_day else specs[0].partitions.start
    days = [first + dt.timedelta(days=i) for i in range(args.days)]
    config = retry_config(5)
    reports = {}
    for spec in specs:
        started = time.monotonic()
        report = seed(
            spec,
            s3=aws_client("s3", config=config),
            dynamodb=aws_client("dynamodb", config=config),
            mysql=state.mysql,
            days=days,
            items_per_day=args.items_per_day,
        )
        existing = (
            f", existing {spec.mysql.target_table}: {report.existing_covered} rows DynamoDB "
            f"covers, {report.existing_uncovered} it does not"
            if report.existing_covered
            else ""
        )
        _say(
            f"seeded {spec.name}: {len(days)} day(s) {days[0]}..{days[-1]} with "
            f"{args.items_per_day} items each in {time.monotonic() - started:.1f} s: full export "
            f"{report.full_export_id} ({report.full_export_items} items), "
            f"{len(report.incremental_export_ids)} incremental exports "
            f"({report.incremental_changes} changes), {report.legacy_rows} legacy rows{existing}"
        )
        reports[spec.name] = report.__dict__
    (WORK_DIR / "seed.json").write_text(
        json.dumps({"days": [d.isoformat() for d in days], "migrations": reports}, indent=2)
    )


def cmd_down(_: argparse.Namespace) -> None:
    state = load_state(STATE_PATH)
    if state is None:
        _say("nothing running")
    else:
        stop_stack(state)
        if state.dagster_database:
            try:
                remove_instance(_instance(state))
            except InstanceStorageError as exc:  # the server went away: nothing to drop there
                _say(f"Dagster instance database {state.dagster_database} not dropped: {exc}")
        _say("stopped")
    STATE_PATH.unlink(missing_ok=True)
    # a stale .env would point dagster (which loads it from the working directory, over
    # the shell's variables) at servers that no longer exist
    ENV_PATH.unlink(missing_ok=True)


def cmd_env(_: argparse.Namespace) -> None:
    state = load_state(STATE_PATH)
    if state is None:
        sys.exit("the local stack is not running; start it with `make stack-up`")
    for key, value in sorted(_environment(state).items()):
        print(f"export {key}={shlex.quote(value)}")


def registered_asset_keys() -> list[str]:
    from ..definitions import defs  # imported late: loading Dagster takes seconds

    return [  # the partitioned ones: migration_proof is the report over every day
        key.to_user_string()
        for key in defs.resolve_all_asset_keys()
        if defs.resolve_assets_def(key).partitions_def is not None
    ]


def cmd_demo(args: argparse.Namespace) -> None:
    failures = 0
    try:
        state = cmd_up(args)
        env = {**os.environ, **_environment(state)}
        keys = registered_asset_keys()
        seeded = json.loads((WORK_DIR / "seed.json").read_text())
        days = seeded["days"]
        _say(f"materializing {', '.join(keys) or '(no assets registered)'} for {', '.join(days)}")
        for day in days if keys else []:
            command = [
                sys.executable,
                "-m",
                "dagster",
                "asset",
                "materialize",
                "-m",
                "migration_assets.definitions",
                "--select",
                ",".join(keys),
                "--partition",
                day,
            ]
            started = time.monotonic()
            result = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
            status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
            _say(f"  {day}: {status} in {time.monotonic() - started:.1f} s")
            if result.returncode != 0:
                failures += 1
                print(result.stdout[-4000:], result.stderr[-4000:], sep="\n", file=sys.stderr)
        if keys and not failures:
            failures += _live_changes_demo(state, env)
        from .summary import print_summary

        failures += print_summary(days, env, seeded["migrations"])
    finally:
        if not args.keep:
            cmd_down(args)
    if failures:
        sys.exit(
            f"{failures} failure(s): failed partitions, changes not captured, or an "
            "update_only target not as it must be (see above)"
        )


def _live_changes_demo(state: StackState, env: dict[str, str]) -> int:
    """The application updates and deletes rows whose day was copied; one run of each
    migration's `bigint_change_capture` job carries them to the new table. Returns the number
    of migrations where a change is missing."""
    migrations = load_migrations(env.get("MIGRATION_SPEC"))
    failures = 0
    for spec in migrations.specs:
        if spec.legacy_copy is None or spec.legacy_copy.change_capture != "binlog":
            continue
        naming = Naming(spec.name if migrations.several else None)
        job = naming.name("bigint_change_capture")
        failures += _live_changes_of(state, env, spec, job)
    return failures


def _live_changes_of(state: StackState, env: dict[str, str], spec: MigrationSpec, job: str) -> int:
    from .live_changes import change_copied_rows, changes_reached

    assert spec.legacy_copy is not None
    changes = change_copied_rows(state.mysql, spec)
    _say(
        f"the application changes {spec.legacy_copy.source_table} after the copy: "
        f"{len(changes.updated)} updates, {len(changes.moved)} rows moved to the next day, "
        f"{len(changes.deleted)} deletes; running {job}"
    )
    command = [sys.executable, "-m", "dagster", "job", "execute", "-m"]
    command += ["migration_assets.definitions", "-j", job]
    result = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    reached = changes_reached(state.mysql, spec, changes)
    _say(f"  reached {spec.mysql.target_table} from the binlog: {reached}")
    complete = all(
        value.split("/")[0] == value.split("/")[1]
        for name, value in reached.items()
        if name != "checked_at"
    )
    if result.returncode != 0 or not complete:
        print(result.stdout[-4000:], result.stderr[-4000:], sep="\n", file=sys.stderr)
        return 1
    return 0


def cmd_dev(args: argparse.Namespace) -> None:
    try:
        _run_dagster_dev(args, cmd_up(args))
    finally:
        if not args.keep:
            cmd_down(args)


def _run_dagster_dev(args: argparse.Namespace, state: StackState) -> None:
    env = {**os.environ, **_environment(state)}
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(REPO_ROOT / "workspace.yaml"),
        "-h",
        "127.0.0.1",
        "-p",
        str(args.port),
    ]
    _say(f"starting the Dagster UI at http://127.0.0.1:{args.port} (Ctrl-C stops it and the stack)")
    process = subprocess.Popen(
        command,
        env=env,
        cwd=REPO_ROOT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m migration_assets.devstack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "seed", "demo", "dev"):
        sub = commands.add_parser(name)
        sub.add_argument("--days", type=int, default=3, help="days to seed (0: none)")
        sub.add_argument("--items-per-day", type=int, default=2_000)
        sub.add_argument("--first-day", help="first seeded day (default: the spec's start)")
        sub.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
        sub.add_argument("--port", type=int, default=3000)
    commands.add_parser("down")
    commands.add_parser("env")
    args = parser.parse_args(argv)
    {
        "up": cmd_up,
        "seed": cmd_seed,
        "down": cmd_down,
        "env": cmd_env,
        "demo": cmd_demo,
        "dev": cmd_dev,
    }[args.command](args)


if __name__ == "__main__":
    main()
