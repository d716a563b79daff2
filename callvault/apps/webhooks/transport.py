"""Sending one webhook request, safely.

SSRF: a webhook URL is typed by an administrator, but the server sends the request from inside
the office network. Addresses that are never a legitimate receiver and are a classic way to
steal credentials are refused: link-local (169.254.0.0/16 — including the cloud metadata service
169.254.169.254 — and fe80::/10), other metadata endpoints (fd00:ec2::254, 100.100.100.200),
unspecified, multicast, broadcast and reserved addresses. Loopback and private ranges stay
allowed: on-premises receivers (a CRM on 10.0.0.5, a script on the same host) are the common case.

The host name is resolved once, every address is checked, and the connection goes to the checked
address (the ``Host`` header and TLS name stay the host name), so DNS cannot answer differently
between the check and the connection (DNS rebinding). Redirects are not followed.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.utils.translation import gettext as _

TIMEOUT = 10.0
EXCERPT = 500
USER_AGENT = "callvault-webhooks/1"

_METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
}


class UnsafeDestination(Exception):
    """The URL can never be sent to (scheme, or an address that is refused): do not retry."""


class DestinationError(Exception):
    """The host could not be resolved or reached now: retry later."""


@dataclass
class Result:
    status: int | None
    error: str
    excerpt: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def refused_reason(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA:
        return _("クラウドのメタデータアドレス")
    if ip.is_loopback:
        return None  # allowed on purpose: receivers on the same host
    if ip.is_link_local:
        return _("リンクローカルアドレス")
    if ip.is_unspecified:
        return _("未指定アドレス")
    if ip.is_multicast:
        return _("マルチキャストアドレス")
    if isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255"):
        return _("ブロードキャストアドレス")
    if ip.is_reserved:
        return _("予約済みアドレス")
    return None


def check_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a URL we may send to; ``UnsafeDestination`` otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeDestination(_("URL の形式が正しくありません")) from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeDestination(_("http:// または https:// の URL だけを指定できます"))
    if not parts.hostname:
        raise UnsafeDestination(_("URL にホスト名がありません"))
    if parts.username or parts.password:
        raise UnsafeDestination(_("URL にユーザー名やパスワードを含めないでください"))
    host = parts.hostname
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and (reason := refused_reason(literal)):
        raise UnsafeDestination(_("送信先が%(reason)sです") % {"reason": reason})
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path


def resolve(host: str, port: int) -> list[str]:
    """Every address of ``host``, each checked; the first is used for the connection."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DestinationError(
            _("ホスト名を解決できません (%(host)s: %(error)s)") % {"host": host, "error": exc}
        ) from None
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0])
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if reason := refused_reason(ip):
            raise UnsafeDestination(
                _("%(host)s の解決先 %(address)s は%(reason)sのため送信できません")
                % {"host": host, "address": address, "reason": reason}
            )
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise DestinationError(_("ホスト名を解決できません (%(host)s)") % {"host": host})
    return addresses


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address
        self._ssl_context = ssl.create_default_context()

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._ssl_context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float = TIMEOUT) -> Result:
    """POST ``body``; never raises for network trouble (that is a failed attempt), only for
    ``UnsafeDestination`` (a URL that must not be retried)."""
    started = time.monotonic()

    def done(status: int | None, error: str, excerpt: str = "") -> Result:
        return Result(status, error, excerpt, int((time.monotonic() - started) * 1000))

    scheme, host, port, path = check_url(url)
    try:
        address = resolve(host, port)[0]
    except DestinationError as exc:
        return done(None, str(exc))
    cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    conn = cls(host, port, address, timeout)
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": USER_AGENT,
                **headers,
            },
        )
        response = conn.getresponse()
        excerpt = response.read(EXCERPT).decode("utf-8", "replace")
        status = response.status
    except TimeoutError:
        return done(None, _("タイムアウトしました (%(seconds)s 秒)") % {"seconds": f"{timeout:g}"})
    except ssl.SSLError as exc:
        return done(None, _("TLS エラー: %(error)s") % {"error": exc.reason or exc})
    except (OSError, http.client.HTTPException) as exc:
        return done(None, (_("接続できません: %(error)s") % {"error": f"{type(exc).__name__}: {exc}"})[:500])
    finally:
        conn.close()
    if 200 <= status < 300:
        return done(status, "", excerpt)
    if 300 <= status < 400:
        return done(
            status,
            _("HTTP %(status)s (リダイレクトはたどりません。最終的な URL を登録してください)")
            % {"status": status},
            excerpt,
        )
    return done(status, f"HTTP {status}", excerpt)
