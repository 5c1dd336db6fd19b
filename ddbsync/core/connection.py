"""Opening the replicator's PostgreSQL connection the same way in Lambda, locally and in tests."""

from __future__ import annotations

from contextlib import contextmanager, suppress
from typing import Any, Iterator

import psycopg2
import psycopg2.extensions

from schema.database import libpq_url


def connect(url: str, application_name: str = "ddbsync") -> psycopg2.extensions.connection:
    """A connection with timeouts and keepalives, so a dead peer surfaces as an error that waits.

    The timeouts are short because the handler waits for the database by trying again, within its
    invocation's time: one attempt must never take most of it.
    """
    return psycopg2.connect(
        libpq_url(url),
        application_name=application_name,
        connect_timeout=5,
        tcp_user_timeout=15_000,  # milliseconds unacknowledged data may wait: a failover's dead peer
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
    )


@contextmanager
def transaction(cursor: Any) -> Iterator[None]:
    """An explicit transaction on an autocommit connection: committed at the end, rolled back on any error.

    The rollback is skipped when the connection is gone (the server ended the transaction with it).
    """
    cursor.execute("BEGIN")
    try:
        yield
    except BaseException:
        if not cursor.connection.closed:
            with suppress(psycopg2.Error):
                cursor.execute("ROLLBACK")
        raise
    cursor.execute("COMMIT")
