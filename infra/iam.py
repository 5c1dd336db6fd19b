"""IAM policy documents as plain data, so tests can parse and check every statement."""

from __future__ import annotations

import json
from typing import Any, Sequence


def statement(actions: Sequence[str], resources: Sequence[str], sid: str | None = None) -> dict[str, Any]:
    """One Allow statement naming its resources."""
    result: dict[str, Any] = {"Effect": "Allow", "Action": list(actions), "Resource": list(resources)}
    if sid:
        result["Sid"] = sid
    return result


def policy_document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def assume_role_policy(service: str, source_account: str | None = None) -> str:
    """Trust policy letting one AWS service assume the role; for this account's resources only, when named."""
    trust: dict[str, Any] = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if source_account:
        # Keeps the service acting for another account from using this role (the confused deputy).
        trust["Condition"] = {"StringEquals": {"aws:SourceAccount": source_account}}
    return json.dumps({"Version": "2012-10-17", "Statement": [trust]})
