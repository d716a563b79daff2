"""Fixtures of the API and webhook tests: the role cast, tokens, a JSON client, real recordings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.test import Client

from callvault.apps.accounts.models import ApiToken
from callvault.apps.calls.models import Call
from callvault.apps.recordings.models import Recording
from callvault.media.encode import encode_recording
from callvault.storage import LocalStorage
from tests.apps.conftest import (  # noqa: F401  (fixtures used by the tests of this package)
    PASSWORD,
    Cast,
    _fast_password_hashing,
    cast,
    make_call,
    make_user,
)

API = "/api/v1"


def issue_token(user: Any, name: str = "test") -> str:
    _obj, token = ApiToken.issue(user, name)
    return token


@dataclass
class Api:
    """A Django test client speaking JSON to the API with one bearer token (or none)."""

    client: Client
    token: str | None = None

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return headers

    def get(
        self, path: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> Any:
        return self.client.get(API + path, params or {}, headers=self._headers(headers))

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(
            API + path, json.dumps(body), content_type="application/json", headers=self._headers(headers)
        )

    def delete(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        data = json.dumps(body) if body is not None else ""
        return self.client.delete(
            API + path, data, content_type="application/json", headers=self._headers(headers)
        )


@pytest.fixture
def api_for(cast: Cast) -> Any:  # noqa: F811  (the imported fixture)
    """``api_for("member")`` -> an Api client with a fresh token of that cast member."""

    def make(role: str) -> Api:
        return Api(Client(), issue_token(cast.users()[role]))

    return make


def tone(freq: float, seconds: float, rate: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * 8000).astype(np.int16)


@pytest.fixture
def recordings_dir(settings: Any, tmp_path: Path) -> Path:
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    return settings.RECORDINGS_DIR  # type: ignore[no-any-return]


@pytest.fixture
def make_recording(recordings_dir: Path, tmp_path: Path) -> Any:
    """Encode a real stereo recording (caller 440 Hz left, callee 880 Hz right) for a call."""

    def make(call: Call, *, seconds: float = 3.0, fmt: str = "opus") -> Recording:
        pcm = np.stack([tone(440, seconds), tone(880, seconds)], axis=1)
        out = tmp_path / f"encode-{call.pk}.{fmt}"
        info = encode_recording(pcm, 8000, fmt, out, metadata={"callvault_call_id": str(call.pk)})
        key = f"2026/11/27/{call.pk}.{fmt}"
        LocalStorage(recordings_dir).put_file(key, out)
        Call.objects.filter(pk=call.pk).update(recording_state="ready")
        call.refresh_from_db()
        return Recording.objects.create(
            call=call,
            storage_key=key,
            format=fmt,
            codec=info.codec,
            channels=info.channels,
            sample_rate=info.sample_rate,
            bytes=info.bytes,
            sha256=info.sha256,
            duration=info.duration,
            channel_map={"left": "caller", "right": "callee"},
        )

    return make
