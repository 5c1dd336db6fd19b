"""Stack settings: every option of `Pulumi.<stack>.yaml`, its default, and the check of its value.

`__main__.py` reads the config and hands the raw values here, so a bad value fails `pulumi preview`
with the key and the allowed values in the message, before any resource is planned.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Callable, Mapping, Sequence

from ddbsync.exports.manifest import FULL_EXPORT, INCREMENTAL_EXPORT
from ddbsync.exports.schedule import MAX_WINDOW, MIN_WINDOW, Rate, ScheduleError, parse_expression, time_zone
from schema.delivery import STREAM_RETENTION_SECONDS, UNLIMITED, StreamDelivery

ARCHITECTURES = ("arm64", "x86_64")
DELIVERY = StreamDelivery()  # the defaults the local stack runs with too
SCHEDULE_EXPRESSION = re.compile(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(.+\)|off)$")


class SettingsError(ValueError):
    """A config value that cannot work; the message names the key and what is allowed."""


EXPORT_TYPES = {"full": FULL_EXPORT, "incremental": INCREMENTAL_EXPORT}
# S3 lifecycle transitions of the export bucket; the infrequent-access classes take objects 30 days old at least.
STORAGE_CLASSES = ("STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE")
MIN_TRANSITION_DAYS = {"STANDARD_IA": 30, "ONEZONE_IA": 30}
MINUTE = timedelta(minutes=1)
SCHEDULE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}$")


@dataclass(frozen=True)
class ScheduledExport:
    """One entry of `exportSchedules`: when, in which time zone, which tables, full or incremental."""

    name: str
    schedule: str  # an EventBridge Scheduler expression: rate(...) or cron(...)
    timezone: str = "UTC"
    type: str = "full"  # full | incremental
    tables: tuple[str, ...] = ()  # empty: every deployed table
    window_minutes: int = 60  # incremental: the first window's length (later windows chain from the last one)

    @property
    def export_type(self) -> str:
        """DynamoDB's name of the type: FULL_EXPORT or INCREMENTAL_EXPORT."""
        return EXPORT_TYPES[self.type]


@dataclass(frozen=True)
class StackSettings:
    """Typed stack configuration. Field names are the config keys in snake_case."""

    environment: str = "dev"
    vpc_cidr: str = "10.42.0.0/16"
    availability_zones: tuple[str, ...] = ()
    existing_vpc_id: str | None = None
    existing_subnet_ids: tuple[str, ...] = ()
    # Route tables of existingSubnetIds that get the S3 gateway endpoint; none: the VPC must already route S3.
    existing_route_table_ids: tuple[str, ...] = ()
    min_capacity: float = 0.5
    max_capacity: float = 4.0
    engine_version: str = "16.4"
    database_name: str = "ddbsync"
    deletion_protection: bool = False
    backup_retention_days: int = 7
    # What outlives an accidental `pulumi destroy`; each defaults to true outside dev.
    final_snapshot: bool = False
    keep_automated_backups: bool = False
    protect_resources: bool = False
    kms_key_administrators: tuple[str, ...] = ()
    flow_logs: bool = False
    rds_proxy: bool = False
    existing_cluster_endpoint: str | None = None
    existing_secret_arn: str | None = None
    existing_cluster_resource_id: str | None = None
    architecture: str = "arm64"
    memory_mb: int = 512
    timeout_seconds: int = DELIVERY.function_timeout_seconds
    batch_size: int = DELIVERY.batch_size
    batching_window_seconds: int = DELIVERY.maximum_batching_window_in_seconds
    maximum_retry_attempts: int = DELIVERY.maximum_retry_attempts
    maximum_record_age_seconds: int = DELIVERY.maximum_record_age_in_seconds
    parallelization_factor: int = DELIVERY.parallelization_factor
    redrive_schedule: str = "rate(1 hour)"
    # Replicator invocations at once, each with one database connection: shards x parallelization
    # beyond it wait (the event source mapping retries throttled batches), Aurora's connections do not run out.
    replicator_concurrency: int = 10  # `off`: re-drive only by hand (`ddbsync redrive`)
    # Backfill loads at once (the SQS event source mapping's maximum concurrency), each with one database
    # connection beside the replicator's: size replicatorConcurrency + backfillConcurrency to the database.
    backfill_concurrency: int = 4
    backfill_memory_mb: int = 1024
    backfill_max_receive_count: int = 5  # tries of one data file before it goes to the dead-letter queue
    log_retention_days: int = 30
    iterator_age_alarm_ms: int = 60_000
    alarm_topic_arn: str | None = None
    tables: tuple[str, ...] = ()  # DynamoDB tables (mapping names) to deploy; empty: all of them
    adopt_tables: tuple[str, ...] = ()  # existing DynamoDB tables to use instead of creating them
    export_schedules: tuple[ScheduledExport, ...] = ()  # none: exports only by hand
    # The export bucket's lifecycle: move objects to a storage class, delete them; 0: never.
    export_transition_days: int = 0
    export_transition_storage_class: str = "STANDARD_IA"
    export_expiration_days: int = 0

    def scheduled_exports(self, deployed: Sequence[str]) -> tuple[ScheduledExport, ...]:
        """The export schedules with their tables named (every deployed table where none are given), checked."""
        resolved = []
        for index, entry in enumerate(self.export_schedules):
            unknown = [t for t in entry.tables if t not in deployed]
            if unknown:
                raise SettingsError(
                    f"ddbsync:exportSchedules[{index}].tables names {unknown[0]!r}, which is not deployed "
                    f"(deployed: {', '.join(deployed)})"
                )
            resolved.append(replace(entry, tables=entry.tables or tuple(deployed)))
        chained: dict[str, str] = {}
        for entry in resolved:
            for table in entry.tables if entry.type == "incremental" else ():
                if table in chained:
                    raise SettingsError(
                        f"ddbsync:exportSchedules: {table!r} has two incremental schedules ({chained[table]!r} and "
                        f"{entry.name!r}); one chain of windows per table"
                    )
                chained[table] = entry.name
        return tuple(resolved)

    def delivery(self) -> StreamDelivery:
        """The event source mapping settings this stack deploys (and the local stack runs with by default)."""
        return StreamDelivery(
            batch_size=self.batch_size,
            maximum_batching_window_in_seconds=self.batching_window_seconds,
            maximum_retry_attempts=self.maximum_retry_attempts,
            maximum_record_age_in_seconds=self.maximum_record_age_seconds,
            parallelization_factor=self.parallelization_factor,
            function_timeout_seconds=self.timeout_seconds,
        )


LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


def _ranged(key: str, low: float, high: float, kind: Callable[[Any], Any] = int) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise SettingsError(f"ddbsync:{key} = {value!r}: expected a number from {low} to {high}") from None
        if not low <= number <= high:
            raise SettingsError(f"ddbsync:{key} = {value!r}: allowed values are {low} to {high}")
        return number

    return check


def _one_of(key: str, allowed: tuple[Any, ...], kind: Callable[[Any], Any] = str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        try:
            chosen = kind(value)
        except (TypeError, ValueError):
            chosen = None
        if chosen not in allowed:
            raise SettingsError(f"ddbsync:{key} = {value!r}: allowed values are {', '.join(map(str, allowed))}")
        return chosen

    return check


def _schedule(key: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = str(value).strip()
        if not SCHEDULE_EXPRESSION.match(text):
            raise SettingsError(
                f"ddbsync:{key} = {value!r}: allowed values are a schedule expression "
                "(rate(1 hour), cron(0 * * * ? *)) or off"
            )
        return text

    return check


def _export_schedules(key: str) -> Callable[[Any], tuple[ScheduledExport, ...]]:
    fields = {"name", "schedule", "timezone", "type", "tables", "windowMinutes"}

    def entry(index: int, raw: Any) -> ScheduledExport:
        where = f"ddbsync:{key}[{index}]"
        if not isinstance(raw, dict):
            raise SettingsError(f"{where} = {raw!r}: expected an object with schedule, type, timezone, tables")
        unknown = sorted(set(raw) - fields)
        if unknown:
            raise SettingsError(f"{where}.{unknown[0]} is not a field (known: {', '.join(sorted(fields))})")
        kind = raw.get("type", "full")
        if kind not in EXPORT_TYPES:
            raise SettingsError(f"{where}.type = {kind!r}: allowed values are full, incremental")
        if "schedule" not in raw:
            raise SettingsError(f"{where}.schedule is required: rate(1 day), cron(0 3 * * ? *), ...")
        try:
            expression = parse_expression(str(raw["schedule"]))
        except ScheduleError as error:
            raise SettingsError(f"{where}.schedule = {raw['schedule']!r}: {error}") from None
        try:
            zone = str(raw.get("timezone", "UTC"))
            time_zone(zone)
        except ScheduleError as error:
            raise SettingsError(f"{where}.timezone = {raw.get('timezone')!r}: {error}") from None
        if kind == "full" and "windowMinutes" in raw:
            raise SettingsError(f"{where}.windowMinutes is for incremental schedules only (type: incremental)")
        minutes = _ranged(f"{key}[{index}].windowMinutes", MIN_WINDOW // MINUTE, MAX_WINDOW // MINUTE)(
            raw.get("windowMinutes", 60)
        )
        if kind == "incremental" and isinstance(expression, Rate) and expression.every < MIN_WINDOW:
            raise SettingsError(
                f"{where}.schedule = {raw['schedule']!r}: an incremental export covers 15 minutes at least; "
                "schedule it every 15 minutes or less often"
            )
        name = str(raw.get("name", kind))
        if not SCHEDULE_NAME.match(name):
            raise SettingsError(f"{where}.name = {name!r}: lowercase letters, digits and hyphens, up to 20")
        tables = _names(f"{key}[{index}].tables")(raw["tables"]) if "tables" in raw else ()
        return ScheduledExport(name, str(raw["schedule"]).strip(), zone, kind, tables, minutes)

    def check(value: Any) -> tuple[ScheduledExport, ...]:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else []  # a YAML list in the stack file arrives as JSON
            except json.JSONDecodeError:
                raise SettingsError(f"ddbsync:{key} = {value!r}: expected a list of schedules") from None
        if not isinstance(value, list):
            raise SettingsError(f"ddbsync:{key} = {value!r}: expected a list of schedules")
        schedules = tuple(entry(index, raw) for index, raw in enumerate(value))
        names = [s.name for s in schedules]
        twice = next((n for n in names if names.count(n) > 1), None)
        if twice:
            raise SettingsError(f"ddbsync:{key}: two schedules are named {twice!r}: give each its own name")
        return schedules

    return check


def _boolean(key: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise SettingsError(f"ddbsync:{key} = {value!r}: allowed values are true, false")

    return check


def _names(key: str) -> Callable[[Any], tuple[str, ...]]:
    def check(value: Any) -> tuple[str, ...]:
        if isinstance(value, str) and value.lstrip().startswith("["):
            try:
                value = json.loads(value)  # a YAML list in the stack file arrives as JSON text
            except json.JSONDecodeError:
                raise SettingsError(f"ddbsync:{key} = {value!r}: expected a list of names") from None
        elif isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            raise SettingsError(f"ddbsync:{key} = {value!r}: expected a list of names")
        return tuple(value)

    return check


# config key -> (field, check)
OPTIONS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "environment": ("environment", _one_of("environment", ("dev", "staging", "prod"))),
    "vpcCidr": ("vpc_cidr", str),
    "availabilityZones": ("availability_zones", _names("availabilityZones")),
    "existingVpcId": ("existing_vpc_id", str),
    "existingSubnetIds": ("existing_subnet_ids", _names("existingSubnetIds")),
    "existingRouteTableIds": ("existing_route_table_ids", _names("existingRouteTableIds")),
    "minCapacity": ("min_capacity", _ranged("minCapacity", 0, 256, float)),
    "maxCapacity": ("max_capacity", _ranged("maxCapacity", 1, 256, float)),
    "engineVersion": ("engine_version", str),
    "databaseName": ("database_name", str),
    "deletionProtection": ("deletion_protection", _boolean("deletionProtection")),
    "backupRetentionDays": ("backup_retention_days", _ranged("backupRetentionDays", 1, 35)),
    "finalSnapshot": ("final_snapshot", _boolean("finalSnapshot")),
    "keepAutomatedBackups": ("keep_automated_backups", _boolean("keepAutomatedBackups")),
    "protectResources": ("protect_resources", _boolean("protectResources")),
    "kmsKeyAdministrators": ("kms_key_administrators", _names("kmsKeyAdministrators")),
    "flowLogs": ("flow_logs", _boolean("flowLogs")),
    "rdsProxy": ("rds_proxy", _boolean("rdsProxy")),
    "existingClusterEndpoint": ("existing_cluster_endpoint", str),
    "existingSecretArn": ("existing_secret_arn", str),
    "existingClusterResourceId": ("existing_cluster_resource_id", str),
    "architecture": ("architecture", _one_of("architecture", ARCHITECTURES)),
    "memoryMb": ("memory_mb", _ranged("memoryMb", 128, 10240)),
    "timeoutSeconds": ("timeout_seconds", _ranged("timeoutSeconds", 3, 900)),
    "batchSize": ("batch_size", _ranged("batchSize", 1, 10000)),
    "batchingWindowSeconds": ("batching_window_seconds", _ranged("batchingWindowSeconds", 0, 300)),
    "maximumRetryAttempts": ("maximum_retry_attempts", _ranged("maximumRetryAttempts", UNLIMITED, 10000)),
    # Past the stream's 24 h a set-aside range can no longer be re-driven: the age stays below it.
    "maximumRecordAgeSeconds": (
        "maximum_record_age_seconds",
        _ranged("maximumRecordAgeSeconds", 60, STREAM_RETENTION_SECONDS - 3600),
    ),
    "redriveSchedule": ("redrive_schedule", _schedule("redriveSchedule")),
    "replicatorConcurrency": ("replicator_concurrency", _ranged("replicatorConcurrency", 1, 1000)),
    "parallelizationFactor": ("parallelization_factor", _ranged("parallelizationFactor", 1, 10)),
    # An SQS event source mapping's maximum concurrency: AWS allows 2 to 1000.
    "backfillConcurrency": ("backfill_concurrency", _ranged("backfillConcurrency", 2, 1000)),
    "backfillMemoryMb": ("backfill_memory_mb", _ranged("backfillMemoryMb", 128, 10240)),
    # SQS allows a maxReceiveCount of 1 to 1000.
    "backfillMaxReceiveCount": ("backfill_max_receive_count", _ranged("backfillMaxReceiveCount", 1, 1000)),
    "logRetentionDays": ("log_retention_days", _one_of("logRetentionDays", LOG_RETENTION_DAYS, int)),
    "iteratorAgeAlarmMs": ("iterator_age_alarm_ms", _ranged("iteratorAgeAlarmMs", 1000, 86_400_000)),
    "alarmTopicArn": ("alarm_topic_arn", str),
    "tables": ("tables", _names("tables")),
    "adoptTables": ("adopt_tables", _names("adoptTables")),
    "exportSchedules": ("export_schedules", _export_schedules("exportSchedules")),
    # S3 lifecycle days: 0 (never) up to 100 years.
    "exportTransitionDays": ("export_transition_days", _ranged("exportTransitionDays", 0, 36500)),
    "exportTransitionStorageClass": (
        "export_transition_storage_class",
        _one_of("exportTransitionStorageClass", STORAGE_CLASSES),
    ),
    "exportExpirationDays": ("export_expiration_days", _ranged("exportExpirationDays", 0, 36500)),
}


def parse_settings(raw: Mapping[str, Any]) -> StackSettings:
    """Check every given option; production defaults follow from `environment` unless set."""
    unknown = sorted(set(raw) - set(OPTIONS))
    if unknown:
        raise SettingsError(f"ddbsync:{unknown[0]} is not an option (known: {', '.join(sorted(OPTIONS))})")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None:
            continue
        name, check = OPTIONS[key]
        values[name] = check(value)
    if values.get("environment") == "prod":
        values.setdefault("rds_proxy", True)
        values.setdefault("deletion_protection", True)
        values.setdefault("backup_retention_days", 14)
    if values.get("environment", "dev") != "dev":
        for name in ("final_snapshot", "keep_automated_backups", "protect_resources", "flow_logs"):
            values.setdefault(name, True)
    settings = StackSettings(**values)
    if settings.min_capacity > settings.max_capacity:
        raise SettingsError(
            f"ddbsync:minCapacity ({settings.min_capacity}) must not exceed "
            f"ddbsync:maxCapacity ({settings.max_capacity})"
        )
    if bool(settings.existing_vpc_id) != bool(settings.existing_subnet_ids):
        raise SettingsError("ddbsync:existingVpcId and ddbsync:existingSubnetIds go together: set both or neither")
    if settings.existing_route_table_ids and not settings.existing_vpc_id:
        raise SettingsError(
            "ddbsync:existingRouteTableIds names route tables of ddbsync:existingVpcId: set it only with that VPC"
        )
    if bool(settings.existing_cluster_endpoint) != bool(settings.existing_secret_arn):
        raise SettingsError(
            "ddbsync:existingClusterEndpoint and ddbsync:existingSecretArn go together: set both or neither"
        )
    if settings.existing_cluster_endpoint and not (settings.existing_cluster_resource_id or "").startswith("cluster-"):
        raise SettingsError(
            "ddbsync:existingClusterEndpoint needs ddbsync:existingClusterResourceId, the cluster's resource id "
            "(cluster-..., `aws rds describe-db-clusters --query 'DBClusters[].DbClusterResourceId'`), "
            "so that rds-db:connect names that cluster only"
        )
    bad_admins = [a for a in settings.kms_key_administrators if not a.startswith("arn:")]
    if bad_admins:
        raise SettingsError(f"ddbsync:kmsKeyAdministrators = {bad_admins[0]!r}: expected IAM role or user ARNs")
    if settings.existing_subnet_ids and len(settings.existing_subnet_ids) < 2:
        raise SettingsError("ddbsync:existingSubnetIds: Aurora needs subnets in at least two availability zones")
    _check_lifecycle(settings)
    return settings


def _check_lifecycle(settings: StackSettings) -> None:
    """S3 refuses an infrequent-access transition under 30 days, and an expiry that comes before the transition."""
    days, storage = settings.export_transition_days, settings.export_transition_storage_class
    least = MIN_TRANSITION_DAYS.get(storage, 0)
    if days and days < least:
        raise SettingsError(
            f"ddbsync:exportTransitionDays = {days}: S3 moves objects to {storage} after {least} days at the earliest"
        )
    if days and settings.export_expiration_days and settings.export_expiration_days <= days:
        raise SettingsError(
            f"ddbsync:exportExpirationDays ({settings.export_expiration_days}) must exceed "
            f"ddbsync:exportTransitionDays ({days}): objects are deleted after they move, or set no transition"
        )
