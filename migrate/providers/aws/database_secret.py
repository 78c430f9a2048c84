"""The Aurora writer's database credentials, read from AWS Secrets Manager when a phase needs the
database itself (the schema phases, data verification), and only then.

The secret is the JSON RDS and its rotation functions keep: {"username", "password", …}; `host`,
`port` and `dbname` in it are ignored, because the writer moves (cutover) and RDS, not a copy in a
secret, says where it is now. The password never leaves this object except into a connection:
not in its repr, an error message, a log line or the journal."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from migrate.errors import ProviderError
from migrate.providers.aws.clients import ClientFactory, call


@dataclass(frozen=True)
class DatabaseCredentials:
    username: str
    password: str = field(repr=False)
    secret_id: str = ""  # where they came from (for messages; not secret)


def read_database_secret(clients: ClientFactory, region: str, secret_id: str) -> DatabaseCredentials:
    """The username and password in secret `secret_id`; ProviderError (naming the secret, never its value)
    when it is missing, unreadable or not the RDS JSON shape."""
    answer = call(clients("secretsmanager", region), "get_secret_value", region, SecretId=secret_id)
    text = (answer or {}).get("SecretString")
    if not text:
        raise ProviderError(f"secret {secret_id!r} has no SecretString", where="aws",
                            hint="store the database credentials as RDS JSON: {\"username\": …, \"password\": …}")
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError:
        raise ProviderError(f"secret {secret_id!r} is not JSON", where="aws",
                            hint="store the database credentials as RDS JSON: {\"username\": …, \"password\": …}") from None
    if not isinstance(value, dict) or not all(isinstance(value.get(k), str) and value.get(k)
                                              for k in ("username", "password")):
        raise ProviderError(f"secret {secret_id!r} lacks a username or a password", where="aws",
                            hint="store the database credentials as RDS JSON: {\"username\": …, \"password\": …}")
    return DatabaseCredentials(value["username"], value["password"], secret_id)
