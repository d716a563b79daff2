"""Japanese first: the UI language is Japanese unless the user chose English in the UI.

Django's LocaleMiddleware would follow the browser's Accept-Language header, so a
PC set up in English would show English to Japanese staff. Here the choice is the
user's own (the language cookie set by the switch in the user menu), else Japanese.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

from callvault.apps.accounts import access


class JapaneseFirstMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        request.META.pop("HTTP_ACCEPT_LANGUAGE", None)
        if self.is_async:
            return self._acall(request)
        return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        return await self.get_response(request)


class AccessMemoMiddleware:
    """After AuthenticationMiddleware: the request's user remembers its role for this request.

    ``access.role_of`` and ``access.supervised_team_ids`` were asked 5-9 times per list page
    (the view, the filter form, the menu), each a query. The user is still loaded lazily.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        lazy = getattr(request, "user", None)
        if lazy is not None:
            request.user = SimpleLazyObject(lambda: access.remember_per_request(_unwrap(lazy)))
        return self.get_response(request)


def _unwrap(user: Any) -> Any:
    if isinstance(user, SimpleLazyObject):
        if user._wrapped is empty:
            user._setup()
        return user._wrapped
    return user
