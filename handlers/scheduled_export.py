"""The scheduled export Lambda: EventBridge Scheduler runs it; it exports each table into the stack's export bucket.

Input (one per schedule, built by `ddbsync.exports.schedule.schedule_input`; Scheduler substitutes the time):
    {"schedule": "nightly", "tables": ["Employees", "Shop"], "type": "FULL_EXPORT" | "INCREMENTAL_EXPORT",
     "windowMinutes": 60, "scheduledTime": "<aws.scheduler.scheduled-time>"}
Environment: `DDBSYNC_EXPORT_BUCKET`, `DDBSYNC_EXPORT_KMS_KEY_ARN` (the objects are SSE-KMS with the stack key).

Each table's export goes under `<table>/YYYY/MM/DD/` (the scheduled time's UTC date). A full export is as of
the scheduled time; an incremental one continues the chain of windows (`plan_incremental`): from the end of the
last completed one, at most 24 hours a run, never while the previous one still runs. The exports already made
come from `ListExports` (this table's) and `DescribeExport`, newest first down to the latest completed one, so a
retried invocation exports nothing twice. DynamoDB emits no event when an export ends: each run reports, per
schedule (metric dimension `schedule`), `ExportsFailed` (failed exports not made good by a later completed one,
plus exports this run could not start), `ExportsInProgress`, `ExportsCompleted` (tables whose latest finished
export completed) and `ExportsStarted`; an alarm watches `ExportsFailed`. An export that could not be started
fails the invocation after the others are started, so Lambda tries it again.

Point-in-time recovery bounds every export: a window never starts before the table's earliest restorable time
(a chain that ended before it goes on from there, and the span it cannot export is logged and counted as
failed), and a scheduled time seconds old may not be restorable yet (PITR trails the present), so the run
waits for it, up to 15 minutes.

The function runs outside the VPC: it calls only DynamoDB's control plane, never the database.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from ddbsync.exports.manifest import FULL_EXPORT, ExportError
from ddbsync.exports.s3 import S3Exports
from ddbsync.exports.schedule import (
    COMPLETED,
    ExportRecord,
    Plan,
    ScheduledRun,
    export_prefix,
    plan_full,
    plan_incremental,
    read_event,
    record_of,
    table_health,
)

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "ddbsync-scheduled-export")
logger = Logger(service=SERVICE)
metrics = Metrics(namespace="ddbsync", service=SERVICE)

BUCKET = os.environ.get("DDBSYNC_EXPORT_BUCKET", "")
KMS_KEY = os.environ.get("DDBSYNC_EXPORT_KMS_KEY_ARN") or None
MOST_DESCRIBED = 500  # exports described per table and run, newest first, looking for the latest completed one
# A time seconds old may be past the table's latest restorable time (PITR trails the present by a few
# minutes); DynamoDB then refuses the export. Within this long after the scheduled time the run waits and asks again.
RESTORABLE_LAG = timedelta(minutes=15)
WAIT_SECONDS = 30.0
MARGIN_SECONDS = 20.0  # kept back at the end of the invocation to publish the metrics

dynamodb = boto3.client("dynamodb")
exports = S3Exports(dynamodb=dynamodb)
sleep, now = time.sleep, lambda: datetime.now(timezone.utc)  # replaced in tests that move time


class ExportsNotStarted(RuntimeError):
    """Some tables' exports could not be started; the others were. Lambda retries the invocation."""


@dataclass
class Report:
    """What one run did, for its log line, its metrics and its answer."""

    started: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)  # failed exports not made good since
    not_started: list[dict[str, str]] = field(default_factory=list)
    in_progress: int = 0
    completed_tables: int = 0

    def answer(self, run: ScheduledRun) -> dict[str, Any]:
        """The run's outcome: the function's answer and its closing log line."""
        return {
            "schedule": run.schedule,
            "scheduledTime": run.scheduled_time.isoformat(),
            "started": self.started,
            "skipped": self.skipped,
            "failed": self.failed,
            "notStarted": self.not_started,
        }


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Export every table of the schedule as its plan says, and report how the earlier exports ended."""
    run = read_event(event)
    metrics.add_dimension(name="schedule", value=run.schedule or "manual")
    deadline = _deadline(context)
    report = Report()
    for table in run.tables:
        try:
            export_table(run, table, report, deadline)
        except (ExportError, ClientError, BotoCoreError) as error:
            logger.error("export not started", table=table, schedule=run.schedule, error=str(error))
            report.not_started.append({"table": table, "error": str(error)})
    metrics.add_metric(name="ExportsStarted", unit=MetricUnit.Count, value=len(report.started))
    metrics.add_metric(name="ExportsFailed", unit=MetricUnit.Count, value=len(report.failed) + len(report.not_started))
    metrics.add_metric(name="ExportsInProgress", unit=MetricUnit.Count, value=report.in_progress)
    metrics.add_metric(name="ExportsCompleted", unit=MetricUnit.Count, value=report.completed_tables)
    logger.info("scheduled exports", **report.answer(run))
    if report.not_started:
        raise ExportsNotStarted(f"exports not started: {', '.join(t['table'] for t in report.not_started)}")
    return report.answer(run)


def export_table(run: ScheduledRun, table: str, report: Report, deadline: float | None) -> None:
    """Check the table's earlier exports of this type, then start the one its plan asks for."""
    table_arn = dynamodb.describe_table(TableName=table)["Table"]["TableArn"]
    records = earlier_exports(table_arn, table, run.export_type)
    health = table_health(records)
    for record in health.failed:
        logger.warning(
            "scheduled export failed", table=table, export=record.arn, failure=record.failure, schedule=run.schedule
        )
        report.failed.append({"table": table, "exportArn": record.arn, "failure": record.failure})
    report.in_progress += len(health.in_progress)
    report.completed_tables += health.completed
    earliest = earliest_restorable(table)
    if run.export_type == FULL_EXPORT:
        plan = plan_full(records, run.scheduled_time)
    else:
        plan = plan_incremental(records, run.scheduled_time, run.first_window, earliest)
    if plan.lost:
        lost = f"{plan.lost[0].isoformat()}/{plan.lost[1].isoformat()}"
        failure = "changes older than the table's point-in-time recovery window cannot be exported: take a full export"
        logger.error(failure, table=table, lost=lost, schedule=run.schedule)
        report.failed.append({"table": table, "lost": lost, "failure": failure})
    if not plan.exports:
        logger.info("no export this run", table=table, reason=plan.reason)
        report.skipped.append({"table": table, "reason": plan.reason})
        return
    if plan.remaining:
        logger.warning(
            "gap longer than 24 hours split: this run exports its first 24 hours, the next runs the rest",
            table=table,
            window_from=plan.window[0].isoformat() if plan.window else None,
            window_to=plan.window[1].isoformat() if plan.window else None,
            remaining=str(plan.remaining),
        )
    arn = start(table, export_prefix(table, run.scheduled_time), plan, run.scheduled_time, deadline)
    report.in_progress += 1
    window = {"from": plan.window[0].isoformat(), "to": plan.window[1].isoformat()} if plan.window else {}
    report.started.append({"table": table, "exportArn": arn, **window})
    logger.info("export started", table=table, export=arn, scheduled_time=run.scheduled_time.isoformat(), **window)


def earliest_restorable(table: str) -> datetime | None:
    """The table's earliest restorable time: no export reaches further back (PITR off: one clear error)."""
    description = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    pitr = description.get("PointInTimeRecoveryDescription") or {}
    if pitr.get("PointInTimeRecoveryStatus") != "ENABLED":
        raise ExportError(f"point-in-time recovery is off on {table}: turn it on, exports need it")
    earliest = pitr.get("EarliestRestorableDateTime")
    if earliest is None:
        return None
    # Rounded up to a whole second: the time DynamoDB reports may be cut below its own (to milliseconds).
    earliest = earliest.astimezone(timezone.utc)
    return earliest.replace(microsecond=0) + timedelta(seconds=1) if earliest.microsecond else earliest


def earlier_exports(table_arn: str, table: str, export_type: str) -> list[ExportRecord]:
    """This table's scheduled exports of this type, newest first, down to the latest completed one."""
    summaries: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableArn": table_arn}
    while True:
        page = dynamodb.list_exports(**request)
        summaries += page.get("ExportSummaries", [])
        if not page.get("NextToken"):
            break
        request["NextToken"] = page["NextToken"]
    # An export id begins with its start time in milliseconds: the ARNs sort by age.
    candidates = sorted(
        (s["ExportArn"] for s in summaries if s.get("ExportType", FULL_EXPORT) == export_type), reverse=True
    )
    records = []
    for arn in candidates[:MOST_DESCRIBED]:
        record = record_of(dynamodb.describe_export(ExportArn=arn)["ExportDescription"])
        if record.made_by_schedule(BUCKET, table):
            records.append(record)
            if record.status == COMPLETED:
                break
    return records


def start(table: str, prefix: str, plan: Plan, scheduled: datetime, deadline: float | None) -> str:
    """Request the export; while the scheduled time is not yet restorable, wait and ask again."""
    for _ in range(int(RESTORABLE_LAG.total_seconds() // WAIT_SECONDS)):
        try:
            return exports.start(
                table, BUCKET, prefix, export_time=plan.export_time, window=plan.window, kms_key=KMS_KEY
            )
        except ExportError as error:
            recent = now() - scheduled < RESTORABLE_LAG
            if "InvalidExportTime" not in str(error) or not recent or not _time_left(deadline):
                raise
            logger.info("export time not restorable yet; waiting", table=table, error=str(error))
            sleep(WAIT_SECONDS)
    return exports.start(table, BUCKET, prefix, export_time=plan.export_time, window=plan.window, kms_key=KMS_KEY)


def _deadline(context: Any) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return None if remaining is None else time.monotonic() + remaining() / 1000 - MARGIN_SECONDS


def _time_left(deadline: float | None) -> bool:
    """Room for one more wait: always without a Lambda context (the local stack), else before the margin."""
    return deadline is None or time.monotonic() + WAIT_SECONDS < deadline
