"""Request latency by route name and status class: a few hundred nanoseconds per request.

Put it first in MIDDLEWARE so that it measures the whole stack. The route label
is the resolved URL pattern's name (``web:healthz``), never the path, so the
number of series stays bounded whatever URLs clients ask for; requests that match
no route share ``route="unmatched"``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from callvault.apps.ops.registry import HTTP_REQUEST_DURATION

UNMATCHED = "unmatched"


def route_of(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return UNMATCHED
    return match.view_name or UNMATCHED


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


class RequestMetricsMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        start = time.perf_counter()
        response: HttpResponseBase = self.get_response(request)
        self._observe(request, response, start)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        start = time.perf_counter()
        awaitable: Awaitable[HttpResponseBase] = self.get_response(request)
        response = await awaitable
        self._observe(request, response, start)
        return response

    @staticmethod
    def _observe(request: HttpRequest, response: HttpResponseBase, start: float) -> None:
        HTTP_REQUEST_DURATION.observe(
            time.perf_counter() - start, route_of(request), status_class(response.status_code)
        )
