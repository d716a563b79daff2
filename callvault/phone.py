"""Phone numbers as Japanese users write them.

Stored as E.164 (``+81312345678``), shown in national format (``03-1234-5678``).
Withheld (非通知) and public phones (公衆電話) are recognised by the values PBXs
and carriers commonly put in From headers.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

import phonenumbers

DEFAULT_REGION = "JP"
WITHHELD = "anonymous"
PAYPHONE = "payphone"
_WITHHELD_VALUES = {
    "anonymous",
    "restricted",
    "private",
    "unavailable",
    "withheld",
    "非通知",
    "p",
    "user unknown",
}
_PAYPHONE_VALUES = {"payphone", "coin line/payphone", "公衆電話", "c"}


def normalize(raw: str, region: str = DEFAULT_REGION) -> str:
    """Return E.164 for a number, ``anonymous``/``payphone`` for those, else the cleaned raw digits.

    >>> normalize("03-1234-5678")
    '+81312345678'
    """
    text = (raw or "").strip()
    low = text.lower()
    if low in _WITHHELD_VALUES:
        return WITHHELD
    if low in _PAYPHONE_VALUES:
        return PAYPHONE
    if not text:
        return ""
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return "".join(ch for ch in text if ch.isdigit() or ch in "+*#")[:32]
    if phonenumbers.is_possible_number(parsed):
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    # Extensions (内線 "201") and short codes are kept as dialled.
    return "".join(ch for ch in text if ch.isdigit() or ch in "+*#")[:32]


def display(number: str, region: str = DEFAULT_REGION) -> str:
    """Format a stored number for people: national format for domestic numbers."""
    if number == WITHHELD:
        return "非通知"
    if number == PAYPHONE:
        return "公衆電話"
    if not number.startswith("+"):
        return number
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return number
    if phonenumbers.region_code_for_number(parsed) == region:
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


# --- Caller classification (非通知 / 公衆電話 / 不明) -------------------------------------------
#
# How carriers and PBXs present a caller without a usable number:
# - 非通知 (withheld by the caller): From ``"Anonymous" <sip:anonymous@anonymous.invalid>`` (RFC 3323),
#   an empty user part, ``Privacy: id`` / ``Privacy: header`` on the P-Asserted-Identity, NTT NGN
#   (ひかり電話) ``Anonymous``, reason code ``P`` from ISDN/analogue caller-id adapters.
# - 公衆電話: NTT NGN ``Coin line/payphone`` (also URL-encoded in the user part), ``Payphone``,
#   ``公衆電話``, reason code ``C``.
# - 不明 (通知不可能 / 表示圏外: the network could not deliver it): ``Unavailable``,
#   ``Interaction with other service``, ``Out of area``, reason code ``O``, and anything that is
#   neither a number nor one of the above.

NORMAL = "normal"
KIND_WITHHELD = "withheld"
KIND_PAYPHONE = "payphone"
KIND_UNKNOWN = "unknown"

_CLASS_WITHHELD = {
    "anonymous",
    "restricted",
    "private",
    "withheld",
    "非通知",
    "p",
    "user unknown",
    "anonymous.invalid",
}
_CLASS_PAYPHONE = {"payphone", "coin line/payphone", "coin line", "公衆電話", "c", "coinline"}
_CLASS_UNKNOWN = {
    "unknown",
    "unavailable",
    "interaction with other service",
    "out of area",
    "outofarea",
    "o",
    "表示圏外",
    "通知不可能",
    "通知不可",
}
_PRIVACY_HIDES_ID = {"id", "header", "user", "critical"}


@dataclass(frozen=True)
class CallerId:
    """What a caller-id really is: a number, or why there is none."""

    kind: str  # NORMAL | KIND_WITHHELD | KIND_PAYPHONE | KIND_UNKNOWN
    number: str  # E.164 (or dialled digits for extensions) when kind is NORMAL, else the sentinel/""

    @property
    def display(self) -> str:
        if self.kind == KIND_WITHHELD:
            return "非通知"
        if self.kind == KIND_PAYPHONE:
            return "公衆電話"
        if self.kind == KIND_UNKNOWN:
            return "不明"
        return display(self.number)


def _user_part(value: str) -> str:
    """``sip:Coin%20line%2Fpayphone@host;user=phone`` -> ``coin line/payphone``; plain text unchanged."""
    text = value.strip().strip("<>").strip()
    scheme, sep, rest = text.partition(":")
    if sep and scheme.lower() in ("sip", "sips", "tel"):
        text = rest.split("@", 1)[0].split(";", 1)[0]
    elif "@" in text and " " not in text:
        text = text.split("@", 1)[0]
    return urllib.parse.unquote(text).strip().strip('"').strip().lower()


def _special(value: str) -> str | None:
    low = _user_part(value)
    if low in _CLASS_WITHHELD or low.startswith("anonymous"):
        return KIND_WITHHELD
    if low in _CLASS_PAYPHONE:
        return KIND_PAYPHONE
    if low in _CLASS_UNKNOWN:
        return KIND_UNKNOWN
    return None


def classify(raw: str | None, display_name: str = "", privacy: str = "") -> CallerId:
    """Classify a caller-id as presented (number, SIP URI, stored sentinel) with its display name.

    >>> classify("03-1234-5678").number
    '+81312345678'
    >>> classify("sip:anonymous@anonymous.invalid").kind
    'withheld'
    >>> classify("", display_name="公衆電話").kind
    'payphone'
    """
    text = (raw or "").strip()
    if privacy and {p.strip().lower() for p in privacy.split(";")} & _PRIVACY_HIDES_ID and not text:
        return CallerId(KIND_WITHHELD, WITHHELD)
    special = _special(text) if text else None
    if special is None and display_name:
        by_name = _special(display_name)
        # a display name only decides when the number itself says nothing
        if by_name is not None and (not text or not any(ch.isdigit() for ch in text)):
            special = by_name
    if special == KIND_WITHHELD:
        return CallerId(KIND_WITHHELD, WITHHELD)
    if special == KIND_PAYPHONE:
        return CallerId(KIND_PAYPHONE, PAYPHONE)
    if special == KIND_UNKNOWN:
        return CallerId(KIND_UNKNOWN, "")
    if not text:
        # no number at all: carriers leave it out for callers who withhold it
        return CallerId(KIND_WITHHELD, WITHHELD)
    user = _user_part(text) if ":" in text or "@" in text else text
    number = normalize(user)
    if number in (WITHHELD, PAYPHONE):
        return CallerId(KIND_WITHHELD if number == WITHHELD else KIND_PAYPHONE, number)
    if not number or not any(ch.isdigit() for ch in number):
        return CallerId(KIND_UNKNOWN, "")
    return CallerId(NORMAL, number)
