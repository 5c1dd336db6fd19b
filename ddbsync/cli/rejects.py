"""`ddbsync rejects list|replay`: the records that could not be applied, in the database of $DATABASE_URL."""

from __future__ import annotations

from ddbsync.cli.output import operator_replicator


def rejects_command(action: str, table: str | None, limit: int = 1000) -> int:
    """List or replay the rejects of the database named by $DATABASE_URL (or the secret)."""
    from ddbsync.core.replay import replay_rejects

    replicator = operator_replicator()
    try:
        if action == "replay":
            result = replay_rejects(replicator, table, limit)
            print(
                f"replayed {result.replayed}, still rejected {result.still_rejected}"
                + (" (stopped by a database error that may pass: run again)" if result.retry else "")
            )
            return 1 if result.retry else 0
        with replicator.connection().cursor() as cursor:
            cursor.execute(
                "SELECT dynamodb_table, reason, count(*) FROM ddbsync_rejects WHERE replayed_at IS NULL "
                "AND (%(table)s::text IS NULL OR dynamodb_table = %(table)s) GROUP BY 1, 2 ORDER BY 3 DESC",
                {"table": table},
            )
            groups = cursor.fetchall()
        for dynamodb_table, reason, count in groups:
            print(f"{count:>8}  {dynamodb_table}: {reason}")
        print(f"{sum(count for _, _, count in groups)} pending")
        return 0
    finally:
        replicator.close()
