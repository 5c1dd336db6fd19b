"""The migration runner Lambda: `alembic upgrade head` as the database owner, on each deploy.

The Pulumi program invokes it whenever the migrations or mappings change, before the event source
mappings are enabled. It reads the owner's RDS-managed secret (`DDBSYNC_DB_SECRET_ARN`), connects
with TLS, and runs the migrations packaged beside it, which also keep the DML-only replicator role.
"""

from __future__ import annotations

from typing import Any

from alembic.runtime.migration import MigrationContext
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import parameters
from sqlalchemy import create_engine

from schema.database import resolve_database_url, sqlalchemy_url
from schema.migrations import upgrade_head

logger = Logger(service="ddbsync-migrate")


def _fetch_secret(arn: str) -> str:
    return parameters.get_secret(arn)


def current_revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Upgrade to head and say from which revision to which."""
    url = resolve_database_url(_fetch_secret)
    before = current_revision(sqlalchemy_url(url))
    upgrade_head(url)
    after = current_revision(sqlalchemy_url(url))
    logger.info("migrated", before=before, after=after, trigger=event.get("trigger"))
    return {"before": before, "after": after}
