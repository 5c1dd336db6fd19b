"""DynamoDB Streams -> PostgreSQL: the replicator Lambda.

Environment:
- `DATABASE_URL` (local use); or `DDBSYNC_DB_IAM_USER` with `DDBSYNC_DB_HOST`/`_PORT`/`_NAME`: connect
  as that database user with an IAM authentication token (what the Pulumi program sets up); or
  `DDBSYNC_DB_SECRET_ARN` naming a Secrets Manager secret with the credentials (fetched once and
  cached), `DDBSYNC_DB_HOST`/`_PORT`/`_NAME` filling in what it lacks. TLS is required but for
  `DATABASE_URL`.
- `DDBSYNC_STREAM_VIEW_TYPE` (set by the Pulumi program): KEYS_ONLY or OLD_IMAGE fails at startup.
- `DDBSYNC_MAPPINGS`: a folder of mappings other than the packaged ones.
One function can serve several tables; each record's `eventSourceARN` names its mapping. While the
database is away, a batch waits (retried with backoff) until shortly before the invocation's end,
then goes back to Lambda for another invocation: an outage delays the stream, it never skips it.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from ddbsync.core.decode import check_view_type
from handlers.runtime import invocation_deadline, replicator_from_environment
from schema.model import load_mappings

logger = Logger(service="ddbsync-stream")
metrics = Metrics(namespace="ddbsync", service="ddbsync-stream")

# Startup fails here, with the table and attribute named, if a mapping or the stream cannot work.
MAPPINGS = load_mappings()
check_view_type(os.environ.get("DDBSYNC_STREAM_VIEW_TYPE"), "DDBSYNC_STREAM_VIEW_TYPE")
replicator = replicator_from_environment(MAPPINGS)


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Apply one batch from the event source mapping; report only what waiting could not mend."""
    result = replicator.process(event.get("Records", []), invocation_deadline(context))
    metrics.add_metric(name="RecordsApplied", unit=MetricUnit.Count, value=result.applied)
    metrics.add_metric(name="RecordsRejected", unit=MetricUnit.Count, value=result.rejected)
    metrics.add_metric(name="RecordsIgnored", unit=MetricUnit.Count, value=result.ignored)
    metrics.add_metric(name="BatchLatency", unit=MetricUnit.Milliseconds, value=result.seconds * 1000)
    metrics.add_metric(name="DatabaseWaitSeconds", unit=MetricUnit.Seconds, value=replicator.outage.seconds)
    logger.info(
        "batch done",
        records=result.records,
        upserted=result.counts.upserted,
        deleted=result.counts.deleted,
        stale=result.counts.stale,
        rejected=result.rejected,
        ignored=result.ignored,
        attempts=result.attempts,
        retry_from=result.retry_from,
        error=result.error,
        seconds=round(result.seconds, 4),
    )
    return result.response()
