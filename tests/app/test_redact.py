"""Secrets never reach a log line: DSN passwords, session tokens, signing keys, AWS keys (app/redact.py)."""

from __future__ import annotations

import logging

import pytest

from app.redact import MASK, RedactingFilter, redact, redact_data
from tests.app.conftest import KEYS

TOKEN = "eyJzdWIiOjEsImhvbWUiOiJ1cy1lYXN0LTEiLCJlcG9jaCI6MX0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"


@pytest.mark.parametrize("text, secret, kept", [
    ("postgresql://game:hunter2-long@db.example:5432/game", "hunter2-long", "postgresql://game:***@db.example"),
    ("host=db.example user=game password=hunter2-long dbname=game", "hunter2-long", "user=game"),
    ("host=db user=game password='with space' dbname=game", "with space", "dbname=game"),
    ("PGPASSWORD=hunter2-long psql", "hunter2-long", "psql"),
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI", "AWS_SECRET_ACCESS_KEY="),
    ("key AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE", "key"),
    (f"Authorization: Bearer {TOKEN}", TOKEN, "Authorization: Bearer ***"),
    (f"refused token {TOKEN} for player 1", TOKEN, "for player 1"),
    ('{"username": "game", "password": "hunter2-long"}', "hunter2-long", '"username": "game"'),
    ('SESSION_KEYS={"k1": "0123456789abcdef0123"}', "0123456789abcdef0123", "SESSION_KEYS="),
])
def test_each_secret_shape_is_masked_and_the_rest_of_the_line_kept(text, secret, kept):
    masked = redact(text)
    assert secret not in masked and MASK in masked
    assert kept in masked


def test_text_without_secrets_is_unchanged():
    line = "region ap-northeast-1 writer host=db.example port=5432 dbname=game user=game p95=37.5ms"
    assert redact(line) == line


def test_structured_data_masks_secret_named_keys_and_strings_everywhere():
    data = {"dsn": "postgresql://u:pw-123456@h/db", "password": "plain", "nested": [{"token": "abc"}],
            "count": 3, "session_keys": {"k1": "x"}, "note": None}
    assert redact_data(data) == {"dsn": "postgresql://u:***@h/db", "password": MASK, "nested": [{"token": MASK}],
                                 "count": 3, "session_keys": MASK, "note": None}


def test_the_filter_masks_arguments_and_exception_text(caplog):
    logger = logging.getLogger("app.test-redact")
    secret = next(iter(KEYS.values()))
    with caplog.at_level(logging.INFO, logger="app.test-redact"):
        caplog.handler.addFilter(RedactingFilter())
        logger.info("connecting to %s with %s", "postgresql://game:hunter2-long@db/game", f"password={secret}")
        try:
            raise RuntimeError(f"login refused: Bearer {TOKEN}")
        except RuntimeError:
            logger.exception("request failed")
    text = caplog.text
    assert "hunter2-long" not in text and secret not in text and TOKEN not in text
    assert "postgresql://game:***@db/game" in text and "RuntimeError: login refused: Bearer ***" in text
