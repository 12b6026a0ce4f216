"""One error shape for the whole REST API:

    {"error": {"code": "<stable code>", "message": "<for humans>", "details": {...}}}

``details`` holds field errors for validation failures (field -> list of messages).

The codes below are the whole list the API promises; clients branch on them, so one is never
renamed, and a new one is added here.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

INVALID_REQUEST = "invalid_request"
NOT_AUTHENTICATED = "not_authenticated"
PERMISSION_DENIED = "permission_denied"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
NOT_ACCEPTABLE = "not_acceptable"
CONFLICT = "conflict"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
THROTTLED = "throttled"
ERROR = "error"  # any other status DRF answers with

CODES = {
    status.HTTP_400_BAD_REQUEST: INVALID_REQUEST,
    status.HTTP_401_UNAUTHORIZED: NOT_AUTHENTICATED,
    status.HTTP_403_FORBIDDEN: PERMISSION_DENIED,
    status.HTTP_404_NOT_FOUND: NOT_FOUND,
    status.HTTP_405_METHOD_NOT_ALLOWED: METHOD_NOT_ALLOWED,
    status.HTTP_406_NOT_ACCEPTABLE: NOT_ACCEPTABLE,
    status.HTTP_409_CONFLICT: CONFLICT,
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: UNSUPPORTED_MEDIA_TYPE,
    status.HTTP_429_TOO_MANY_REQUESTS: THROTTLED,
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    if isinstance(exc, IntegrityError):
        return Response(
            error_body(CONFLICT, "the change conflicts with existing data"),
            status=status.HTTP_409_CONFLICT,
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real bug: Django's 500 handler logs it
    code = CODES.get(response.status_code, ERROR)
    if isinstance(exc, exceptions.ValidationError):
        details = (
            response.data
            if isinstance(response.data, dict)
            else {"non_field_errors": response.data}
        )
        response.data = error_body(code, "the request is invalid", details)
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        response.data = error_body(code, str(detail) or code.replace("_", " "))
    return response
