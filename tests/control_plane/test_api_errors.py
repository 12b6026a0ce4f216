"""The error codes the REST API promises, pinned as literals: clients branch on them, so a
renamed constant must fail here."""

from __future__ import annotations

import pytest
from django.db import IntegrityError
from rest_framework import exceptions

from control_plane.core.api.errors import exception_handler


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (exceptions.ValidationError({"slug": ["bad"]}), 400, "invalid_request"),
        (exceptions.ParseError(), 400, "invalid_request"),
        (exceptions.NotAuthenticated(), 401, "not_authenticated"),
        (exceptions.PermissionDenied(), 403, "permission_denied"),
        (exceptions.NotFound(), 404, "not_found"),
        (exceptions.MethodNotAllowed("DELETE"), 405, "method_not_allowed"),
        (exceptions.NotAcceptable(), 406, "not_acceptable"),
        (IntegrityError("duplicate key"), 409, "conflict"),
        (exceptions.UnsupportedMediaType("text/csv"), 415, "unsupported_media_type"),
        (exceptions.Throttled(), 429, "throttled"),
        (exceptions.APIException(), 500, "error"),
    ],
)
def test_each_status_answers_with_its_promised_code(exc: Exception, status: int, code: str) -> None:
    response = exception_handler(exc, {})
    assert response is not None
    assert response.status_code == status
    assert response.data["error"]["code"] == code
    assert response.data["error"]["message"]


def test_a_validation_error_keeps_its_field_errors() -> None:
    response = exception_handler(exceptions.ValidationError({"slug": ["bad"]}), {})
    assert response is not None
    assert response.data["error"]["details"] == {"slug": ["bad"]}


def test_anything_else_is_left_to_djangos_500_handler() -> None:
    assert exception_handler(RuntimeError("bug"), {}) is None
