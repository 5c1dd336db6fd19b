"""`ddbsync local up` / `down` as a user runs them, driven with the AWS CLI exactly as seed 002 shows."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import psycopg2
import pytest

from ddbsync.local.stack import aws_environment
from tests.conftest import ROOT

SEED_STEPS = [
    [
        "put-item",
        "--table-name",
        "Employees",
        "--item",
        '{"Id": {"N": "2001"},"empDepartment": {"S": "AnyDept"},"empName": {"S": "Akua"}}',
    ],
    [
        "update-item",
        "--table-name",
        "Employees",
        "--key",
        '{"Id": {"N": "2001"}}',
        "--update-expression",
        "SET  empDepartment = :newval",
        "--expression-attribute-values",
        '{":newval": {"S": "ExDept"}}',
    ],
    ["delete-item", "--table-name", "Employees", "--key", '{"Id": {"N": "2001"}}'],
]
EXPECTED = [[(2001, "Akua", "AnyDept")], [(2001, "Akua", "ExDept")], []]


def run_aws_step(step: list[str], env: dict[str, str]) -> None:
    """The seed's AWS CLI command; boto3 with the same request where the CLI is not installed."""
    if shutil.which("aws"):
        subprocess.run(["aws", "dynamodb", *step], env=env, check=True, capture_output=True, timeout=60)
        return
    client = boto3.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"])
    args = dict(zip(step[1::2], step[2::2]))
    request = {"TableName": args["--table-name"]}
    for flag, name in (
        ("--item", "Item"),
        ("--key", "Key"),
        ("--expression-attribute-values", "ExpressionAttributeValues"),
    ):
        if flag in args:
            request[name] = json.loads(args[flag])
    if "--update-expression" in args:
        request["UpdateExpression"] = args["--update-expression"]
    getattr(client, step[0].replace("-", "_"))(**request)


def wait_for_rows(url: str, expected: list[tuple], timeout: float = 20) -> list[tuple]:
    deadline = time.monotonic() + timeout
    while True:
        with psycopg2.connect(url) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT id, name, department FROM employees ORDER BY id")
            rows = cursor.fetchall()
        connection.close()
        if rows == expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def ddbsync(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The `ddbsync` command, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "ddbsync.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def local_up(tmp_path):
    env = {**os.environ, "DDBSYNC_STATE_DIR": str(tmp_path / "state")}
    env.pop("DATABASE_URL", None)
    log = open(tmp_path / "local-up.log", "w")  # a file, not a pipe: the handler logs every batch
    process = subprocess.Popen(
        [sys.executable, "-m", "ddbsync.cli", "local", "up"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    state = tmp_path / "state" / "local.json"
    deadline = time.monotonic() + 60
    while not state.exists():
        assert process.poll() is None, (tmp_path / "local-up.log").read_text()
        assert time.monotonic() < deadline, "local up did not come up"
        time.sleep(0.1)
    yield process, json.loads(state.read_text()), env
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    log.close()


def test_seed_002_with_the_aws_cli_against_local_up_then_down(local_up):
    process, endpoints, env = local_up
    aws_env = {**env, **aws_environment(endpoints["aws_endpoint_url"])}

    for step, expected in zip(SEED_STEPS, EXPECTED):
        run_aws_step(step, aws_env)
        assert wait_for_rows(endpoints["database_url"], expected) == expected, step[0]
        if shutil.which("psql") and expected:
            shown = subprocess.run(
                ["psql", endpoints["database_url"], "-c", "SELECT * FROM employees"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert expected[0][2] in shown.stdout, shown.stderr

    down = ddbsync("local", "down", env=env)
    assert down.returncode == 0, down.stderr
    assert process.wait(timeout=30) == 0
    assert not alive(endpoints["moto_pid"]), "moto server left running"
    assert not Path(endpoints["data_dir"]).exists(), "data directory left behind"
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(endpoints["database_url"], connect_timeout=2)


def test_down_without_a_running_stack_says_so(tmp_path):
    env = {**os.environ, "DDBSYNC_STATE_DIR": str(tmp_path)}
    down = ddbsync("local", "down", env=env)
    assert down.returncode == 1 and "no local stack is running" in down.stderr


def test_bad_arguments_print_usage_not_a_traceback():
    result = ddbsync("demo", "--changes", "many")
    assert result.returncode == 2
    assert "usage: ddbsync demo" in result.stderr and "expected a positive whole number" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_replicates_and_matches_dynamodb():
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = ddbsync("demo", "--changes", "300", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2001 | Akua | ExDept" in result.stdout
    summary = result.stdout.split("Summary:")[1]
    for table in ("Employees -> employees", "Shop -> shop_customers", "Shop -> shop_orders"):
        assert f"{table}: " in summary and "equal to DynamoDB seen through the mapping: yes" in summary
    assert "NOT equal" not in summary
    assert "Local stack stopped." in result.stdout


def test_down_with_keep_leaves_the_data_directory(local_up):
    process, endpoints, env = local_up
    down = ddbsync("local", "down", "--keep", env=env)
    assert down.returncode == 0, down.stderr
    assert process.wait(timeout=30) == 0
    data_dir = Path(endpoints["data_dir"])
    assert (data_dir / "PG_VERSION").exists() and not (data_dir / "postmaster.pid").exists()
    shutil.rmtree(data_dir)
