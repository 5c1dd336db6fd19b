"""What every `ddbsync` verb shares: one way to report a problem the user can fix, and the database."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATE_DIR = Path(os.environ.get("DDBSYNC_STATE_DIR", ".ddbsync"))


class CommandError(Exception):
    """A problem the user can fix (a missing setting, a bad argument): one line, exit status 2."""


def operator_replicator() -> Any:
    """A replicator on the database of `$DATABASE_URL` (or the secret), through the current mappings."""
    from ddbsync.core import Replicator
    from ddbsync.core.connection import connect
    from schema.database import DatabaseConfigError, resolve_database_url
    from schema.model import load_mappings

    try:
        url = resolve_database_url()
    except DatabaseConfigError as error:
        raise CommandError(str(error)) from None
    return Replicator(load_mappings(), lambda: connect(url))


def local_stack_state() -> dict[str, Any] | None:
    """The endpoints of the stack `ddbsync local up` runs, if one runs."""
    state = STATE_DIR / "local.json"
    return json.loads(state.read_text()) if state.exists() else None
