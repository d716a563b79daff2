"""Hostile and broken input: always a clear 4xx with the JSON error shape, never a 500."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client

from tests.api.conftest import API, Cast, issue_token

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.urls")]


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message", "param"}
    return body


@pytest.mark.parametrize(
    "path",
    [
        "/calls/not-a-uuid",
        "/calls/12345",
        "/calls/' OR 1=1 --",
        "/calls/%00",
        f"/calls/{uuid.uuid4()}",
        f"/calls/{uuid.uuid4()}/recording",
        f"/calls/{uuid.uuid4()}/comments",
        "/calls/not-a-uuid/recording",
        "/calls/ｆｆｆ/comments",
    ],
)
def test_unknown_or_malformed_call_ids_are_not_found(cast: Cast, api_for: Any, path: str) -> None:
    assert error_of(api_for("admin").get(path), 404)["error"] == "not_found"


@pytest.mark.parametrize("comment_id", ["abc", "0", "-1", str(2**70), "1.5"])
def test_malformed_comment_ids_are_not_found(cast: Cast, api_for: Any, comment_id: str) -> None:
    response = api_for("admin").delete(f"/calls/{cast.call_a.pk}/comments/{comment_id}")
    assert error_of(response, 404)["error"] == "not_found"


def test_a_huge_query_string_answers_414(cast: Cast, api_for: Any) -> None:
    response = api_for("admin").get("/calls", {"q": "a" * 5000})
    assert error_of(response, 414)["error"] == "uri_too_long"


def test_too_many_query_fields_answer_400(cast: Cast) -> None:
    many = "&".join(["a=1"] * 1001)  # over Django's 1000 fields, under 4 KiB
    assert len(many) < 4096
    token = issue_token(cast.admin)
    response = Client().get(f"{API}/calls?{many}", headers={"Authorization": f"Bearer {token}"})
    assert error_of(response, 400)["error"] == "bad_request"


def test_a_huge_body_answers_413_before_it_is_read(cast: Cast, api_for: Any) -> None:
    response = api_for("admin").post(f"/calls/{cast.call_a.pk}/comments", {"text": "あ" * 40_000})
    assert error_of(response, 413)["error"] == "payload_too_large"


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"not json",
        b"\xff\xfe\x00",
        b"[1,2,3]",
        b'"just a string"',
        b"null",
        b'{"text": "x"' + b" " * 10,
    ],
)
def test_broken_json_bodies_answer_400(cast: Cast, api_for: Any, raw: bytes) -> None:
    api = api_for("admin")
    response = api.client.post(
        f"{API}/calls/{cast.call_a.pk}/comments",
        raw,
        content_type="application/json",
        headers=api._headers(None),
    )
    assert error_of(response, 400)["error"] in ("invalid_body", "invalid_parameter")


def test_a_wrong_method_is_refused_without_a_server_error(cast: Cast, api_for: Any) -> None:
    api = api_for("admin")
    response = api.client.put(f"{API}/calls/{cast.call_a.pk}", "{}", headers=api._headers(None))
    assert response.status_code == 405
    response = api.client.patch(f"{API}/tags", "{}", headers=api._headers(None))
    assert response.status_code == 405


def test_unknown_api_paths_are_not_found(cast: Cast, api_for: Any) -> None:
    assert api_for("admin").get("/nothing-here").status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {"q": "\x00\x01"},
        {"q": "%"},
        {"q": "_"},
        {"q": "'; DROP TABLE calls_call; --"},
        {"q": "+"},
        {"q": "*#"},
        {"tag": "\x00"},
        {"from": "2026-11-27T14:05:00+99:00"},
        {"from": "0000-01-01"},
        {"to": "0001-01-01"},
        {"from": "2026-11-27T14:05:00.1234567"},
    ],
)
def test_odd_but_bounded_filter_values_never_cause_a_server_error(
    cast: Cast, api_for: Any, params: dict[str, str]
) -> None:
    response = api_for("admin").get("/calls", params)
    assert response.status_code in (200, 400), response.content
