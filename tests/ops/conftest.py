"""Fixtures for the ops tests: the ops routes and middleware switched on, a scrape parser."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from callvault.apps.calls.models import Call
from callvault.apps.ops.collect import FINALIZED
from callvault.apps.ops.registry import HTTP_REQUEST_DURATION

MIDDLEWARE = "callvault.apps.ops.middleware.RequestMetricsMiddleware"


@pytest.fixture
def ops(settings: Any, tmp_path: Path) -> Iterator[Any]:
    """Settings as after the lead's wiring, with a data directory of the test's own."""
    settings.ROOT_URLCONF = "tests.ops.urls"
    settings.MIDDLEWARE = [MIDDLEWARE, *[m for m in settings.MIDDLEWARE if m != MIDDLEWARE]]
    settings.DATA_DIR = tmp_path / "data"
    settings.SPOOL_DIR = settings.DATA_DIR / "spool"
    settings.RECORDINGS_DIR = settings.DATA_DIR / "recordings"
    for d in (settings.SPOOL_DIR, settings.RECORDINGS_DIR):
        d.mkdir(parents=True)
    settings.METRICS_TOKEN = ""
    settings.MIN_FREE_DISK_BYTES = 1
    HTTP_REQUEST_DURATION.reset()
    FINALIZED.reset()
    yield settings
    HTTP_REQUEST_DURATION.reset()
    FINALIZED.reset()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[Samples, dict[str, str]]:
    """Parse exposition text with the reference parser: samples by (name, labels), and family types."""
    samples: Samples = {}
    types: dict[str, str] = {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = s.value
    return samples, types


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no sample {name}{labels}; have {sorted(k for k in samples if k[0] == name)}"
    return samples[key]


def scrape(client: Client | None = None, **extra: Any) -> tuple[Samples, dict[str, str], str]:
    response = (client or Client()).get("/metrics", **extra)
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.content.decode()
    samples, types = parse(text)
    return samples, types, text


def make_call(**fields: Any) -> Call:
    now = timezone.now()
    defaults: dict[str, Any] = {
        "state": "completed",
        "recording_state": "ready",
        "started_at": now - timedelta(minutes=3),
        "answered_at": now - timedelta(minutes=3),
        "ended_at": now - timedelta(minutes=1),
        "caller_number": "+81312345678",
        "caller_name": "山田 太郎",
        "callee_number": "201",
        "sip_call_id": f"sip-{uuid.uuid4().hex}",
        "spool_key": uuid.uuid4().hex,
    }
    defaults.update(fields)
    return Call.objects.create(**defaults)
