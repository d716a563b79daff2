"""Fixtures of the customer tests: the role cast (tests/apps) and a few customers."""

from __future__ import annotations

from typing import Any

import pytest

from callvault.apps.customers.services import CustomerInput, PhoneInput, create_customer
from tests.apps.conftest import (  # noqa: F401  (fixtures used by the tests of this package)
    PASSWORD,
    Cast,
    _fast_password_hashing,
    cast,
    make_call,
    make_user,
)


def new_customer(
    name: str,
    numbers: list[str],
    team: Any,
    *,
    user: Any = None,
    tags: list[str] | None = None,
    **data: Any,
) -> Any:
    return create_customer(
        CustomerInput(
            data={"name": name, **data},
            phones=[PhoneInput(n, "work") for n in numbers],
            tags=tags,
            owner_team_id=team.pk if team is not None else None,
        ),
        user=user,
    )


@pytest.fixture
def yamada(cast: Cast) -> Any:  # noqa: F811
    """A customer of team A (営業部) whose number called ``cast.call_a``."""
    return new_customer(
        "山田 太郎", ["03-1234-5678", "090-1111-2222"], cast.team_a, kana="ヤマダ タロウ", company="山田商事"
    )
