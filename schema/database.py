"""Where the database is: `DATABASE_URL`, or a Secrets Manager secret named by the environment.

Used by Alembic's env.py and by the handlers, so that migrations and replication always talk to the
same database with the same TLS rules.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import quote, urlencode

DATABASE_URL_ENV = "DATABASE_URL"
SECRET_ARN_ENV = "DDBSYNC_DB_SECRET_ARN"
# RDS-managed master secrets hold only username and password; the rest comes from here.
HOST_ENV, PORT_ENV, NAME_ENV = "DDBSYNC_DB_HOST", "DDBSYNC_DB_PORT", "DDBSYNC_DB_NAME"
SSL_ROOT_CERT_ENV = "DDBSYNC_DB_SSLROOTCERT"
# Amazon RDS's CA bundle and Amazon Trust Services' roots, shipped in the Lambda archive (see
# certs/README.md): Aurora's certificates chain to the first, RDS Proxy's (issued by ACM) to the second,
# so every connection built here authenticates the server it talks to.
RDS_CA_BUNDLE = Path(__file__).resolve().parent / "certs" / "rds-ca-bundle.pem"
# With this set, the handler connects as this database user with an IAM authentication token.
IAM_USER_ENV = "DDBSYNC_DB_IAM_USER"


class DatabaseConfigError(RuntimeError):
    """Neither a database URL nor a usable secret is configured."""


def url_from_secret(secret: Mapping[str, object], env: Mapping[str, str] = os.environ) -> str:
    """A libpq URL from a Secrets Manager database secret; the server's certificate is always verified."""

    def pick(key: str, env_key: str, default: str | None = None) -> str:
        value = secret.get(key) or env.get(env_key) or default
        if value is None:
            raise DatabaseConfigError(f"the database secret has no {key!r} and ${env_key} is not set")
        return str(value)

    user, password = pick("username", "DDBSYNC_DB_USER"), pick("password", "DDBSYNC_DB_PASSWORD")
    host, port = pick("host", HOST_ENV), pick("port", PORT_ENV, "5432")
    dbname = pick("dbname", NAME_ENV, "postgres")
    return _tls_url(user, password, host, port, dbname, env)


def _tls_url(user: str, password: str, host: str, port: str, dbname: str, env: Mapping[str, str]) -> str:
    """A libpq URL with `verify-full`: an impostor at the host's name gets neither the password nor a row.

    The CA bundle is RDS's unless `$DDBSYNC_DB_SSLROOTCERT` names another (a local server's own certificate).
    """
    tls = {"sslmode": "verify-full", "sslrootcert": env.get(SSL_ROOT_CERT_ENV) or str(RDS_CA_BUNDLE)}
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"postgresql://{credentials}@{host}:{port}/{quote(dbname, safe='')}?{urlencode(tls)}"


def url_for_iam_user(token: str, env: Mapping[str, str] = os.environ) -> str:
    """A libpq URL for `$DDBSYNC_DB_IAM_USER` with an IAM token as password; the server is always verified."""
    missing = [key for key in (IAM_USER_ENV, HOST_ENV) if not env.get(key)]
    if missing:
        raise DatabaseConfigError(f"IAM authentication needs ${' and $'.join(missing)}")
    port, dbname = env.get(PORT_ENV, "5432"), env.get(NAME_ENV, "postgres")
    return _tls_url(env[IAM_USER_ENV], token, env[HOST_ENV], port, dbname, env)


def url_with_iam_token(rds_client, env: Mapping[str, str] = os.environ) -> str:
    """A URL for `$DDBSYNC_DB_IAM_USER` with a fresh token: tokens live fifteen minutes, so make one per connection."""
    token = rds_client.generate_db_auth_token(
        DBHostname=env[HOST_ENV], Port=int(env.get(PORT_ENV, "5432")), DBUsername=env[IAM_USER_ENV]
    )
    return url_for_iam_user(token, env)


def libpq_url(url: str) -> str:
    """Accept SQLAlchemy-style URLs too (`postgresql+psycopg2://`) where libpq wants `postgresql://`."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.startswith(("postgresql+", "postgres+")):
        return f"postgresql://{rest}"
    if scheme == "postgres":
        return f"postgresql://{rest}"
    return url


def sqlalchemy_url(url: str) -> str:
    """SQLAlchemy 2.1 maps `postgresql://` to psycopg 3; ddbsync uses psycopg2 everywhere."""
    scheme, sep, rest = libpq_url(url).partition("://")
    return f"postgresql+psycopg2://{rest}" if sep else url


def _fetch_secret_with_boto3(arn: str) -> str:
    import boto3  # only when a secret is used: local runs and tests need no AWS client

    return boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]


def resolve_database_url(
    fetch_secret: Callable[[str], str] = _fetch_secret_with_boto3, env: Mapping[str, str] = os.environ
) -> str:
    """`$DATABASE_URL` if set, else the URL built from the secret `$DDBSYNC_DB_SECRET_ARN`."""
    if env.get(DATABASE_URL_ENV):
        return libpq_url(env[DATABASE_URL_ENV])
    arn = env.get(SECRET_ARN_ENV)
    if not arn:
        raise DatabaseConfigError(f"set ${DATABASE_URL_ENV} or ${SECRET_ARN_ENV} to say which database to use")
    try:
        secret = json.loads(fetch_secret(arn))
    except json.JSONDecodeError:
        raise DatabaseConfigError(f"the secret {arn} is not JSON") from None
    return url_from_secret(secret, env)
