"""Verified TLS: the functions authenticate the database server with RDS's CA bundle, shipped beside them."""

from __future__ import annotations

import json
import ssl
from urllib.parse import parse_qs, urlsplit

import psycopg2
import pytest

from schema.database import RDS_CA_BUNDLE, url_for_iam_user, url_from_secret
from tests.handlers.conftest import iam_login
from tests.handlers.test_stream_handler import load_handler
from tests.streams import ModelTable, event


def tls_settings(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def test_the_shipped_bundle_holds_the_rds_and_amazon_trust_services_roots_and_nothing_else():
    context = ssl.create_default_context(cafile=str(RDS_CA_BUNDLE))
    authorities = [dict(pair for rdn in a["subject"] for pair in rdn) for a in context.get_ca_certs()]
    self_signed = [a["issuer"] == a["subject"] for a in context.get_ca_certs()]
    assert all(self_signed), "roots only"
    rds = [a for a in authorities if a.get("organizationalUnitName") == "Amazon RDS"]
    assert len(rds) >= 100, "an RSA2048, an RSA4096 and an ECC384 root per region, for Aurora"
    for authority in rds:
        assert authority["organizationName"] == "Amazon Web Services, Inc.", authority
        assert authority["commonName"].startswith("Amazon RDS ") and " Root CA " in authority["commonName"]
    names = {a["commonName"] for a in rds}
    assert {
        f"Amazon RDS {region} Root CA RSA2048 G1" for region in ("us-east-1", "eu-west-1", "ap-southeast-2")
    } <= names
    others = sorted(a["commonName"] for a in authorities if a not in rds)
    assert others == [
        "Amazon Root CA 1",
        "Amazon Root CA 2",
        "Amazon Root CA 3",
        "Amazon Root CA 4",
        "Starfield Services Root Certificate Authority - G2",
    ], "the RDS Proxy's ACM certificate chains to Amazon Trust Services"


def test_urls_for_aws_verify_the_server_with_the_rds_bundle_by_default():
    secret = {"username": "owner", "password": "p", "host": "db.cluster-x.eu-west-1.rds.amazonaws.com"}
    iam_env = {"DDBSYNC_DB_IAM_USER": "ddbsync_replicator", "DDBSYNC_DB_HOST": "db.proxy-x.eu-west-1.rds.amazonaws.com"}
    for url in (url_from_secret(secret, env={}), url_for_iam_user("token", env=iam_env)):
        assert tls_settings(url) == {"sslmode": "verify-full", "sslrootcert": str(RDS_CA_BUNDLE)}
    local = url_from_secret(secret, env={"DDBSYNC_DB_SSLROOTCERT": "/etc/local-ca.pem"})
    assert tls_settings(local) == {"sslmode": "verify-full", "sslrootcert": "/etc/local-ca.pem"}


def test_the_replicator_refuses_a_server_whose_certificate_rds_did_not_sign(monkeypatch, aws, tls_server, caplog):
    # Given a TLS server with a self-signed certificate, reached as the deployed replicator reaches Aurora
    server, name = tls_server
    stream = load_handler(monkeypatch, **iam_login(server, name))
    monkeypatch.delenv("DDBSYNC_DB_SSLROOTCERT", raising=False)
    record = ModelTable("Employees", ("Id",)).put({"Id": 1, "empName": "never sent"})

    # When a batch arrives
    response = stream.handler(event([record]), None)
    stream.replicator.close()

    # Then nothing is sent to it (no token, no row): the batch waits for a server that proves who it is
    assert response == {"batchItemFailures": [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]}
    assert "certificate verify failed" in caplog.text


def test_the_migration_runner_refuses_it_too(monkeypatch, aws, tls_server):
    server, _ = tls_server
    secret = aws.create_secret(Name="rds!owner", SecretString=json.dumps({"username": "postgres", "password": "x"}))
    monkeypatch.delenv("DDBSYNC_DB_SSLROOTCERT", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for key, value in {"DDBSYNC_DB_SECRET_ARN": secret["ARN"], "DDBSYNC_DB_HOST": "127.0.0.1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DDBSYNC_DB_PORT", str(server.port))
    from handlers import migrate

    with pytest.raises(Exception, match="certificate verify failed"):
        migrate.handler({"trigger": "tls"}, None)


def test_a_trusted_certificate_for_another_name_is_refused(tls_server):
    # The server's own certificate is trusted, but it names 127.0.0.1, not localhost: verify-full checks both.
    server, name = tls_server
    url = f"postgresql://postgres@localhost:{server.port}/{name}?sslmode=verify-full&sslrootcert={server.certificate}"
    with pytest.raises(psycopg2.OperationalError, match="does not match host name|server certificate for"):
        psycopg2.connect(url)
