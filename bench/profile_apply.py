"""Where the time of a stream batch goes: Python (decode, coalesce, document) against the server.

For batches of 1,000 and 10,000 Employees changes (`workload()` of `bench/stream_apply.py`, into a
table of 50,000 rows, default durability), it runs `Replicator.process` on a stream of batches and
splits each batch's time into:
- Python: `decode_record` for every record, `last_change_per_item`, `batch_document` (timed on the
  same batches apart, as pure functions);
- the `EXECUTE` of the prepared apply statement as the client sees it (sending the document,
  planning, running, committing: autocommit makes the statement its own transaction);
- the garbage collector's pauses during `process` (a full collection walks every live object: at
  10,000 records it may cost as much as decoding);
- the rest of `process` (grouping, results, the cursor).
The JSON transport is profiled at every size (a core that sends large batches by COPY is told not to).
Then, for the stream's last batch, inside transactions it rolls back: `EXPLAIN (ANALYZE, BUFFERS)`
of the statement the replicator uses (`apply_statement((table,))`), once on the replicator's own
prepared statement (warm, as in service) and once freshly prepared (planning included), with the
time of each step (parsing the document, the delete join, the tombstones written, the tombstone
lookups, the upsert); and a plain COPY of the same coalesced rows into a temp table plus one
`INSERT ... ON CONFLICT` merge and one delete, for comparison. EXPLAIN ANALYZE times every node, so its
totals run above the plain EXECUTE: read its figures as shares.

    .venv/bin/python bench/profile_apply.py [--sizes 1000,10000] [--batches 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gc
import inspect
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stream_apply import fresh_database, reset, workload  # noqa: E402
from ddbsync.core import Replicator  # noqa: E402
from ddbsync.core.apply import apply_statement, batch_document  # noqa: E402
from ddbsync.core.coalesce import last_change_per_item  # noqa: E402
from ddbsync.core.decode import decode_record  # noqa: E402
from ddbsync.local.postgres import PostgresServer  # noqa: E402
from schema.model import load_mappings  # noqa: E402

WARM_UP_BATCHES = 8
# This profiles the JSON transport at every size: where the core can send large batches by COPY, turn that off.
JSON_ONLY = {"copy_threshold": sys.maxsize} if "copy_threshold" in inspect.signature(Replicator).parameters else {}


class TimingCursor(psycopg2.extensions.cursor):
    """A cursor that adds up the time of the `EXECUTE`s it runs: the apply statement's round trip."""

    seconds = 0.0

    def execute(self, query: Any, vars: Any = None) -> Any:
        if not isinstance(query, str) or not query.startswith("EXECUTE"):
            return super().execute(query, vars)
        started = time.perf_counter()
        try:
            return super().execute(query, vars)
        finally:
            TimingCursor.seconds += time.perf_counter() - started


def warm_up(n: int) -> list[dict[str, Any]]:
    """A few changes of items the stream never touches (batch `n` of the warm-up)."""
    records = workload(10, seed=3)
    for record in records:
        for image in ("Keys", "NewImage"):
            if image in record["dynamodb"]:
                item = record["dynamodb"][image]
                item["Id"] = {"N": str(90_000_000 + 1000 * n + int(item["Id"]["N"]))}
    return records


class GarbageCollections:
    """Adds up the garbage collector's pauses while it is entered (`gc.callbacks`)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started

    def __enter__(self) -> GarbageCollections:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def python_steps(batch: list[dict[str, Any]], mappings: Any) -> tuple[float, float, float, list[Any]]:
    """Seconds of decoding, coalescing and building the document of one batch (collector paused), its changes.

    The collector's pauses are counted apart, in `process` itself: which step a full collection lands
    in is chance.
    """
    gc.disable()
    try:
        return _python_steps(batch, mappings)
    finally:
        gc.enable()


def _python_steps(batch: list[dict[str, Any]], mappings: Any) -> tuple[float, float, float, list[Any]]:
    started = time.perf_counter()
    decoded = [decode_record(record, i, mappings) for i, record in enumerate(batch)]
    decoding = time.perf_counter()
    history = [change for d in decoded for change in (d if isinstance(d, list) else d.changes)]
    changes = last_change_per_item(history)
    coalescing = time.perf_counter()
    batch_document(changes[0].table, changes)
    done = time.perf_counter()
    return decoding - started, coalescing - decoding, done - coalescing, changes


def plan_steps(plan: dict[str, Any]) -> dict[str, float]:
    """Milliseconds of each step of an EXPLAIN ANALYZE plan (JSON), nodes' own time, grouped by what they do.

    A CTE's rows are produced by whichever scan reads them first, whose time then includes them: the
    CTE's own plan time is taken off the slowest scan of that CTE, so nothing counts twice. EXPLAIN
    gives a node's time per loop in whole microseconds, so a node run once per row (the tombstone
    lookups, 1-2 us each) is known only to within a factor of two: 0.001 or 0.002 ms times its loops.
    """
    own: list[tuple[str, str, float]] = []  # (cte, node label, ms)
    cte_time: dict[str, float] = {}
    cte_scans: dict[str, list[int]] = {}

    def total(node: dict[str, Any]) -> float:
        return node["Actual Total Time"] * node["Actual Loops"]

    def walk(node: dict[str, Any], cte: str, in_subplan: bool) -> None:
        name = node.get("Subplan Name", "")
        if name.startswith("CTE "):
            cte = name[4:]
            cte_time[cte] = total(node)
        elif name:
            in_subplan = True
        children = node.get("Plans", [])
        child_time = sum(total(c) for c in children if not c.get("Subplan Name", "").startswith("CTE "))
        label = node["Node Type"]
        if node["Node Type"] == "ModifyTable":
            label = f"{node['Operation']} {node['Relation Name']}"
        elif "Relation Name" in node:
            label += f" {node['Relation Name']}"
        elif "Function Name" in node:
            label += f" {node['Function Name']}"
        elif "CTE Name" in node:
            label += f" {node['CTE Name']}"
            cte_scans.setdefault(node["CTE Name"], []).append(len(own))
        if in_subplan and "Relation Name" in node:
            label = "lookup " + label
        own.append((cte, label, max(0.0, total(node) - child_time)))
        for child in children:
            walk(child, cte, in_subplan)

    walk(plan["Plan"], "", False)
    for cte, positions in cte_scans.items():
        slowest = max(positions, key=lambda p: own[p][2])
        c, label, ms = own[slowest]
        own[slowest] = (c, label, max(0.0, ms - cte_time.get(cte, 0.0)))
    steps: dict[str, float] = {}
    for cte, label, ms in own:
        if "json_to_recordset" in label:
            step = "parse the JSON document (json_to_recordset)"
        elif cte.startswith("gone"):
            step = "delete join (Delete employees, its join and key lookups)"
        elif cte.startswith("tomb"):
            step = "write tombstones (Insert ddbsync_tombstones ON CONFLICT)"
        elif cte.startswith("up") and "ddbsync_tombstones" in label:
            step = "tombstone lookups (one index scan per upserted row)"
        elif cte.startswith("up"):
            step = "upsert (Insert employees ON CONFLICT, index and heap writes)"
        else:
            step = "counts and CTE scans"
        steps[step] = steps.get(step, 0.0) + ms
    return steps


def explain(connection: Any, statement: str, document: str) -> tuple[float, float, dict[str, float], str]:
    """Planning ms, execution ms, the steps (and with PROFILE_PLANS=1 the text plan) of `EXECUTE`, rolled back."""

    def rolled_back(options: str) -> list[Any]:
        with connection.cursor() as cursor:
            cursor.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
            try:
                cursor.execute(f"EXPLAIN ({options}) EXECUTE {statement}(%s)", (document,))
                return cursor.fetchall()
            finally:
                cursor.execute("ROLLBACK")

    # Twice, keeping the faster: the first run may read pages the second finds in shared buffers.
    results = [rolled_back("ANALYZE, BUFFERS, FORMAT JSON")[0][0] for _ in range(2)]
    plans = [result[0] if isinstance(result, list) else json.loads(result)[0] for result in results]
    plan = min(plans, key=lambda p: p["Execution Time"])
    text = ""
    if os.environ.get("PROFILE_PLANS"):
        text = "\n".join(row[0] for row in rolled_back("ANALYZE, BUFFERS, COSTS OFF"))
    return plan.get("Planning Time", 0.0), plan["Execution Time"], plan_steps(plan), text


def shipping(connection: Any, document: str, repeats: int = 20) -> tuple[float, float]:
    """Seconds to quote the document (psycopg2), and to send it as a literal that the server reads and drops.

    The apply statement runs as SQL `EXECUTE name('...')`, so the document travels inside the query
    text: psycopg2 escapes it, and the server's lexer reads it before the statement runs. A trivial
    query over the same literal, less a `SELECT 1`, is that cost without any apply work.
    """
    with connection.cursor() as cursor:
        quoting = min(_timed(lambda: cursor.mogrify("%s", (document,))) for _ in range(repeats))
        bare = min(_timed(lambda: cursor.execute("SELECT 1")) for _ in range(repeats))
        literal = min(_timed(lambda: cursor.execute("SELECT length(%s::text)", (document,))) for _ in range(repeats))
    return quoting, max(0.0, literal - bare)


def _timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def plan_cache(connection: Any) -> tuple[int, int]:
    """How many times the replicator's prepared statement was planned generic and custom (PostgreSQL 14+)."""
    with connection.cursor() as cursor:
        try:
            cursor.execute(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = 'ddbsync_apply_0'"
            )
        except psycopg2.Error:
            return -1, -1
        row = cursor.fetchone()
    return (row[0], row[1]) if row else (-1, -1)


def copy_merge(connection: Any, changes: list[Any]) -> dict[str, float]:
    """Seconds of a plain COPY of the coalesced rows into a temp table, one upsert and one delete; rolled back."""
    times: dict[str, float] = {}
    started = time.perf_counter()
    buffer = io.StringIO()
    for change in changes:
        key, name, department = (r"\N" if value is None else value for value in change.values)
        deleted = "t" if change.deleted else "f"
        buffer.write(f"{key}\t{name}\t{department}\t{deleted}\n")
    buffer.seek(0)
    times["build the COPY text"] = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        try:
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS staging (id bigint, name text, department text, deleted boolean) "
                "ON COMMIT DELETE ROWS"
            )
            step = time.perf_counter()
            cursor.copy_expert("COPY staging FROM STDIN", buffer)
            times["COPY into the temp table"] = time.perf_counter() - step
            step = time.perf_counter()
            cursor.execute(
                "INSERT INTO employees (id, name, department, _ddb_version) "
                "SELECT id, name, department, 1 FROM staging WHERE NOT deleted "
                "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, department = EXCLUDED.department"
            )
            times["INSERT ... ON CONFLICT merge"] = time.perf_counter() - step
            step = time.perf_counter()
            cursor.execute("DELETE FROM employees WHERE id = ANY(ARRAY(SELECT id FROM staging WHERE deleted))")
            times["DELETE of the removed keys"] = time.perf_counter() - step
        finally:
            cursor.execute("ROLLBACK")
    return times


def profile(db: str, size: int, batches: int, rounds: int, existing: int) -> None:
    """Print the breakdown of a batch of `size` records, over a stream of `batches` batches, best of `rounds`."""
    mappings = load_mappings()
    records = workload(size * batches)
    # Kept as JSON and parsed batch by batch, as Lambda's runtime hands over an event: the process then
    # holds one batch of records, not the whole stream, which is what a full garbage collection walks.
    texts = [json.dumps(records[i : i + size]) for i in range(0, len(records), size)]
    del records
    best: dict[str, float] = {}
    collecting = GarbageCollections()
    for _ in range(rounds):
        reset(db, existing)
        replicator = Replicator(mappings, lambda: psycopg2.connect(db, cursor_factory=TimingCursor), **JSON_ONLY)
        # Connect, prepare, purge, and let the plan cache settle (generic or custom after 5 runs): once per
        # container in service, not per batch.
        for n in range(WARM_UP_BATCHES):
            replicator.process(warm_up(n))
        TimingCursor.seconds = 0.0
        process = decode = coalesce = document = 0.0
        collecting.seconds = 0.0
        for i, text in enumerate(texts):
            chunk = json.loads(text)
            if i == len(texts) - 1:
                last_changes = python_steps(chunk, mappings)[3]
                last_document = batch_document(last_changes[0].table, last_changes)
                connection = replicator.connection()
                warm = explain(connection, "ddbsync_apply_0", last_document)
                with connection.cursor() as cursor:
                    cursor.execute(f"PREPARE profile_fresh_{i} (json) AS {apply_statement((last_changes[0].table,))}")
                fresh = explain(connection, f"profile_fresh_{i}", last_document)
                copy = copy_merge(connection, last_changes)
                shipped = shipping(connection, last_document)
            with collecting:
                started = time.perf_counter()
                result = replicator.process(chunk)
                process += time.perf_counter() - started
            assert result.retry_from is None and not result.rejected, result
            d, c, j, _ = python_steps(chunk, mappings)
            decode, coalesce, document = decode + d, coalesce + c, document + j
            del chunk, result
        plans = plan_cache(replicator.connection())
        replicator.close()
        measured = {
            "process": process,
            "decode": decode,
            "coalesce": coalesce,
            "document": document,
            "execute": TimingCursor.seconds,
            "gc": collecting.seconds,
        }
        if not best or measured["process"] < best["process"]:
            best, kept = measured, (warm, fresh, copy, len(last_changes), shipped, plans, len(last_document))
    warm, fresh, copy, coalesced, (quoting, literal), (generic, custom), document_bytes = kept
    per_batch = {k: v / len(texts) * 1000 for k, v in best.items()}
    total = per_batch["process"]
    rest = total - sum(per_batch[k] for k in ("decode", "coalesce", "document", "execute", "gc"))
    print(
        f"\nbatch {size:,} (a stream of {len(texts)} batches, best of {rounds} runs): Replicator.process "
        f"{total:,.1f} ms a batch, {size / total * 1000:,.0f} records/s"
    )
    rows = [
        ("Python: decode_record", per_batch["decode"]),
        ("Python: last_change_per_item", per_batch["coalesce"]),
        ("Python: batch_document (json.dumps)", per_batch["document"]),
        ("Python: garbage collector pauses during process", per_batch["gc"]),
        ("server: EXECUTE as the client sees it", per_batch["execute"]),
        ("rest of process (grouping, cursor, result)", rest),
    ]
    for label, ms in rows:
        print(f"  {label:<58} {ms:8.1f} ms  {ms / total:6.1%}")
    print(
        f"    of the EXECUTE, the document ({document_bytes / 1e6:.2f} MB as JSON) as a SQL literal: psycopg2 "
        f"quoting {quoting * 1000:.1f} ms, sending and lexing {literal * 1000:.1f} ms"
    )
    print(
        f"    the prepared statement's plans by then: {generic} generic, {custom} custom "
        "(a custom plan is made at its EXECUTE, a generic one reused)"
    )
    for title, (planning, execution, steps, _) in (("warm (as in service)", warm), ("freshly prepared", fresh)):
        print(
            f"  EXPLAIN ANALYZE of the last batch ({coalesced:,} rows after coalescing), {title}: "
            f"planning {planning:.1f} ms, execution {execution:.1f} ms (share of execution, of the batch)"
        )
        for step, ms in sorted(steps.items(), key=lambda s: -s[1]):
            print(f"    {step:<66} {ms:8.1f} ms  {ms / execution:6.1%} {ms / total:6.1%}")
    copy_total = sum(copy.values())
    print(
        f"  plain COPY + merge of the same {coalesced:,} rows (rolled back): {copy_total * 1000:.1f} ms, "
        f"{copy_total * 1000 / total:.0%} of a process call, "
        f"{copy_total * 1000 / per_batch['execute']:.0%} of its EXECUTE"
    )
    for step, seconds in copy.items():
        print(f"    {step:<66} {seconds * 1000:8.1f} ms  {seconds / copy_total:6.1%}")
    if warm[3]:
        print(warm[3])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated batch sizes (default 1000,10000)")
    parser.add_argument("--batches", type=int, default=3, help="batches in the stream of each size (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of the stream; the fastest counts (default 3)")
    parser.add_argument("--existing", type=int, default=50_000, help="rows already in the table (default 50000)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    server = None
    url = os.environ.get("DATABASE_URL")
    if not url:
        server = PostgresServer().start()
        url = server.url
    try:
        db = fresh_database(url, "ddbsync_profile")
        print(f"Employees changes into a table of {args.existing:,} rows, PostgreSQL at {db.split('@')[-1]}")
        for size in sizes:
            profile(db, size, args.batches, args.rounds, args.existing)
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
