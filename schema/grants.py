"""The database roles, and what the replicator may do table by table: the one place migrations take their GRANTs from.

Per table, never `ON ALL TABLES` or default privileges: the replicator gets DML on the tables it
mirrors into and on the tombstones, INSERT only on the rejects it writes, and nothing on
`alembic_version` or on any table ddbsync does not own. `alembic revision --autogenerate` adds the
GRANT for each table a mapping adds (`add_replicator_grants`, called from env.py), as literal SQL, so
a generated migration reads on its own and does not change when this module does.
"""

from __future__ import annotations

from alembic.operations import ops
from sqlalchemy.dialects import postgresql

from schema.metadata import EXPORT_FILES_TABLE, EXPORTS_TABLE, REJECTS_TABLE

REPLICATOR_ROLE = "ddbsync_replicator"
# Owns ddbsync's tables and runs the migrations on deploy, logging in with IAM: the RDS master user's
# secret is needed only once, to run the migrations up to the one that creates this role.
SCHEMA_OWNER_ROLE = "ddbsync_schema_owner"
SCHEMA_OWNER_REVISION = "861145bb5bbf"
# Applying a batch upserts, deletes and reads versions; the purge deletes old tombstones.
DML = "SELECT, INSERT, UPDATE, DELETE"
# Rejects are only ever added by the replicator; `ddbsync rejects replay` marks them replayed as the
# operator (DATABASE_URL or the owner's secret), never as the replicator. It reads only which item and
# version a reject is about: to add no second reject of one delivery (ON CONFLICT reads the unique
# key) and to keep the tombstone of an item whose reject waits. Never a record or a reason.
REJECT_IDENTITY = "dynamodb_table, sql_table, item_key, version, replayed_at"
# The backfill (which logs in as the replicator on AWS) records exports and their loaded files, and
# finishes an export; it never removes ledger rows.
PRIVILEGES = {
    REJECTS_TABLE: f"INSERT, SELECT ({REJECT_IDENTITY})",
    EXPORTS_TABLE: "SELECT, INSERT, UPDATE",
    EXPORT_FILES_TABLE: "SELECT, INSERT",
}

_quote = postgresql.dialect().identifier_preparer.quote


def create_iam_login_role(role: str) -> str:
    """SQL creating `role` if missing, able to log in, with no password: on Aurora, by IAM token (`rds_iam`)."""
    return f"""
    DO $$
    BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
            CREATE ROLE {role} LOGIN;
        END IF;
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_iam') THEN
            GRANT rds_iam TO {role};
        END IF;
    END $$
    """


def replicator_grant(table: str) -> str:
    """The GRANT that lets the replicator do its work on `table`, and nothing more."""
    return f"GRANT {PRIVILEGES.get(table, DML)} ON {_quote(table)} TO {REPLICATOR_ROLE}"


def owner_statement(table: str) -> str:
    """Hand a new table to the schema owner: a no-op when it runs the migration, as it does on deploy."""
    return f"ALTER TABLE {_quote(table)} OWNER TO {SCHEMA_OWNER_ROLE}"


def add_replicator_grants(upgrade_ops: ops.UpgradeOps, owned: set[str]) -> None:
    """Follow each `create_table` of a table ddbsync owns with its owner and the replicator's GRANT on it.

    The owner statement matters where the migration runs as another role (the master user, a local
    superuser): the table still ends up the schema owner's, as on a deployed stack.
    """
    for position in reversed(range(len(upgrade_ops.ops))):
        operation = upgrade_ops.ops[position]
        if isinstance(operation, ops.CreateTableOp) and operation.table_name in owned:
            statements = [owner_statement(operation.table_name), replicator_grant(operation.table_name)]
            for offset, sql in enumerate(statements, 1):
                upgrade_ops.ops.insert(position + offset, ops.ExecuteSQLOp(sql))
