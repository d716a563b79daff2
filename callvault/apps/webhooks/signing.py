"""Webhook signatures: ``X-Callvault-Signature: t=<unix time>,v1=<hex HMAC-SHA256>``.

The signed message is ``f"{t}.".encode() + body`` (the exact bytes of the request body), the
key is the webhook's secret (``whsec_...``, UTF-8). A receiver:

1. reads the raw body before parsing it as JSON;
2. splits the header on ``,`` into ``t`` and one or more ``v1`` values;
3. computes ``hmac.new(secret, f"{t}.".encode() + body, sha256).hexdigest()`` and compares it
   with each ``v1`` in constant time (``hmac.compare_digest``);
4. rejects the request if ``t`` is more than 5 minutes away from its own clock (a replayed
   old request), and deduplicates on ``X-Callvault-Delivery`` (retries resend the same id).

:func:`verify` below is that receiver, usable as a reference implementation.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TOLERANCE = 300  # seconds


def signature(secret: str, body: bytes, t: int) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def sign_header(secret: str, body: bytes, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    return f"t={t},v1={signature(secret, body, t)}"


def verify(
    secret: str, header: str | None, body: bytes, *, now: float | None = None, tolerance: int = TOLERANCE
) -> bool:
    """True if ``header`` signs ``body`` with ``secret`` and was made within ``tolerance`` seconds."""
    if not header or len(header) > 1000:
        return False
    t: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _sep, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) < 16:
            t = int(value)
        elif key == "v1":
            candidates.append(value)
    if t is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - t) > tolerance:
        return False
    expected = signature(secret, body, t)
    return any(hmac.compare_digest(expected, c) for c in candidates)
