"""boto3 clients per (service, region), and the one place where botocore errors become project errors.

Every AWS call an adapter makes goes through `call()`, so no botocore exception crosses the adapter's
edge: throttling, 5xx and connection trouble become TransientProviderError (the engine retries those),
everything else ProviderError with one line naming the operation, the region and AWS's code and message.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable, Collection
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError as BotoConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from migrate.errors import ProviderError, TransientProviderError

ClientFactory = Callable[[str, str], Any]  # (service, region) -> a botocore client for that region

# AWS error codes that mean "try again later" whatever their HTTP status (some come back as 400).
TRANSIENT_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestThrottledException", "RequestLimitExceeded", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "SlowDown", "PriorRequestNotComplete",
    "RequestTimeout", "RequestTimeoutException", "ServiceUnavailable", "ServiceUnavailableException",
    "InternalError", "InternalFailure", "InternalServerError", "EC2ThrottledException",
})

_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b")
_SIGNATURE = re.compile(r"(Signature|Credential|X-Amz-Security-Token|X-Amz-Credential)=[^\s,&]+", re.I)
_MAX_MESSAGE = 300


def client_config(endpoint_url: str | None) -> Config:
    """Retry policy: none against a local moto server (its 500s are bugs, not load), AWS's standard mode otherwise."""
    if endpoint_url:
        return Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60)
    return Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=60)


class AwsClients:
    """A ClientFactory that creates one client per (service, region) on first use and reuses it."""

    def __init__(self, session: boto3.Session | None = None, endpoint_url: str | None = None) -> None:
        self._session = session
        self._endpoint_url = endpoint_url
        self._clients: dict[tuple[str, str], Any] = {}
        # boto3 sessions are not thread-safe for client creation; clients themselves are.
        self._lock = threading.Lock()

    def __call__(self, service: str, region: str) -> Any:
        key = (service, region)
        with self._lock:
            if key not in self._clients:
                try:
                    # One session for all clients: its loaders cache the service models.
                    self._session = self._session or boto3.Session()
                    self._clients[key] = self._session.client(
                        service, region_name=region, endpoint_url=self._endpoint_url,
                        config=client_config(self._endpoint_url))
                except Exception as exc:  # a bad profile or endpoint: still a one-line project error
                    raise translate(exc, service=service, operation="CreateClient", region=region) from None
            return self._clients[key]


def call(client: Any, method: str, region: str, *, absent: Collection[str] = (), **params: Any) -> dict | None:
    """Run `client.<method>(**params)`; None when AWS answers with an error code listed in `absent`."""
    try:
        return getattr(client, method)(**params)
    except ClientError as exc:
        if _error_code(exc) in absent:
            return None
        raise translate(exc, service=_service(client), operation=_api_name(client, method), region=region) from None
    except BotoCoreError as exc:
        raise translate(exc, service=_service(client), operation=_api_name(client, method), region=region) from None


def translate(exc: BaseException, *, service: str, operation: str, region: str) -> ProviderError:
    """One project error for one botocore failure; the message is one line and carries no credentials."""
    details: dict[str, Any] = {"service": service, "operation": operation, "region": region}
    if isinstance(exc, ClientError):
        code = _error_code(exc)
        meta = exc.response.get("ResponseMetadata", {})
        status = int(meta.get("HTTPStatusCode") or 0)
        details.update(aws_code=code, http_status=status, request_id=meta.get("RequestId"))
        text = scrub(exc.response.get("Error", {}).get("Message") or "")
        message = f"{service} {operation} in {region} failed: {code}" + (f": {text}" if text else "")
        if code in TRANSIENT_CODES or status >= 500:
            return TransientProviderError(message, hint="transient AWS error; the step is safe to retry",
                                          where="aws", details=details)
        return ProviderError(message, hint=_hint_for(code), where="aws", details=details)
    kind = type(exc).__name__
    details["error"] = kind
    message = f"{service} {operation} in {region} failed: {kind}: {scrub(str(exc))}"
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        return TransientProviderError(message, hint="network trouble reaching AWS; the step is safe to retry",
                                      where="aws", details=details)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return ProviderError(message, hint="configure AWS credentials (AWS_PROFILE or the instance role)",
                             where="aws", details=details)
    return ProviderError(message, where="aws", details=details)


def scrub(text: str) -> str:
    """First line of an AWS message, without access key ids or signatures, at most a few hundred characters."""
    first = next((line.strip() for line in str(text).splitlines() if line.strip()), "")
    first = _SIGNATURE.sub(r"\1=<redacted>", _ACCESS_KEY_ID.sub("<redacted>", first))
    first = " ".join(first.split())
    return first if len(first) <= _MAX_MESSAGE else first[: _MAX_MESSAGE - 1] + "…"


def error_code(exc: BaseException) -> str | None:
    """The AWS error code behind a translated ProviderError (or a raw ClientError), if there is one."""
    if isinstance(exc, ProviderError):
        return exc.details.get("aws_code")
    if isinstance(exc, ClientError):
        return _error_code(exc)
    return None


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "Unknown")


def _service(client: Any) -> str:
    try:
        return client.meta.service_model.service_name
    except AttributeError:
        return "aws"


def _api_name(client: Any, method: str) -> str:
    try:
        return client.meta.method_to_api_mapping.get(method, method)
    except AttributeError:
        return method


def _hint_for(code: str) -> str | None:
    if code in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthFailure"}:
        return "the AWS identity in use lacks this permission"
    if code in {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
                "SignatureDoesNotMatch"}:
        return "refresh the AWS credentials (e.g. aws sso login) and run again"
    return None


CONTROL_REGION = "us-east-1"  # STS and Route 53 answer there
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # moto only


class AccountGuard:
    """Refuses changes when the credentials belong to another account than the spec names (checked once)."""

    def __init__(self, clients: ClientFactory, expected_account_id: str | None) -> None:
        self._clients = clients
        self._expected = expected_account_id
        self._checked = expected_account_id is None

    def check(self) -> None:
        if self._checked:
            return
        identity = call(self._clients("sts", CONTROL_REGION), "get_caller_identity", CONTROL_REGION)
        account = (identity or {}).get("Account")
        if account != self._expected:
            raise ProviderError(f"the AWS credentials in use belong to account {account}, "
                                f"not {self._expected} named in the spec", where="aws",
                                hint="switch profile, or fix account_id in migration.toml")
        self._checked = True


@functools.lru_cache(maxsize=8)
def lab_clients(endpoint_url: str) -> AwsClients:
    """Clients for a lab's moto server: fake credentials, no retries, nothing read from AWS_PROFILE or ~/.aws.
    One set per moto server and process: the clients are thread-safe, nothing in them varies, and each
    new session parses AWS's service models again (route53's alone is ~16 ms of CPU; every adapter and
    every engine run asked for its own)."""
    import botocore.session

    core = botocore.session.Session(session_vars={
        "profile": (None, None, None, None),
        "config_file": (None, None, os.devnull, None),
        "credentials_file": (None, None, os.devnull, None),
    })
    session = boto3.session.Session(botocore_session=core, **FAKE_CREDENTIALS)
    return AwsClients(session=session, endpoint_url=endpoint_url)


def env_clients(env: Any, topology: Any = None) -> tuple[AwsClients, str | None]:
    """(clients, endpoint_url) for an environment: the lab's moto server, or the spec's AWS profile
    (or its moto endpoint_url, then the process's credentials, as the AWS global database does)."""
    if env.kind == "lab":
        if topology is None:
            raise ProviderError("the lab's Route 53 and S3 need the lab's topology (its moto port)", where="lab",
                                hint="pass topology=LabTopology.load(lab_dir) (migrate.lab.topology)")
        return lab_clients(topology.moto_endpoint), topology.moto_endpoint
    aws = env.aws
    endpoint_url = getattr(aws, "endpoint_url", None)
    if endpoint_url:
        return AwsClients(endpoint_url=endpoint_url), endpoint_url
    try:
        session = boto3.Session(profile_name=aws.profile)
    except BotoCoreError as exc:  # ProfileNotFound and friends: one line, no traceback
        raise ProviderError(f"AWS profile {aws.profile!r} is not usable: {type(exc).__name__}", where="aws",
                            hint="configure it in ~/.aws/config (e.g. aws configure sso)") from None
    return AwsClients(session=session), None
