"""DynamoDB Streams -> PostgreSQL: the replicator Lambda.

Environment:
- `DATABASE_URL` (local use); or `DDBSYNC_DB_IAM_USER` with `DDBSYNC_DB_HOST`/`_PORT`/`_NAME`: connect
  as that database user with an IAM authentication token (what the Pulumi program sets up); or
  `DDBSYNC_DB_SECRET_ARN` naming a Secrets Manager secret with the credentials (fetched once and
  cached), `DDBSYNC_DB_HOST`/`_PORT`/`_NAME` filling in what it lacks. TLS is required but for
  `DATABASE_URL`.
- `DDBSYNC_STREAM_VIEW_TYPE` (set by the Pulumi program): KEYS_ONLY or OLD_IMAGE fails at startup.
- `DDBSYNC_MAPPINGS`: a folder of mappings other than the packaged ones.
One function can serve several tables; each record's `eventSourceARN` names its mapping.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters

from ddbsync.core import Replicator
from ddbsync.core.connection import connect
from ddbsync.core.decode import check_view_type
from schema.database import (
    DATABASE_URL_ENV,
    HOST_ENV,
    IAM_USER_ENV,
    PORT_ENV,
    resolve_database_url,
    url_for_iam_user,
)
from schema.model import load_mappings

logger = Logger(service="ddbsync-stream")
metrics = Metrics(namespace="ddbsync", service="ddbsync-stream")

# Startup fails here, with the table and attribute named, if a mapping or the stream cannot work.
MAPPINGS = load_mappings()
check_view_type(os.environ.get("DDBSYNC_STREAM_VIEW_TYPE"), "DDBSYNC_STREAM_VIEW_TYPE")


def _fetch_secret(arn: str) -> str:
    # Cached for five minutes, so a rotated password is picked up without a cold start.
    return parameters.get_secret(arn, max_age=300)


def database_url() -> str:
    """Where to connect, per connection: IAM tokens live fifteen minutes, so one is made each time."""
    if os.environ.get(IAM_USER_ENV) and not os.environ.get(DATABASE_URL_ENV):
        token = _rds.generate_db_auth_token(
            DBHostname=os.environ[HOST_ENV],
            Port=int(os.environ.get(PORT_ENV, "5432")),
            DBUsername=os.environ[IAM_USER_ENV],
        )
        return url_for_iam_user(token)
    return resolve_database_url(_fetch_secret)


_rds = boto3.client("rds") if os.environ.get(IAM_USER_ENV) else None
replicator = Replicator(MAPPINGS, lambda: connect(database_url()))


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Apply one batch from the event source mapping; report only what a retry can fix."""
    result = replicator.process(event.get("Records", []))
    metrics.add_metric(name="RecordsApplied", unit=MetricUnit.Count, value=result.applied)
    metrics.add_metric(name="RecordsRejected", unit=MetricUnit.Count, value=result.rejected)
    metrics.add_metric(name="BatchLatency", unit=MetricUnit.Milliseconds, value=result.seconds * 1000)
    log = logger.warning if result.retry_from else logger.info
    log(
        "batch done",
        records=result.records,
        upserted=result.counts.upserted,
        deleted=result.counts.deleted,
        stale=result.counts.stale,
        rejected=result.rejected,
        retry_from=result.retry_from,
        error=result.error,
        seconds=round(result.seconds, 4),
    )
    return result.response()
