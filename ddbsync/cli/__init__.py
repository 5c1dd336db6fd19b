"""The `ddbsync` command: the local stack, the demo, exports, backfills and restores, the rejects and the re-drive.

One module per verb group; this one parses the arguments and prints a problem the user can fix as
one line (exit status 2), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from ddbsync.cli.export import add_export_parser
from ddbsync.cli.output import CommandError, positive_int
from ddbsync.cli.restore import add_restore_parser


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="ddbsync", description="Keep Aurora PostgreSQL in step with DynamoDB.")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="run the local stack, replicate the seed walk-through and more, stop")
    demo.add_argument("--changes", type=positive_int, default=3000, help="generated changes after the walk-through")
    demo.add_argument("--rate", type=positive_int, default=1000, help="changes per second the writer aims for")
    rejects = commands.add_parser("rejects", help="records that could not be applied ($DATABASE_URL)")
    what = rejects.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = what.add_parser("list", help="count the pending rejects per table and reason")
    replay = what.add_parser("replay", help="apply the pending rejects the current mappings accept")
    replay.add_argument("--limit", type=positive_int, default=1000, help="at most this many (default 1000)")
    for command in (listing, replay):
        command.add_argument("--table", help="only this DynamoDB table")
    redrive = commands.add_parser(
        "redrive", help="re-read the ranges in the on-failure queue from the stream and apply them ($DATABASE_URL)"
    )
    redrive.add_argument("--queue", help="on-failure queue URL or name (default: the running local stack's)")
    redrive.add_argument("--batch-size", type=positive_int, default=100, help="records per apply (default 100)")
    backfill = commands.add_parser(
        "backfill", help="load a DynamoDB export (full or incremental) into PostgreSQL ($DATABASE_URL)"
    )
    backfill.add_argument("--table", required=True, help="the DynamoDB table, as the mappings name it")
    source = backfill.add_mutually_exclusive_group(required=True)
    source.add_argument("--export", metavar="S3_URL", help="a finished export: s3://BUCKET/PREFIX/AWSDynamoDB/ID/")
    source.add_argument("--export-arn", metavar="ARN", help="a finished export, found with DescribeExport")
    source.add_argument("--start", action="store_true", help="request a full export now, wait for it, load it")
    backfill.add_argument("--bucket", help="with --start: the bucket (default $DDBSYNC_EXPORT_BUCKET)")
    backfill.add_argument("--prefix", help="with --start: the key prefix in the bucket")
    backfill.add_argument(
        "--force", action="store_true", help="load an export older than the tombstone retention all the same"
    )
    backfill.add_argument(
        "--on-aws", action="store_true", help="hand the data files to the stack's backfill function instead"
    )
    backfill.add_argument("--queue", help="with --on-aws: the queue (default $DDBSYNC_BACKFILL_QUEUE)")
    backfill.add_argument(
        "--workers",
        type=positive_int,
        default=min(4, os.cpu_count() or 1),
        help="data files loaded at once, a process and a database connection each (default: cores, at most 4)",
    )
    add_export_parser(commands)
    add_restore_parser(commands)
    local = commands.add_parser("local", help="the local stack: moto server + PostgreSQL + stream runners")
    actions = local.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start the stack and replicate until stopped (Ctrl-C or `local down`)")
    up.add_argument("--batch-size", type=positive_int, default=100, help="records per handler call (default 100)")
    down = actions.add_parser("down", help="stop a stack started by `local up`")
    for command in (up, down):
        command.add_argument("--keep", action="store_true", help="keep the PostgreSQL data directory")
    return root


def _run(args: argparse.Namespace) -> int:
    if args.command == "rejects":
        from ddbsync.cli.rejects import rejects_command

        return rejects_command(args.action, args.table, getattr(args, "limit", 1000))
    if args.command == "redrive":
        from ddbsync.cli.redrive import redrive_command

        return redrive_command(args.queue, args.batch_size)
    if args.command == "backfill":
        from ddbsync.cli.backfill import backfill_command

        return backfill_command(args)
    if args.command == "restore":
        from ddbsync.cli.restore import restore_command

        return restore_command(args)
    if args.command == "export":
        from ddbsync.cli.export import export_command

        return export_command(args)
    if args.command == "demo":
        from ddbsync.local.demo import run_demo

        return run_demo(changes=args.changes, rate=args.rate)
    from ddbsync.cli.local import local_down, local_up

    return local_up(args.batch_size, args.keep) if args.action == "up" else local_down(args.keep)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _run(args)
    except CommandError as error:
        print(f"ddbsync {args.command}: {error}", file=sys.stderr)
        return 2
