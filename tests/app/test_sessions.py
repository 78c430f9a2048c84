"""Sessions: tokens signed in one region verify in every region; tampered, expired, unknown-key and
stale-epoch tokens are refused with a 401 naming why; key rotation."""

from __future__ import annotations

import base64
import json

import pytest

from app.sessions import TokenError, sign, verify
from tests.app.conftest import AP, EU, KEYS, US, Clock, login, settings_for

pytestmark = pytest.mark.lab


def settings(**overrides):
    return settings_for(US, "dbname=unused", "redis://127.0.0.1:1/0", **overrides)


def reason(client, token: str, player_id: int = 1) -> str:
    response = client.patch(f"/v1/players/{player_id}", json={"level": 2},
                            headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "unauthorized"
    return body["reason"]


def test_token_round_trip_carries_the_claims():
    s = settings()
    token, claims = sign(s, 7, AP, now=1_000_000)
    got = verify(s, token, now=1_000_100)
    assert got == claims
    assert (got.player_id, got.home_region, got.epoch, got.key_id) == (7, AP, 1, "k1")
    assert got.expires_at - got.issued_at == s.session_ttl_seconds


@pytest.mark.parametrize("mutate, why", [
    (lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB"), "bad_signature"),
    (lambda t: t.split(".")[0] + "x." + t.split(".")[1], "malformed"),
    (lambda t: t.replace(".", ""), "malformed"),
    (lambda t: t + ".extra", "malformed"),
    (lambda t: "!!!." + t.split(".")[1], "malformed"),
    (lambda t: "", "malformed"),
])
def test_tampered_or_malformed_tokens_are_refused(mutate, why):
    s = settings()
    token, _ = sign(s, 7, US, now=1_000_000)
    with pytest.raises(TokenError) as err:
        verify(s, mutate(token), now=1_000_001)
    assert err.value.reason == why


def test_a_forged_payload_with_the_old_signature_is_refused():
    s = settings()
    token, _ = sign(s, 7, US, now=1_000_000)
    payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = 8  # become another player
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenError) as err:
        verify(s, f"{forged}.{signature}", now=1_000_001)
    assert err.value.reason == "bad_signature"


def test_expiry_unknown_key_and_stale_epoch():
    s = settings(session_ttl_seconds=60)
    token, _ = sign(s, 7, US, now=1_000_000)
    verify(s, token, now=1_000_059)
    with pytest.raises(TokenError) as err:
        verify(s, token, now=1_000_060)
    assert err.value.reason == "expired"
    with pytest.raises(TokenError) as err:
        verify(settings(session_keys={"k9": "another-secret-0123456789"}), token, now=1_000_001)
    assert err.value.reason == "unknown_key"
    with pytest.raises(TokenError) as err:
        verify(settings(session_epoch=2), token, now=1_000_001)
    assert err.value.reason == "stale_epoch"


def test_key_rotation_add_then_activate_then_retire():
    old = settings(session_keys={"k1": KEYS["k1"]})
    # step 1: every region learns k2 (k1 still signs); step 2: k2 signs; step 3: k1 retired
    both_k1_active = settings(session_keys=KEYS)
    both_k2_active = settings(session_keys=KEYS, session_active_key="k2")
    retired = settings(session_keys={"k2": KEYS["k2"]})
    t_old, c_old = sign(old, 7, US, now=1_000_000)
    t_mid, _ = sign(both_k1_active, 7, US, now=1_000_000)
    t_new, c_new = sign(both_k2_active, 7, US, now=1_000_000)
    assert (c_old.key_id, c_new.key_id) == ("k1", "k2")
    for s in (old, both_k1_active, both_k2_active):
        verify(s, t_old, now=1_000_001)
        verify(s, t_mid, now=1_000_001)
    for s in (both_k1_active, both_k2_active, retired):
        verify(s, t_new, now=1_000_001)
    with pytest.raises(TokenError) as err:
        verify(retired, t_old, now=1_000_001)
    assert err.value.reason == "unknown_key"


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="SESSION_ACTIVE_KEY"):
        settings(session_active_key="nope")
    with pytest.raises(ValueError, match="shorter than 16"):
        settings(session_keys={"k": "short"})


def test_login_in_one_region_is_honoured_in_another(make_client):
    us, ap = make_client(US), make_client(AP)
    body = us.post("/v1/login", json={"player_id": 3}).json()
    assert body["home_region"] == US and body["key_id"] == "k1" and body["epoch"] == 1
    auth = {"Authorization": f"Bearer {body['token']}"}
    # Tokyo accepts the Virginia token for a profile write (one global writer) ...
    response = ap.patch("/v1/players/3", json={"level": 5}, headers=auth)
    assert response.status_code == 200, response.text
    # ... and knows from the token alone that the player's scores belong to us-east-1.
    response = ap.post("/v1/scores", json={"score": 10}, headers=auth)
    assert response.status_code == 409
    assert response.json()["home_region"] == US


def test_http_refusals_name_the_reason(make_client):
    clock = Clock()
    us = make_client(US, clock=clock, session_ttl_seconds=60)
    token = us.post("/v1/login", json={"player_id": 3}).json()["token"]
    payload, signature = token.split(".")
    assert reason(us, f"{payload}.{signature[::-1]}", 3) == "bad_signature"
    assert reason(us, "not-a-token", 3) == "malformed"
    missing = us.patch("/v1/players/3", json={"level": 2})
    assert missing.status_code == 401 and missing.json()["reason"] == "missing_token"
    stranger = make_client(EU, session_keys={"k7": "unrelated-secret-0123456789"})
    assert reason(stranger, token, 3) == "unknown_key"
    clock.now += 61
    assert reason(us, token, 3) == "expired"


def test_login_validates_input_and_unknown_players(client):
    assert client.post("/v1/login", json={"player_id": 999}).status_code == 404
    for body in ({}, {"player_id": "x"}, {"player_id": 0}, {"player_id": 2**63}, {"player_id": 1, "x": 1}):
        response = client.post("/v1/login", json=body)
        assert response.status_code == 422, body
        assert response.json()["fields"], response.json()
    response = client.post("/v1/login", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert login(client, 1)["Authorization"].startswith("Bearer ")
