"""The `ddbsync` command: the local stack, the demo, and the rejects."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

STATE_DIR = Path(os.environ.get("DDBSYNC_STATE_DIR", ".ddbsync"))


def _positive(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="ddbsync", description="Keep Aurora PostgreSQL in step with DynamoDB.")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="run the local stack, replicate the seed walk-through and more, stop")
    demo.add_argument("--changes", type=_positive, default=3000, help="generated changes after the walk-through")
    demo.add_argument("--rate", type=_positive, default=1000, help="changes per second the writer aims for")
    rejects = commands.add_parser("rejects", help="records that could not be applied ($DATABASE_URL)")
    what = rejects.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = what.add_parser("list", help="count the pending rejects per table and reason")
    replay = what.add_parser("replay", help="apply the pending rejects the current mappings accept")
    replay.add_argument("--limit", type=_positive, default=1000, help="at most this many (default 1000)")
    for command in (listing, replay):
        command.add_argument("--table", help="only this DynamoDB table")
    local = commands.add_parser("local", help="the local stack: moto server + PostgreSQL + stream runners")
    actions = local.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start the stack and replicate until stopped (Ctrl-C or `local down`)")
    up.add_argument("--batch-size", type=_positive, default=100, help="records per handler call (default 100)")
    down = actions.add_parser("down", help="stop a stack started by `local up`")
    for command in (up, down):
        command.add_argument("--keep", action="store_true", help="keep the PostgreSQL data directory")
    return root


def local_up(batch_size: int, keep: bool) -> int:
    """Start the stack, print its endpoints, replicate until SIGINT/SIGTERM, then stop it all."""
    from ddbsync.local.stack import LocalStack, replicate_until
    from ddbsync.local.stream_runner import RunnerSettings

    state = STATE_DIR / "local.json"
    if state.exists():
        print(f"a local stack is already running (see {state}); run `ddbsync local down` first", file=sys.stderr)
        return 1
    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(True))
    stack = LocalStack(settings=RunnerSettings(batch_size=batch_size)).start()
    try:
        endpoints = {**stack.endpoints(), "pid": os.getpid()}
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps(endpoints, indent=2))
        print("ddbsync local stack is up.")
        print(
            f"  export AWS_ENDPOINT_URL={stack.endpoint} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
            "AWS_DEFAULT_REGION=us-east-1 AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled"
        )
        print(f"  psql {stack.database_url}")
        print(f"  tables: {', '.join(stack.stream_arns)}; stop with Ctrl-C or `ddbsync local down`", flush=True)
        replicate_until(stack.runners(), lambda: bool(stopping))
    finally:
        request = STATE_DIR / "stop.json"
        keep = keep or (request.exists() and json.loads(request.read_text()).get("keep", False))
        stack.stop(keep_data=keep)
        state.unlink(missing_ok=True)
        request.unlink(missing_ok=True)
        print("ddbsync local stack stopped" + (" (data kept)" if keep else ""), flush=True)
    return 0


def local_down(keep: bool, timeout: float = 30.0) -> int:
    """Ask the `local up` process to stop and wait until it has."""
    state = STATE_DIR / "local.json"
    if not state.exists():
        print("no local stack is running", file=sys.stderr)
        return 1
    pid = json.loads(state.read_text())["pid"]
    (STATE_DIR / "stop.json").write_text(json.dumps({"keep": keep}))
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        state.unlink(missing_ok=True)
        print("the local stack's process was already gone", file=sys.stderr)
        return 1
    deadline = time.monotonic() + timeout
    while state.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if state.exists():
        print(f"the local stack (pid {pid}) did not stop within {timeout:.0f} s", file=sys.stderr)
        return 1
    print("local stack stopped")
    return 0


def rejects_command(action: str, table: str | None, limit: int = 1000) -> int:
    """List or replay the rejects of the database named by $DATABASE_URL (or the secret)."""
    from ddbsync.core import Replicator
    from ddbsync.core.connection import connect
    from ddbsync.core.replay import replay_rejects
    from schema.database import DatabaseConfigError, resolve_database_url
    from schema.model import load_mappings

    try:
        url = resolve_database_url()
    except DatabaseConfigError as error:
        print(f"ddbsync rejects: {error}", file=sys.stderr)
        return 2
    replicator = Replicator(load_mappings(), lambda: connect(url))
    try:
        if action == "replay":
            result = replay_rejects(replicator, table, limit)
            print(
                f"replayed {result.replayed}, still rejected {result.still_rejected}"
                + (" (stopped by a database error that may pass: run again)" if result.retry else "")
            )
            return 1 if result.retry else 0
        with replicator.connection().cursor() as cursor:
            cursor.execute(
                "SELECT dynamodb_table, reason, count(*) FROM ddbsync_rejects WHERE replayed_at IS NULL "
                "AND (%(table)s::text IS NULL OR dynamodb_table = %(table)s) GROUP BY 1, 2 ORDER BY 3 DESC",
                {"table": table},
            )
            groups = cursor.fetchall()
        for dynamodb_table, reason, count in groups:
            print(f"{count:>8}  {dynamodb_table}: {reason}")
        print(f"{sum(count for _, _, count in groups)} pending")
        return 0
    finally:
        replicator.close()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "rejects":
        return rejects_command(args.action, args.table, getattr(args, "limit", 1000))
    if args.command == "demo":
        from ddbsync.local.demo import run_demo

        return run_demo(changes=args.changes, rate=args.rate)
    if args.action == "up":
        return local_up(args.batch_size, args.keep)
    return local_down(args.keep)


if __name__ == "__main__":
    sys.exit(main())
