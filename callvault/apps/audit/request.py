"""The client address recorded in the audit log, one rule for every view and endpoint."""

from __future__ import annotations

import ipaddress

from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The peer address as the ASGI server reports it (uvicorn applies trusted proxy headers);
    None when it is not an IP address (the audit log stores addresses only)."""
    raw = str(request.META.get("REMOTE_ADDR") or "").strip()
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return None
