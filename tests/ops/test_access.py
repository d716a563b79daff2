"""Who may read /metrics and the details of /readyz."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import Client

from tests.ops.conftest import parse

pytestmark = pytest.mark.django_db

TOKEN = "m3trics-t0ken-for-tests-only"
REMOTE = {"REMOTE_ADDR": "203.0.113.9"}


def test_a_loopback_client_reads_metrics_without_credentials(ops: Any) -> None:
    for addr in ("127.0.0.1", "127.8.0.3", "::1", "::ffff:127.0.0.1"):
        r = Client().get("/metrics", REMOTE_ADDR=addr)
        assert r.status_code == 200, addr
        assert parse(r.content.decode())[0]


def test_a_remote_client_gets_404_while_no_token_is_configured(ops: Any) -> None:
    r = Client().get("/metrics", **REMOTE)
    assert r.status_code == 404
    assert b"callvault_" not in r.content
    r = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ", **REMOTE)
    assert r.status_code == 404


def test_a_remote_client_needs_the_bearer_token(ops: Any) -> None:
    ops.METRICS_TOKEN = TOKEN
    r = Client().get("/metrics", **REMOTE)
    assert r.status_code == 403 and r["WWW-Authenticate"].startswith("Bearer")
    assert b"callvault_" not in r.content
    for wrong in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN[:-1]}"):
        assert Client().get("/metrics", HTTP_AUTHORIZATION=wrong, **REMOTE).status_code == 403, wrong
    r = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **REMOTE)
    assert r.status_code == 200 and b"callvault_calls" in r.content
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"bearer  {TOKEN} ", **REMOTE).status_code == 200


def test_a_request_through_a_reverse_proxy_is_not_local(ops: Any) -> None:
    for header in ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"):
        r = Client().get("/metrics", REMOTE_ADDR="127.0.0.1", **{header: "198.51.100.7"})
        assert r.status_code == 404, header
    ops.METRICS_TOKEN = TOKEN
    r = Client().get(
        "/metrics",
        REMOTE_ADDR="127.0.0.1",
        HTTP_X_FORWARDED_FOR="198.51.100.7",
        HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
    )
    assert r.status_code == 200


def test_the_token_never_reaches_the_log(ops: Any, caplog: pytest.LogCaptureFixture) -> None:
    ops.METRICS_TOKEN = TOKEN
    caplog.set_level(logging.DEBUG)
    Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}-wrong", **REMOTE)
    Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **REMOTE)
    assert any("refused /metrics" in r.getMessage() for r in caplog.records)
    assert not any(TOKEN in r.getMessage() for r in caplog.records)


def test_only_get_and_head_are_answered(ops: Any) -> None:
    assert Client().post("/metrics").status_code == 405
    r = Client().head("/metrics")
    assert r.status_code == 200 and r.content == b""


def test_readyz_tells_everyone_which_checks_pass_but_details_only_to_allowed_clients(ops: Any) -> None:
    remote = Client().get("/readyz", **REMOTE).json()
    assert remote["status"] == "ok"
    assert all(set(check) == {"ok"} for check in remote["checks"].values())
    local = Client().get("/readyz").json()
    assert all("ms" in check for check in local["checks"].values())
    assert local["checks"]["disk"]["free_bytes"]["spool"] > 0


def test_metrics_responses_are_not_cached(ops: Any) -> None:
    for path in ("/metrics", "/readyz"):
        assert "no-store" in Client().get(path)["Cache-Control"]
