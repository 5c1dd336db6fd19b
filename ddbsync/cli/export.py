"""`ddbsync export`: start one DynamoDB export (full, or incremental) and, with --wait, see it through.

What seed 001 does with `export-table-to-point-in-time` and a `list-exports` loop in the shell, as one
command that prints where the export is, ready for `ddbsync backfill` or `ddbsync restore`.
"""

from __future__ import annotations

import json
import sys
from argparse import ArgumentTypeError, Namespace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ddbsync.cli.output import CommandError

BUCKET_OUTPUT = "exportBucket"  # the stack output naming the export bucket


def iso_time(text: str) -> datetime:
    """An ISO 8601 time (`2026-11-25T08:00:00Z`; without a zone, UTC), for argparse."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ArgumentTypeError(f"expected an ISO 8601 time such as 2026-11-25T08:00:00Z, got {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def add_export_parser(commands: Any) -> None:
    export = commands.add_parser("export", help="start a DynamoDB export to S3 (full or incremental), and wait for it")
    export.add_argument("--table", required=True, help="the DynamoDB table")
    export.add_argument(
        "--bucket", help="the bucket (default: exportBucket of --stack-outputs, or $DDBSYNC_EXPORT_BUCKET)"
    )
    export.add_argument("--prefix", help="the key prefix (default: <table>/manual/YYYY/MM/DD, UTC)")
    export.add_argument(
        "--stack-outputs", metavar="FILE", type=Path, help="`pulumi stack output --json` saved to a file"
    )
    export.add_argument("--time", type=iso_time, help="a full export as of this time (default: now)")
    export.add_argument("--incremental", action="store_true", help="an incremental export of --from .. --to")
    export.add_argument("--from", dest="start", type=iso_time, help="with --incremental: the window's start")
    export.add_argument("--to", dest="end", type=iso_time, help="with --incremental: the window's end (default: now)")
    export.add_argument("--wait", action="store_true", help="wait until it is COMPLETED or FAILED")


def _bucket(args: Namespace) -> str:
    from ddbsync.cli.backfill import export_bucket

    if args.bucket or not args.stack_outputs:
        return export_bucket(args.bucket)
    try:
        outputs = json.loads(args.stack_outputs.read_text())
    except (OSError, ValueError) as error:
        raise CommandError(f"--stack-outputs {args.stack_outputs}: {error}") from None
    if not isinstance(outputs, dict) or not outputs.get(BUCKET_OUTPUT):
        raise CommandError(
            f"--stack-outputs {args.stack_outputs} has no {BUCKET_OUTPUT}: is it `pulumi stack output --json`?"
        )
    return str(outputs[BUCKET_OUTPUT])


def export_command(args: Namespace) -> int:
    """Start the export; with --wait, poll it to its end and print its folder (or DynamoDB's reason)."""
    from ddbsync.exports.manifest import ExportError
    from ddbsync.exports.s3 import S3Exports

    if args.incremental != (args.start is not None) or (args.end is not None and not args.incremental):
        raise CommandError("--incremental takes --from (and --to, default now); --from and --to go only with it")
    if args.incremental and args.time is not None:
        raise CommandError("--time is for a full export; an incremental one takes --from and --to")
    now = datetime.now(timezone.utc)
    window = (args.start, args.end or now) if args.incremental else None
    moment = window[1] if window else args.time or now
    # Beside the schedules' `<table>/YYYY/MM/DD`, not in it: a hand-made export never moves their chain.
    prefix = args.prefix or f"{args.table}/manual/{moment.astimezone(timezone.utc):%Y/%m/%d}"
    bucket = _bucket(args)
    exports = S3Exports()
    try:
        exports.check_bucket(bucket)
        arn = exports.start(args.table, bucket, prefix, export_time=args.time, window=window)
        print(f"export {arn} started into s3://{bucket}/{prefix}/", file=sys.stderr)
        if not args.wait:
            print(arn)
            return 0

        def waiting(seconds: float) -> None:
            print(f"  IN_PROGRESS, {seconds / 60:.1f} min", file=sys.stderr, flush=True)

        bucket, folder = exports.wait(arn, on_poll=waiting)
    except ExportError as error:
        if " FAILED: " in str(error):
            print(f"ddbsync export: {error}", file=sys.stderr)
            return 1
        raise CommandError(str(error)) from None
    url = f"s3://{bucket}/{folder}"
    print(url)
    print(f"COMPLETED. Next: ddbsync backfill --table {args.table} --export {url}", file=sys.stderr)
    print(f"       or: ddbsync restore --table TABLE --export {url}", file=sys.stderr)
    return 0
