"""Opening the replicator's PostgreSQL connection the same way in Lambda, locally and in tests."""

from __future__ import annotations

import psycopg2
import psycopg2.extensions

from schema.database import libpq_url


def connect(url: str, application_name: str = "ddbsync") -> psycopg2.extensions.connection:
    """A connection with timeouts and keepalives, so a dead peer surfaces as a retryable error."""
    return psycopg2.connect(
        libpq_url(url),
        application_name=application_name,
        connect_timeout=10,
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
    )
