"""A deliberately tiny multipart/mixed splitter (RFC 2046 §5.1) for reading the test fixtures.

The production splitter lives with the SIP message code; these tests must not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "siprec"
ALL_OFFERS = sorted(p.name for p in FIXTURES.glob("*.txt"))


@dataclass(frozen=True)
class Part:
    content_type: str
    disposition: str | None
    body: bytes


@dataclass(frozen=True)
class Offer:
    sdp: bytes
    metadata: bytes | None
    metadata_type: str | None


def split_multipart(body: bytes) -> list[Part]:
    text = body.replace(b"\r\n", b"\n")
    if text.lstrip().startswith(b"v="):
        return [Part("application/sdp", None, text.lstrip())]
    first = next(line for line in text.split(b"\n") if line.startswith(b"--"))
    delimiter = b"\n--" + first[2:].strip()
    parts = []
    for chunk in (b"\n" + text).split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        _, _, chunk = chunk.partition(b"\n")
        head, _, content = chunk.partition(b"\n\n")
        headers = {}
        for line in head.decode().split("\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append(Part(headers.get("content-type", ""), headers.get("content-disposition"), content))
    return parts


def load_offer(name: str) -> Offer:
    parts = split_multipart((FIXTURES / name).read_bytes())
    sdp = next(p.body for p in parts if p.content_type == "application/sdp")
    metadata = next((p for p in parts if p.content_type.startswith("application/rs-metadata")), None)
    return Offer(sdp, metadata.body if metadata else None, metadata.content_type if metadata else None)
