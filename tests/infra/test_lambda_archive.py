"""The Lambda archive: what it holds, that it is reproducible, and that the handlers import from it."""

from __future__ import annotations

import platform
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra.package import build_lambda_archive, runtime_requirements

HOST_ARCH = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
HOST_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
# What the Lambda Python runtime provides, so the archive leaves it out.
RUNTIME_MODULES = {"boto3", "botocore", "jmespath", "s3transfer", "dateutil", "urllib3", "six", "certifi"}


@pytest.fixture(scope="module")
def host_archive(tmp_path_factory):
    """The archive built for this machine's platform, so its compiled wheels load here."""
    if HOST_ARCH is None:
        pytest.skip(f"no Lambda architecture matches {platform.machine()}")
    return build_lambda_archive(HOST_ARCH, HOST_PYTHON)


def test_archive_holds_the_handlers_the_mappings_and_the_migrations(host_archive):
    names = set(zipfile.ZipFile(host_archive.path).namelist())
    assert {
        "handlers/stream.py",
        "handlers/migrate.py",
        "handlers/redrive.py",
        "alembic.ini",
        "schema/env.py",
        "schema/mappings/employees.toml",
        "schema/mappings/dynamotest.toml",
        "schema/certs/rds-ca-bundle.pem",  # verify-full against Aurora and the RDS Proxy
    } <= names
    assert any(
        n.startswith("schema/versions/") and n.endswith("_initial_tables_for_the_shipped_mappings.py") for n in names
    )
    assert any(n.startswith("ddbsync/exports/") for n in names), "the export reader the backfill function loads with"
    assert any(n.startswith("psycopg2/") for n in names) and any(n.startswith("aws_lambda_powertools/") for n in names)
    assert not any(
        n.startswith(("boto3/", "botocore/", "tests/", "infra/", "ddbsync/local/", "ddbsync/cli/")) for n in names
    )
    assert not any("__pycache__" in n for n in names)


def test_archive_is_reproducible(host_archive):
    again = build_lambda_archive(HOST_ARCH, HOST_PYTHON)
    assert again.sha256_base64 == host_archive.sha256_base64
    for info in zipfile.ZipFile(host_archive.path).infolist():
        assert info.date_time == (1980, 1, 1, 0, 0, 0)


def lambda_runtime_path(tmp_path) -> str:
    """A folder with only what the Lambda Python runtime brings (boto3 and its dependencies)."""
    import boto3

    site_packages = Path(boto3.__file__).parent.parent
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    for name in RUNTIME_MODULES:
        for candidate in (site_packages / name, site_packages / f"{name}.py"):
            if candidate.exists():
                (runtime / candidate.name).symlink_to(candidate)
    return str(runtime)


def test_handlers_import_from_the_unpacked_archive_alone(host_archive, tmp_path):
    task = tmp_path / "task"
    zipfile.ZipFile(host_archive.path).extractall(task)
    probe = (
        "import handlers.stream, handlers.migrate, handlers.redrive; "
        "print(handlers.stream.MAPPINGS.for_sql_table('employees').dynamodb_table)"
    )
    # -S: no site-packages and no .pth hooks; only the archive and the runtime's own modules.
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PYTHONPATH": f"{task}:{lambda_runtime_path(tmp_path)}",
            "DATABASE_URL": "postgresql://unused",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PATH": "/usr/bin:/bin",
        },
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Employees"


def test_default_archive_targets_lambdas_platform():
    archive = build_lambda_archive("arm64", "3.12")
    names = zipfile.ZipFile(archive.path).namelist()
    assert "psycopg2/_psycopg.cpython-312-aarch64-linux-gnu.so" in names


def test_runtime_requirements_come_from_the_project_without_boto3():
    requirements = runtime_requirements()
    assert any(r.startswith("psycopg2-binary") for r in requirements)
    assert not any(r.startswith("boto3") for r in requirements)
