"""The stack's export schedules, fired by `ddbsync local up` as EventBridge Scheduler fires them on AWS.

moto has no scheduler that invokes anything. So `local up` reads the dev stack's `ddbsync:exportSchedules`
(`Pulumi.dev.yaml`), works out each schedule's next fire time with the same evaluator the Pulumi
program validates them with (`ddbsync.exports.schedule.next_fire`), and at that time calls the scheduled
export function (`handlers.scheduled_export.handler`) with the input Scheduler would give it, in a
thread, so replication goes on meanwhile. The exports land in the local export bucket.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import yaml

from ddbsync.exports.manifest import FULL_EXPORT, INCREMENTAL_EXPORT
from ddbsync.exports.schedule import next_fire, schedule_input

logger = logging.getLogger(__name__)

DEV_STACK = Path(__file__).resolve().parent.parent.parent / "Pulumi.dev.yaml"
HANDLER = "handlers.scheduled_export.handler"


@dataclass
class LocalSchedule:
    """One schedule entry, and when it fires next."""

    name: str
    expression: str
    zone: str
    document: dict[str, Any]  # the function's input, `scheduledTime` to fill in
    next_at: datetime | None = None


def load_schedules(tables: list[str], stack_file: Path = DEV_STACK) -> list[LocalSchedule]:
    """The dev stack's export schedules, for the tables the local stack has."""
    config = (yaml.safe_load(stack_file.read_text()) or {}).get("config", {}) if stack_file.exists() else {}
    schedules = []
    for number, entry in enumerate(config.get("ddbsync:exportSchedules") or []):
        incremental = entry.get("type", "full") == "incremental"
        export_type = INCREMENTAL_EXPORT if incremental else FULL_EXPORT
        chosen = [t for t in entry.get("tables") or tables if t in tables]
        name = entry.get("name") or entry.get("type", "full") or f"schedule{number}"
        document = schedule_input(name, chosen, export_type, entry.get("windowMinutes") if incremental else None)
        schedules.append(LocalSchedule(name, entry["schedule"], entry.get("timezone", "UTC"), document))
    return schedules


class ScheduleRunner:
    """Fires due schedules, each run in its own thread; call `tick()` as often as the stream runners poll."""

    def __init__(self, schedules: list[LocalSchedule], invoke: Callable[[dict[str, Any]], Any], now: datetime) -> None:
        self.schedules = schedules
        self.invoke = invoke
        self.started = now
        for schedule in schedules:
            schedule.next_at = next_fire(schedule.expression, schedule.zone, now, start=now)
        self.runs: list[threading.Thread] = []

    def tick(self, now: datetime | None = None) -> int:
        """Start the runs that are due; how many started."""
        now = now or datetime.now(timezone.utc)
        started = 0
        for schedule in self.schedules:
            if schedule.next_at is None or schedule.next_at > now:
                continue
            event = {**schedule.document, "scheduledTime": schedule.next_at.isoformat()}
            thread = threading.Thread(target=self._run, args=(schedule.name, event), daemon=True)
            thread.start()
            self.runs.append(thread)
            started += 1
            schedule.next_at = next_fire(schedule.expression, schedule.zone, schedule.next_at, start=self.started)
        return started

    def _run(self, name: str, event: dict[str, Any]) -> None:
        try:
            self.invoke(event)
            logger.warning("schedule %s: exports started into the local export bucket", name)
        except Exception as error:  # a run that fails is said and waits for the next fire, as Scheduler's retries end
            logger.warning("schedule %s failed: %s", name, error)

    def describe(self) -> list[str]:
        return [
            f"{s.name} ({s.expression}, {s.zone}): next {s.next_at:%Y-%m-%d %H:%M} UTC"
            for s in self.schedules
            if s.next_at is not None
        ]
