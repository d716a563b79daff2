"""Text folding for Japanese search: NFKC, lower case, katakana for hiragana, no spaces.

``fold("ﾔﾏﾀﾞ　太郎")`` and ``fold("やまだ太郎")`` both give ``ヤマダ太郎``, so a substring search over
folded text finds names however they were typed (half-width kana, full-width letters, spaces).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from callvault import phone

_HIRAGANA = {cp: cp + 0x60 for cp in range(0x3041, 0x3097)}  # ぁ..ゖ -> ァ..ヶ
_SPACES = re.compile(r"\s+")
_NUMBER_LIKE = re.compile(r"^[0-9０-９+＋()（）\-－‐ー―\s]+$")
SEPARATOR = "\x1f"  # between fields, so a search never matches across two fields


def fold(text: str) -> str:
    return _SPACES.sub("", unicodedata.normalize("NFKC", text or "").lower().translate(_HIRAGANA))


def looks_like_number(query: str) -> bool:
    return bool(_NUMBER_LIKE.match(query or "")) and sum(ch.isdigit() for ch in query) >= 2


def number_digits(query: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", query) if ch.isdigit())


def search_text_for(customer: Any, numbers: list[str]) -> str:
    parts = [
        customer.name,
        customer.kana,
        customer.company,
        customer.department,
        customer.email,
        customer.address,
        customer.postal_code.replace("-", ""),
    ]
    for n in numbers:
        parts.append(n)  # +81312345678
        parts.append("".join(ch for ch in phone.display(n) if ch.isdigit()))  # 0312345678
    return SEPARATOR.join(fold(p) for p in parts if p)
