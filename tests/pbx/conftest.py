"""Fixtures of the PBX event and completeness tests: integrations, signed requests, recordings."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client

from callvault.apps.pbx.models import AuthMode, Integration
from callvault.apps.webhooks.signing import sign_header
from tests.api.conftest import make_recording, recordings_dir, tone  # noqa: F401
from tests.apps.conftest import (  # noqa: F401
    PASSWORD,
    Cast,
    _fast_password_hashing,
    cast,
    make_call,
    make_user,
)
from tests.e2e.conftest import server, server_factory  # noqa: F401  (for test_e2e.py)

EVENTS = "/api/v1/events"


class Pbx:
    """A PBX posting events to the Django test client, signed or with its token."""

    def __init__(self, integration: Integration, client: Client | None = None) -> None:
        self.integration = integration
        self.client = client or Client()

    def body(self, event: dict[str, Any]) -> bytes:
        return json.dumps(event, ensure_ascii=False).encode()

    def signed(self, event: dict[str, Any], *, t: int | None = None, secret: str | None = None) -> Any:
        body = self.body(event)
        return self.send_signed(body, t=t, secret=secret)

    def send_signed(self, body: bytes, *, t: int | None = None, secret: str | None = None) -> Any:
        header = sign_header(secret or self.integration.secret, body, int(time.time()) if t is None else t)
        return self.client.post(
            EVENTS,
            body,
            content_type="application/json",
            headers={"X-Callvault-Key": self.integration.key, "X-Callvault-Signature": header},
        )

    def token(self, event: dict[str, Any], *, how: str = "bearer") -> Any:
        secret = self.integration.secret
        if how == "bearer":
            return self.client.post(
                EVENTS,
                self.body(event),
                content_type="application/json",
                headers={"Authorization": f"Bearer {secret}"},
            )
        if how == "header":
            return self.client.post(
                EVENTS,
                self.body(event),
                content_type="application/json",
                headers={"X-Callvault-Token": secret},
            )
        if how == "form":  # Asterisk CURL(url,data): form fields, token in the URL
            return self.client.post(
                f"{EVENTS}?{urlencode({'token': secret})}",
                urlencode(event),
                content_type="application/x-www-form-urlencoded",
            )
        assert how == "get"  # Yealink action URL
        return self.client.get(EVENTS, {**event, "token": secret})


@pytest.fixture
def integration(db: None) -> Integration:
    return Integration.objects.create(name="本社 FreePBX", auth_mode=AuthMode.SIGNATURE)


@pytest.fixture
def token_integration(db: None) -> Integration:
    return Integration.objects.create(name="Yealink 電話機", auth_mode=AuthMode.TOKEN)


@pytest.fixture
def pbx(integration: Integration) -> Pbx:
    return Pbx(integration)


@pytest.fixture
def token_pbx(token_integration: Integration) -> Pbx:
    return Pbx(token_integration)
