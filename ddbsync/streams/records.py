"""Stream records read through the DynamoDB Streams API, in the shape Lambda delivers them.

boto3 returns typed values with binary as bytes and creation times as datetimes; Lambda's JSON event
carries binary as base64 text, times as epoch numbers and adds `eventSourceARN`. Whoever reads a
stream itself (the local runner, the re-drive) hands the handler's core Lambda's shape, so the core
sees one shape only.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any


def lambda_json(value: Any) -> Any:
    """boto3's typed values with binary as base64 text, as Lambda's JSON carries it."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {k: lambda_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lambda_json(v) for v in value]
    return value


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A record from get_records in the shape Lambda delivers (epoch times, base64, eventSourceARN)."""
    dynamodb = {k: lambda_json(v) for k, v in record["dynamodb"].items() if k != "ApproximateCreationDateTime"}
    created = record["dynamodb"].get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = created.timestamp()
    elif created is not None:
        dynamodb["ApproximateCreationDateTime"] = created
    return {**{k: v for k, v in record.items() if k != "dynamodb"}, "dynamodb": dynamodb, "eventSourceARN": stream_arn}
