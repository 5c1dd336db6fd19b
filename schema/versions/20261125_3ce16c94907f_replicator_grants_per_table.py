"""the replicator's rights per table: DML on mapped tables and tombstones, INSERT on rejects, nothing else

Replaces the schema-wide grants of 5b1f0c2a7d10: `ON ALL TABLES` also covered `alembic_version` and any
table of someone else's in the schema, default privileges handed the replicator every future table,
and it could update and delete the rejects it only ever inserts. From here on, the migration that
creates a table grants what the replicator needs on it (autogenerate writes that GRANT, see
schema/grants.py). Written by hand: grants are not part of the metadata autogenerate compares.

Which tables are mapped is read from the mappings as they are when this runs, limited to the tables
that exist at this point of the history: a mapping added later gets its table, and its GRANT, from
its own generated migration.

Revision ID: 3ce16c94907f
Revises: 5b1f0c2a7d10
Create Date: 2026-11-25 08:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from schema.grants import DML, REPLICATOR_ROLE
from schema.metadata import REJECTS_TABLE, owned_tables
from schema.model import load_mappings

revision: str = "3ce16c94907f"
down_revision: Union[str, Sequence[str], None] = "5b1f0c2a7d10"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {REPLICATOR_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {REPLICATOR_ROLE}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {REPLICATOR_ROLE}")
    # Identity columns (the rejects' id) need no right on their sequence to be filled by an INSERT.
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {REPLICATOR_ROLE}")
    existing = set(sa.inspect(op.get_bind()).get_table_names(schema="public"))
    for table in sorted(owned_tables(load_mappings()) & existing):
        # The rights as they stand at this revision; later revisions grant more where needed.
        op.execute(f'GRANT {"INSERT" if table == REJECTS_TABLE else DML} ON "{table}" TO {REPLICATOR_ROLE}')


def downgrade() -> None:
    # Back to 5b1f0c2a7d10's schema-wide rights.
    op.execute(f"GRANT {DML} ON ALL TABLES IN SCHEMA public TO {REPLICATOR_ROLE}")
    op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {REPLICATOR_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {DML} ON TABLES TO {REPLICATOR_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO {REPLICATOR_ROLE}")
