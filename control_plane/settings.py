"""Control-plane settings, all from the environment.

| variable | default |
|---|---|
| DATABASE_URL | unset: SQLite at ASC_SQLITE_PATH (default .asc/asc.sqlite3) |
| ASC_DJANGO_SECRET_KEY | required unless ASC_DEBUG=1 |
| ASC_DEBUG | 0 |
| ASC_ALLOWED_HOSTS | localhost,127.0.0.1 |
| ASC_CREDENTIAL_KEY | required: AES-256 key(s) encrypting provider credentials at rest |
| ASC_SEAL_KEY | required: AES-256 key(s) sealing credentials for the data planes |
| ASC_AUDIT_SIGNING_KEY | required for checkpoints: Ed25519 key (32 bytes, base64) |
| CELERY_BROKER_URL | unset: tasks run eagerly in-process |
| ASC_OTLP_ENDPOINT | unset: no traces; an OTLP/HTTP traces URL (or OTEL_*: docs/tracing.md) |
| ASC_OIDC_ISSUER | unset: no SSO. The OpenID Connect issuer URL (admin and API login) |
| ASC_OIDC_CLIENT_ID, ASC_OIDC_CLIENT_SECRET | ASC's client at the issuer |
| ASC_OIDC_ADMIN_GROUPS | groups whose members are platform admins (comma separated) |
| ASC_OIDC_GROUPS_CLAIM | groups (the ID token claim listing the user's groups) |
| ASC_OIDC_SCOPES | openid email profile |
| ASC_OIDC_API_AUDIENCE | the client id: the `aud` bearer tokens on the API must carry |
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from shared import otel

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("ASC_DEBUG", "0") == "1"
SECRET_KEY = os.environ.get("ASC_DJANGO_SECRET_KEY") or (
    "insecure-development-only" if DEBUG else ""
)
if not SECRET_KEY:
    raise RuntimeError("ASC_DJANGO_SECRET_KEY must be set (or ASC_DEBUG=1 for development)")
ALLOWED_HOSTS = os.environ.get("ASC_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")

INSTALLED_APPS = [
    "control_plane.console.admin_app.ConsoleAdminConfig",  # django.contrib.admin + console index
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "control_plane.core",
    "control_plane.tenancy",
    "control_plane.catalog",
    "control_plane.keys",
    "control_plane.fleet",
    "control_plane.usage",
    "control_plane.grpc_api",
    "control_plane.audit",
    "control_plane.guardrails",
    "control_plane.limits",
    "control_plane.sso",
    "control_plane.config",
    "control_plane.rollouts",
    "control_plane.console",
]

MIDDLEWARE = [
    "control_plane.core.tracing.TraceMiddleware",  # left out unless tracing is configured
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "control_plane.core.middleware.AccessMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "control_plane.urls"
WSGI_APPLICATION = "control_plane.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "control_plane.sso.context.sso",
            ]
        },
    }
]


def _database(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise RuntimeError(f"DATABASE_URL: unsupported scheme {parts.scheme!r}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }


if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": _database(os.environ["DATABASE_URL"])}
else:
    _sqlite = Path(os.environ.get("ASC_SQLITE_PATH", BASE_DIR / ".asc" / "asc.sqlite3"))
    _sqlite.parent.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(_sqlite),
            # Three processes share the file (web, gRPC, worker): wait for locks, use WAL,
            # and take the write lock when a transaction begins (a deferred transaction that
            # later writes fails at once with "database is locked" instead of waiting).
            "OPTIONS": {
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL;",
                "transaction_mode": "IMMEDIATE",
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".asc" / "static"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "control_plane.sso.authentication.OidcBearerAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["control_plane.core.api.permissions.IsActiveUser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "control_plane.core.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "control_plane.core.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append(  # type: ignore[attr-defined]  # a list
        "rest_framework.renderers.BrowsableAPIRenderer"
    )

SPECTACULAR_SETTINGS = {
    "TITLE": "ASC control plane API",
    "DESCRIPTION": "Tenants, providers, credentials, models, routes, virtual keys, usage, fleet.",
    "VERSION": "1",
}

CELERY_TASK_ALWAYS_EAGER = not os.environ.get("CELERY_BROKER_URL")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "memory://localhost/"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True

CELERY_BEAT_SCHEDULE = {
    "audit-checkpoints": {"task": "control_plane.audit.tasks.checkpoint_task", "schedule": 3600.0},
    "audit-retention": {"task": "control_plane.audit.tasks.retention_task", "schedule": 86400.0},
    "spend-rollup": {"task": "control_plane.usage.tasks.rollup_task", "schedule": 60.0},
}

ASC_CREDENTIAL_KEY = os.environ.get("ASC_CREDENTIAL_KEY", "")
# Ed25519 private key (32 bytes, URL-safe base64) signing audit checkpoints.
ASC_AUDIT_SIGNING_KEY = os.environ.get("ASC_AUDIT_SIGNING_KEY", "")
ASC_SEAL_KEY = os.environ.get("ASC_SEAL_KEY", "")
# OpenTelemetry: where the control plane's spans go; "" (the default): tracing off.
ASC_OTLP_ENDPOINT = otel.traces_endpoint(os.environ, "ASC_OTLP_ENDPOINT")
# The gRPC server checks the database for a newer snapshot this often (seconds).
ASC_SNAPSHOT_POLL_S = float(os.environ.get("ASC_SNAPSHOT_POLL_S", "0.1"))

# Single sign-on (OpenID Connect, authorization code flow with PKCE); see control_plane/sso.
ASC_OIDC_ISSUER = os.environ.get("ASC_OIDC_ISSUER", "")
ASC_OIDC_CLIENT_ID = os.environ.get("ASC_OIDC_CLIENT_ID", "")
ASC_OIDC_CLIENT_SECRET = os.environ.get("ASC_OIDC_CLIENT_SECRET", "")
ASC_OIDC_SCOPES = os.environ.get("ASC_OIDC_SCOPES", "openid email profile")
ASC_OIDC_GROUPS_CLAIM = os.environ.get("ASC_OIDC_GROUPS_CLAIM", "groups")
ASC_OIDC_ADMIN_GROUPS = os.environ.get("ASC_OIDC_ADMIN_GROUPS", "")
ASC_OIDC_ALGORITHMS = os.environ.get("ASC_OIDC_ALGORITHMS", "RS256")
ASC_OIDC_API_AUDIENCE = os.environ.get("ASC_OIDC_API_AUDIENCE", "")
ASC_OIDC_TIMEOUT_S = float(os.environ.get("ASC_OIDC_TIMEOUT_S", "5"))
ASC_OIDC_LABEL = os.environ.get("ASC_OIDC_LABEL", "Log in with single sign-on")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "shared.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            # ASC_LOG_FORMAT=json: one JSON object per line, as the data plane writes them.
            "formatter": "json" if os.environ.get("ASC_LOG_FORMAT") == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("ASC_LOG_LEVEL", "INFO")},
}
