"""What every replicating Lambda sets up the same way: its database login and its time budget.

Each handler module builds its replicator at import (a cold start), through these functions, so a
connection is reused across warm invocations and a broken configuration fails at startup.
"""

from __future__ import annotations

import os
import time
from typing import Any

import boto3
from aws_lambda_powertools.utilities import parameters

from ddbsync.core import Replicator
from ddbsync.core.connection import connect
from schema.database import (
    DATABASE_URL_ENV,
    IAM_USER_ENV,
    resolve_database_url,
    url_with_iam_token,
)
from schema.model import Mappings

LONGEST_MARGIN_SECONDS = 10.0  # time kept back at the end of an invocation to roll back and answer


def _fetch_secret(arn: str) -> str:
    # Cached for five minutes, so a rotated password is picked up without a cold start.
    return parameters.get_secret(arn, max_age=300)


def database_url(rds: Any = None) -> str:
    """Where to connect, per connection: IAM tokens live fifteen minutes, so one is made each time."""
    if os.environ.get(IAM_USER_ENV) and not os.environ.get(DATABASE_URL_ENV):
        return url_with_iam_token(rds or boto3.client("rds"))
    return resolve_database_url(_fetch_secret)


def replicator_from_environment(mappings: Mappings) -> Replicator:
    """The replicator of this function's database login (`DATABASE_URL`, IAM user or secret)."""
    rds = boto3.client("rds") if os.environ.get(IAM_USER_ENV) else None
    return Replicator(mappings, lambda: connect(database_url(rds)))


def invocation_deadline(context: Any) -> float | None:
    """Until when (`time.monotonic()`) a batch may wait for the database in this invocation.

    A margin is kept back (a quarter of the time left, at most ten seconds) to roll back and answer
    before Lambda ends the invocation. Without a context (a direct call) there is no waiting.
    """
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    seconds = remaining() / 1000
    return time.monotonic() + seconds - min(LONGEST_MARGIN_SECONDS, seconds / 4)
