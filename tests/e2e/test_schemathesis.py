"""The REST API against its own OpenAPI schema, live: the schema the server serves validates
against the OpenAPI 3 specification, and schemathesis, generating requests from it (valid and
invalid, and sequences that create, read, change and delete), gets no 5xx from the server.

Bounded: a few examples per operation (ASC_SCHEMATHESIS_EXAMPLES, default 5), a fixed seed
(ASC_SCHEMATHESIS_SEED) so a CI failure replays exactly, and a hard timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from drf_spectacular.validation import validate_schema

from tests.e2e.conftest import System

pytestmark = pytest.mark.e2e

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
TIMEOUT_S = 480


def test_the_served_schema_validates(system: System) -> None:
    request = urllib.request.Request(
        f"{system.stack.web_url}/api/v1/schema/?format=json",
        headers={"Accept": "application/vnd.oai.openapi+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        schema = json.loads(response.read())
    validate_schema(schema)  # raises on any violation of the OpenAPI 3.0 specification
    assert "/api/v1/config/import/" in schema["paths"]


def test_schemathesis_finds_no_server_error(system: System, tmp_path: Path) -> None:
    argv = [
        SCHEMATHESIS,
        "run",
        f"{system.stack.web_url}/api/v1/schema/",
        "--header",
        f"Authorization: Token {system.api.token}",
        "--checks",
        "not_a_server_error",
        "--phases",
        "fuzzing,stateful",
        "--max-examples",
        os.environ.get("ASC_SCHEMATHESIS_EXAMPLES", "5"),
        "--seed",
        os.environ.get("ASC_SCHEMATHESIS_SEED", "20261125"),
        "--workers",
        "2",
        "--request-timeout",
        "10",
        "--no-shrink",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""}
    done = subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    print(done.stdout[-20_000:], done.stderr[-5_000:], sep="\n")
    assert done.returncode == 0, "schemathesis found failures (see the output above)"
    assert "passed" in done.stdout
