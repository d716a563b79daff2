"""SIPREC recording metadata (RFC 7865) as carried in RFC 7866 recording sessions.

Sans-I/O: :func:`parse_metadata` turns the ``application/rs-metadata+xml`` body part into a
:class:`RecordingMetadata`, :func:`apply_update` merges a partial update sent in a re-INVITE or
UPDATE, and :func:`map_streams` tells which SDP m-line carries whose voice.

Liberal in what we accept from real recording clients:

* namespaces ``urn:ietf:params:xml:ns:recording:1`` (RFC 7865), the pre-RFC
  ``urn:ietf:params:xml:ns:recording`` (Sonus/Ribbon, Oracle/Acme Packet) and the early draft
  ``urn:ietf:params:xml:ns:siprec`` (old Avaya/Genesys), or none at all;
* element names matched case-insensitively (``datamode`` / ``dataMode``), in any order;
* draft attribute names ``id``/``session`` next to ``participant_id``/``session_id``/``stream_id``,
  participants carrying ``<aor>``/``<name>`` and ``<send>``/``<recv>`` children directly;
* any other element (vendor ``callData``, ``extensiondata``...) is kept as an :class:`Extension`.

The XML is untrusted: it goes through defusedxml with DTDs forbidden (which also shuts out entity
expansion bombs and external entities), and size, element count and depth are bounded.
"""

from __future__ import annotations

import codecs
import copy
import re
import urllib.parse
import xml.etree.ElementTree as ET  # only for types, ParseError and tostring: parsing is defusedxml
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, TypeVar

import phonenumbers
from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import fromstring as defused_fromstring

from callvault.sdp import MEDIA_AUDIO, SessionDescription

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "CONTENT_TYPE",
    "DRAFT_NS",
    "LEGACY_CONTENT_TYPE",
    "MAX_METADATA_BYTES",
    "PRE_RFC_NS",
    "RECORDING_NS",
    "DataMode",
    "Extension",
    "Group",
    "MetadataError",
    "Participant",
    "ParticipantSessionAssoc",
    "ParticipantStreamAssoc",
    "RecordingMetadata",
    "Role",
    "Session",
    "SessionRecordingAssoc",
    "Stream",
    "StreamInfo",
    "apply_update",
    "is_metadata_content_type",
    "map_streams",
    "parse_metadata",
]

RECORDING_NS = "urn:ietf:params:xml:ns:recording:1"  # RFC 7865 §9.1
PRE_RFC_NS = "urn:ietf:params:xml:ns:recording"  # draft-ietf-siprec-metadata, Sonus and Oracle SBCs
DRAFT_NS = "urn:ietf:params:xml:ns:siprec"  # early drafts, old Avaya/Genesys clients
METADATA_NAMESPACES: frozenset[str] = frozenset({RECORDING_NS, PRE_RFC_NS, DRAFT_NS, ""})

CONTENT_TYPE = "application/rs-metadata+xml"  # RFC 7866 §12.1
LEGACY_CONTENT_TYPE = "application/rs-metadata"  # pre-RFC clients
METADATA_CONTENT_TYPES: frozenset[str] = frozenset({CONTENT_TYPE, LEGACY_CONTENT_TYPE})

MAX_METADATA_BYTES = 1024 * 1024
MAX_ELEMENTS = 10_000
MAX_DEPTH = 32

DataMode = Literal["complete", "partial"]
DATAMODE_COMPLETE: DataMode = "complete"
DATAMODE_PARTIAL: DataMode = "partial"
Role = Literal["caller", "callee", "mixed", "unknown"]
ROLE_CALLER: Role = "caller"
ROLE_CALLEE: Role = "callee"
ROLE_MIXED: Role = "mixed"
ROLE_UNKNOWN: Role = "unknown"

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# Encodings expat decodes itself; anything else (Shift_JIS, EUC-JP...) is transcoded to UTF-8 first.
_EXPAT_ENCODINGS = frozenset({"utf-8", "utf-16", "us-ascii", "iso-8859-1"})
_XML_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"'][^>]*\?>")
_XML_DECLARATION_TEXT = re.compile(r"^\s*<\?xml[^>]*\?>")
_TEXT_TRUE = frozenset({"true", "1", "yes"})
# Visual separators allowed in telephone-subscriber (RFC 3966 §3).
_VISUAL_SEPARATORS = str.maketrans("", "", "-.() ")
_NUMBER = re.compile(r"\+?[0-9]+")
#: Region used to compare national and E.164 forms of the same number (Japanese market first).
DEFAULT_REGION = "JP"


class MetadataError(ValueError):
    """Recording metadata that is unsafe, malformed or unusable."""


@dataclass(frozen=True)
class Extension:
    """A vendor or unknown element, kept verbatim.

    ``parent_kind`` is the local name of the metadata element it was found in (``recording``,
    ``group``, ``session``, ``participant``, ``stream`` or an association element) and
    ``parent_id`` that element's id (participant_id or session_id for associations, None at the
    top level). ``fields`` flattens the leaf
    elements by their ``/``-joined local names (first occurrence wins); ``xml`` is the element
    re-serialised.
    """

    namespace: str
    name: str
    parent_kind: str
    parent_id: str | None
    fields: dict[str, str]
    xml: str

    @property
    def key(self) -> tuple[str, str | None, str, str]:
        return (self.parent_kind, self.parent_id, self.namespace, self.name)


@dataclass(frozen=True)
class Group:
    """``<group group_id>`` (RFC 7865 §6.2)."""

    group_id: str
    associate_time: datetime | None = None
    disassociate_time: datetime | None = None


@dataclass(frozen=True)
class Session:
    """``<session session_id>`` (RFC 7865 §6.3) for one recorded communication session."""

    session_id: str
    sip_session_ids: tuple[str, ...] = ()
    group_ref: str | None = None
    start_time: datetime | None = None
    stop_time: datetime | None = None


def _number_of(aor: str | None) -> str | None:
    if not aor:
        return None
    address = aor.strip().strip("<>")
    scheme, sep, rest = address.partition(":")
    if sep and scheme.lower() in ("sip", "sips", "tel"):
        address = rest
    elif sep and "@" not in scheme:
        return None  # some other URI scheme (mailto:, urn:...)
    user = address.split("@", 1)[0].split(";", 1)[0]
    user = urllib.parse.unquote(user).translate(_VISUAL_SEPARATORS)
    return user if _NUMBER.fullmatch(user) else None


@dataclass(frozen=True)
class Participant:
    """``<participant participant_id>`` (RFC 7865 §6.4).

    ``aor`` is the first ``<nameID aor>`` (or legacy ``<aor>``), ``aliases`` any further ones;
    ``number`` is the user part of a sip:/sips:/tel: AOR when it is a telephone number (digits with
    an optional leading +, visual separators removed), else None.
    """

    participant_id: str
    aor: str | None = None
    name: str | None = None
    name_lang: str | None = None
    aliases: tuple[str, ...] = ()
    number: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "number", _number_of(self.aor))


@dataclass(frozen=True)
class ParticipantSessionAssoc:
    """``<participantsessionassoc>`` (RFC 7865 §6.6); a disassociate-time means the party left."""

    participant_id: str
    session_id: str
    associate_time: datetime | None = None
    disassociate_time: datetime | None = None


@dataclass(frozen=True)
class Stream:
    """``<stream stream_id session_id>`` (RFC 7865 §6.5); ``label`` matches the SDP a=label.

    ``mode`` is the pre-RFC ``<mode>`` (``separate``/``mixed``) some clients still send.
    """

    stream_id: str
    session_id: str | None = None
    label: str | None = None
    mode: str | None = None
    associate_time: datetime | None = None
    disassociate_time: datetime | None = None


@dataclass(frozen=True)
class ParticipantStreamAssoc:
    """``<participantstreamassoc>`` (RFC 7865 §6.7): stream ids the participant sends and receives."""

    participant_id: str
    send: tuple[str, ...] = ()
    recv: tuple[str, ...] = ()
    associate_time: datetime | None = None
    disassociate_time: datetime | None = None


@dataclass(frozen=True)
class SessionRecordingAssoc:
    """``<sessionrecordingassoc>`` (RFC 7865 §6.8)."""

    session_id: str
    associate_time: datetime | None = None
    disassociate_time: datetime | None = None


@dataclass(frozen=True)
class RecordingMetadata:
    """One ``<recording>`` document (a complete snapshot or a partial update)."""

    data_mode: DataMode = DATAMODE_COMPLETE
    namespace: str = RECORDING_NS
    groups: tuple[Group, ...] = ()
    sessions: tuple[Session, ...] = ()
    participants: tuple[Participant, ...] = ()
    participant_session_assocs: tuple[ParticipantSessionAssoc, ...] = ()
    streams: tuple[Stream, ...] = ()
    participant_stream_assocs: tuple[ParticipantStreamAssoc, ...] = ()
    session_recording_assocs: tuple[SessionRecordingAssoc, ...] = ()
    extensions: tuple[Extension, ...] = ()

    def participant(self, participant_id: str) -> Participant | None:
        return next((p for p in self.participants if p.participant_id == participant_id), None)

    def stream(self, stream_id: str) -> Stream | None:
        return next((s for s in self.streams if s.stream_id == stream_id), None)

    def stream_by_label(self, label: str) -> Stream | None:
        """The stream with this SDP label, preferring one not disassociated (labels get reused)."""
        matching = [s for s in self.streams if s.label == label]
        current = [s for s in matching if s.disassociate_time is None]
        candidates = current or matching
        return candidates[-1] if candidates else None

    def senders(self, stream_id: str) -> list[Participant]:
        """Participants whose current participantstreamassoc lists ``stream_id`` under <send>."""
        result: list[Participant] = []
        for assoc in self.participant_stream_assocs:
            if assoc.disassociate_time is None and stream_id in assoc.send:
                participant = self.participant(assoc.participant_id)
                if participant is not None and participant not in result:
                    result.append(participant)
        return result

    def active_participants(self) -> list[Participant]:
        """Participants not disassociated from every session they were associated with."""
        result = []
        for participant in self.participants:
            assocs = [
                a for a in self.participant_session_assocs if a.participant_id == participant.participant_id
            ]
            if not assocs or any(a.disassociate_time is None for a in assocs):
                result.append(participant)
        return result

    def extensions_named(self, name: str) -> list[Extension]:
        return [e for e in self.extensions if e.name.lower() == name.lower()]


@dataclass(frozen=True)
class StreamInfo:
    """What :func:`map_streams` knows about one SDP m-line."""

    index: int
    label: str | None
    stream_id: str | None
    role: Role
    participant: Participant | None


def is_metadata_content_type(content_type: str) -> bool:
    """True for ``application/rs-metadata+xml`` and the legacy ``application/rs-metadata``."""
    return content_type.split(";", 1)[0].strip().lower() in METADATA_CONTENT_TYPES


# --------------------------------------------------------------------------------------------------
# Parsing


def _split_tag(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def _is_ours(element: ET.Element) -> bool:
    return _split_tag(element.tag)[0] in METADATA_NAMESPACES


def _local(element: ET.Element) -> str:
    """Lower-cased local name of an element in a recording namespace, "" for foreign elements."""
    namespace, local = _split_tag(element.tag)
    return local.lower() if namespace in METADATA_NAMESPACES else ""


def _text(element: ET.Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    value = element.text.strip()
    return value or None


def _child(element: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in element if _local(c) == name), None)


def _children_text(element: ET.Element, name: str) -> tuple[str, ...]:
    values = (_text(c) for c in element if _local(c) == name)
    return tuple(v for v in values if v is not None)


def _attr(element: ET.Element, *names: str) -> str | None:
    for name in names:
        value = element.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def _required_id(element: ET.Element, kind: str, *names: str) -> str:
    value = _attr(element, *names)
    if value is None:
        raise MetadataError(f"<{kind}> without {names[0]}")
    return value


def _parse_time(element: ET.Element | None) -> datetime | None:
    """xs:dateTime (RFC 7865 §7). No zone means UTC (clients send local UTC clocks); unreadable -> None."""
    value = _text(element)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None  # informational only: never refuse a recording over a vendor's clock format
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _time(element: ET.Element, name: str) -> datetime | None:
    return _parse_time(_child(element, name))


def _flatten(element: ET.Element, prefix: str, out: dict[str, str]) -> None:
    for child in element:
        key = f"{prefix}{_split_tag(child.tag)[1]}"
        if len(child):
            _flatten(child, f"{key}/", out)
        elif key not in out:
            out[key] = (child.text or "").strip()


def _extension(element: ET.Element, parent_kind: str, parent_id: str | None) -> Extension:
    namespace, name = _split_tag(element.tag)
    flat: dict[str, str] = {}
    _flatten(element, "", flat)
    detached = copy.copy(element)
    detached.tail = None
    return Extension(namespace, name, parent_kind, parent_id, flat, ET.tostring(detached, encoding="unicode"))


def _transcode(data: bytes) -> bytes:
    match = _XML_DECLARATION.match(data)
    if match is None:
        return data
    declared = match.group(1).decode("ascii")
    try:
        codec = codecs.lookup(declared)
    except LookupError:
        raise MetadataError(f"unsupported XML encoding: {declared!r}") from None
    expat_names = {codecs.lookup(n).name for n in _EXPAT_ENCODINGS}
    if codec.name in expat_names:
        return data
    try:
        text = data.decode(codec.name)
    except UnicodeDecodeError:
        raise MetadataError(f"metadata is not valid {declared}") from None
    # Re-declare as UTF-8 so that expat does not look for the original encoding again.
    body = _XML_DECLARATION_TEXT.sub("", text, count=1)
    return b'<?xml version="1.0" encoding="UTF-8"?>' + body.encode("utf-8")


def _check_shape(root: ET.Element) -> None:
    count = 0
    stack: list[tuple[ET.Element, int]] = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        count += 1
        if count > MAX_ELEMENTS:
            raise MetadataError(f"metadata has more than {MAX_ELEMENTS} elements")
        if depth > MAX_DEPTH:
            raise MetadataError(f"metadata is nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in element)


def _fromstring(data: bytes) -> ET.Element:
    try:
        return defused_fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DTDForbidden:
        # Rejecting every DTD also rejects entity bombs and external entities, which need one.
        raise MetadataError("DTD is not allowed in recording metadata") from None
    except EntitiesForbidden:
        raise MetadataError("entity declarations are not allowed in recording metadata") from None
    except ExternalReferenceForbidden:
        raise MetadataError("external references are not allowed in recording metadata") from None
    except ET.ParseError as exc:
        raise MetadataError(f"malformed XML: {exc}") from None
    except ValueError as exc:  # e.g. an encoding expat refuses
        raise MetadataError(f"malformed XML: {exc}") from None


_ASSOC_CHILDREN = ("associate-time", "disassociate-time")


class _Builder:
    """Collects the children of <recording> (RFC 7865 §6), which may come in any order."""

    def __init__(self) -> None:
        self.data_mode: DataMode | None = None
        self.groups: list[Group] = []
        self.sessions: list[Session] = []
        self.participants: list[Participant] = []
        self.psas: list[ParticipantSessionAssoc] = []
        self.streams: list[Stream] = []
        self.pstas: list[ParticipantStreamAssoc] = []
        self.sras: list[SessionRecordingAssoc] = []
        self.extensions: list[Extension] = []

    def foreign_children(
        self, element: ET.Element, known: Iterable[str], kind: str, ident: str | None
    ) -> None:
        known_names = set(known)
        for child in element:
            if _local(child) not in known_names:
                self.extensions.append(_extension(child, kind, ident))

    def add(self, element: ET.Element) -> None:
        handler = self._handlers().get(_local(element))
        if handler is None:
            self.extensions.append(_extension(element, "recording", None))
        else:
            handler(element)

    def _handlers(self) -> dict[str, Callable[[ET.Element], None]]:
        return {
            "datamode": self._datamode,
            "group": self._group,
            "session": self._session,
            "participant": self._participant,
            "participantsessionassoc": self._participant_session_assoc,
            "stream": self._stream,
            "participantstreamassoc": self._participant_stream_assoc,
            "sessionrecordingassoc": self._session_recording_assoc,
        }

    def _datamode(self, element: ET.Element) -> None:
        # datamode = "complete" / "partial"  (RFC 7865 §6.1)
        value = (_text(element) or "").lower()
        if value == DATAMODE_COMPLETE:
            self.data_mode = DATAMODE_COMPLETE
        elif value == DATAMODE_PARTIAL:
            self.data_mode = DATAMODE_PARTIAL
        else:
            raise MetadataError(f"invalid datamode: {element.text!r}")

    def _group(self, element: ET.Element) -> None:
        group_id = _required_id(element, "group", "group_id", "id")
        self.groups.append(
            Group(group_id, _time(element, "associate-time"), _time(element, "disassociate-time"))
        )
        self.foreign_children(element, ("associate-time", "disassociate-time"), "group", group_id)

    def _session(self, element: ET.Element) -> None:
        session_id = _required_id(element, "session", "session_id", "id")
        group_ref = _text(_child(element, "group-ref")) or _attr(element, "group")
        self.sessions.append(
            Session(
                session_id,
                _children_text(element, "sipsessionid"),
                group_ref,
                _time(element, "start-time") or _time(element, "associate-time"),
                _time(element, "stop-time") or _time(element, "disassociate-time"),
            )
        )
        known = (
            "sipsessionid",
            "group-ref",
            "start-time",
            "stop-time",
            "associate-time",
            "disassociate-time",
        )
        self.foreign_children(element, known, "session", session_id)

    def _participant(self, element: ET.Element) -> None:
        participant_id = _required_id(element, "participant", "participant_id", "id")
        aors: list[str] = []
        name: str | None = None
        lang: str | None = None
        for child in element:
            local = _local(child)
            if local == "nameid":
                aor = _attr(child, "aor")
                if aor is not None:
                    aors.append(aor)
                name_element = _child(child, "name")
                if name is None and name_element is not None and _text(name_element) is not None:
                    name, lang = _text(name_element), name_element.get(XML_LANG)
            elif local == "aor" and _text(child) is not None:  # pre-RFC style
                aors.append(_text(child) or "")
            elif local == "name" and name is None and _text(child) is not None:  # pre-RFC style
                name, lang = _text(child), child.get(XML_LANG)
        self.participants.append(
            Participant(participant_id, aors[0] if aors else None, name, lang, tuple(aors[1:]))
        )
        # Pre-RFC drafts put the session and stream associations inside <participant>.
        associate = _time(element, "associate-time") or _time(element, "start-time")
        disassociate = _time(element, "disassociate-time") or _time(element, "stop-time")
        session_ref = _attr(element, "session", "session_id")
        if session_ref is not None:
            self.psas.append(ParticipantSessionAssoc(participant_id, session_ref, associate, disassociate))
        send, recv = _children_text(element, "send"), _children_text(element, "recv")
        if send or recv:
            self.pstas.append(ParticipantStreamAssoc(participant_id, send, recv, associate, disassociate))
        known = (
            "nameid",
            "aor",
            "name",
            "send",
            "recv",
            "associate-time",
            "disassociate-time",
            "start-time",
            "stop-time",
        )
        self.foreign_children(element, known, "participant", participant_id)

    def _participant_session_assoc(self, element: ET.Element) -> None:
        participant_id = _required_id(element, "participantsessionassoc", "participant_id")
        session_id = _required_id(element, "participantsessionassoc", "session_id")
        self.psas.append(
            ParticipantSessionAssoc(
                participant_id,
                session_id,
                _time(element, "associate-time"),
                _time(element, "disassociate-time"),
            )
        )
        self.foreign_children(element, _ASSOC_CHILDREN, "participantsessionassoc", participant_id)

    def _stream(self, element: ET.Element) -> None:
        stream_id = _required_id(element, "stream", "stream_id", "id")
        mode = _text(_child(element, "mode"))
        self.streams.append(
            Stream(
                stream_id,
                _attr(element, "session_id", "session"),
                _text(_child(element, "label")),
                mode.lower() if mode else None,
                _time(element, "associate-time") or _time(element, "start-time"),
                _time(element, "disassociate-time") or _time(element, "stop-time"),
            )
        )
        known = ("label", "mode", "associate-time", "disassociate-time", "start-time", "stop-time")
        self.foreign_children(element, known, "stream", stream_id)

    def _participant_stream_assoc(self, element: ET.Element) -> None:
        participant_id = _required_id(element, "participantstreamassoc", "participant_id")
        self.pstas.append(
            ParticipantStreamAssoc(
                participant_id,
                _children_text(element, "send"),
                _children_text(element, "recv"),
                _time(element, "associate-time"),
                _time(element, "disassociate-time"),
            )
        )
        known = ("send", "recv", *_ASSOC_CHILDREN)
        self.foreign_children(element, known, "participantstreamassoc", participant_id)

    def _session_recording_assoc(self, element: ET.Element) -> None:
        session_id = _required_id(element, "sessionrecordingassoc", "session_id")
        self.sras.append(
            SessionRecordingAssoc(
                session_id, _time(element, "associate-time"), _time(element, "disassociate-time")
            )
        )
        self.foreign_children(element, _ASSOC_CHILDREN, "sessionrecordingassoc", session_id)

    def build(self, namespace: str) -> RecordingMetadata:
        return RecordingMetadata(
            data_mode=self.data_mode or DATAMODE_COMPLETE,  # RFC 7865 §6.1: complete when absent
            namespace=namespace,
            groups=tuple(self.groups),
            sessions=tuple(self.sessions),
            participants=tuple(self.participants),
            participant_session_assocs=tuple(self.psas),
            streams=tuple(self.streams),
            participant_stream_assocs=tuple(self.pstas),
            session_recording_assocs=tuple(self.sras),
            extensions=tuple(self.extensions),
        )


def parse_metadata(xml: bytes) -> RecordingMetadata:
    """Parse an ``application/rs-metadata+xml`` body part (RFC 7865 §9 schema, liberally).

    Raises :class:`MetadataError` for oversized, unsafe (DTD, entities, external references),
    malformed or structurally unusable documents.
    """
    if len(xml) > MAX_METADATA_BYTES:
        raise MetadataError(f"metadata is {len(xml)} bytes, more than the {MAX_METADATA_BYTES} allowed")
    if not xml.strip():
        raise MetadataError("empty recording metadata")
    root = _fromstring(_transcode(xml))
    _check_shape(root)
    namespace, local = _split_tag(root.tag)
    if local.lower() != "recording":
        raise MetadataError(f"root element must be <recording>, got <{local}>")
    if namespace not in METADATA_NAMESPACES:
        raise MetadataError(f"unsupported metadata namespace: {namespace!r}")
    builder = _Builder()
    for child in root:
        builder.add(child)
    return builder.build(namespace)


# --------------------------------------------------------------------------------------------------
# Partial updates (RFC 7865 §6.1, RFC 7866 §6.1.1)

_Record = TypeVar("_Record", bound="DataclassInstance")


def _merge_record(old: _Record, new: _Record) -> _Record:
    """Fields present in ``new`` (not None, not empty) override ``old``."""
    changes = {}
    for item in fields(old):
        if not item.init:
            continue
        value = getattr(new, item.name)
        if value is not None and value != ():
            changes[item.name] = value
    return replace(old, **changes)


def _merge_by_key(
    base: tuple[_Record, ...],
    update: tuple[_Record, ...],
    key: Callable[[_Record], object],
    merge: Callable[[_Record, _Record], _Record] = _merge_record,
) -> tuple[_Record, ...]:
    merged = list(base)
    for record in update:
        for position, existing in enumerate(merged):
            if key(existing) == key(record):
                merged[position] = merge(existing, record)
                break
        else:
            merged.append(record)
    return tuple(merged)


def _merge_session(old: Session, new: Session) -> Session:
    merged = _merge_record(old, new)
    ids = old.sip_session_ids + tuple(i for i in new.sip_session_ids if i not in old.sip_session_ids)
    return replace(merged, sip_session_ids=ids)


def _replace_stream_assoc(old: ParticipantStreamAssoc, new: ParticipantStreamAssoc) -> ParticipantStreamAssoc:
    # The <send>/<recv> lists of an updated participantstreamassoc are the participant's new lists:
    # that is how a client moves a participant to another stream or stops it sending.
    return ParticipantStreamAssoc(
        old.participant_id,
        new.send,
        new.recv,
        new.associate_time or old.associate_time,
        new.disassociate_time,
    )


def apply_update(base: RecordingMetadata, update: RecordingMetadata) -> RecordingMetadata:
    """The metadata snapshot after ``update`` (from a re-INVITE or UPDATE) is applied to ``base``.

    A ``complete`` update replaces the snapshot. A ``partial`` one is merged by ids: new groups,
    sessions, participants, streams and associations are appended; known ones get the fields the
    update carries (e.g. a participantsessionassoc gaining a disassociate-time when a party leaves
    after a transfer); a participantstreamassoc replaces that participant's send/recv lists;
    extensions replace those of the same element at the same place. The result is ``complete``.
    """
    if update.data_mode == DATAMODE_COMPLETE:
        return update
    extensions = [e for e in base.extensions if e.key not in {u.key for u in update.extensions}]
    return RecordingMetadata(
        data_mode=base.data_mode,
        namespace=base.namespace,
        groups=_merge_by_key(base.groups, update.groups, lambda g: g.group_id),
        sessions=_merge_by_key(base.sessions, update.sessions, lambda s: s.session_id, _merge_session),
        participants=_merge_by_key(base.participants, update.participants, lambda p: p.participant_id),
        participant_session_assocs=_merge_by_key(
            base.participant_session_assocs,
            update.participant_session_assocs,
            lambda a: (a.participant_id, a.session_id),
        ),
        streams=_merge_by_key(base.streams, update.streams, lambda s: s.stream_id),
        participant_stream_assocs=_merge_by_key(
            base.participant_stream_assocs,
            update.participant_stream_assocs,
            lambda a: a.participant_id,
            _replace_stream_assoc,
        ),
        session_recording_assocs=_merge_by_key(
            base.session_recording_assocs, update.session_recording_assocs, lambda a: a.session_id
        ),
        extensions=(*extensions, *update.extensions),
    )


# --------------------------------------------------------------------------------------------------
# Which m-line is whose voice


def _uri_of(header_value: str) -> str:
    """The URI in a From/To header value or a bare AOR: name-addr / addr-spec (RFC 3261 §25.1)."""
    value = header_value.strip()
    if "<" in value and ">" in value.split("<", 1)[1]:
        return value.split("<", 1)[1].split(">", 1)[0].strip()
    return value.split(";", 1)[0].strip()


def _host_of(uri: str) -> str | None:
    address = uri.split(":", 1)[1] if uri.lower().startswith(("sip:", "sips:", "tel:")) else uri
    if "@" not in address:
        return None
    return address.split("@", 1)[1].split(";", 1)[0].split(":", 1)[0].lower()


def _user_of(uri: str) -> str:
    address = uri.split(":", 1)[1] if uri.lower().startswith(("sip:", "sips:", "tel:")) else uri
    return urllib.parse.unquote(address.split("@", 1)[0].split(";", 1)[0])


def _same_number(first: str, second: str) -> bool:
    if first == second:
        return True
    try:
        parsed = [phonenumbers.parse(n, DEFAULT_REGION) for n in (first, second)]
    except phonenumbers.NumberParseException:
        return False
    return (
        parsed[0].country_code == parsed[1].country_code
        and parsed[0].national_number == parsed[1].national_number
    )


def _aor_matches(participant: Participant, header_or_uri: str) -> bool:
    """Same party when the telephone numbers agree (hosts differ across SBC legs) or user@host does."""
    uri = _uri_of(header_or_uri)
    number = _number_of(uri)
    for aor in (participant.aor, *participant.aliases):
        if aor is None:
            continue
        candidate = _uri_of(aor)
        candidate_number = _number_of(candidate)
        if number is not None and candidate_number is not None:
            if _same_number(number, candidate_number):
                return True
            continue
        if _user_of(candidate) == _user_of(uri) and _host_of(candidate) == _host_of(uri):
            return True
    return False


def _vendor_caller(metadata: RecordingMetadata, candidates: list[Participant]) -> Participant | None:
    # Oracle/Acme Packet: <participant><extensiondata><apkt:callingParty>true</...>
    for extension in metadata.extensions:
        if (
            extension.parent_kind == "participant"
            and extension.fields.get("callingParty", "").lower() in _TEXT_TRUE
        ):
            caller = next((p for p in candidates if p.participant_id == extension.parent_id), None)
            if caller is not None:
                return caller
    # Sonus/Ribbon: <callData><fromhdr> carries the From header of the recorded call.
    for extension in metadata.extensions_named("callData"):
        from_header = extension.fields.get("fromhdr")
        if from_header:
            caller = next((p for p in candidates if _aor_matches(p, from_header)), None)
            if caller is not None:
                return caller
    return None


def _positional(sdp: SessionDescription, metadata: RecordingMetadata | None) -> list[StreamInfo]:
    audio = [i for i, m in enumerate(sdp.media) if m.media.lower() == MEDIA_AUDIO]
    roles: dict[int, Role] = {}
    if len(audio) == 1:
        roles[audio[0]] = ROLE_MIXED
    elif len(audio) == 2:
        roles[audio[0]], roles[audio[1]] = ROLE_CALLER, ROLE_CALLEE
    result = []
    for index, media in enumerate(sdp.media):
        stream = metadata.stream_by_label(media.label) if metadata and media.label is not None else None
        result.append(
            StreamInfo(
                index, media.label, stream.stream_id if stream else None, roles.get(index, ROLE_UNKNOWN), None
            )
        )
    return result


def map_streams(
    metadata: RecordingMetadata | None, sdp: SessionDescription, *, from_aor: str | None = None
) -> list[StreamInfo]:
    """One :class:`StreamInfo` per SDP m-line, in order, saying whose voice it carries.

    The stream is found by the m-line's ``a=label`` matching a metadata ``<stream><label>``; its
    participant is the one whose ``participantstreamassoc`` lists it under ``<send>``.

    Roles, decided from signalling only (never by listening to the audio):

    * caller: the participant flagged by vendor metadata (Oracle/Acme ``extensiondata``
      ``callingParty=true``; Sonus/Ribbon ``callData`` ``fromhdr`` matching a participant's AOR),
      else the participant whose AOR matches ``from_aor`` (the From of the original call), else
      the participant sending on the first m-line (in SDP order) that has a known sender;
    * callee: every other sending participant;
    * mixed: a stream with several senders or marked ``<mode>mixed</mode>``;
    * when no m-line has a known sender (no metadata, or metadata without stream associations) the
      audio m-lines are taken by position: one -> mixed, two -> caller then callee, more -> unknown;
    * otherwise an m-line whose sender is unknown is ``unknown``.

    AORs match when their telephone numbers are equal (national and +81 forms compare equal) or,
    for non-numeric users, when user and host are equal.
    """
    if metadata is None:
        return _positional(sdp, None)
    streams = [metadata.stream_by_label(m.label) if m.label is not None else None for m in sdp.media]
    senders = [metadata.senders(s.stream_id) if s is not None else [] for s in streams]
    if not any(senders):
        return _positional(sdp, metadata)
    single_senders = [found[0] for found in senders if len(found) == 1]
    caller = _vendor_caller(metadata, single_senders)
    if caller is None and from_aor:
        caller = next((p for p in single_senders if _aor_matches(p, from_aor)), None)
    if caller is None and single_senders:
        caller = single_senders[0]
    result = []
    for index, media in enumerate(sdp.media):
        stream, found = streams[index], senders[index]
        role: Role
        participant: Participant | None = None
        if len(found) > 1 or (stream is not None and stream.mode == ROLE_MIXED):
            role = ROLE_MIXED
        elif len(found) == 1:
            participant = found[0]
            role = ROLE_CALLER if participant == caller else ROLE_CALLEE
        else:
            role = ROLE_UNKNOWN
        result.append(StreamInfo(index, media.label, stream.stream_id if stream else None, role, participant))
    return result
