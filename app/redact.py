"""Secrets out of text: DSN passwords, session tokens, signing keys and AWS keys are masked before a
line reaches a log, `migrate`'s journal or a report.

The app installs `RedactingFilter` on its log handlers; `migrate` passes every journal event's data
through `redact_data` (migrate/engine/state/common.py). Masking keeps what an operator needs to read
the line (the user, the host, which header) and replaces only the secret with MASK."""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"

# A key whose value is a secret whatever it looks like (structured data, JSON text, key=value).
SECRET_KEYS = re.compile(r"(?i)^(?:.*_)?(?:password|passwd|secret|secret_access_key|session_token|token|"
                         r"session_keys|authorization|api_key|private_key)$")

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host — keep the user and host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*):([^@\s]+)@"), rf"\1:{MASK}@"),
    # libpq keyword DSNs and env-style assignments: password=..., PGPASSWORD=..., AWS_SECRET_ACCESS_KEY=...
    (re.compile(r"(?i)\b((?:pg)?password|aws_secret_access_key|aws_session_token|session_keys)"
                r"(\s*[=:]\s*)(\{[^}]*\}|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\S+)"), rf"\1\2{MASK}"),
    # JSON text: "password": "...", "token": "...", "SecretString": "..."
    (re.compile(r"(?i)(\"(?:[a-z_]*password|[a-z_]*secret[a-z_]*|[a-z_]*token|authorization)\"\s*:\s*)"
                r"\"(?:[^\"\\]|\\.)*\""), rf'\1"{MASK}"'),
    # HTTP credentials
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {MASK}"),
    # a session token on its own: base64url('{"...') "." base64url(signature) — app/sessions.py
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}"), MASK),
    # AWS access key ids
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), MASK),
)


def redact(text: str) -> str:
    """`text` with every secret this module recognises replaced by MASK."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_data(value: Any) -> Any:
    """A copy of JSON-like `value` with secret-named keys masked and every string redacted."""
    if isinstance(value, dict):
        return {key: (MASK if isinstance(key, str) and SECRET_KEYS.match(key) and value[key] not in (None, "")
                      else redact_data(value[key])) for key in value}
    if isinstance(value, (list, tuple)):
        return [redact_data(item) for item in value]
    if isinstance(value, str):
        return redact(value)
    return value


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (arguments merged in) and exception text with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.msg, record.args = redact(message), None
        return True


def install(*logger_names: str) -> None:
    """Put RedactingFilter on every handler of the named loggers ("" is the root)."""
    for name in logger_names or ("",):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
