"""API errors: one JSON shape for every failure, with a stable machine code.

Every error answer is ``{"error": "<code>", "message": "<for people>", "param": "<name>"|null}``.
``message`` is Japanese by default and English with ``Accept-Language: en``; clients branch on
``error`` (and ``param``), never on ``message``.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _


class ApiError(Exception):
    """Raised by services and views; rendered as the error shape with ``status``."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.param)


def error_body(code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": code, "message": str(message), "param": param}


def bad_parameter(param: str, message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message, param)


def not_found(message: str | None = None) -> ApiError:
    return ApiError(404, "not_found", message or _("見つかりません。"))


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)
