"""Who may read /metrics and the details of /readyz.

Allowed: a client connecting from the loopback interface without having come
through a proxy, or anyone presenting ``Authorization: Bearer <CALLVAULT_METRICS_TOKEN>``.
A request carrying ``X-Forwarded-For``, ``Forwarded`` or ``X-Real-IP`` came through
a reverse proxy (whose own address is often 127.0.0.1), so its loopback address
proves nothing and it needs the token.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound

log = logging.getLogger("callvault.ops")

PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def metrics_token() -> str:
    return str(getattr(settings, "METRICS_TOKEN", "") or "")


def is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def bearer_matches(authorization: str, token: str) -> bool:
    scheme, _, credentials = authorization.strip().partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())


def is_local(request: HttpRequest) -> bool:
    if any(request.META.get(h) for h in PROXY_HEADERS):
        return False
    return is_loopback(str(request.META.get("REMOTE_ADDR") or ""))


def may_read(request: HttpRequest) -> bool:
    return is_local(request) or bearer_matches(request.headers.get("Authorization", ""), metrics_token())


def refusal(request: HttpRequest) -> HttpResponse:
    """404 where no token is configured (nothing would open it), else 403 asking for the token."""
    log.info("x refused %s from %s", request.path, request.META.get("REMOTE_ADDR", "?"))
    if not metrics_token():
        return HttpResponseNotFound("Not Found", content_type="text/plain")
    response = HttpResponse("Forbidden", status=403, content_type="text/plain")
    response["WWW-Authenticate"] = 'Bearer realm="callvault-metrics"'
    return response
