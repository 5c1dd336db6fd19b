"""`ddbsync restore`: write DynamoDB exports back into DynamoDB, into an existing table or a new one.

`--table` writes a full export, then later incremental ones in the order given, with BatchWriteItem
(resumable by data file through a ledger); `--new-table` has DynamoDB's ImportTable create the table
from a full export. A progress bar shows on a terminal; elsewhere each file is one log line.
"""

from __future__ import annotations

import argparse
import sys
from argparse import Namespace
from dataclasses import replace
from pathlib import Path
from typing import Any

from ddbsync.cli.output import STATE_DIR, CommandError, file_progress, positive_int

KEY_TYPES = ("S", "N", "B")
WORKERS = 4


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected items per second above 0, got {text!r}")
    return value


def add_restore_parser(commands: Any) -> argparse.ArgumentParser:
    """Add `restore` and its flags to the `ddbsync` subcommands."""
    restore = commands.add_parser(
        "restore",
        help="write DynamoDB exports into a table (BatchWriteItem) or a new table (ImportTable)",
        description="Write the items of finished DynamoDB exports (DYNAMODB_JSON) into DynamoDB. With --table, a "
        "full export's items are put, then each incremental export's changes (puts, and deletes of the items it "
        "saw deleted) in the order given; items the table holds and the exports lack are left alone. A ledger "
        "records each data file once all its items are written: a re-run skips those files, and writes a file it "
        "was interrupted in again from its first item (the same values again: harmless, but it costs capacity).",
    )
    restore.add_argument(
        "--export",
        action="append",
        required=True,
        metavar="S3_URL",
        help="a finished export: s3://BUCKET/PREFIX/AWSDynamoDB/ID/ (or its ARN); repeat for a full export "
        "followed by incremental ones, applied in the order given",
    )
    target = restore.add_mutually_exclusive_group(required=True)
    target.add_argument("--table", help="an existing table: write every item with BatchWriteItem")
    target.add_argument("--new-table", help="create this table with ImportTable from one full export")
    restore.add_argument("--workers", type=positive_int, help=f"with --table: parallel writers (default {WORKERS})")
    restore.add_argument(
        "--max-rate", type=_rate, metavar="N", help="with --table: at most N items per second (default: no limit)"
    )
    restore.add_argument(
        "--ledger",
        type=Path,
        metavar="PATH",
        help="with --table: the file recording restored data files (default .ddbsync/restore-<export id>-<table>.json)",
    )
    restore.add_argument(
        "--key",
        metavar="pk:S[,sk:N]",
        help="with --new-table: the key schema (default: the mapping's for the exported table)",
    )
    restore.add_argument("--kms-key", help="with --new-table: encrypt the new table with this KMS key")
    restore.add_argument(
        "--no-verify",
        action="store_true",
        help="with --new-table: skip reading every data file to check its MD5 and line count first",
    )
    return restore


def parse_key(text: str) -> tuple[Any, ...]:
    """`pk:S` or `pk:S,sk:N` as key attributes."""
    from schema.model import KeyAttribute

    keys = []
    for part in text.split(","):
        name, _, kind = part.strip().rpartition(":")
        if not name or kind not in KEY_TYPES:
            raise CommandError(f"--key {text!r}: give NAME:TYPE (TYPE S, N or B), a sort key after a comma")
        keys.append(KeyAttribute(name, kind))
    if len(keys) > 2:
        raise CommandError(f"--key {text!r}: a partition key and at most one sort key")
    return tuple(keys)


def restore_command(args: Namespace) -> int:
    """Read the exports' manifests, check they fit together, then write them or import them."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    from ddbsync.exports.manifest import ExportError, FileRefused
    from ddbsync.exports.s3 import S3Exports, parse_s3_url

    only_table = {"--workers": args.workers, "--max-rate": args.max_rate, "--ledger": args.ledger}
    only_new_table = {"--key": args.key, "--kms-key": args.kms_key, "--no-verify": args.no_verify}
    for flag, used in (only_table if args.new_table else only_new_table).items():
        if used:
            raise CommandError(f"{flag} goes with {'--table' if args.new_table else '--new-table'}")
    try:
        config = Config(max_pool_connections=max(10, (args.workers or WORKERS) + 2))
        dynamodb = boto3.client("dynamodb", config=config)
        exports = S3Exports(dynamodb=dynamodb)
        summaries = []
        for export in args.export:
            bucket, folder = exports.folder_of(export) if export.startswith("arn:") else parse_s3_url(export)
            summaries.append(exports.summary(bucket, folder))
        plan = [(summary, exports.data_files(summary)) for summary in summaries]
        if args.new_table:
            return _import(args, dynamodb, exports, plan)
        return _write(args, dynamodb, exports, plan)
    except FileRefused as error:
        print(f"ddbsync restore: refused {error}", file=sys.stderr)
        done = "nothing was imported" if args.new_table else "nothing of that file or after it was written"
        again = "" if args.new_table else " (restored files are skipped)"
        print(f"ddbsync restore: {done}; replace the file or take a new export, then run again{again}", file=sys.stderr)
        return 1
    except ExportError as error:
        raise CommandError(str(error)) from None
    except BotoCoreError as error:  # no region, no credentials, no endpoint: the AWS setup to fix
        raise CommandError(f"{error} (check AWS credentials, region and AWS_ENDPOINT_URL)") from None
    except KeyboardInterrupt:
        print("ddbsync restore: interrupted; run again to resume (restored files are skipped)", file=sys.stderr)
        return 130


def _file_line(result: Any) -> str:
    if result.skipped:
        return f"{result.key}: already restored (in the ledger), skipped"
    return f"{result.key}: {result.items} items, {result.puts} put, {result.deletes} deleted"


def _write(args: Namespace, dynamodb: Any, exports: Any, plan: list) -> int:
    from ddbsync.exports.restore import KeySchema, Ledger, check_order, export_id, restore

    check_order([summary for summary, _ in plan])  # what is wrong with the exports or the table comes first
    KeySchema.of_table(dynamodb, args.table)
    ledger_path = args.ledger or STATE_DIR / f"restore-{export_id(plan[0][0])}-{args.table}.json"
    ledger = Ledger(ledger_path, args.table, _identity(dynamodb, args.table))
    if ledger.restarted:
        print(
            f"ddbsync restore: {ledger_path} was of an earlier table named {args.table}; starting afresh",
            file=sys.stderr,
        )
    ledger.save()
    total = sum(f.item_count for summary, files in plan for f in files if not ledger.done(summary, f))
    bar, on_items, on_file = file_progress(total, _file_line, "already restored")
    try:
        report = restore(
            dynamodb,
            exports,
            args.table,
            plan,
            ledger,
            args.workers or WORKERS,
            args.max_rate,
            on_items=on_items,
            on_file=on_file,
        )
    finally:
        if bar is not None:
            bar.close()
    rate = report.items / report.seconds if report.seconds else 0.0
    print(
        f"{args.table}: {report.files} data files restored ({report.skipped} already in the ledger), {report.items} "
        f"items ({rate:,.0f}/s): {report.puts} put, {report.deletes} deleted; {report.requests} requests, "
        f"{report.throttled} throttled and {report.unprocessed} unprocessed items sent again; ledger {ledger_path}"
    )
    return 0


def _import(args: Namespace, dynamodb: Any, exports: Any, plan: list) -> int:
    from ddbsync.exports.restore import import_request, refuse_existing, start_import, wait_for_import
    from schema.dynamodb import TableDefinition, table_definition
    from schema.model import load_mappings

    if len(plan) > 1:
        raise CommandError(
            "ImportTable takes one full export: run --new-table with it, then --table with the incrementals"
        )
    summary, data_files = plan[0]
    if args.key:
        definition = TableDefinition(args.new_table, parse_key(args.key))
    else:
        mapping = load_mappings().for_dynamodb_table(summary.table_name)
        if mapping is None:
            raise CommandError(f"no mapping for table {summary.table_name}: give the key schema, --key pk:S[,sk:N]")
        definition = replace(table_definition(mapping), name=args.new_table)
    request = import_request(summary, data_files, definition, args.kms_key)
    refuse_existing(dynamodb, args.new_table)
    if not args.no_verify:
        _verify(exports, summary, data_files)
    arn = start_import(dynamodb, request)
    print(f"import {arn} started; waiting for it", file=sys.stderr, flush=True)
    description = wait_for_import(dynamodb, arn)
    status, imported = description["ImportStatus"], description.get("ImportedItemCount", 0)
    errors = description.get("ErrorCount", 0)
    line = f"{args.new_table}: ImportTable {status}, {imported} of the export's {summary.item_count} items imported"
    if status != "COMPLETED" or errors or imported != summary.item_count:
        reason = description.get("FailureMessage") or description.get("FailureCode") or "no reason given"
        print(f"ddbsync restore: {line}, {errors} errors ({reason}); import {arn}", file=sys.stderr)
        return 1
    print(
        f"{line}. The new table has no stream and point-in-time recovery off: turn them on "
        "(update-table, update-continuous-backups) if it is to be replicated or exported."
    )
    return 0


def _verify(exports: Any, summary: Any, data_files: list) -> None:
    """Read every data file through the verified reader (`FileRefused` names a bad one) before importing."""
    bar, on_items, _ = file_progress(summary.item_count, _file_line, "already restored")
    try:
        for data_file in data_files:
            count = sum(1 for _ in exports.lines(summary, data_file))
            if on_items:
                on_items(count)
            else:
                print(f"{data_file.key}: {count} items verified", file=sys.stderr, flush=True)
    finally:
        if bar is not None:
            bar.close()


def _identity(dynamodb: Any, table: str) -> str | None:
    """The table's ARN and creation time: a table dropped and made again under its name is another table."""
    from botocore.exceptions import ClientError

    try:
        description = dynamodb.describe_table(TableName=table)["Table"]
    except ClientError:
        return None  # the restore itself says what is wrong with the table
    return f"{description.get('TableArn')}@{description.get('CreationDateTime')}"
