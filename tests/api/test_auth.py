"""Who may talk to the API: bearer tokens, the web session with CSRF, and everything else (401)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from callvault.apps.accounts.models import ApiToken, hash_token
from tests.api.conftest import API, PASSWORD, Api, Cast, issue_token

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.urls")]


def assert_401(response: Any, code: str) -> None:
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"].startswith('Bearer realm="callvault"')
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"] == code


def test_it_answers_a_valid_bearer_token(cast: Cast) -> None:
    response = Api(Client(), issue_token(cast.member)).get("/me")
    assert response.status_code == 200
    body = response.json()
    assert (body["username"], body["role"], body["auth"]) == ("member", "member", "token")
    assert body["teams"] == [{"id": cast.team_a.pk, "name": "営業部", "role": "agent"}]


def test_it_answers_the_logged_in_web_session(cast: Cast) -> None:
    client = Client()
    assert client.login(username="supervisor", password=PASSWORD)
    response = client.get(f"{API}/me")
    assert response.status_code == 200
    assert response.json()["auth"] == "session"
    assert response.json()["can_export"] is True


def test_it_requires_the_csrf_token_for_unsafe_methods_in_a_session(cast: Cast) -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.login(username="supervisor", password=PASSWORD)
    url = f"{API}/calls/{cast.call_a.pk}/comments"
    refused = client.post(url, {"text": "CSRF なし"}, content_type="application/json")
    assert refused.status_code == 403
    assert refused.json()["error"] == "csrf_failed"
    client.get(f"{API}/docs")  # a page that sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    accepted = client.post(
        url, {"text": "CSRF あり"}, content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert accepted.status_code == 201, accepted.content


def test_bearer_requests_need_no_csrf_token(cast: Cast) -> None:
    client = Client(enforce_csrf_checks=True)
    response = Api(client, issue_token(cast.supervisor)).post(
        f"/calls/{cast.call_a.pk}/comments", {"text": "トークンで投稿"}
    )
    assert response.status_code == 201


def test_it_refuses_requests_without_credentials(cast: Cast) -> None:
    for path in ("/me", "/calls", f"/calls/{cast.call_a.pk}", "/tags"):
        assert_401(Api(Client()).get(path), "not_authenticated")
    assert_401(Api(Client()).post(f"/calls/{cast.call_a.pk}/comments", {"text": "x"}), "not_authenticated")


def test_it_refuses_a_revoked_token(cast: Cast) -> None:
    token = issue_token(cast.admin)
    ApiToken.objects.filter(token_hash=hash_token(token)).update(revoked_at=timezone.now())
    assert_401(Api(Client(), token).get("/calls"), "invalid_token")


def test_it_refuses_a_forged_token_of_the_right_shape(cast: Cast) -> None:
    assert_401(Api(Client(), "cv_" + "A" * 43).get("/calls"), "invalid_token")


def test_it_refuses_the_token_of_a_deactivated_user(cast: Cast) -> None:
    token = issue_token(cast.member)
    cast.member.is_active = False
    cast.member.save()
    assert_401(Api(Client(), token).get("/me"), "invalid_token")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token cv_abc",
        "cv_" + "A" * 43,
        "Bearer not-a-callvault-token",
        "Bearer cv_short",
        "Bearer cv_" + "A" * 500,
        "Bearer cv_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\x00",
        "Bearer cv_ＡＡＡＡＡＡＡＡＡＡＡＡＡＡＡＡＡＡＡＡＡＡ",
    ],
)
def test_it_refuses_malformed_authorization_headers(cast: Cast, header: str) -> None:
    response = Client().get(f"{API}/me", headers={"Authorization": header})
    assert_401(response, "invalid_token")


def test_a_bad_authorization_header_is_refused_even_with_a_valid_session(cast: Cast) -> None:
    client = Client()
    assert client.login(username="admin", password=PASSWORD)
    assert_401(client.get(f"{API}/me", headers={"Authorization": "Bearer cv_forged"}), "invalid_token")


def test_it_records_token_use_at_most_once_a_minute(cast: Cast) -> None:
    token = issue_token(cast.member)
    api = Api(Client(), token)
    obj = ApiToken.objects.get(token_hash=hash_token(token))
    assert obj.last_used_at is None
    api.get("/me")
    first = ApiToken.objects.get(pk=obj.pk).last_used_at
    assert first is not None
    api.get("/me")
    assert ApiToken.objects.get(pk=obj.pk).last_used_at == first
    ApiToken.objects.filter(pk=obj.pk).update(last_used_at=first - timedelta(seconds=61))
    api.get("/me")
    assert ApiToken.objects.get(pk=obj.pk).last_used_at > first - timedelta(seconds=1)


def test_it_never_logs_tokens(cast: Cast, caplog: pytest.LogCaptureFixture) -> None:
    valid = issue_token(cast.member)
    forged = "cv_" + "Z" * 43
    with caplog.at_level(logging.DEBUG):
        Api(Client(), valid).get("/me")
        Api(Client(), forged).get("/me")
        Client().get(f"{API}/me", headers={"Authorization": "Bearer cv_bad"})
    assert "api: unknown, revoked or disabled bearer token" in caplog.text
    for secret in (valid, forged, "cv_bad", valid[3:13]):
        assert secret not in caplog.text
