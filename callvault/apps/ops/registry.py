"""Figures the web process keeps in its own memory (everything else is read at scrape time)."""

from __future__ import annotations

from callvault.apps.ops.exposition import Histogram

# Seconds from the request reaching Django to the response (headers) leaving it.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUEST_DURATION = Histogram(
    "callvault_http_request_duration_seconds",
    "Time to answer an HTTP request in this web process, by URL route name and status class.",
    HTTP_BUCKETS,
    ("route", "status"),
)
