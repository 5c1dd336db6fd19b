"""Scheduled exports without AWS: the function's input, where an export goes, what a run exports, when it fires.

EventBridge Scheduler hands the scheduled export function (`handlers.scheduled_export`) a fixed input and one
substituted value, `<aws.scheduler.scheduled-time>`. Everything else is worked out here from that time and the
exports already made, so the function, the local stack and the tests share one answer:
- `export_prefix`: `<table>/YYYY/MM/DD/`, the UTC date of the scheduled time (the date DynamoDB's manifests give).
- `plan_full`, `plan_incremental`: the export one run makes for one table. Incremental windows chain without
  gaps: each starts where the last completed one ended (a failed one is made again), one runs at a time per
  table, and each is clamped to DynamoDB's 15 minutes to 24 hours (a longer gap is exported 24 h per run) and
  to the table's point-in-time recovery window (what lies before it is reported lost).
- `table_health`: which exports failed and were not made good since (DynamoDB emits no event when an export ends).
- `next_fire`: when a `rate(...)` or `cron(...)` expression next fires in a time zone, as Scheduler evaluates it
  (for the local stack, where nothing fires by itself).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, Iterable, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ddbsync.exports.manifest import FULL_EXPORT, INCREMENTAL_EXPORT

SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"  # the one value Scheduler substitutes into a target's input
MIN_WINDOW = timedelta(minutes=15)  # DynamoDB's bounds for one incremental export's window
MAX_WINDOW = timedelta(hours=24)
COMPLETED, FAILED, IN_PROGRESS = "COMPLETED", "FAILED", "IN_PROGRESS"


class ScheduleError(ValueError):
    """A schedule expression, time zone or function input that cannot work; the message says what is wrong."""


# --- the function's input ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduledRun:
    """One invocation of the scheduled export function, as its input describes it."""

    schedule: str  # the schedule's name (a metric dimension)
    tables: tuple[str, ...]
    export_type: str  # FULL_EXPORT | INCREMENTAL_EXPORT
    scheduled_time: datetime  # aware, UTC
    first_window: timedelta = timedelta(minutes=60)  # incremental: the window when no export was made before


def schedule_input(schedule: str, tables: Sequence[str], export_type: str, window_minutes: int | None = None) -> dict:
    """The input a schedule gives the function; Scheduler fills in `scheduledTime` each time it fires."""
    document: dict[str, Any] = {"schedule": schedule, "tables": list(tables), "type": export_type}
    if export_type == INCREMENTAL_EXPORT:
        document["windowMinutes"] = window_minutes or 60
    document["scheduledTime"] = SCHEDULED_TIME
    return document


def read_event(event: dict[str, Any]) -> ScheduledRun:
    """The function's input, checked: a bad one names the field (it comes from the stack, or a hand-made test)."""
    try:
        tables = tuple(event["tables"]) if isinstance(event["tables"], (list, tuple)) else ()
        export_type = event.get("type", FULL_EXPORT)
        stamp = event["scheduledTime"]
    except (KeyError, TypeError):
        raise ScheduleError(f"the input needs tables and scheduledTime: {event!r}") from None
    if not tables or not all(isinstance(t, str) and t for t in tables):
        raise ScheduleError(f"input tables = {event['tables']!r}: expected a list of table names")
    if export_type not in (FULL_EXPORT, INCREMENTAL_EXPORT):
        raise ScheduleError(f"input type = {export_type!r}: allowed values are {FULL_EXPORT}, {INCREMENTAL_EXPORT}")
    if stamp == SCHEDULED_TIME:
        raise ScheduleError(f"scheduledTime is still {SCHEDULED_TIME}: invoked by hand, give an ISO 8601 time instead")
    minutes = event.get("windowMinutes", 60)
    if not isinstance(minutes, int) or not MIN_WINDOW <= timedelta(minutes=minutes) <= MAX_WINDOW:
        raise ScheduleError(f"input windowMinutes = {minutes!r}: allowed values are 15 to 1440")
    return ScheduledRun(
        str(event.get("schedule", "")), tables, export_type, parse_instant(stamp), timedelta(minutes=minutes)
    )


def parse_instant(text: Any) -> datetime:
    """An ISO 8601 time such as Scheduler's `2022-03-22T18:59:43Z`, as an aware UTC datetime."""
    try:
        parsed = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise ScheduleError(f"{text!r} is not an ISO 8601 time") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def export_prefix(table: str, scheduled: datetime) -> str:
    """Where a scheduled export of `table` goes: `<table>/YYYY/MM/DD/`, the scheduled time's UTC date."""
    return f"{table}/{scheduled.astimezone(timezone.utc):%Y/%m/%d}/"


# --- the exports already made -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRecord:
    """What `DescribeExport` says about one export, as much as a scheduled run needs."""

    arn: str
    status: str  # IN_PROGRESS | COMPLETED | FAILED
    export_type: str
    start_time: datetime
    bucket: str
    prefix: str
    export_time: datetime | None = None  # a full export's
    window: tuple[datetime, datetime] | None = None  # an incremental export's [from, to)
    failure: str = ""

    def made_by_schedule(self, bucket: str, table: str) -> bool:
        """Written where a schedule writes `table`'s exports, `<table>/YYYY/MM/DD` of the bucket.

        An export made by hand (`ddbsync export` writes under `<table>/manual/...`) must not move the
        chain of windows: one that began later than the chain's end would leave a gap behind it.
        """
        return (
            self.bucket == bucket
            and re.fullmatch(rf"{re.escape(table)}/\d{{4}}/\d{{2}}/\d{{2}}/?", self.prefix) is not None
        )


def _utc(moment: datetime) -> datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def record_of(description: dict[str, Any]) -> ExportRecord:
    """An `ExportDescription` (boto3's, times as datetimes) as an `ExportRecord`."""
    spec = description.get("IncrementalExportSpecification") or {}
    window = (_utc(spec["ExportFromTime"]), _utc(spec["ExportToTime"])) if "ExportToTime" in spec else None
    failure = " ".join(filter(None, (description.get("FailureCode"), description.get("FailureMessage"))))
    return ExportRecord(
        arn=description["ExportArn"],
        status=description["ExportStatus"],
        export_type=description.get("ExportType", FULL_EXPORT),
        start_time=_utc(description["StartTime"]),
        bucket=description.get("S3Bucket", ""),
        prefix=description.get("S3Prefix") or "",
        export_time=_utc(description["ExportTime"]) if description.get("ExportTime") else None,
        window=window,
        failure=failure,
    )


def _newest_first(records: Iterable[ExportRecord]) -> list[ExportRecord]:
    return sorted(records, key=lambda r: (r.start_time, r.arn), reverse=True)


@dataclass(frozen=True)
class TableHealth:
    """One table's scheduled exports of one type: failures not made good since, and exports still running."""

    failed: tuple[ExportRecord, ...]
    in_progress: tuple[ExportRecord, ...]
    latest_completed: ExportRecord | None

    @property
    def completed(self) -> bool:
        """Its latest finished export completed."""
        return self.latest_completed is not None and not self.failed


def table_health(records: Iterable[ExportRecord]) -> TableHealth:
    """Failed exports newer than the latest completed one (a later completed export makes a failure good)."""
    ordered = _newest_first(records)
    latest = next((r for r in ordered if r.status == COMPLETED), None)
    newer = [r for r in ordered if latest is None or r.start_time > latest.start_time]
    return TableHealth(
        failed=tuple(r for r in newer if r.status == FAILED),
        in_progress=tuple(r for r in ordered if r.status == IN_PROGRESS),
        latest_completed=latest,
    )


# --- what a run exports -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What one run does for one table: export (as of a time, or over a window), or skip, and why."""

    reason: str
    export_time: datetime | None = None
    window: tuple[datetime, datetime] | None = None
    remaining: timedelta = timedelta(0)  # of a gap longer than 24 h, what is left for the next runs
    lost: tuple[datetime, datetime] | None = None  # changes older than the table's PITR window: not exportable

    @property
    def exports(self) -> bool:
        """The run starts an export for the table."""
        return self.export_time is not None or self.window is not None


def plan_full(records: Iterable[ExportRecord], scheduled: datetime) -> Plan:
    """A full export as of the scheduled time, unless one was made already (a retried invocation)."""
    made = next((r for r in records if r.export_time == scheduled and r.status != FAILED), None)
    if made is not None:
        return Plan(f"already exported as of {scheduled.isoformat()} ({made.arn}, {made.status})")
    return Plan("scheduled full export", export_time=scheduled)


def plan_incremental(
    records: Iterable[ExportRecord], scheduled: datetime, first_window: timedelta, earliest: datetime | None = None
) -> Plan:
    """The next window of the chain: from the latest completed export's end up to the scheduled time.

    One export runs at a time, so a window is only started once the previous one is known to have
    completed; a failed window is exported again (from the last completed end, or from where the failed
    ones began). Without any export before, the first window is `first_window` back from the scheduled time,
    or from `earliest` (the table's earliest restorable time) for a younger table. A chain that ended before
    `earliest` cannot continue from there: it goes on from `earliest`, and the span between is `lost`.
    """
    ordered = _newest_first(records)
    latest = next((r for r in ordered if r.status != FAILED), None)
    if latest is not None and latest.status == IN_PROGRESS:
        return Plan(f"the previous export {latest.arn} is still running: the next window starts where it ends")
    chained = True
    if latest is not None and latest.window is not None:
        start = latest.window[1]
    elif failed := [r.window[0] for r in ordered if r.window is not None]:
        start = min(failed)
    else:
        start, chained = scheduled - first_window, False
    lost = None
    if earliest is not None and start < earliest:
        lost, start = ((start, earliest) if chained else None), earliest
    end = min(scheduled, start + MAX_WINDOW)
    if end - start < MIN_WINDOW:
        return Plan(
            f"only {max(end - start, timedelta(0))} since {start.isoformat()}: "
            "DynamoDB exports 15 minutes at least, a later run exports it",
            lost=lost,
        )
    return Plan("next window of the chain", window=(start, end), remaining=scheduled - end, lost=lost)


# --- when a schedule fires --------------------------------------------------------------------------------------


def time_zone(name: str) -> tzinfo:
    """An IANA time zone (`Europe/Berlin`, `UTC`), as EventBridge Scheduler names them."""
    try:
        return timezone.utc if name in ("UTC", "Etc/UTC") else ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"{name!r} is not a time zone (IANA names such as Europe/Berlin or UTC)") from None


@dataclass(frozen=True)
class Rate:
    """`rate(value unit)`: every `every`, counted from the schedule's start (its creation, or StartDate)."""

    every: timedelta

    def next_after(self, after: datetime, start: datetime | None = None) -> datetime:
        """The first fire time after `after`; without `start`, `after` is taken as the last fire time."""
        if start is None:
            return after + self.every
        if after < start:
            return start
        return start + ((after - start) // self.every + 1) * self.every


MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
WEEKDAYS = "SUN MON TUE WED THU FRI SAT".split()  # EventBridge counts 1 = SUN to 7 = SAT
# field -> (low, high, names of low, low+1, ...)
FIELDS = {
    "minutes": (0, 59, ()),
    "hours": (0, 23, ()),
    "day-of-month": (1, 31, ()),
    "month": (1, 12, MONTHS),
    "day-of-week": (1, 7, WEEKDAYS),
    "year": (1970, 2199, ()),
}
DayRule = int | tuple  # a day number, or ("L",), ("LW",), ("W", n) / ("L", weekday), ("#", weekday, n)


@dataclass(frozen=True)
class Cron:
    """`cron(minutes hours day-of-month month day-of-week year)` in EventBridge's syntax.

    Supported: `*`, `?`, lists `,`, ranges `-` (wrapping, as FRI-MON), steps `/`, month and weekday names,
    day-of-month `L`, `LW`, `15W`, day-of-week `L` (Saturday), `6L` (last Friday), `2#1` (first Monday).
    One of day-of-month and day-of-week is `?`, as EventBridge requires.
    """

    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    years: frozenset[int]
    days: frozenset[DayRule] | None  # day-of-month rules, None for `?`
    weekdays: frozenset[DayRule] | None  # day-of-week rules, None for `?`

    def next_after(self, after: datetime, zone: tzinfo) -> datetime | None:
        """The first fire time after `after` (aware), in UTC, evaluated in `zone`; None if it never fires again.

        As Scheduler does across daylight saving changes: a local time that does not exist (clocks forward)
        is skipped, and a repeated hour (clocks back) fires once, at its first occurrence.
        """
        if after.tzinfo is None:
            raise ScheduleError("next_after needs an aware datetime")
        first = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=1)
        day, times = first.date(), [time(h, m) for h in sorted(self.hours) for m in sorted(self.minutes)]
        while day.year <= FIELDS["year"][1]:
            if day.year not in self.years:
                day = date(day.year + 1, 1, 1)
            elif day.month not in self.months:
                day = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
            else:
                if self._fires_on(day):
                    for moment in times:
                        local = datetime.combine(day, moment)
                        if local >= first and (fire := _existing(local, zone)) is not None and fire > after:
                            return fire.astimezone(timezone.utc)
                day += timedelta(days=1)
        return None

    def _fires_on(self, day: date) -> bool:
        last = calendar.monthrange(day.year, day.month)[1]
        if self.days is not None:
            return any(_day_matches(rule, day, last) for rule in self.days)
        weekday = (day.weekday() + 1) % 7 + 1  # Python's Monday = 0 to EventBridge's Monday = 2
        return any(_weekday_matches(rule, day, weekday, last) for rule in self.weekdays or ())


def _existing(local: datetime, zone: tzinfo) -> datetime | None:
    """`local` in `zone` (its first occurrence), or None where clocks jump over it."""
    aware = local.replace(tzinfo=zone)
    back = aware.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None)
    return aware if back == local else None


def _nearest_weekday(year: int, month: int, day: int) -> int:
    """The weekday (Monday to Friday) nearest to `day` without leaving the month, as `15W` and `LW` mean."""
    weekday, last = date(year, month, day).weekday(), calendar.monthrange(year, month)[1]
    if weekday == 5:  # Saturday: the Friday before, or the Monday after the 1st
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: the Monday after, or the Friday before the month's last day
        return day + 1 if day < last else day - 2
    return day


def _day_matches(rule: DayRule, day: date, last: int) -> bool:
    if isinstance(rule, int):
        return day.day == rule
    if rule == ("L",):
        return day.day == last
    if rule == ("LW",):
        return day.day == _nearest_weekday(day.year, day.month, last)
    return rule[1] <= last and day.day == _nearest_weekday(day.year, day.month, rule[1])  # ("W", n)


def _weekday_matches(rule: DayRule, day: date, weekday: int, last: int) -> bool:
    if isinstance(rule, int):
        return weekday == rule
    if rule[0] == "L":  # the last such weekday of the month
        return weekday == rule[1] and day.day + 7 > last
    return weekday == rule[1] and (day.day - 1) // 7 + 1 == rule[2]  # ("#", weekday, n): its n-th in the month


def _number(text: str, field: str) -> int:
    low, high, names = FIELDS[field]
    value = low + names.index(text.upper()) if text.upper() in names else int(text) if text.isdigit() else None
    if value is None or not low <= value <= high:
        raise ScheduleError(
            f"{field} {text!r}: expected {low} to {high}" + (f" or {names[0]}-{names[-1]}" if names else "")
        )
    return value


def _values(item: str, field: str) -> set[int]:
    """`*`, `n`, `a-b` (wrapping past the end when a > b), each with an optional `/step`."""
    low, high, _ = FIELDS[field]
    base, _, step_text = item.partition("/")
    step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
    if step_text and step is None:
        raise ScheduleError(f"{field} {item!r}: a step is a positive number")
    if base == "*":
        first, last = low, high
    elif "-" in base:
        first, last = (_number(part, field) for part in base.split("-", 1))
    else:
        first = _number(base, field)
        last = high if step else first
    span = list(range(first, last + 1)) if first <= last else list(range(first, high + 1)) + list(range(low, last + 1))
    return set(span[:: step or 1])


def _field(text: str, field: str) -> frozenset[DayRule] | None:
    """One field's values and, for the day fields, their `?`, `L`, `W` and `#` rules."""
    if text == "?":
        if field not in ("day-of-month", "day-of-week"):
            raise ScheduleError(f"{field}: `?` is for day-of-month or day-of-week only")
        return None
    rules: set[DayRule] = set()
    for item in text.split(","):
        upper = item.upper()
        if field == "day-of-month" and upper in ("L", "LW"):
            rules.add((upper,))
        elif field == "day-of-month" and re.fullmatch(r"\d+W", upper):
            rules.add(("W", _number(upper[:-1], field)))
        elif field == "day-of-week" and upper == "L":
            rules.add(7)  # the week's last day
        elif field == "day-of-week" and re.fullmatch(r"\w+L", upper):
            rules.add(("L", _number(upper[:-1], field)))
        elif field == "day-of-week" and "#" in upper:
            weekday, _, nth = upper.partition("#")
            if "," in text or not nth.isdigit() or not 1 <= int(nth) <= 5:
                raise ScheduleError(f"day-of-week {text!r}: `#` takes one weekday and 1 to 5, alone in the field")
            rules.add(("#", _number(weekday, field), int(nth)))
        elif item:
            rules.update(_values(item, field))
        else:
            raise ScheduleError(f"{field} {text!r}: an empty list item")
    return frozenset(rules)


def parse_expression(expression: str) -> Rate | Cron:
    """A Scheduler expression: `rate(value unit)` or `cron(six fields)` (one-time `at(...)` is not a schedule)."""
    text = expression.strip()
    if rate := re.fullmatch(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)", text):
        value, unit = int(rate.group(1)), rate.group(2).rstrip("s")
        if value < 1:
            raise ScheduleError(f"{expression!r}: a rate is at least 1 {unit}")
        return Rate(timedelta(**{unit + "s": value}))
    cron = re.fullmatch(r"cron\((.*)\)", text)
    if not cron:
        raise ScheduleError(f"{expression!r}: expected rate(value unit) or cron(minutes hours day month weekday year)")
    fields = cron.group(1).split()
    if len(fields) != 6:
        raise ScheduleError(f"{expression!r}: a cron expression has six fields, not {len(fields)}")
    try:
        parsed = dict(zip(FIELDS, (_field(text, name) for text, name in zip(fields, FIELDS))))
    except ScheduleError as error:
        raise ScheduleError(f"{expression!r}: {error}") from None
    if (parsed["day-of-month"] is None) == (parsed["day-of-week"] is None):
        raise ScheduleError(f"{expression!r}: give `?` in exactly one of day-of-month and day-of-week")
    plain = {name: frozenset(v for v in parsed[name] or () if isinstance(v, int)) for name in FIELDS}
    return Cron(
        minutes=plain["minutes"],
        hours=plain["hours"],
        months=plain["month"],
        years=plain["year"],
        days=parsed["day-of-month"],
        weekdays=parsed["day-of-week"],
    )


def next_fire(expression: str, zone: str, after: datetime, start: datetime | None = None) -> datetime | None:
    """When a schedule next fires after `after` (aware), in UTC; None if never again.

    A cron expression is evaluated in `zone`. A rate counts from `start` (the schedule's creation or
    StartDate); without it, `after` is taken as the last fire time. Days are 24 hours, as Scheduler counts them.
    """
    parsed = parse_expression(expression)
    if isinstance(parsed, Rate):
        return _utc(parsed.next_after(after, start))
    return parsed.next_after(after, time_zone(zone))
