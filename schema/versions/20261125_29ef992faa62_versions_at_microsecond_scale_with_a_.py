"""versions at microsecond scale with a tie-breaker for every flow

Stored versions were (second, stream sequence number) packed as second x 10^40 + sequence. They
become (microsecond, tie-breaker) packed as microsecond x 10^129 + tie-breaker, the one scale every
flow compares on (ddbsync.core.version): incremental exports and Kinesis need time finer than a
second and a tie-breaker as wide as a Kinesis sequence number. The mapping keeps the order of every
stored version, so nothing that was newer becomes older. Written by hand: autogenerate sees no change
of schema, only of meaning. The numbers are spelt out, so this migration never changes with the code.

Revision ID: 29ef992faa62
Revises: 4de93d30718f
Create Date: 2026-11-25 09:51:15.759365

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision: str = '29ef992faa62'
down_revision: Union[str, Sequence[str], None] = '4de93d30718f'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OLD_SECOND = "1e40::numeric"  # second x 10^40 + sequence number
NEW_SECOND = "1e135::numeric"  # (second x 10^6 microseconds) x 10^129 + tie-breaker
NEW_TIE = "1e129::numeric"
OLD_SCALE_BELOW = "1e100::numeric"  # old versions are below 10^50 for millennia; new ones above 10^135


def _version_columns() -> list[tuple[str, str]]:
    """Every (table, column) holding a version: each mapped table's, the tombstones', the rejects'."""
    rows = op.get_bind().execute(
        sa.text(
            "SELECT c.table_name, c.column_name FROM information_schema.columns AS c "
            "JOIN information_schema.tables AS t USING (table_schema, table_name) "
            "WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' AND ("
            "c.column_name = '_ddb_version' OR (c.table_name IN ('ddbsync_tombstones', 'ddbsync_rejects') "
            "AND c.column_name = 'version'))"
        )
    )
    return [(table, column) for table, column in rows]


def _rescale(expression: str, where: str) -> None:
    """Set every version column to `expression` of itself where `where` holds (`{v}` stands for the column).

    Only tables (a user's view over a mapped table would pass the update on to it a second time), and
    only versions still on the scale being left: the replicator reads either scale right
    (`ddbsync.core.version.stored_version`), so rows it wrote on the new one before this ran stay as they are.
    """
    for table, column in _version_columns():
        v = f'"{column}"'
        op.execute(f'UPDATE "{table}" SET {v} = {expression.format(v=v)} WHERE {where.format(v=v)}')


def upgrade() -> None:
    """Upgrade schema."""
    _rescale(f"div({{v}}, {OLD_SECOND}) * {NEW_SECOND} + mod({{v}}, {OLD_SECOND})", f"{{v}} < {OLD_SCALE_BELOW}")


def downgrade() -> None:
    """Downgrade schema: microseconds within a second are lost, and so is a tie-breaker wider than 40 digits."""
    _rescale(
        f"div({{v}}, {NEW_SECOND}) * {OLD_SECOND} + mod(mod({{v}}, {NEW_TIE}), {OLD_SECOND})",
        f"{{v}} >= {OLD_SCALE_BELOW}",
    )
