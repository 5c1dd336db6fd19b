"""The local stack: a moto server and a real PostgreSQL, with the mapped tables and migrations in place.

Everything an AWS deployment has that matters to replication, on one machine: DynamoDB tables with
streams (created from the same definitions the Pulumi program uses), an SQS queue as the on-failure
destination, a migrated PostgreSQL, and a stream runner per table that calls the Lambda handler.
The AWS CLI and boto3 reach it through `AWS_ENDPOINT_URL`; psql through the printed URL.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import boto3

from ddbsync.local.postgres import PostgresServer, free_port
from ddbsync.local.stream_runner import POLL_INTERVAL_SECONDS, BatchReport, StreamRunner
from schema.delivery import StreamDelivery
from schema.dynamodb import table_definition
from schema.migrations import upgrade_head
from schema.model import Mappings, load_mappings

HANDLER = "handlers.stream.handler"  # the same handler string the Pulumi program gives Lambda
FAILURE_QUEUE = "ddbsync-local-on-failure"
EXPORT_BUCKET = "ddbsync-local-exports"  # the stack's export bucket, as the Pulumi program declares one
REGION = "us-east-1"


def aws_environment(endpoint: str) -> dict[str, str]:
    """What boto3 and the AWS CLI need to talk to the moto server instead of AWS."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        # Without it, recent botocore sends DynamoDB Streams calls to an account endpoint moto does not serve.
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }


def load_handler(name: str = HANDLER) -> Any:
    """Import a handler by its Lambda handler string, as the Lambda runtime does."""
    module, _, function = name.rpartition(".")
    return getattr(importlib.import_module(module), function)


@dataclass
class MotoServer:
    """moto's HTTP server in its own process, so any AWS client on the machine can reach it."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log: Path) -> MotoServer:
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ddbsync.local.moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=1).read()
                return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"moto server exited; see {log}") from None
                time.sleep(0.1)
        raise RuntimeError(f"moto server did not answer on {self.endpoint}; see {log}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class LocalStack:
    """moto + PostgreSQL + the mapped tables + one stream runner per table."""

    mappings: Mappings = field(default_factory=load_mappings)
    settings: StreamDelivery = field(default_factory=StreamDelivery)  # what the Pulumi program deploys
    moto: MotoServer = field(default_factory=MotoServer)
    postgres: PostgresServer | None = None
    database_url: str = ""
    stream_arns: dict[str, str] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return self.moto.endpoint

    def start(self) -> LocalStack:
        """Start both servers, create the tables with streams, migrate the database, point clients at them.

        The database is the given server, else `$DATABASE_URL`, else a server of the stack's own.
        """
        if self.postgres is not None:
            self.database_url = self.postgres.url
        elif os.environ.get("DATABASE_URL"):
            self.database_url = os.environ["DATABASE_URL"]
        else:
            self.postgres = PostgresServer().start()
            self.database_url = self.postgres.url
        try:
            log_dir = self.postgres.data_dir if self.postgres else Path(os.environ.get("TMPDIR", "/tmp"))
            self.moto.start(log_dir / "moto.log")
            os.environ.update(aws_environment(self.endpoint))
            os.environ["DATABASE_URL"] = self.database_url
            upgrade_head(self.database_url)
            self._create_tables()
        except BaseException:
            self.stop()
            raise
        return self

    def _create_tables(self) -> None:
        dynamodb = self.client("dynamodb")
        for mapping in self.mappings:
            definition = table_definition(mapping)
            dynamodb.create_table(**definition.create_table_request())
            dynamodb.update_continuous_backups(  # PITR, as deployed: exports need it
                TableName=definition.name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
            table = dynamodb.describe_table(TableName=definition.name)["Table"]
            self.stream_arns[definition.name] = table["LatestStreamArn"]
        self.client("sqs").create_queue(QueueName=FAILURE_QUEUE)
        self.client("s3").create_bucket(Bucket=EXPORT_BUCKET)

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)

    @property
    def queue_url(self) -> str:
        """The on-failure queue's URL."""
        return self.client("sqs").get_queue_url(QueueName=FAILURE_QUEUE)["QueueUrl"]

    def runners(self, on_batch: Any = None, starting_position: str | None = None) -> list[StreamRunner]:
        """One event source mapping per table, all calling the Lambda handler.

        `starting_position` LATEST replicates only what is written from now on, as a mapping created
        on a table that already holds data does: the backfill brings the rest.
        """
        handler = load_handler()
        streams, sqs = self.client("dynamodbstreams"), self.client("sqs")
        queue_url = self.queue_url

        def on_failure(info: dict[str, Any]) -> None:
            sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(info))

        settings = replace(self.settings, starting_position=starting_position or self.settings.starting_position)
        return [
            StreamRunner(streams, arn, handler, settings, on_failure=on_failure, on_batch=on_batch)
            for arn in self.stream_arns.values()
        ]

    def endpoints(self) -> dict[str, Any]:
        return {
            "aws_endpoint_url": self.endpoint,
            "database_url": self.database_url,
            "tables": dict(self.stream_arns),
            "on_failure_queue": FAILURE_QUEUE,
            "export_bucket": EXPORT_BUCKET,
            "data_dir": str(self.postgres.data_dir) if self.postgres else None,
            "moto_pid": self.moto.process.pid if self.moto.process else None,
        }

    def stop(self, keep_data: bool = False) -> None:
        """Stop what was started; the database's data goes too unless asked to keep it."""
        self.moto.stop()
        if self.postgres is not None:
            self.postgres.stop(keep_data=keep_data)


@contextmanager
def handler_metrics_discarded() -> Iterator[None]:
    """Send the handler's CloudWatch output (EMF metrics on stdout, info logs) nowhere, for terminal use.

    Metrics are discarded rather than disabled: with POWERTOOLS_METRICS_DISABLED, Powertools still
    prints a metric set each time it reaches 100 values.
    """
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    with open(os.devnull, "w") as sink, redirect_stdout(sink):
        yield


def replicate_until(runners: list[StreamRunner], done: Callable[[], bool]) -> None:
    """Poll every runner at their poll interval, as the event source mappings would, until `done()`."""
    interval = runners[0].poll_interval_seconds if runners else POLL_INTERVAL_SECONDS
    while not done():
        for runner in runners:
            runner.poll()
        time.sleep(interval)


def drain(runners: list[StreamRunner], timeout: float = 60.0) -> None:
    """Poll until every runner has delivered all the stream holds (twice in a row, nothing new)."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 2:
        for runner in runners:
            runner.poll()
        quiet = quiet + 1 if all(r.caught_up() for r in runners) else 0
        if time.monotonic() > deadline:
            raise TimeoutError("the stream runners did not catch up in time")
        time.sleep(runners[0].poll_interval_seconds if runners else 0)


__all__ = [
    "BatchReport",
    "LocalStack",
    "aws_environment",
    "drain",
    "handler_metrics_discarded",
    "load_handler",
    "replicate_until",
]
