"""callvault.phone.classify: numbers, 非通知, 公衆電話 and 不明 as carriers and PBXs present them."""

from __future__ import annotations

import pytest

from callvault import phone


@pytest.mark.parametrize(
    ("raw", "name", "privacy", "kind", "number", "shown"),
    [
        ("03-1234-5678", "", "", "normal", "+81312345678", "03-1234-5678"),
        ("sip:0312345678@pbx.example.jp;user=phone", "", "", "normal", "+81312345678", "03-1234-5678"),
        ("tel:+81-90-1234-5678", "", "", "normal", "+819012345678", "090-1234-5678"),
        ("201", "", "", "normal", "201", "201"),
        ("sip:anonymous@anonymous.invalid", "Anonymous", "", "withheld", "anonymous", "非通知"),
        ("Anonymous", "", "", "withheld", "anonymous", "非通知"),
        ("", "", "", "withheld", "anonymous", "非通知"),
        ("", "", "id", "withheld", "anonymous", "非通知"),
        ("", "非通知", "", "withheld", "anonymous", "非通知"),
        ("P", "", "", "withheld", "anonymous", "非通知"),
        ("Coin line/payphone", "", "", "payphone", "payphone", "公衆電話"),
        ("sip:Coin%20line%2Fpayphone@ntt-east.ne.jp", "", "", "payphone", "payphone", "公衆電話"),
        ("", "Payphone", "", "payphone", "payphone", "公衆電話"),
        ("sip:payphone@sbc.example.jp", "", "", "payphone", "payphone", "公衆電話"),
        ("公衆電話", "", "", "payphone", "payphone", "公衆電話"),
        ("C", "", "", "payphone", "payphone", "公衆電話"),
        ("Unavailable", "", "", "unknown", "", "不明"),
        ("Interaction with other service", "", "", "unknown", "", "不明"),
        ("O", "", "", "unknown", "", "不明"),
        ("表示圏外", "", "", "unknown", "", "不明"),
        ("sip:bob@example.com", "", "", "unknown", "", "不明"),
    ],
)
def test_it_classifies_caller_ids(
    raw: str, name: str, privacy: str, kind: str, number: str, shown: str
) -> None:
    caller = phone.classify(raw, display_name=name, privacy=privacy)
    assert (caller.kind, caller.number, caller.display) == (kind, number, shown)


def test_a_display_name_does_not_override_a_real_number() -> None:
    caller = phone.classify("0312345678", display_name="Anonymous")
    assert caller.kind == "normal"
    assert caller.number == "+81312345678"


def test_stored_sentinels_classify_back_to_their_kind() -> None:
    assert phone.classify(phone.normalize("非通知")).kind == "withheld"
    assert phone.classify(phone.normalize("公衆電話")).kind == "payphone"
