"""boto3 sessions made by the adapters (migrate/providers/aws/clients.py) read AWS's service models
through one loader per process: each adapter and each engine run makes its own session, and a
botocore session otherwise parses every model again."""

from __future__ import annotations

from migrate.providers.aws import clients
from migrate.providers.aws.clients import AwsClients, lab_clients, new_session


def _loader(session):
    return session._session.get_component("data_loader")


def test_every_session_the_adapters_make_reads_models_through_one_loader():
    first, second = new_session(), new_session()
    assert first is not second and first._session is not second._session  # credentials stay per session
    assert _loader(first) is _loader(second) is clients._MODELS
    lab = lab_clients("http://127.0.0.1:1")
    lab("route53", "us-east-1")
    assert _loader(lab._session) is clients._MODELS


def test_a_model_read_once_is_not_read_again_by_another_sessions_client(monkeypatch):
    AwsClients(endpoint_url="http://127.0.0.1:1")("route53", "us-east-1")  # read (or already read) once
    read = []
    files = clients._MODELS.file_loader  # what reads and parses the JSON files
    real = files.load_file
    monkeypatch.setattr(files, "load_file", lambda path: read.append(path) or real(path))
    AwsClients(endpoint_url="http://127.0.0.1:1")("route53", "us-east-1")
    assert read == []
