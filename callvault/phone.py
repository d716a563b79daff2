"""Phone numbers as Japanese users write them.

Stored as E.164 (``+81312345678``), shown in national format (``03-1234-5678``).
Withheld (非通知) and public phones (公衆電話) are recognised by the values PBXs
and carriers commonly put in From headers.
"""

from __future__ import annotations

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
