"""From a SIPREC INVITE (or re-INVITE/UPDATE) to what the recorder must do.

Sans-I/O: takes a parsed request, returns a :class:`SiprecOffer` (SDP, metadata,
who sends on which m-line) or raises :class:`OfferError` carrying the SIP status
to answer with (400 malformed, 415 unsupported body, 488 unusable media).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from callvault.sdp import SdpError, SessionDescription
from callvault.sip.message import Request, SipParseError, parse_content_type, parse_multipart
from callvault.siprec.metadata import (
    MetadataError,
    RecordingMetadata,
    StreamInfo,
    apply_update,
    is_metadata_content_type,
    map_streams,
    parse_metadata,
)

SDP_TYPE = "application/sdp"
ACCEPTED_TYPES = "application/sdp, application/rs-metadata+xml, application/rs-metadata, multipart/mixed"
MAX_BODY = 256 * 1024


class OfferError(Exception):
    """The offer cannot be recorded; ``status`` is the SIP response to send."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


@dataclass
class SiprecOffer:
    sdp: SessionDescription | None
    metadata: RecordingMetadata | None
    streams: list[StreamInfo]
    metadata_xml: bytes | None = None


def split_body(request: Request) -> tuple[bytes | None, bytes | None]:
    """Return (sdp, metadata xml) from a SIPREC request body; either may be None."""
    body = request.body
    if not body:
        return None, None
    if len(body) > MAX_BODY:
        raise OfferError(413, "Request Entity Too Large")
    ctype = request.content_type
    if ctype is None:
        raise OfferError(415, "Unsupported Media Type")
    mime, params = ctype
    if mime == SDP_TYPE:
        return body, None
    if is_metadata_content_type(mime):
        return None, body
    if mime != "multipart/mixed":
        raise OfferError(415, "Unsupported Media Type")
    boundary = params.get("boundary")
    if not boundary:
        raise OfferError(400, "multipart body without boundary")
    try:
        parts = parse_multipart(body, boundary)
    except SipParseError as exc:
        raise OfferError(400, str(exc)) from None
    sdp: bytes | None = None
    meta: bytes | None = None
    for part in parts:
        ptype = part.content_type
        if ptype is None:
            continue
        try:
            mime_part = parse_content_type(part.headers.get("Content-Type") or "")[0]
        except SipParseError:
            continue
        if mime_part == SDP_TYPE and sdp is None:
            sdp = part.body
        elif is_metadata_content_type(mime_part) and meta is None:
            meta = part.body
    if sdp is None and meta is None:
        raise OfferError(415, "Unsupported Media Type")
    return sdp, meta


def parse_offer(
    request: Request,
    *,
    previous: RecordingMetadata | None = None,
    previous_sdp: SessionDescription | None = None,
) -> SiprecOffer:
    """Parse the SDP and recording metadata of an INVITE/re-INVITE/UPDATE.

    A partial metadata update is merged into ``previous``; an update carrying
    only metadata keeps ``previous_sdp``.
    """
    sdp_bytes, meta_bytes = split_body(request)
    sdp: SessionDescription | None = previous_sdp
    if sdp_bytes is not None:
        try:
            sdp = SessionDescription.parse(sdp_bytes)
        except SdpError as exc:
            raise OfferError(400, f"bad SDP: {exc}") from None
    metadata = previous
    if meta_bytes is not None:
        try:
            parsed = parse_metadata(meta_bytes)
        except MetadataError as exc:
            raise OfferError(400, f"bad recording metadata: {exc}") from None
        metadata = apply_update(previous, parsed) if previous is not None else parsed
    streams: list[StreamInfo] = []
    if sdp is not None:
        try:
            from_aor: str | None = str(request.from_.uri)
        except SipParseError:
            from_aor = None
        streams = map_streams(metadata, sdp, from_aor=None if previous else from_aor)
    return SiprecOffer(sdp=sdp, metadata=metadata, streams=streams, metadata_xml=meta_bytes)


def participants_of(offer: SiprecOffer) -> list[dict[str, Any]]:
    """Participants as journal records, with the role of the stream each one sends."""
    roles: dict[str, str] = {}
    for s in offer.streams:
        if s.participant is not None:
            roles.setdefault(s.participant.participant_id, s.role)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    if offer.metadata is not None:
        for p in offer.metadata.participants:
            if p.participant_id in seen:
                continue
            seen.add(p.participant_id)
            out.append(
                {
                    "participant_id": p.participant_id,
                    "aor": p.aor or "",
                    "name": p.name or "",
                    "number": p.number or "",
                    "role": roles.get(p.participant_id, "other"),
                }
            )
    return out


def guess_direction(caller_number: str, callee_number: str) -> str:
    """in/out/internal from the numbers alone: extensions are short, outside numbers are not.

    Calls are seen from the company: a short caller (an extension) calling a full
    number is outbound; a full number calling in is inbound.
    """

    def internal(n: str) -> bool:
        digits = n.lstrip("+")
        return bool(digits) and digits.isdigit() and len(digits) <= 6

    if not caller_number and not callee_number:
        return "unknown"
    if internal(caller_number) and internal(callee_number):
        return "internal"
    if internal(caller_number):
        return "out"
    if internal(callee_number) or callee_number:
        return "in"
    return "unknown"
