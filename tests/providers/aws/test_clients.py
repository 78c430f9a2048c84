"""A lab's moto clients (migrate/providers/aws/clients.lab_clients) are made once per moto server and
process: every adapter and every engine run asks for them, and a new session parses AWS's service
models again."""

from __future__ import annotations

from migrate.providers.aws.clients import lab_clients


def test_one_set_of_lab_clients_per_moto_server():
    first = lab_clients("http://127.0.0.1:1")
    assert lab_clients("http://127.0.0.1:1") is first
    assert first("route53", "us-east-1") is lab_clients("http://127.0.0.1:1")("route53", "us-east-1")
    other = lab_clients("http://127.0.0.1:2")  # another lab's moto: its own clients, on its own endpoint
    assert other is not first and other("route53", "us-east-1").meta.endpoint_url == "http://127.0.0.1:2"
