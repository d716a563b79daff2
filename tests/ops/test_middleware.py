"""Request latency by route name and status class, in sync and async request handling."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient, Client

from callvault.apps.ops.middleware import status_class
from tests.ops.conftest import scrape, value

pytestmark = pytest.mark.django_db


def test_requests_are_counted_by_route_name_and_status_class(ops: Any) -> None:
    c = Client(raise_request_exception=False)
    for _ in range(3):
        assert c.get("/readyz").status_code == 200
    assert c.get("/no/such/page/12345").status_code == 404
    assert c.get("/another/unknown").status_code == 404
    assert c.get("/test-boom").status_code == 500
    assert c.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 404
    samples, _, text = scrape(c)
    assert (
        value(samples, "callvault_http_request_duration_seconds_count", route="ops:readyz", status="2xx") == 3
    )
    assert (
        value(samples, "callvault_http_request_duration_seconds_count", route="unmatched", status="4xx") == 2
    )
    assert (
        value(samples, "callvault_http_request_duration_seconds_count", route="test-boom", status="5xx") == 1
    )
    assert (
        value(samples, "callvault_http_request_duration_seconds_count", route="ops:metrics", status="4xx")
        == 1
    )
    assert value(samples, "callvault_http_request_duration_seconds_sum", route="ops:readyz", status="2xx") > 0
    assert "/no/such/page" not in text and "12345" not in text


def test_the_middleware_measures_async_request_handling_too(ops: Any) -> None:
    async def run() -> None:
        c = AsyncClient()
        for _ in range(2):
            assert (await c.get("/readyz")).status_code == 200
        # the view ran in asgiref's worker thread, which opened a connection of its own
        await sync_to_async(connections.close_all)()

    asyncio.run(run())
    samples, _, _ = scrape()
    assert (
        value(samples, "callvault_http_request_duration_seconds_count", route="ops:readyz", status="2xx") == 2
    )


def test_a_route_without_a_name_is_labelled_by_its_view_path(ops: Any) -> None:
    assert Client().get("/test-plain").status_code == 200
    samples, _, _ = scrape()
    assert (
        value(
            samples,
            "callvault_http_request_duration_seconds_count",
            route="tests.ops.urls.plain",
            status="2xx",
        )
        == 1
    )


@pytest.mark.parametrize(
    ("code", "label"), [(200, "2xx"), (302, "3xx"), (404, "4xx"), (503, "5xx"), (101, "1xx"), (999, "other")]
)
def test_status_classes(code: int, label: str) -> None:
    assert status_class(code) == label
