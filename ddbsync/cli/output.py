"""What every `ddbsync` verb shares: one way to report a problem the user can fix, and the database."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

STATE_DIR = Path(os.environ.get("DDBSYNC_STATE_DIR", ".ddbsync"))


def positive_int(text: str) -> int:
    """A positive whole number, for argparse: anything else prints usage, not a traceback."""
    value = int(text) if text.isdigit() else 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def file_progress(
    total: int, file_line: Callable[[Any], str], done_before: str
) -> tuple[Any, Callable[[int], Any] | None, Callable[[Any], None]]:
    """(bar, on_items, on_file): a bar of items with rate and ETA on a terminal, else one log line per file.

    `file_line` says what a file did; a file skipped as done before is named on the bar with `done_before`.
    """
    if not sys.stderr.isatty():
        return None, None, lambda result: print(file_line(result), file=sys.stderr, flush=True)
    from tqdm import tqdm

    bar = tqdm(total=total, unit="items", unit_scale=True, dynamic_ncols=True, file=sys.stderr)
    files = {"done": 0}

    def on_file(result: Any) -> None:
        files["done"] += 1
        bar.set_postfix_str(f"files {files['done']}")
        if result.skipped:
            bar.write(f"  {result.key}: {done_before}", file=sys.stderr)

    return bar, bar.update, on_file


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
