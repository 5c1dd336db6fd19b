"""The backfill Lambda: one data file of an export per message, fanned out through the backfill queue.

`ddbsync backfill ... --on-aws` sends one message per data file (the export's summary, the file's
manifest entry, the number of files). Each invocation loads its file in one transaction through the
core (`Backfill.load_file`), then tries to finish the export: whichever loader finds every file in
the ledger deletes the rows a full export lacks (idempotent, version-guarded). The queue's event
source mapping caps concurrency (`backfillConcurrency`) to what the database's connections allow.

Failure contract (SQS with `ReportBatchItemFailures`): a file refused by its checks, or a database
that stayed away until the deadline, is reported, so SQS delivers it again and then moves it to the
dead-letter queue; the ledger makes every retry safe. Environment: the replicator's database login.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from ddbsync.core.backfill import Backfill
from ddbsync.exports.loading import read_message
from ddbsync.exports.s3 import S3Exports
from handlers.runtime import invocation_deadline, replicator_from_environment
from schema.model import load_mappings

logger = Logger(service="ddbsync-backfill")
metrics = Metrics(namespace="ddbsync", service="ddbsync-backfill")

replicator = replicator_from_environment(load_mappings())
exports = S3Exports()


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Load each message's data file; report the ones that did not load."""
    failures = []
    for message in event.get("Records", []):
        try:
            load_one(message["body"], invocation_deadline(context))
        except Exception:
            logger.exception("data file not loaded; SQS delivers it again", message_id=message.get("messageId"))
            failures.append({"itemIdentifier": message["messageId"]})
    return {"batchItemFailures": failures}


def load_one(body: str, deadline: float | None) -> None:
    summary, data_files, data_file, force = read_message(body)
    backfill = Backfill(replicator, summary, data_files, force=force)
    backfill.begin()
    result = backfill.load_file(data_file, exports.opener(summary, data_file), deadline)
    deleted = backfill.finish(deadline)
    metrics.add_metric(name="BackfillItems", unit=MetricUnit.Count, value=result.items)
    metrics.add_metric(name="BackfillRejected", unit=MetricUnit.Count, value=result.rejected)
    logger.info(
        "data file loaded" if not result.skipped else "data file already loaded",
        export=summary.export_arn,
        data_file=data_file.key,
        items=result.items,
        upserted=result.counts.upserted,
        rejected=result.rejected,
        attempts=result.attempts,
        export_finished=deleted is not None,
        deleted=deleted,
    )
