"""`ddbsync backfill`: load a DynamoDB export into PostgreSQL, here or through the stack's backfill function.

The export is named by its S3 folder, by its ARN, or requested here (`--start`) and waited for. A
progress bar shows on a terminal; elsewhere each file is one log line.
"""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from datetime import datetime, timezone
from typing import Any

from ddbsync.cli.output import CommandError, file_progress, local_stack_state, operator_replicator

EXPORT_BUCKET_ENV = "DDBSYNC_EXPORT_BUCKET"  # `pulumi stack output exportBucket`
BACKFILL_QUEUE_ENV = "DDBSYNC_BACKFILL_QUEUE"  # `pulumi stack output backfillQueueUrl`


def export_bucket(bucket: str | None) -> str:
    """The bucket given, else $DDBSYNC_EXPORT_BUCKET, else the running local stack's."""
    state = local_stack_state() or {}
    found = bucket or os.environ.get(EXPORT_BUCKET_ENV) or state.get("export_bucket")
    if not found:
        raise CommandError(f"name the export's bucket: --bucket, or ${EXPORT_BUCKET_ENV} (stack output exportBucket)")
    return found


def _file_line(result: Any) -> str:
    if result.skipped:
        return f"{result.key}: already loaded, skipped"
    counts = result.counts
    return (
        f"{result.key}: {result.items} items, {counts.upserted} written, {counts.deleted} deleted, "
        f"{result.rejected} rejected"
    )


def backfill_command(args: Namespace) -> int:
    """Find (or start) the export, check it is the table's, then load it or hand it to the backfill function."""
    from ddbsync.exports.manifest import ExportError
    from ddbsync.exports.s3 import S3Exports, parse_s3_url

    exports = S3Exports()
    try:
        if args.export:
            bucket, folder = parse_s3_url(args.export)
        else:
            arn = args.export_arn
            if args.start:
                prefix = args.prefix or f"{args.table}/manual/{datetime.now(timezone.utc):%Y/%m/%d}"
                arn = exports.start(args.table, export_bucket(args.bucket), prefix)
                print(f"export {arn} requested; waiting for it", file=sys.stderr)
            bucket, folder = exports.wait(arn) if args.start else exports.folder_of(arn)
        summary = exports.summary(bucket, folder)
        if summary.table_name != args.table:
            raise CommandError(f"s3://{bucket}/{folder} is an export of {summary.table_name}, not {args.table}")
        data_files = exports.data_files(summary)
        if args.on_aws:
            return _hand_to_aws(args.queue, summary, data_files, args.force)
        return _load_here(exports, summary, data_files, args.force, args.workers)
    except ExportError as error:
        raise CommandError(str(error)) from None


def _load_here(exports: Any, summary: Any, data_files: list, force: bool, workers: int) -> int:
    import psycopg2

    from ddbsync.core.errors import describe
    from ddbsync.exports.loading import LoaderFailed, load_export
    from ddbsync.exports.s3 import S3Exports

    replicator = operator_replicator()
    bar, on_items, on_file = file_progress(summary.item_count, _file_line, "already loaded")
    try:
        report = load_export(
            replicator,
            exports,
            summary,
            data_files,
            force,
            on_items=on_items,
            on_file=on_file,
            workers=workers,
            fresh=lambda: (operator_replicator(), S3Exports()),
        )
    except LoaderFailed as error:
        print(f"ddbsync backfill: stopped at {error}; re-run to resume (loaded files are skipped)", file=sys.stderr)
        return 1
    except psycopg2.Error as error:
        print(f"ddbsync backfill: database error: {describe(error)}; re-run to resume", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
        replicator.close()
    rate = report.items / report.seconds if report.seconds else 0.0
    print(
        f"{summary.export_arn}: {report.files} files loaded ({report.skipped} already in), {report.items} items "
        f"({rate:,.0f}/s): {report.upserted} rows written, {report.deleted} deleted, {report.rejected} rejected, "
        f"{report.ignored} ignored"
    )
    for refusal in report.refused:
        print(f"ddbsync backfill: refused {refusal}; nothing of that file was loaded", file=sys.stderr)
    if report.refused:
        print(
            "ddbsync backfill: the export is not finished (its deletes wait for every file): replace the refused "
            "files or take a new export, then run again; loaded files are skipped",
            file=sys.stderr,
        )
    return 0 if report.finished else 1


def _hand_to_aws(queue: str | None, summary: Any, data_files: list, force: bool) -> int:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from ddbsync.cli.redrive import queue_url
    from ddbsync.exports.loading import queue_messages

    queue = queue or os.environ.get(BACKFILL_QUEUE_ENV)
    if not queue:
        raise CommandError(f"name the backfill queue: --queue, or ${BACKFILL_QUEUE_ENV} (output backfillQueueUrl)")
    sqs = boto3.client("sqs")
    try:
        url = queue_url(sqs, queue)
        messages = queue_messages(summary, data_files, force)
        for start in range(0, len(messages), 10):
            entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(messages[start : start + 10])]
            failed = sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed", [])
            if failed:
                raise CommandError(f"queue {queue}: {failed[0].get('Message', failed[0].get('Code'))}")
    except (BotoCoreError, ClientError) as error:
        raise CommandError(f"queue {queue}: {error}") from None
    print(f"{summary.export_arn}: {len(messages)} data files handed to the backfill function ({queue})")
    return 0
