"""/health (200 and 503 with reasons), /metrics (per-route-template histograms), outages answered
with a JSON 503 rather than a 500, and asset URLs."""

from __future__ import annotations

import pytest

from tests.app.conftest import US, internal, login

pytestmark = pytest.mark.lab


def test_health_reports_region_role_lag_and_version(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["region"] == US and body["version"] == "test"
    assert body["role"] == "writer" and body["replication_lag_seconds"] == 0
    assert body["checks"] == {"database": "ok", "redis": "ok"}
    assert body["reader"]["source"] == "writer_dsn" and "password" not in str(body)


def test_redis_outage_is_503_with_reasons(make_client, start_redis):
    server = start_redis()
    app = make_client(US, redis_url=server.url)
    auth = login(app, 1)
    assert app.get("/health").status_code == 200
    server.stop()
    response = app.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and "redis" in body["reasons"]
    assert body["checks"]["database"] == "ok" and body["role"] == "writer"
    for call in (lambda: app.post("/v1/scores", json={"score": 1}, headers=auth),
                 lambda: app.get("/v1/leaderboard/regional"),
                 lambda: app.post("/v1/matchmaking/tickets", json={}, headers=auth)):
        failed = call()
        assert failed.status_code == 503, failed.text
        assert failed.json()["error"] == "redis_unavailable" and failed.headers["Retry-After"] == "1"
    # the profile path does not need Redis
    assert app.get("/v1/players/1").status_code == 200


def test_database_outage_is_503(make_client, redis_url):
    app = make_client(US, writer_dsn="postgresql://postgres@127.0.0.1:1/none", db_timeout_seconds=0.3)
    health = app.get("/health")
    assert health.status_code == 503 and "database" in health.json()["reasons"]
    assert health.json()["checks"]["redis"] == "ok"
    response = app.get("/v1/players/1")
    assert response.status_code == 503 and response.json()["error"] == "database_unavailable"
    assert app.post("/v1/login", json={"player_id": 1}).status_code == 503


def test_metrics_have_route_templates_and_histograms(client):
    auth = login(client, 1)
    client.get("/v1/players/1")
    client.get("/v1/players/2")
    client.get("/v1/players/999")  # 404
    client.get("/no/such/path")
    client.post("/v1/scores", json={"score": 3}, headers=auth)
    text = client.get(internal("/metrics")).text
    assert 'app_http_requests_total{method="GET",route="/v1/players/{player_id}",status="200"} 2.0' in text
    assert 'app_http_errors_total{method="GET",route="/v1/players/{player_id}",status="404"} 1.0' in text
    assert ('app_http_request_duration_seconds_bucket{le="0.08",method="POST",route="/v1/scores",'
            'status="200"}') in text
    assert 'app_http_request_duration_seconds_count{method="POST",route="/v1/login",status="200"} 1.0' in text
    assert 'route="<unmatched>"' in text and "/no/such/path" not in text
    assert "/v1/players/1\"" not in text and "/v1/players/2\"" not in text  # never raw paths
    assert 'app_info{region="us-east-1",version="test"} 1.0' in text


def test_asset_urls(make_client):
    s3 = make_client(US)
    body = s3.get("/v1/assets/textures/hero-v2.png").json()
    assert body == {"name": "textures/hero-v2.png", "bucket": "game-assets-us-east-1", "region": US,
                    "url": "https://game-assets-us-east-1.s3.us-east-1.amazonaws.com/textures/hero-v2.png"}
    cdn = make_client(US, asset_base_url="https://cdn.game.example/")
    assert cdn.get("/v1/assets/maps/a.bin").json()["url"] == "https://cdn.game.example/maps/a.bin"
    for bad in ("/v1/assets/a/%2E%2E/b", "/v1/assets/.hidden", "/v1/assets/a//b", "/v1/assets/a b"):
        response = s3.get(bad)
        assert 400 <= response.status_code < 500, (bad, response.status_code)
    unconfigured = make_client(US, asset_bucket=None)
    assert unconfigured.get("/v1/assets/a.png").status_code == 503
