"""Settings for the test suite: the real settings with throwaway keys. The database is still
chosen by DATABASE_URL (Postgres in CI) or is SQLite."""

import os

from shared.crypto import new_aes_key

os.environ.setdefault("ASC_DJANGO_SECRET_KEY", "test-only-" + new_aes_key())
os.environ.setdefault("ASC_CREDENTIAL_KEY", new_aes_key())
os.environ.setdefault("ASC_SEAL_KEY", new_aes_key())
os.environ.setdefault("ASC_AUDIT_SIGNING_KEY", new_aes_key())

from control_plane.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
