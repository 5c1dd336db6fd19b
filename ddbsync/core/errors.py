"""Which database errors wait and which reject: decided by SQLSTATE class, never by exception class.

psycopg2's exception classes do not follow the SQLSTATE classes (a program limit, 54000, arrives as
an `OperationalError`), so the class of the code decides. An error that may pass waits and the
batch is tried again; an error that is the record's fault sends the record to the rejects table;
anything else is a bug or a broken deployment, and raises.
"""

from __future__ import annotations

import enum

import psycopg2


class ErrorKind(enum.Enum):
    WAIT = "wait"  # the database is away or busy: try the same batch again later
    DATA = "data"  # a value the database refuses: reject the record
    OTHER = "other"  # a missing table, a bug: raise


# Connection exception, transaction rollback, insufficient resources, operator intervention.
WAIT_CLASSES = frozenset({"08", "40", "53", "57"})
# A read-only transaction: the connection reached an instance demoted by a failover. It passes.
WAIT_CODES = frozenset({"25006", "55P03"})  # read-only after a failover; a lock not granted within lock_timeout
# Data exception, integrity constraint violation, program limit exceeded, and a PL/pgSQL error: a
# trigger or check function of the user's refusing the row (RAISE EXCEPTION is P0001).
DATA_CLASSES = frozenset({"22", "23", "54", "P0"})


def error_kind(error: BaseException) -> ErrorKind:
    """How the failure contract treats `error`."""
    if not isinstance(error, psycopg2.Error):
        return ErrorKind.OTHER
    code = error.pgcode
    if code is None:
        # No SQLSTATE: libpq never reached a server answer (refused, reset, timed out, closed).
        return (
            ErrorKind.WAIT
            if isinstance(error, (psycopg2.OperationalError, psycopg2.InterfaceError))
            else ErrorKind.OTHER
        )
    if code[:2] in WAIT_CLASSES or code in WAIT_CODES:
        return ErrorKind.WAIT
    if code[:2] in DATA_CLASSES:
        return ErrorKind.DATA
    return ErrorKind.OTHER


def describe(error: BaseException) -> str:
    """SQLSTATE and primary message only: the DETAIL and the statement carry row values, kept out of logs."""
    if isinstance(error, psycopg2.Error):
        primary = error.diag.message_primary if error.pgcode else None
        text = primary or (str(error).strip().splitlines() or [type(error).__name__])[0]
        return f"{error.pgcode} {text}" if error.pgcode else f"{type(error).__name__}: {text}"
    return f"{type(error).__name__}: {error}"
