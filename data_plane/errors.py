"""Refusals and failures in the OpenAI error format, with stable reason codes.

An ``ApiError`` is a plain value: the pure core returns one instead of raising, the handlers
turn it into a response. The openai SDK picks its exception class from the status alone
(400 BadRequestError, 401 AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError),
and exposes ``code`` to callers, so codes here are part of the public API: never rename one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Stable reason codes.
MISSING_API_KEY = "missing_api_key"
INVALID_API_KEY = "invalid_api_key"
EXPIRED_API_KEY = "expired_api_key"
TENANT_INACTIVE = "tenant_inactive"
MODEL_NOT_ALLOWED = "model_not_allowed"
MODEL_NOT_FOUND = "model_not_found"
RESPONSE_NOT_FOUND = "response_not_found"
INVALID_JSON = "invalid_json"
INVALID_REQUEST = "invalid_request"
NOT_READY = "not_ready"
NO_TARGET_AVAILABLE = "no_target_available"
UPSTREAM_ERROR = "upstream_error"
UPSTREAM_REJECTED = "upstream_rejected"
UPSTREAM_RATE_LIMITED = "upstream_rate_limited"
NO_HEALTHY_TARGET = "no_healthy_target"
UNSUPPORTED = "unsupported_by_provider"
INTERNAL_ERROR = "internal_error"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
REQUEST_TOO_LARGE = "request_too_large"
MAX_TOKENS_TOO_LARGE = "max_tokens_too_large"
INVALID_TOKEN = "invalid_token"
BUDGET_EXCEEDED = "budget_exceeded"
RATE_LIMITED = "rate_limited"
LIMITS_UNAVAILABLE = "limits_unavailable"
AUDIT_UNAVAILABLE = "audit_unavailable"
GUARDRAIL_BLOCKED = "guardrail_blocked"
# Outcomes recorded in usage events when a stream ends early (never sent as an error body).
STREAM_INTERRUPTED = "stream_interrupted"
CLIENT_DISCONNECTED = "client_disconnected"


@dataclass(frozen=True, slots=True)
class ApiError:
    status: int
    code: str
    message: str
    type: str
    param: str | None = None
    # Seconds after which a retry may succeed (rate limits), sent as Retry-After.
    retry_after: int | None = None

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def bad_request(message: str, *, param: str | None = None, code: str = INVALID_REQUEST) -> ApiError:
    return ApiError(400, code, message, "invalid_request_error", param)


def missing_api_key() -> ApiError:
    return ApiError(
        401,
        MISSING_API_KEY,
        "No API key provided: send it as 'Authorization: Bearer <key>'.",
        "authentication_error",
    )


def invalid_api_key() -> ApiError:
    return ApiError(401, INVALID_API_KEY, "Invalid API key.", "authentication_error")


def expired_api_key() -> ApiError:
    return ApiError(401, EXPIRED_API_KEY, "This API key has expired.", "authentication_error")


def tenant_inactive() -> ApiError:
    return ApiError(403, TENANT_INACTIVE, "This tenant is not active.", "permission_error")


def model_not_allowed(model: str) -> ApiError:
    return ApiError(
        403,
        MODEL_NOT_ALLOWED,
        f"This API key is not allowed to use the model '{model}'.",
        "permission_error",
        "model",
    )


def model_not_found(model: str) -> ApiError:
    return ApiError(
        404,
        MODEL_NOT_FOUND,
        f"The model '{model}' does not exist.",
        "invalid_request_error",
        "model",
    )


def response_not_kept(response_id: str) -> ApiError:
    return ApiError(
        404,
        RESPONSE_NOT_FOUND,
        f"No response '{response_id}' is kept for you: responses are kept by the OpenAI-family "
        "upstream that created them, and only those served through this gateway can be read.",
        "invalid_request_error",
        "response_id",
    )


def not_ready() -> ApiError:
    return ApiError(503, NOT_READY, "The gateway has no policy loaded yet.", "server_error")


def no_target_available(model: str, note: str = "") -> ApiError:
    return ApiError(
        503,
        NO_TARGET_AVAILABLE,
        f"No provider is available for the model '{model}'.{note}",
        "server_error",
    )


def upstream_error(model: str, attempts: int, note: str = "") -> ApiError:
    return ApiError(
        502,
        UPSTREAM_ERROR,
        f"All {attempts} provider attempt(s) for the model '{model}' failed.{note}",
        "upstream_error",
    )


def stream_broken(model: str) -> ApiError:
    """Sent as the last event of a stream whose provider failed after it started."""
    return ApiError(
        502,
        UPSTREAM_ERROR,
        f"The provider's stream for the model '{model}' broke off; the answer is incomplete.",
        "upstream_error",
    )


def upstream_rate_limited(model: str, retry_after: int, note: str = "") -> ApiError:
    """Every provider of the route answered 429 (or is waiting out its Retry-After)."""
    return ApiError(
        429,
        UPSTREAM_RATE_LIMITED,
        f"Every provider for the model '{model}' is rate-limiting; retry after "
        f"{retry_after} s.{note}",
        "rate_limit_error",
        retry_after=retry_after,
    )


def no_healthy_target(model: str, retry_after: int, note: str = "") -> ApiError:
    """Circuit breakers keep every provider of the route out for now."""
    return ApiError(
        503,
        NO_HEALTHY_TARGET,
        f"Every provider for the model '{model}' is failing; retry after {retry_after} s.{note}",
        "server_error",
        retry_after=retry_after,
    )


def unsupported(message: str) -> ApiError:
    """No provider of the route can do what the request asks."""
    return ApiError(400, UNSUPPORTED, f"Unsupported request: {message}.", "invalid_request_error")


def upstream_rejected(status: int, message: str) -> ApiError:
    """The provider refused the request itself (e.g. 400 for a malformed message)."""
    return ApiError(
        status if 400 <= status < 500 else 400,
        UPSTREAM_REJECTED,
        f"The provider rejected the request: {message}",
        "invalid_request_error",
    )


def internal_error(request_id: str) -> ApiError:
    return ApiError(
        500,
        INTERNAL_ERROR,
        f"Internal error; quote request id {request_id} when reporting it.",
        "server_error",
    )


def from_http_status(status: int, reason: str) -> ApiError:
    """aiohttp's own refusals (unknown path, wrong method, body too large)."""
    code = {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED, 413: REQUEST_TOO_LARGE}.get(
        status, INVALID_REQUEST
    )
    kind = "invalid_request_error" if status < 500 else "server_error"
    return ApiError(status, code, reason, kind)


def request_too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        REQUEST_TOO_LARGE,
        f"The request body is larger than this key allows ({limit} bytes).",
        "invalid_request_error",
    )


def invalid_token(reason: str) -> ApiError:
    return ApiError(
        401,
        INVALID_TOKEN,
        f"The bearer token was refused: {reason}.",
        "invalid_request_error",
    )


def audit_unavailable() -> ApiError:
    """A durable-audit tenant's answer whose usage and audit record could not be written."""
    return ApiError(
        503,
        AUDIT_UNAVAILABLE,
        "The answer is withheld: its audit record could not be stored (this tenant requires "
        "it before any answer is released). Retry later.",
        "server_error",
        retry_after=5,
    )
