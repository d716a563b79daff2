"""SIP message model, parser and serializer (RFC 3261 §7, §8.2.6, §20, §25).

Sans-I/O: everything here turns bytes into dataclasses and back, nothing else.

* ``parse_message`` is liberal: leading CRLF keep-alives, bare LF line endings,
  header folding (LWS continuation lines, §7.3.1), compact header names,
  extra whitespace around separators and a missing Content-Length on datagrams
  are all accepted.  Anything it cannot make sense of raises ``SipParseError``
  with a precise message.
* ``bytes(message)`` is strict: CRLF line endings, ``Name: value`` header
  lines, no folding, and a Content-Length that matches the body.  A message
  that is already in that canonical form round-trips byte for byte.
* Header values are stored as text; the typed views (``Via``, ``NameAddr``,
  ``SipUri``, ``cseq``...) are parsed on access from the current headers, so
  editing ``msg.headers`` is always reflected.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

SIP_VERSION: Final = "SIP/2.0"
MAX_MESSAGE_SIZE: Final = 65535
MAX_HEADERS: Final = 256
MAX_CSEQ: Final = 2**31 - 1  # §8.1.1.5: the sequence number MUST be less than 2**31
MAX_CONTENT_LENGTH_DIGITS: Final = 10
MAX_REASON_LENGTH: Final = 200
MAGIC_COOKIE: Final = "z9hG4bK"  # §8.1.1.7
DEFAULT_PORTS: Final = {"sip": 5060, "sips": 5061}
TAG_BYTES: Final = 8
BRANCH_BYTES: Final = 12
CRLF: Final = "\r\n"

# A source of random hex tokens: takes a byte count and returns hex text (like ``secrets.token_hex``).
TokenSource = Callable[[int], str]

# §7.3.3 compact forms, plus the ones registered later (RFC 3265, 3515, 3892, 3841, 4028).
COMPACT_FORMS: Final[dict[str, str]] = {
    "i": "call-id",
    "m": "contact",
    "f": "from",
    "t": "to",
    "v": "via",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
    "o": "event",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
    "u": "allow-events",
    "a": "accept-contact",
    "j": "reject-contact",
    "d": "request-disposition",
}

# Headers whose grammar is ``#element`` (comma separated lists), so get_all() splits them.
# Authorization-style headers are deliberately absent: their commas separate parameters.
LIST_HEADERS: Final[frozenset[str]] = frozenset(
    {
        "accept",
        "accept-contact",
        "accept-encoding",
        "accept-language",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "contact",
        "content-encoding",
        "content-language",
        "error-info",
        "history-info",
        "in-reply-to",
        "p-asserted-identity",
        "path",
        "proxy-require",
        "reason",
        "record-route",
        "reject-contact",
        "request-disposition",
        "require",
        "route",
        "service-route",
        "supported",
        "unsupported",
        "via",
        "warning",
    }
)

# Headers that may appear at most once (§20); duplicates make the message malformed.
SINGLETON_HEADERS: Final[tuple[str, ...]] = ("Call-ID", "CSeq", "From", "To", "Max-Forwards", "Content-Type")
MANDATORY_HEADERS: Final[tuple[str, ...]] = ("Call-ID", "CSeq", "From", "To", "Via")

REASON_PHRASES: Final[dict[int, str]] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}
# Fallback phrase per status class for codes missing from REASON_PHRASES.
CLASS_REASON_PHRASES: Final[dict[int, str]] = {
    1: "Provisional",
    2: "Success",
    3: "Redirection",
    4: "Client Error",
    5: "Server Error",
    6: "Global Failure",
}

# §25.1 token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# §25.1 absoluteURI and SIP-URI start with scheme ":"
# (RFC 2396 scheme = alpha *( alpha / digit / "+" / "-" / "." ))
_SCHEME_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
# §25.1 hostname / IPv4address (liberal: underscores are seen in the wild)
_HOSTNAME_RE: Final = re.compile(r"[A-Za-z0-9\-_.]+")
# §25.1 via-parm = sent-protocol LWS sent-by *( SEMI via-params )
#       sent-protocol = protocol-name SLASH protocol-version SLASH transport
_VIA_RE: Final = re.compile(
    r"\s*([A-Za-z0-9\-.!%*_+`'~]+)\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+(\S.*)",
    re.S,
)
_DIGITS_RE: Final = re.compile(r"[0-9]+")
_WSP: Final = " \t"
_HEADER_SEPARATOR: Final = ": "


class SipParseError(ValueError):
    """The one error type of the SIP core: text or bytes that are not valid SIP."""


# --------------------------------------------------------------------------- helpers


def header_key(name: str) -> str:
    """Case-folded header name with compact forms expanded (``i`` -> ``call-id``)."""
    lowered = name.strip().lower()
    return COMPACT_FORMS.get(lowered, lowered)


def split_header_list(value: str) -> list[str]:
    """Split a ``#element`` header value on commas outside quoted strings and ``<...>``.

    Empty elements (``a,,b``) are dropped, as RFC 7230-style list rules allow.
    """
    items: list[str] = []
    current: list[str] = []
    in_quotes = False
    escaped = False
    angle_depth = 0
    for char in value:
        if in_quotes:
            current.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_quotes = False
            continue
        if char == '"':
            in_quotes = True
        elif char == "<":
            angle_depth += 1
        elif char == ">" and angle_depth:
            angle_depth -= 1
        elif char == "," and not angle_depth:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    in_quotes = False
    escaped = False
    for char in text:
        if in_quotes:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_quotes = False
        elif char == '"':
            in_quotes = True
        elif char == separator:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if in_quotes:
        raise SipParseError(f"unterminated quoted string in {text!r}")
    parts.append("".join(current))
    return parts


def _parse_params(text: str, context: str) -> dict[str, str | None]:
    """Parse ``;name=value;flag`` (§25.1 generic-param, SEMI = SWS ";" SWS, EQUAL = SWS "=" SWS).

    ``text`` is what follows the first SEMI.  Names are case-folded (parameter
    names are case-insensitive); values are kept verbatim, quotes included.
    """
    params: dict[str, str | None] = {}
    for raw in _split_outside_quotes(text, ";"):
        name, sep, value = raw.partition("=")
        name = name.strip().lower()
        if not name or not _TOKEN_RE.fullmatch(name):
            raise SipParseError(f"invalid parameter {raw.strip()!r} in {context!r}")
        params[name] = value.strip() if sep else None
    return params


def _format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params.items())


def unquote(value: str) -> str:
    """Undo a §25.1 quoted-string (``"a \\" b"`` -> ``a " b``); unquoted text is returned stripped."""
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        text, end = _parse_quoted(value, 0)
        if end == len(value):
            return text
    return value


def quote(value: str) -> str:
    """Make a §25.1 quoted-string, escaping backslashes and double quotes."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _parse_quoted(text: str, start: int) -> tuple[str, int]:
    """Parse a quoted-string (§25.1, with quoted-pair escapes) at ``text[start] == '"'``."""
    out: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            out.append(text[index + 1])
            index += 2
            continue
        if char == '"':
            return "".join(out), index + 1
        out.append(char)
        index += 1
    raise SipParseError(f"unterminated quoted string in {text!r}")


def format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _parse_hostport(text: str) -> tuple[str, int | None]:
    """§25.1 hostport = host [ ":" port ], host = hostname / IPv4address / IPv6reference."""
    text = "".join(text.split())  # COLON = SWS ":" SWS
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            raise SipParseError(f"invalid host: {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise SipParseError(f"invalid host: {text[: end + 1]!r}") from None
    else:
        host, sep, port_text = text.partition(":")
        rest = sep + port_text
        if not _HOSTNAME_RE.fullmatch(host):
            raise SipParseError(f"invalid host: {host!r}")
    if not rest:
        return host, None
    port_text = rest[1:] if rest.startswith(":") else rest
    if not rest.startswith(":") or not _DIGITS_RE.fullmatch(port_text) or not 0 < int(port_text) <= 65535:
        raise SipParseError(f"invalid port: {port_text!r}")
    return host, int(port_text)


def new_tag(token: TokenSource = secrets.token_hex) -> str:
    """A fresh From/To tag (§19.3: at least 32 bits of randomness)."""
    return token(TAG_BYTES)


def new_branch(token: TokenSource = secrets.token_hex) -> str:
    """A fresh RFC 3261 branch, starting with the magic cookie (§8.1.1.7)."""
    return MAGIC_COOKIE + token(BRANCH_BYTES)


# --------------------------------------------------------------------------- URIs


@dataclass
class SipUri:
    """A parsed ``sip:``/``sips:``/``tel:`` URI (§19.1, RFC 3966).

    IPv6 hosts are stored without brackets; ``str()`` adds them back.  For
    ``tel:`` the telephone-subscriber is in ``user`` and ``host`` is empty.
    Any other scheme is kept unparsed in ``opaque`` (liberal acceptance of
    absoluteURI in From/To/Contact).
    """

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    opaque: str | None = None

    @classmethod
    def parse(cls, text: str) -> SipUri:
        return parse_uri(text)

    @property
    def is_sip(self) -> bool:
        return self.scheme in ("sip", "sips")

    @property
    def transport(self) -> str | None:
        value = self.params.get("transport")
        return value.upper() if value else None

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        if self.scheme == "tel":
            return f"tel:{self.user or ''}{_format_params(self.params)}"
        text = f"{self.scheme}:"
        if self.user is not None:
            text += self.user
            if self.password is not None:
                text += f":{self.password}"
            text += "@"
        text += format_host(self.host)
        if self.port is not None:
            text += f":{self.port}"
        text += _format_params(self.params)
        if self.headers:
            text += "?" + "&".join(f"{name}={value}" for name, value in self.headers.items())
        return text


def parse_uri(text: str) -> SipUri:
    """Parse a URI (§25.1 SIP-URI / SIPS-URI, RFC 3966 telephone-uri, other absoluteURI opaque)."""
    stripped = text.strip()
    match = _SCHEME_RE.match(stripped)
    if not match:
        raise SipParseError(f"URI without scheme: {text!r}")
    if any(char.isspace() for char in stripped):
        raise SipParseError(f"whitespace in URI: {text!r}")
    scheme = match.group(1).lower()
    rest = stripped[match.end() :]
    if not rest:
        raise SipParseError(f"empty URI: {text!r}")
    if scheme == "tel":
        # telephone-uri = "tel:" telephone-subscriber, parameters follow ";"
        number, sep, param_text = rest.partition(";")
        return SipUri(scheme="tel", user=number, params=_parse_params(param_text, text) if sep else {})
    if scheme not in ("sip", "sips"):
        return SipUri(scheme=scheme, opaque=rest)
    # SIP-URI = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at != -1:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user_text, sep, password_text = userinfo.partition(":")
        if not user_text:
            raise SipParseError(f"empty user part in URI: {text!r}")
        user = user_text
        password = password_text if sep else None
    cut = len(rest)
    for delimiter in (";", "?"):
        position = rest.find(delimiter)
        if position != -1:
            cut = min(cut, position)
    hostport, tail = rest[:cut], rest[cut:]
    if not hostport:
        raise SipParseError(f"missing host in URI: {text!r}")
    host, port = _parse_hostport(hostport)
    params: dict[str, str | None] = {}
    headers: dict[str, str] = {}
    param_text, qmark, header_text = tail.partition("?")
    if param_text:
        params = _parse_params(param_text[1:], text)
    if qmark:
        # headers = "?" header *( "&" header ), header = hname "=" hvalue
        for item in header_text.split("&"):
            name, _, value = item.partition("=")
            if not name:
                raise SipParseError(f"invalid URI header {item!r} in {text!r}")
            headers[name] = value
    return SipUri(scheme, user, password, host, port, params, headers)


# --------------------------------------------------------------------------- typed header values


@dataclass
class Via:
    """One via-parm (§20.42, §25.1).  IPv6 hosts are stored without brackets."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP"
    version: str = "2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        match = _VIA_RE.fullmatch(text)
        if not match:
            raise SipParseError(f"invalid Via: {text!r}")
        protocol, version, transport, rest = match.groups()
        hostport, sep, param_text = rest.partition(";")
        hostport = hostport.strip()
        if hostport.endswith(")") and "(" in hostport:  # trailing comment, §25.1 via-extension
            hostport = hostport[: hostport.index("(")].strip()
        try:
            host, port = _parse_hostport(hostport)
        except SipParseError as exc:
            raise SipParseError(f"invalid Via: {text!r} ({exc})") from None
        params = _parse_params(param_text, text) if sep else {}
        return cls(transport.upper(), host, port, params, protocol, version)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The filled-in rport value (RFC 3581), or None when absent or still empty."""
        value = self.params.get("rport")
        return int(value) if value and value.isdigit() else None

    @property
    def rport_requested(self) -> bool:
        return "rport" in self.params

    @property
    def has_magic_cookie(self) -> bool:
        return bool(self.branch and self.branch.startswith(MAGIC_COOKIE))

    def sent_by(self) -> tuple[str, int]:
        """(host, port) with the default port filled in (§18.2.2)."""
        default = DEFAULT_PORTS["sips"] if self.transport in ("TLS", "WSS") else DEFAULT_PORTS["sip"]
        return self.host.lower(), self.port if self.port is not None else default

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return (
            f"{self.protocol}/{self.version}/{self.transport} {format_host(self.host)}{port}"
            f"{_format_params(self.params)}"
        )


@dataclass
class NameAddr:
    """A From/To/Contact/Route value: ``[display-name] <uri> *(;param)`` or addr-spec form (§20.10)."""

    display_name: str | None
    uri: SipUri
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        value = text.strip()
        display: str | None = None
        lt = value.find("<")
        semi = value.find(";")
        if value.startswith('"'):
            # display-name = quoted-string, then LAQUOT = SWS "<"
            display, end = _parse_quoted(value, 0)
            rest = value[end:].lstrip()
            if not rest.startswith("<"):
                raise SipParseError(f"expected '<' after display name in {text!r}")
        elif lt != -1 and (semi == -1 or lt < semi):
            # display-name = *(token LWS)
            display = " ".join(value[:lt].split()) or None
            rest = value[lt:]
        else:
            rest = ""
        if rest:
            end = rest.find(">")
            if end == -1:
                raise SipParseError(f"missing '>' in {text!r}")
            uri_text, tail = rest[1:end], rest[end + 1 :].strip()
        else:
            # addr-spec form: the URI cannot contain ';', so parameters start at the first one
            uri_text, sep, tail = value.partition(";")
            tail = sep + tail
            if "," in uri_text:  # §20.10: such a URI needs the name-addr form; most likely a list
                raise SipParseError(f"unexpected comma in {text!r}")
        if tail and not tail.startswith(";"):
            raise SipParseError(f"unexpected text after URI in {text!r}")
        uri = parse_uri(uri_text)
        params = _parse_params(tail[1:], text) if tail else {}
        return cls(display, uri, params)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        display = f"{quote(self.display_name)} " if self.display_name is not None else ""
        return f"{display}<{self.uri}>{_format_params(self.params)}"


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """§20.15 media-type = m-type SLASH m-subtype *(SEMI m-parameter); values are unquoted."""
    media, sep, param_text = value.partition(";")
    m_type, slash, m_subtype = media.partition("/")
    m_type, m_subtype = m_type.strip(), m_subtype.strip()
    if not slash or not _TOKEN_RE.fullmatch(m_type) or not _TOKEN_RE.fullmatch(m_subtype):
        raise SipParseError(f"invalid Content-Type: {value!r}")
    params = _parse_params(param_text, value) if sep else {}
    return f"{m_type}/{m_subtype}".lower(), {name: unquote(v or "") for name, v in params.items()}


# --------------------------------------------------------------------------- headers


class Headers:
    """Ordered multi-dict of (name, value); original names and order are kept for round trips.

    Lookups are case-insensitive and understand compact forms, so
    ``headers.get("Call-ID")`` finds an ``i:`` line.  Parsed lines also keep
    the exact text between name and value (``"Min-SE:  1800"``) so that an
    untouched header serializes as it arrived; headers set here use ``": "``.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        # name, value, separator, folded key (header_key of the name, computed once)
        self._items: list[tuple[str, str, str, str]] = []
        for name, value in items:
            self.add(name, value)

    @staticmethod
    def _check(name: str, value: str) -> None:
        if not _TOKEN_RE.fullmatch(name):
            raise SipParseError(f"invalid header name: {name!r}")
        if "\r" in value or "\n" in value or "\x00" in value:
            raise SipParseError(f"invalid character in {name} header value: {value!r}")

    def add(self, name: str, value: str) -> None:
        self._check(name, value)
        self._items.append((name, value, _HEADER_SEPARATOR, header_key(name)))

    def _add_parsed(self, name: str, value: str, separator: str) -> None:
        self._check(name, value)
        self._items.append((name, value, separator, header_key(name)))

    def insert(self, index: int, name: str, value: str) -> None:
        self._check(name, value)
        self._items.insert(index, (name, value, _HEADER_SEPARATOR, header_key(name)))

    def set(self, name: str, value: str) -> None:
        """Replace the first ``name`` header in place (dropping the others), or append it."""
        self._check(name, value)
        key = header_key(name)
        item = (name, value, _HEADER_SEPARATOR, key)
        position = next((i for i, it in enumerate(self._items) if it[3] == key), None)
        if position is None:
            self._items.append(item)
            return
        self._items[position] = item
        rest = self._items[position + 1 :]
        self._items[position + 1 :] = [it for it in rest if it[3] != key]

    def remove(self, name: str) -> int:
        """Remove every ``name`` header; returns how many were removed."""
        key = header_key(name)
        before = len(self._items)
        self._items = [item for item in self._items if item[3] != key]
        return before - len(self._items)

    def get(self, name: str) -> str | None:
        key = header_key(name)
        for item in self._items:
            if item[3] == key:
                return item[1]
        return None

    def raw_values(self, name: str) -> list[str]:
        """Every ``name`` header line's value, without splitting comma-separated lists."""
        key = header_key(name)
        return [item[1] for item in self._items if item[3] == key]

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``; list headers (Via, Contact, Route, ...) are split on commas."""
        key = header_key(name)
        values = [item[1] for item in self._items if item[3] == key]
        if key not in LIST_HEADERS:
            return values
        return [element for value in values for element in split_header_list(value)]

    def replace_first_element(self, name: str, value: str) -> None:
        """Replace the first list element of ``name`` (e.g. the top Via), keeping the rest."""
        self._check(name, value)
        key = header_key(name)
        for index, (n, old, separator, k) in enumerate(self._items):
            if k == key:
                rest = split_header_list(old)[1:]
                self._items[index] = (n, ", ".join([value, *rest]), separator, k)
                return
        raise KeyError(name)

    def copy(self) -> Headers:
        clone = Headers()
        clone._items = list(self._items)
        return clone

    def items(self) -> list[tuple[str, str]]:
        return [(name, value) for name, value, _, _ in self._items]

    def lines(self) -> list[str]:
        """The header lines as they serialize (no line breaks)."""
        return [f"{name}{separator}{value}" for name, value, separator, _ in self._items]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self.items() == other.items()

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


# --------------------------------------------------------------------------- head parsing


def _decode(line: bytes) -> str:
    # §7.3.1: header text is UTF-8; surrogateescape keeps any other byte for an exact round trip.
    return line.decode("utf-8", "surrogateescape")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _split_lines(data: bytes, pos: int) -> tuple[list[bytes], int]:
    """Lines from ``pos`` up to the first empty line (CRLF or bare LF).

    Returns the lines and the offset just after the empty line; if there is no
    empty line, every remaining line is returned with the offset at the end.
    """
    lines: list[bytes] = []
    size = len(data)
    while pos < size:
        newline = data.find(b"\n", pos)
        if newline == -1:
            tail = data[pos:].rstrip(b"\r")
            if tail:
                lines.append(tail)
            return lines, size
        end = newline - 1 if newline > pos and data[newline - 1] == 0x0D else newline
        line = data[pos:end]
        pos = newline + 1
        if not line:
            return lines, pos
        lines.append(line)
    return lines, size


def _headers_from_lines(lines: list[bytes], *, lenient: bool = False) -> Headers:
    """§7.3.1 message-header lines, unfolding continuation lines into a single SP.

    ``lenient`` skips unreadable lines instead of failing (salvage for a 400).
    """
    unfolded: list[list[str]] = []  # name, value, separator
    for raw in lines:
        line = _decode(raw)
        if line[:1] in (" ", "\t"):
            if not unfolded:
                if lenient:
                    continue
                raise SipParseError(f"continuation line before the first header: {line!r}")
            continuation = line.strip(_WSP)
            if continuation:
                unfolded[-1][1] = f"{unfolded[-1][1].rstrip(_WSP)} {continuation}".lstrip(_WSP)
                if not unfolded[-1][2].endswith((" ", "\t")):
                    unfolded[-1][2] += " "
            continue
        name_part, colon, value_part = line.partition(":")
        name = name_part.rstrip(_WSP)  # HCOLON = *( SP / HTAB ) ":" SWS
        if lenient and (not colon or not _TOKEN_RE.fullmatch(name)):
            continue
        if not colon:
            raise SipParseError(f"header line without colon: {line!r}")
        if not _TOKEN_RE.fullmatch(name):
            raise SipParseError(f"invalid header name: {name!r}")
        value = value_part.strip(_WSP)
        leading = value_part[: len(value_part) - len(value_part.lstrip(_WSP))]
        unfolded.append([name, value, f"{name_part[len(name) :]}:{leading}"])
        if len(unfolded) > MAX_HEADERS:
            raise SipParseError(f"too many headers (limit {MAX_HEADERS})")
    headers = Headers()
    for name, value, separator in unfolded:
        if "\x00" in value or "\r" in value:
            if lenient:
                continue
            raise SipParseError(f"invalid character in {name} header value: {value!r}")
        headers._add_parsed(name, value, separator)
    return headers


def parse_head(data: bytes, *, lenient: bool = False) -> tuple[str, Headers, int]:
    """Start line, headers and body offset of a message; leading CRLFs are skipped (§7.5)."""
    pos = 0
    while pos < len(data) and data[pos] in b"\r\n":
        pos += 1
    if pos == len(data):
        raise SipParseError("empty message")
    lines, body_offset = _split_lines(data, pos)
    start_line = _decode(lines[0])
    if start_line[:1] in (" ", "\t"):
        raise SipParseError(f"malformed start line: {start_line!r}")
    return start_line, _headers_from_lines(lines[1:], lenient=lenient), body_offset


def parse_content_length(value: str) -> int:
    """§20.14 Content-Length = ( "Content-Length" / "l" ) HCOLON 1*DIGIT."""
    text = value.strip()
    if not _DIGITS_RE.fullmatch(text) or len(text.lstrip("0")) > MAX_CONTENT_LENGTH_DIGITS:
        raise SipParseError(f"invalid Content-Length: {value!r}")
    return int(text)


def content_length_of(headers: Headers) -> int | None:
    """The Content-Length of ``headers``; repeated identical values are tolerated, conflicting ones not."""
    values = headers.raw_values("content-length")
    if not values:
        return None
    lengths = {parse_content_length(value) for value in values}
    if len(lengths) > 1:
        raise SipParseError(f"conflicting Content-Length headers: {', '.join(values)}")
    return lengths.pop()


def _parse_cseq(value: str) -> tuple[int, str]:
    """§20.16 CSeq = "CSeq" HCOLON 1*DIGIT LWS Method."""
    parts = value.split()
    if len(parts) != 2 or not _DIGITS_RE.fullmatch(parts[0]) or not _TOKEN_RE.fullmatch(parts[1]):
        raise SipParseError(f"invalid CSeq: {value!r}")
    number = int(parts[0])
    if number > MAX_CSEQ:
        raise SipParseError(f"CSeq number out of range: {parts[0]}")
    return number, parts[1]


# --------------------------------------------------------------------------- messages


class _MessageMixin:
    """Typed accessors shared by Request and Response; each parses the current header text."""

    headers: Headers
    body: bytes

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"missing mandatory header: {name}")
        return value

    @property
    def call_id(self) -> str:
        return self._required("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        return _parse_cseq(self._required("CSeq"))

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(value) for value in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        values = self.headers.get_all("Via")
        if not values:
            raise SipParseError("missing mandatory header: Via")
        return Via.parse(values[0])

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self._required("From"))

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self._required("To"))

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact values; the REGISTER wildcard ``*`` is skipped."""
        return [NameAddr.parse(v) for v in self.headers.get_all("Contact") if v.strip() != "*"]

    @property
    def contact(self) -> NameAddr | None:
        contacts = self.contacts
        return contacts[0] if contacts else None

    @property
    def record_route(self) -> list[NameAddr]:
        return [NameAddr.parse(v) for v in self.headers.get_all("Record-Route")]

    @property
    def route(self) -> list[NameAddr]:
        return [NameAddr.parse(v) for v in self.headers.get_all("Route")]

    @property
    def content_type(self) -> tuple[str, dict[str, str]] | None:
        value = self.headers.get("Content-Type")
        return None if value is None else parse_content_type(value)

    @property
    def max_forwards(self) -> int | None:
        """§20.22 Max-Forwards = "Max-Forwards" HCOLON 1*DIGIT."""
        value = self.headers.get("Max-Forwards")
        if value is None:
            return None
        if not _DIGITS_RE.fullmatch(value.strip()) or len(value.strip().lstrip("0")) > 3:
            raise SipParseError(f"invalid Max-Forwards: {value!r}")
        return int(value)

    def body_parts(self) -> list[BodyPart]:
        """The body as parts: a multipart body is split, any other body is one part."""
        content_type = self.content_type
        if content_type is None:
            return [BodyPart(Headers(), self.body)] if self.body else []
        mime, params = content_type
        if mime.startswith("multipart/"):
            boundary = params.get("boundary")
            if not boundary:
                raise SipParseError("multipart body without boundary parameter")
            return parse_multipart(self.body, boundary)
        raw = self.headers.get("Content-Type") or mime
        return [BodyPart(Headers([("Content-Type", raw)]), self.body)]

    def _validate(self) -> None:
        for name in MANDATORY_HEADERS:
            if not self.headers.get_all(name):
                raise SipParseError(f"missing mandatory header: {name}")
        for name in SINGLETON_HEADERS:
            if len(self.headers.raw_values(name)) > 1:
                raise SipParseError(f"multiple {name} headers")
        if not self.call_id.strip():
            raise SipParseError("empty Call-ID")
        # parse every mandatory typed value once so malformations surface now
        _ = (self.cseq, self.vias, self.from_, self.to, self.max_forwards)


def _serialize(start_line: str, headers: Headers, body: bytes) -> bytes:
    """Strict output: CRLF, ``Name: value``, one Content-Length equal to the body length (§7.5, §20.14)."""
    lines = [start_line]
    length = len(body)
    seen_length = False
    for (name, value), line in zip(headers.items(), headers.lines(), strict=True):
        if header_key(name) == "content-length":
            if seen_length:
                continue
            seen_length = True
            try:
                correct = parse_content_length(value) == length
            except SipParseError:
                correct = False
            if not correct:
                line = f"{name}: {length}"
        lines.append(line)
    if not seen_length:
        lines.append(f"Content-Length: {length}")
    return _encode(CRLF.join(lines) + CRLF + CRLF) + body


@dataclass
class Request(_MessageMixin):
    """A SIP request (§7.1).  ``uri`` is the Request-URI text; ``request_uri`` parses it."""

    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION

    @classmethod
    def parse(cls, data: bytes) -> Request:
        message = parse_message(data)
        if not isinstance(message, Request):
            raise SipParseError("expected a request, got a response")
        return message

    @property
    def request_uri(self) -> SipUri:
        return parse_uri(self.uri)

    def __bytes__(self) -> bytes:
        if not _TOKEN_RE.fullmatch(self.method):
            raise SipParseError(f"invalid method: {self.method!r}")
        if not self.uri or any(char.isspace() for char in self.uri):
            raise SipParseError(f"invalid Request-URI: {self.uri!r}")
        return _serialize(f"{self.method} {self.uri} {self.version}", self.headers, self.body)


@dataclass
class Response(_MessageMixin):
    """A SIP response (§7.2)."""

    status: int
    reason: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION

    @classmethod
    def parse(cls, data: bytes) -> Response:
        message = parse_message(data)
        if not isinstance(message, Response):
            raise SipParseError("expected a response, got a request")
        return message

    def __bytes__(self) -> bytes:
        if not 100 <= self.status <= 699:
            raise SipParseError(f"invalid status code: {self.status!r}")
        if "\r" in self.reason or "\n" in self.reason:
            raise SipParseError(f"invalid reason phrase: {self.reason!r}")
        return _serialize(f"{self.version} {self.status} {self.reason}", self.headers, self.body)


def _check_version(version: str) -> None:
    # §25.1 SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT (the literal is case-insensitive)
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"unsupported SIP version: {version!r}")


def _parse_start_line(line: str) -> Request | Response:
    if line[:4].upper() == "SIP/":
        # Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        parts = line.split(" ", 2)
        if len(parts) < 2:
            raise SipParseError(f"malformed status line: {line!r}")
        _check_version(parts[0])
        code = parts[1]
        if not (len(code) == 3 and code.isascii() and code.isdigit()) or not 100 <= int(code) <= 699:
            raise SipParseError(f"invalid status code: {code!r}")
        reason = parts[2] if len(parts) == 3 else ""
        return Response(int(code), reason, version=parts[0])
    # Request-Line = Method SP Request-URI SP SIP-Version (extra whitespace is tolerated)
    parts = line.split()
    if len(parts) != 3:
        raise SipParseError(f"malformed request line: {line!r}")
    method, uri, version = parts
    if not _TOKEN_RE.fullmatch(method):
        raise SipParseError(f"invalid method: {method!r}")
    if version[:4].upper() != "SIP/":
        raise SipParseError(f"malformed request line: {line!r}")
    _check_version(version)
    if not _SCHEME_RE.match(uri):
        raise SipParseError(f"invalid Request-URI: {uri!r}")
    return Request(method, uri, version=version)


def parse_message(data: bytes) -> Request | Response:
    """Parse one SIP message (a datagram, or one frame cut by ``StreamFramer``).

    Without Content-Length the body is the rest of the data (allowed on UDP,
    §18.3); with it, extra bytes are ignored and missing bytes are an error.
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise SipParseError(f"message of {len(data)} bytes exceeds the limit of {MAX_MESSAGE_SIZE} bytes")
    start_line, headers, body_offset = parse_head(data)
    message = _parse_start_line(start_line)
    message.headers = headers
    length = content_length_of(headers)
    available = len(data) - body_offset
    if length is None:
        message.body = data[body_offset:]
    elif length > available:
        raise SipParseError(f"Content-Length {length} exceeds the {available} bytes of body received")
    else:
        message.body = data[body_offset : body_offset + length]
    message._validate()
    if isinstance(message, Request):
        cseq_method = message.cseq[1]
        if cseq_method != message.method:
            raise SipParseError(
                f"CSeq method {cseq_method!r} does not match request method {message.method!r}"
            )
    return message


# --------------------------------------------------------------------------- responses


def reason_phrase(status: int) -> str:
    return REASON_PHRASES.get(status) or CLASS_REASON_PHRASES.get(status // 100, "")


def _with_to_tag(to_value: str, to_tag: str | None) -> str:
    if to_tag is None:
        return to_value
    try:
        if NameAddr.parse(to_value).tag is not None:
            return to_value
    except SipParseError:
        return to_value
    return f"{to_value};tag={to_tag}"


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """Build a response per §8.2.6: Via, From, To, Call-ID and CSeq are copied from the request.

    ``to_tag`` is added to To unless the request's To already has a tag.  For
    100 Trying the Timestamp header is copied too (§8.2.6.1).
    """
    copied = Headers()
    for name, value in request.headers:
        key = header_key(name)
        if key == "via":
            copied.add("Via", value)
        elif key == "from":
            copied.add("From", value)
        elif key == "to":
            copied.add("To", _with_to_tag(value, to_tag))
        elif key == "call-id":
            copied.add("Call-ID", value)
        elif key == "cseq":
            copied.add("CSeq", value)
        elif key == "timestamp" and status == 100:
            copied.add("Timestamp", value)
    for name, value in headers:
        copied.add(name, value)
    if content_type is not None:
        copied.set("Content-Type", content_type)
    return Response(status, reason if reason is not None else reason_phrase(status), copied, body)


def _sanitize_reason(reason: str) -> str:
    cleaned = "".join(char if char.isprintable() else " " for char in reason)
    return " ".join(cleaned.split())[:MAX_REASON_LENGTH]


def try_bad_request_response(data: bytes, reason: str, *, to_tag: str | None = None) -> bytes | None:
    """A 400 for a malformed request, or None when it cannot be answered.

    A response is possible when the data still reads as a request other than
    ACK with a parseable top Via and From, To, Call-ID and CSeq lines present.
    The reason becomes the reason phrase.  Without ``to_tag`` a tag is derived
    from a hash of the data, so a retransmission gets the same answer.
    """
    if len(data) > MAX_MESSAGE_SIZE:
        return None
    try:
        start_line, headers, _ = parse_head(data, lenient=True)
    except SipParseError:
        return None
    words = start_line.split()
    if not words or start_line[:4].upper() == "SIP/" or not _TOKEN_RE.fullmatch(words[0]):
        return None
    if words[0] == "ACK" or any(not headers.get(name) for name in MANDATORY_HEADERS):
        return None
    try:
        Via.parse(headers.get_all("Via")[0])
    except (SipParseError, IndexError):
        return None
    if to_tag is None:
        to_tag = hashlib.sha256(data).hexdigest()[: TAG_BYTES * 2]
    request = Request(words[0], "sip:invalid", headers)
    response = make_response(request, 400, _sanitize_reason(reason) or reason_phrase(400), to_tag=to_tag)
    return bytes(response)


# --------------------------------------------------------------------------- multipart bodies


@dataclass
class BodyPart:
    """One part of a multipart body (RFC 2046 §5.1, as used by SIPREC, RFC 7866)."""

    headers: Headers
    body: bytes

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return None if value is None else parse_content_type(value)[0]

    @property
    def content_disposition(self) -> str | None:
        """The disposition type (``recording-session``, ``session``...), lower-cased."""
        value = self.headers.get("Content-Disposition")
        return None if value is None else value.split(";", 1)[0].strip().lower()

    @property
    def content_id(self) -> str | None:
        value = self.headers.get("Content-ID")
        return None if value is None else value.strip().strip("<>")

    def __bytes__(self) -> bytes:
        head = "".join(line + CRLF for line in self.headers.lines())
        return _encode(head + CRLF) + self.body


def _parse_body_part(raw: bytes) -> BodyPart:
    if raw.startswith(b"\r\n"):
        return BodyPart(Headers(), raw[2:])
    if raw.startswith(b"\n"):
        return BodyPart(Headers(), raw[1:])
    lines, body_offset = _split_lines(raw, 0)
    return BodyPart(_headers_from_lines(lines), raw[body_offset:])


def _boundary_text(boundary: str) -> str:
    text = unquote(boundary)
    if not text:
        raise SipParseError("empty multipart boundary")
    return text


def parse_multipart(body: bytes, boundary: str) -> list[BodyPart]:
    """Split a multipart body (RFC 2046 §5.1.1).

    Tolerates a preamble and epilogue, a missing close delimiter, LF-only line
    breaks and a boundary given with its quotes.  The line break before each
    delimiter belongs to the delimiter, so part bodies come out exactly.
    """
    marker = re.escape(_encode(_boundary_text(boundary)))
    # delimiter = CRLF dash-boundary, then transport-padding (LWSP) and the line break
    delimiter = re.compile(rb"(?:\A|\r?\n)--" + marker + rb"(--)?[ \t]*(?=\r?\n|\Z)")
    matches = list(delimiter.finditer(body))
    if not matches:
        raise SipParseError(f"multipart boundary {_boundary_text(boundary)!r} not found in body")
    parts: list[BodyPart] = []
    for index, match in enumerate(matches):
        if match.group(1):  # close-delimiter: the rest is epilogue
            break
        start = match.end()
        start += 2 if body.startswith(b"\r\n", start) else 1 if body.startswith(b"\n", start) else 0
        end = matches[index + 1].start() if index + 1 < len(matches) else len(body)
        parts.append(_parse_body_part(body[start : max(start, end)]))
    return parts


def build_multipart(parts: Iterable[BodyPart], boundary: str) -> bytes:
    """Serialize parts with CRLF delimiters and a close delimiter (strict output)."""
    marker = _encode(_boundary_text(boundary))
    out = bytearray()
    for part in parts:
        if b"--" + marker in part.body:
            raise SipParseError(f"multipart boundary {marker.decode()!r} occurs inside a part body")
        out += b"--" + marker + b"\r\n" + bytes(part) + b"\r\n"
    out += b"--" + marker + b"--\r\n"
    return bytes(out)
