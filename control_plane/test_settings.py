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

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not Django's shared-cache in-memory database: the gRPC servicers reach the
    # database from threads of their own, and shared-cache connections fail at once with
    # "database table is locked" where a file waits for the lock (timeout, WAL).
    import tempfile

    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"asc-test-{os.getpid()}.sqlite3")
    }
