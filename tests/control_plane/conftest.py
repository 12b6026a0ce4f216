from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient


@pytest.fixture
def admin_user(db: None) -> User:
    return User.objects.create_superuser("platform", "platform@example.com", "pw-platform-1")


@pytest.fixture
def api(admin_user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(admin_user)
    return client
