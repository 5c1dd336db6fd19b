"""The migration runner Lambda: `alembic upgrade head` on each deploy, as the schema owner, over verified TLS.

The Pulumi program invokes it whenever the migrations or mappings change, before the event source
mappings are enabled. Two ways to log in, chosen by the environment:
- `DDBSYNC_DB_IAM_USER` (with `DDBSYNC_DB_HOST`/`_PORT`/`_NAME`): as that role with an IAM token, no
  password anywhere. The deploy's migration runner is `ddbsync_schema_owner`, which owns the tables.
- `DDBSYNC_DB_SECRET_ARN`: with the RDS master user's secret. The deploy's bootstrap runner does this,
  once, up to the migration that creates the schema owner (`DDBSYNC_MIGRATE_TO`).
"""

from __future__ import annotations

import os
from typing import Any

from alembic import command
from alembic.runtime.migration import MigrationContext
from aws_lambda_powertools import Logger
from sqlalchemy import create_engine, text

from handlers.runtime import database_url
from schema.database import sqlalchemy_url
from schema.migrations import alembic_config

logger = Logger(service="ddbsync-migrate")
TARGET_ENV = "DDBSYNC_MIGRATE_TO"  # a revision; default head


def current_state(url: str) -> tuple[str | None, str]:
    """The database's revision, and the role this runner is logged in as."""
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as connection:
            user = connection.execute(text("SELECT current_user")).scalar_one()
            return MigrationContext.configure(connection).get_current_revision(), user
    finally:
        engine.dispose()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Upgrade to the target and say from which revision to which, and as whom."""
    url = database_url()
    target = os.environ.get(TARGET_ENV) or "head"
    before, user = current_state(url)
    command.upgrade(alembic_config(url), target)
    after, _ = current_state(url)
    logger.info("migrated", before=before, after=after, target=target, user=user, trigger=event.get("trigger"))
    return {"before": before, "after": after, "user": user}
