"""The COPY transport: a batch's rows in PostgreSQL's COPY text format, streamed into the table's stage.

Written by hand because psycopg2 offers the COPY protocol (`copy_expert`) but no row encoder: each
value goes in its transport type's text form (the same one the JSON transport carries), with COPY's
escapes for backslash, tab, newline and carriage return, and `\\N` for NULL.
"""

from __future__ import annotations

import io
from typing import Any, Sequence

from ddbsync.core.decode import Change
from schema.model import TableMapping

# From this many changes in a batch, COPY beats one JSON document (bench/stream_apply.py measures it).
COPY_THRESHOLD = 2000

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: Any) -> str:
    """One value as COPY text format writes it."""
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    return str(value)


def copy_rows(cursor: Any, stage: str, table: TableMapping, changes: Sequence[Change]) -> None:
    """Stream the changes into `stage`, in its column order: key, version, deletion, columns, extras."""
    extras = table.keeps_extras
    lines = []
    for change in changes:
        fields = [change.item_key, str(change.version), "t" if change.deleted else "f"]
        fields += [copy_text(value) for value in change.values]
        if extras:
            fields.append(copy_text(change.extras))
        lines.append("\t".join(fields))
    lines.append("")
    cursor.copy_expert(f"COPY {stage} FROM STDIN", io.StringIO("\n".join(lines)))
