"""a schema-owner role that owns ddbsync's tables and runs the migrations, logging in with IAM

Until here the migrations ran as the RDS master user, whose password sits in a secret the migration
runner read on every deploy. From here on they run as `ddbsync_schema_owner`, which logs in with an
IAM token (granted `rds_iam` where that role exists) and has no password: it owns ddbsync's tables and
`alembic_version`, may create tables in the schema, and nothing more (no superuser rights, no roles).
The master user runs the migrations up to this one, once (the deploy's bootstrap step), and is a
member of the new role so that it keeps reaching the tables it handed over.

Written by hand: roles and ownership are not part of the metadata autogenerate compares.

Revision ID: 861145bb5bbf
Revises: 3ce16c94907f
Create Date: 2026-11-25 08:40:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from schema.grants import SCHEMA_OWNER_ROLE, create_iam_login_role
from schema.metadata import owned_tables
from schema.model import load_mappings

revision: str = "861145bb5bbf"
down_revision: Union[str, Sequence[str], None] = "3ce16c94907f"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _tables() -> list[str]:
    """ddbsync's tables as they exist here, and Alembic's own."""
    existing = set(sa.inspect(op.get_bind()).get_table_names(schema="public"))
    return sorted(owned_tables(load_mappings()) & existing) + ["alembic_version"]


def _quote(name: str) -> str:
    return op.get_bind().dialect.identifier_preparer.quote(name)


def upgrade() -> None:
    op.execute(create_iam_login_role(SCHEMA_OWNER_ROLE))
    # Handing a table over needs membership in the new owner (PostgreSQL 16: the SET option).
    op.execute(f"GRANT {SCHEMA_OWNER_ROLE} TO CURRENT_USER")
    op.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {SCHEMA_OWNER_ROLE}")
    for table in _tables():
        op.execute(f"ALTER TABLE {_quote(table)} OWNER TO {SCHEMA_OWNER_ROLE}")


def downgrade() -> None:
    # The role is shared by every database of the cluster; only this database's ownership and rights go.
    for table in _tables():
        op.execute(f"ALTER TABLE {_quote(table)} OWNER TO CURRENT_USER")
    op.execute(f"REVOKE USAGE, CREATE ON SCHEMA public FROM {SCHEMA_OWNER_ROLE}")
