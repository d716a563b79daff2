"""Session Description Protocol (RFC 8866, formerly RFC 4566) and the offer/answer model (RFC 3264).

Sans-I/O: this module parses and serialises SDP text and builds answers for a SIPREC recording
server (RFC 7866). It never opens sockets or reads clocks; callers hand in ports and ids.

Parsing is liberal (LF or CRLF line endings, trailing whitespace, unknown line types and
malformed optional lines are tolerated) and serialising is strict (CRLF, RFC 8866 line order).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Set
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_SUPPORTED_CODECS",
    "DIRECTIONS",
    "STATIC_PAYLOAD_TYPES",
    "Attribute",
    "Bandwidth",
    "Connection",
    "Crypto",
    "MediaChange",
    "MediaDescription",
    "OfferComparison",
    "Origin",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "Timing",
    "build_answer",
    "compare_offers",
]

CRLF = "\r\n"
SDP_VERSION = "0"
NET_TYPE_IN = "IN"
ADDR_TYPE_IP4 = "IP4"
ADDR_TYPE_IP6 = "IP6"

SENDRECV = "sendrecv"
SENDONLY = "sendonly"
RECVONLY = "recvonly"
INACTIVE = "inactive"
DIRECTIONS: frozenset[str] = frozenset({SENDRECV, SENDONLY, RECVONLY, INACTIVE})
DEFAULT_DIRECTION = SENDRECV

ATTR_RTPMAP = "rtpmap"
ATTR_FMTP = "fmtp"
ATTR_PTIME = "ptime"
ATTR_MAXPTIME = "maxptime"
ATTR_LABEL = "label"  # RFC 4574
ATTR_RTCP_MUX = "rtcp-mux"  # RFC 5761
ATTR_CRYPTO = "crypto"  # RFC 4568

MEDIA_AUDIO = "audio"
#: Transport protocols we can receive without any extra negotiation (no SRTP keying yet).
RTP_PLAIN_PROTOS: frozenset[str] = frozenset({"RTP/AVP", "RTP/AVPF"})

TELEPHONE_EVENT = "telephone-event"  # RFC 4733
COMFORT_NOISE = "CN"  # RFC 3389
#: Encodings that ride along an audio codec instead of being one.
AUXILIARY_ENCODINGS: frozenset[str] = frozenset({TELEPHONE_EVENT.lower(), COMFORT_NOISE.lower()})
DEFAULT_SUPPORTED_CODECS: frozenset[str] = frozenset(
    {"PCMU", "PCMA", "G722", "opus", TELEPHONE_EVENT, COMFORT_NOISE}
)

DISABLED_PORT = 0
MAX_PORT = 65535
MAX_PAYLOAD_TYPE = 127

# sess-version ceiling used when callers hand us arbitrary integers (RFC 8866 §5.2: 64-bit is enough).
_UINT64_MAX = 2**64 - 1


class SdpError(ValueError):
    """An SDP body that cannot be used, or an answer that cannot be built."""


@dataclass(frozen=True)
class RtpMap:
    """``a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]``."""

    encoding: str
    clock_rate: int
    channels: int = 1

    def __str__(self) -> str:
        text = f"{self.encoding}/{self.clock_rate}"
        return f"{text}/{self.channels}" if self.channels != 1 else text

    def matches(self, encoding: str) -> bool:
        """Encoding names are case-insensitive (RFC 4855 §3)."""
        return self.encoding.lower() == encoding.lower()


#: RFC 3551 §6 static payload types, used when an offer lists one without an a=rtpmap line.
STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    0: RtpMap("PCMU", 8000),
    3: RtpMap("GSM", 8000),
    4: RtpMap("G723", 8000),
    5: RtpMap("DVI4", 8000),
    6: RtpMap("DVI4", 16000),
    7: RtpMap("LPC", 8000),
    8: RtpMap("PCMA", 8000),
    9: RtpMap("G722", 8000),  # clock rate 8000 by historical error (RFC 3551 §4.5.2)
    10: RtpMap("L16", 44100, 2),
    11: RtpMap("L16", 44100),
    12: RtpMap("QCELP", 8000),
    13: RtpMap("CN", 8000),
    14: RtpMap("MPA", 90000),
    15: RtpMap("G728", 8000),
    16: RtpMap("DVI4", 11025),
    17: RtpMap("DVI4", 22050),
    18: RtpMap("G729", 8000),
    25: RtpMap("CelB", 90000),
    26: RtpMap("JPEG", 90000),
    28: RtpMap("nv", 90000),
    31: RtpMap("H261", 90000),
    32: RtpMap("MPV", 90000),
    33: RtpMap("MP2T", 90000),
    34: RtpMap("H263", 90000),
}


@dataclass
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`` (RFC 8866 §5.2).

    sess-id and sess-version are kept as text so that leading zeros and over-long values sent by
    real clients survive a round trip; :attr:`version_number` gives the numeric value.
    """

    username: str
    session_id: str
    session_version: str
    net_type: str
    addr_type: str
    address: str

    @classmethod
    def parse(cls, value: str) -> Origin:
        parts = value.split()
        if len(parts) != 6:
            raise SdpError(f"invalid o= line: {value!r}")
        return cls(*parts)

    @property
    def version_number(self) -> int | None:
        return int(self.session_version) if self.session_version.isdigit() else None

    def __str__(self) -> str:
        return " ".join(
            (
                self.username,
                self.session_id,
                self.session_version,
                self.net_type,
                self.addr_type,
                self.address,
            )
        )


@dataclass
class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (RFC 8866 §5.7).

    ``address`` is the connection-address as sent, which for multicast may carry ``/ttl`` and
    ``/count``; :attr:`host` strips those.
    """

    net_type: str
    addr_type: str
    address: str

    @classmethod
    def parse(cls, value: str) -> Connection:
        parts = value.split()
        if len(parts) != 3:
            raise SdpError(f"invalid c= line: {value!r}")
        return cls(*parts)

    @property
    def host(self) -> str:
        return self.address.split("/", 1)[0]

    def __str__(self) -> str:
        return f"{self.net_type} {self.addr_type} {self.address}"


@dataclass
class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` (RFC 8866 §5.8), bandwidth in kbit/s for AS/CT."""

    bwtype: str
    bandwidth: int

    @classmethod
    def parse(cls, value: str) -> Bandwidth:
        bwtype, sep, amount = value.partition(":")
        if not sep or not bwtype or not amount.strip().isdigit():
            raise SdpError(f"invalid b= line: {value!r}")
        return cls(bwtype, int(amount))

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.bandwidth}"


@dataclass
class Timing:
    """``t=<start-time> <stop-time>`` (RFC 8866 §5.9) with its ``r=`` repeat lines kept as text."""

    start: int = 0
    stop: int = 0
    repeats: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, value: str) -> Timing:
        parts = value.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise SdpError(f"invalid t= line: {value!r}")
        return cls(int(parts[0]), int(parts[1]))

    def __str__(self) -> str:
        return f"{self.start} {self.stop}"


@dataclass
class Attribute:
    """``a=<attribute-name>[:<attribute-value>]`` (RFC 8866 §5.13); ``value`` is None for flags."""

    name: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Attribute:
        name, sep, value = text.partition(":")
        return cls(name, value if sep else None)

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True)
class Crypto:
    """``a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]`` (RFC 4568 §9.1), parsed only."""

    tag: int
    suite: str
    key_params: str
    session_params: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str) -> Crypto | None:
        parts = value.split()
        if len(parts) < 3 or not parts[0].isdigit():
            return None
        return cls(int(parts[0]), parts[1], parts[2], tuple(parts[3:]))


class _AttributeMixin:
    attributes: list[Attribute]

    def get_attributes(self, name: str) -> list[Attribute]:
        """All attributes called ``name`` in order; names are matched case-insensitively (liberal)."""
        wanted = name.lower()
        return [a for a in self.attributes if a.name.lower() == wanted]

    def get_attribute(self, name: str) -> str | None:
        """Value of the first attribute called ``name`` ("" for a flag), or None when absent."""
        for attribute in self.get_attributes(name):
            return attribute.value if attribute.value is not None else ""
        return None

    def has_attribute(self, name: str) -> bool:
        return bool(self.get_attributes(name))

    def _explicit_direction(self) -> str | None:
        direction = None
        for attribute in self.attributes:
            if attribute.value is None and attribute.name.lower() in DIRECTIONS:
                direction = attribute.name.lower()  # the last one wins if a client repeats itself
        return direction


def _parse_ptime(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        milliseconds = float(value.strip())
    except ValueError:
        return None
    return int(milliseconds) if milliseconds > 0 else None


@dataclass
class MediaDescription(_AttributeMixin):
    """One media section: ``m=<media> <port>[/<number of ports>] <proto> <fmt> ...`` (RFC 8866 §5.14)."""

    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    information: str | None = None
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)

    @classmethod
    def parse_m_line(cls, value: str) -> MediaDescription:
        parts = value.split()
        if len(parts) < 3:
            raise SdpError(f"invalid m= line: {value!r}")
        media, port_text, proto, *formats = parts
        port_part, slash, count_part = port_text.partition("/")
        if not port_part.isdigit() or (slash and not count_part.isdigit()):
            raise SdpError(f"invalid m= line: {value!r}")
        port = int(port_part)
        if port > MAX_PORT:
            raise SdpError(f"invalid m= line: {value!r}")
        return cls(media, port, proto, formats, int(count_part) if slash else None)

    def m_line(self) -> str:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        return " ".join([self.media, port, self.proto, *self.formats])

    def lines(self) -> list[str]:
        out = [f"m={self.m_line()}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"b={b}" for b in self.bandwidths)
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(f"a={a}" for a in self.attributes)
        return out

    @property
    def disabled(self) -> bool:
        """Port 0 means the stream is rejected or disabled (RFC 3264 §5.1, §8.2)."""
        return self.port == DISABLED_PORT

    @property
    def direction(self) -> str | None:
        """Media-level direction attribute, or None; see :meth:`SessionDescription.effective_direction`."""
        return self._explicit_direction()

    @property
    def label(self) -> str | None:
        """``a=label:<token>`` (RFC 4574), the key into SIPREC metadata <stream><label>."""
        value = self.get_attribute(ATTR_LABEL)
        return value.strip() if value is not None else None

    @property
    def payload_types(self) -> list[int]:
        """Formats that are RTP payload type numbers, in offer (preference) order."""
        return [int(f) for f in self.formats if f.isdigit() and int(f) <= MAX_PAYLOAD_TYPE]

    @property
    def rtpmap(self) -> dict[int, RtpMap]:
        """Payload type -> encoding from a=rtpmap lines, plus RFC 3551 defaults for listed static types.

        Malformed a=rtpmap lines are skipped (liberal); an explicit line overrides the static default.
        """
        result: dict[int, RtpMap] = {}
        for attribute in self.get_attributes(ATTR_RTPMAP):
            parsed = _parse_rtpmap(attribute.value or "")
            if parsed is not None and parsed[0] not in result:
                result[parsed[0]] = parsed[1]
        for payload_type in self.payload_types:
            if payload_type not in result and payload_type in STATIC_PAYLOAD_TYPES:
                result[payload_type] = STATIC_PAYLOAD_TYPES[payload_type]
        return result

    @property
    def fmtp(self) -> dict[int, str]:
        """``a=fmtp:<format> <format specific parameters>`` keyed by payload type."""
        result: dict[int, str] = {}
        for attribute in self.get_attributes(ATTR_FMTP):
            format_text, _, params = (attribute.value or "").strip().partition(" ")
            if format_text.isdigit() and int(format_text) not in result:
                result[int(format_text)] = params.strip()
        return result

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in milliseconds (fractions truncated), None when absent or unreadable."""
        return _parse_ptime(self.get_attribute(ATTR_PTIME))

    @property
    def maxptime(self) -> int | None:
        return _parse_ptime(self.get_attribute(ATTR_MAXPTIME))

    @property
    def rtcp_mux(self) -> bool:
        return self.has_attribute(ATTR_RTCP_MUX)

    @property
    def crypto(self) -> list[Crypto]:
        """SDES keying lines (RFC 4568); unreadable ones are skipped."""
        parsed = (Crypto.parse(a.value or "") for a in self.get_attributes(ATTR_CRYPTO))
        return [c for c in parsed if c is not None]

    def codecs(self) -> list[tuple[int, RtpMap | None]]:
        """Payload types in offer order with their encoding (None when unknown)."""
        mapping = self.rtpmap
        return [(pt, mapping.get(pt)) for pt in self.payload_types]


def _parse_rtpmap(value: str) -> tuple[int, RtpMap] | None:
    # rtpmap-value = payload-type SP encoding-name "/" clock-rate [ "/" encoding-params ]  (RFC 8866 §6.6)
    payload_text, _, mapping = value.strip().partition(" ")
    pieces = mapping.strip().split("/")
    if not payload_text.isdigit() or len(pieces) not in (2, 3) or not pieces[0]:
        return None
    if not pieces[1].isdigit() or (len(pieces) == 3 and not pieces[2].isdigit()):
        return None
    channels = int(pieces[2]) if len(pieces) == 3 else 1
    return int(payload_text), RtpMap(pieces[0], int(pieces[1]), channels)


def _decode(text: str | bytes) -> str:
    if isinstance(text, bytes):
        # RFC 8866 §5: UTF-8 by default, but a=charset may name another; surrogateescape keeps any
        # bytes (e.g. Shift_JIS session names) intact through a round trip.
        return text.decode("utf-8", errors="surrogateescape")
    return text


@dataclass
class SessionDescription(_AttributeMixin):
    """A whole SDP body (RFC 8866 §5). ``str()`` gives the CRLF wire form, ``bytes()`` the encoded one."""

    origin: Origin
    session_name: str = "-"
    version: int = 0
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=list)
    time_zones: str | None = None
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str | bytes) -> SessionDescription:
        lines = [raw.rstrip(" \t\r") for raw in _decode(text).split("\n")]
        lines = [line for line in lines if line]
        if not lines:
            raise SdpError("empty session description")
        # session-description = version-field origin-field session-name-field ...  (RFC 8866 §9)
        if not lines[0].startswith("v="):
            raise SdpError("session description must start with v=")
        if lines[0][2:].strip() != SDP_VERSION:
            raise SdpError(f"unsupported SDP version: {lines[0][2:]!r}")
        origin: Origin | None = None
        session = cls(origin=Origin("-", "0", "0", NET_TYPE_IN, ADDR_TYPE_IP4, "0.0.0.0"))
        current: MediaDescription | None = None
        for line in lines[1:]:
            if len(line) < 2 or line[1] != "=":
                continue  # not a <type>=<value> line: ignore (liberal)
            kind, value = line[0], line[2:]
            if kind == "m":
                current = MediaDescription.parse_m_line(value)
                session.media.append(current)
            elif current is not None:
                _apply_media_line(current, kind, value)
            elif kind == "o":
                origin = Origin.parse(value)
            else:
                _apply_session_line(session, kind, value)
        if origin is None:
            raise SdpError("missing o= line")
        session.origin = origin
        return session

    def lines(self) -> list[str]:
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.uri is not None:
            out.append(f"u={self.uri}")
        out.extend(f"e={e}" for e in self.emails)
        out.extend(f"p={p}" for p in self.phones)
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"b={b}" for b in self.bandwidths)
        for timing in self.timings:
            out.append(f"t={timing}")
            out.extend(f"r={r}" for r in timing.repeats)
        if self.time_zones is not None:
            out.append(f"z={self.time_zones}")
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(f"a={a}" for a in self.attributes)
        for media in self.media:
            out.extend(media.lines())
        return out

    def __str__(self) -> str:
        return CRLF.join(self.lines()) + CRLF

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8", errors="surrogateescape")

    def serialize(self) -> bytes:
        return bytes(self)

    @property
    def direction(self) -> str:
        """Session-level direction, the default for every m-line (RFC 8866 §6.7); sendrecv if absent."""
        return self._explicit_direction() or DEFAULT_DIRECTION

    def _media(self, media: MediaDescription | int) -> MediaDescription:
        return self.media[media] if isinstance(media, int) else media

    def effective_direction(self, media: MediaDescription | int) -> str:
        """Direction of one m-line: media-level attribute, else session-level, else sendrecv.

        A disabled stream (port 0) is reported as ``inactive``.
        """
        description = self._media(media)
        if description.disabled:
            return INACTIVE
        return description.direction or self.direction

    def effective_connection(self, media: MediaDescription | int) -> Connection | None:
        """Media-level c= overrides session-level c= (RFC 8866 §5.7)."""
        description = self._media(media)
        return description.connection or self.connection

    def connection_address(self, media: MediaDescription | int) -> str | None:
        """The host the m-line's RTP comes from / goes to, without multicast /ttl suffixes."""
        connection = self.effective_connection(media)
        return connection.host if connection is not None else None


def _apply_session_line(session: SessionDescription, kind: str, value: str) -> None:
    if kind == "s":
        session.session_name = value
    elif kind == "i":
        session.information = value
    elif kind == "u":
        session.uri = value
    elif kind == "e":
        session.emails.append(value)
    elif kind == "p":
        session.phones.append(value)
    elif kind == "c":
        session.connection = Connection.parse(value)
    elif kind == "b":
        session.bandwidths.append(Bandwidth.parse(value))
    elif kind == "t":
        session.timings.append(Timing.parse(value))
    elif kind == "r" and session.timings:
        session.timings[-1].repeats.append(value)
    elif kind == "z":
        session.time_zones = value
    elif kind == "k":
        session.key = value
    elif kind == "a":
        session.attributes.append(Attribute.parse(value))
    # anything else (unknown types, a stray second v=) is ignored


def _apply_media_line(media: MediaDescription, kind: str, value: str) -> None:
    if kind == "i":
        media.information = value
    elif kind == "c":
        if media.connection is None:  # a second c= only makes sense for layered multicast
            media.connection = Connection.parse(value)
    elif kind == "b":
        media.bandwidths.append(Bandwidth.parse(value))
    elif kind == "k":
        media.key = value
    elif kind == "a":
        media.attributes.append(Attribute.parse(value))


# --------------------------------------------------------------------------------------------------
# Offer/answer (RFC 3264)


def _address_type(local_ip: str) -> str:
    try:
        address = ipaddress.ip_address(local_ip)
    except ValueError:
        raise SdpError(f"invalid local_ip: {local_ip!r}") from None
    return ADDR_TYPE_IP6 if address.version == 6 else ADDR_TYPE_IP4


def _answer_direction(offered: str, wanted: str) -> str:
    # RFC 3264 §6.1: sendonly -> recvonly/inactive, sendrecv -> anything, recvonly/inactive -> we
    # would have to send, which a recorder never does, so the only acceptable answer is inactive.
    if wanted == RECVONLY and offered in (SENDONLY, SENDRECV):
        return RECVONLY
    return INACTIVE


def _choose_payload_types(media: MediaDescription, supported: Set[str]) -> list[int]:
    """First supported audio codec in offer order, plus telephone-event and CN at its clock rate.

    Answering a single audio codec pins the sender to it (RFC 3264 §6.1 lets the offerer switch
    among all codecs in the answer), so the recorder never has to follow mid-call codec changes.
    telephone-event is kept so DTMF arrives as RFC 4733 events rather than being dropped, and CN so
    senders using silence suppression can send comfort noise instead of gaps.
    """
    wanted = {name.lower() for name in supported}
    codecs = [(pt, rtpmap) for pt, rtpmap in media.codecs() if rtpmap is not None]
    audio = next(
        (
            (pt, rtpmap)
            for pt, rtpmap in codecs
            if rtpmap.encoding.lower() in wanted and rtpmap.encoding.lower() not in AUXILIARY_ENCODINGS
        ),
        None,
    )
    if audio is None:
        return []
    chosen = [audio[0]]
    for auxiliary in (TELEPHONE_EVENT, COMFORT_NOISE):
        if auxiliary.lower() not in wanted:
            continue
        for pt, rtpmap in codecs:
            if rtpmap.matches(auxiliary) and rtpmap.clock_rate == audio[1].clock_rate:
                chosen.append(pt)
                break
    return chosen


def _rejected(offered: MediaDescription) -> MediaDescription:
    # RFC 3264 §6: a rejected stream keeps its m-line with port 0 and at least one format.
    return MediaDescription(offered.media, DISABLED_PORT, offered.proto, list(offered.formats))


def build_answer(
    offer: SessionDescription,
    *,
    local_ip: str,
    ports: list[int | None],
    supported: Set[str] = DEFAULT_SUPPORTED_CODECS,
    session_id: int,
    session_version: int,
    direction: str = RECVONLY,
) -> SessionDescription:
    """Answer a SIPREC offer as a recorder (RFC 3264 §6, RFC 7866 §7.1).

    One answer m-line per offered m-line, in order. A stream is accepted when it is audio over
    plain RTP, offered with a non-zero port, ``ports[i]`` is not None, and it carries a supported
    audio codec; see :func:`_choose_payload_types` for which payload types are kept. Accepted
    streams get ``a=recvonly`` (``inactive`` when the offer is inactive/recvonly or ``direction``
    is ``inactive``) and their ``a=label`` echoed. Other streams are rejected with port 0.

    Raises :class:`SdpError` ``"no acceptable media"`` when nothing is accepted (answer 488).
    """
    if direction not in (RECVONLY, INACTIVE):
        raise SdpError(f"answer direction must be recvonly or inactive, got {direction!r}")
    if len(ports) != len(offer.media):
        raise SdpError(f"ports has {len(ports)} entries for {len(offer.media)} offered m-lines")
    if not 0 <= session_id <= _UINT64_MAX or not 0 <= session_version <= _UINT64_MAX:
        raise SdpError("session_id and session_version must be unsigned 64-bit integers")
    for index, port in enumerate(ports):
        if port is not None and not 0 < port <= MAX_PORT:
            raise SdpError(f"invalid port for m-line {index}: {port}")
    addr_type = _address_type(local_ip)
    answer = SessionDescription(
        origin=Origin("-", str(session_id), str(session_version), NET_TYPE_IN, addr_type, local_ip),
        session_name="-",
        connection=Connection(NET_TYPE_IN, addr_type, local_ip),
        timings=[Timing(0, 0)],
    )
    accepted = 0
    for index, offered in enumerate(offer.media):
        port = ports[index]
        chosen: list[int] = []
        if (
            port is not None
            and not offered.disabled
            and offered.media.lower() == MEDIA_AUDIO
            and offered.proto.upper() in RTP_PLAIN_PROTOS
        ):
            chosen = _choose_payload_types(offered, supported)
        if not chosen or port is None:
            answer.media.append(_rejected(offered))
            continue
        accepted += 1
        answer.media.append(
            _accepted(offered, port, chosen, _answer_direction(offer.effective_direction(index), direction))
        )
    if not accepted:
        raise SdpError("no acceptable media")
    return answer


def _accepted(offered: MediaDescription, port: int, chosen: list[int], direction: str) -> MediaDescription:
    rtpmap = offered.rtpmap
    fmtp = offered.fmtp
    attributes: list[Attribute] = []
    for pt in chosen:
        # Strict in what we send: an explicit rtpmap even for static payload types (RFC 8866 §6.6).
        attributes.append(Attribute(ATTR_RTPMAP, f"{pt} {rtpmap[pt]}"))
        if fmtp.get(pt):
            attributes.append(Attribute(ATTR_FMTP, f"{pt} {fmtp[pt]}"))
    if offered.ptime is not None:
        attributes.append(Attribute(ATTR_PTIME, str(offered.ptime)))
    if offered.label is not None:
        attributes.append(Attribute(ATTR_LABEL, offered.label))
    attributes.append(Attribute(direction))
    return MediaDescription(
        offered.media, port, offered.proto, [str(pt) for pt in chosen], attributes=attributes
    )


# --------------------------------------------------------------------------------------------------
# re-INVITE comparison (RFC 3264 §8)


@dataclass(frozen=True)
class MediaChange:
    """How one m-line of a new offer differs from the same index in the previous offer."""

    index: int
    label: str | None
    added: bool = False
    address: bool = False
    port: bool = False
    codecs: bool = False
    direction: bool = False
    label_changed: bool = False

    @property
    def changed(self) -> bool:
        return self.added or self.address or self.port or self.codecs or self.direction or self.label_changed


@dataclass(frozen=True)
class OfferComparison:
    """Result of :func:`compare_offers`; ``media`` has one entry per m-line of the new offer."""

    version_changed: bool
    media: tuple[MediaChange, ...]
    removed: tuple[int, ...] = ()

    @property
    def changed_indexes(self) -> list[int]:
        return [change.index for change in self.media if change.changed]

    @property
    def changed(self) -> bool:
        return bool(self.removed) or any(change.changed for change in self.media)


def _codec_signature(media: MediaDescription) -> list[tuple[int, str, int, int] | tuple[int]]:
    signature: list[tuple[int, str, int, int] | tuple[int]] = []
    for pt, rtpmap in media.codecs():
        if rtpmap is None:
            signature.append((pt,))
        else:
            signature.append((pt, rtpmap.encoding.lower(), rtpmap.clock_rate, rtpmap.channels))
    return signature


def compare_offers(previous: SessionDescription, current: SessionDescription) -> OfferComparison:
    """Compare a re-INVITE/UPDATE offer with the previous one, m-line by m-line (same index).

    RFC 3264 §8 only lets an offer append m-lines; fewer m-lines than before violates it but is
    reported in ``removed`` rather than rejected. An unchanged o= version means the offer must be
    identical (§8), but we compare the content regardless because some clients forget to bump it.
    """
    changes: list[MediaChange] = []
    for index, media in enumerate(current.media):
        if index >= len(previous.media):
            changes.append(MediaChange(index, media.label, added=True))
            continue
        old = previous.media[index]
        changes.append(
            MediaChange(
                index,
                media.label,
                address=previous.connection_address(index) != current.connection_address(index),
                port=old.port != media.port,
                codecs=_codec_signature(old) != _codec_signature(media),
                direction=previous.effective_direction(index) != current.effective_direction(index),
                label_changed=old.label != media.label,
            )
        )
    removed = tuple(range(len(current.media), len(previous.media)))
    return OfferComparison(
        version_changed=previous.origin.session_version != current.origin.session_version,
        media=tuple(changes),
        removed=removed,
    )
