"""The LiteLLM proxy, the gateway ASC is compared with, in its own venv (``.bench/litellm-venv``,
created on first use: LiteLLM pins ``openai<3``, which clashes with ASC's dev dependencies).

It runs as documented: one uvicorn worker, a config file with a master key and one model
pointed at the benchmark's upstream, the bundled price map (LITELLM_LOCAL_MODEL_COST_MAP) so
it never fetches one. Only uvicorn's per-request access log is turned down, as ASC has none.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.procs import REPO

VENV = REPO / ".bench" / "litellm-venv"
MASTER_KEY = "sk-bench-master"
MODEL_NAME = "bench"
REQUIREMENT = "litellm[proxy]"


def executable() -> Path:
    return VENV / "bin" / "litellm"


def ensure_venv() -> str:
    """Create the venv and install LiteLLM when missing; returns the installed version."""
    if not executable().exists():
        print(f"  installing {REQUIREMENT} into {VENV} (first run only, about a minute)")
        VENV.parent.mkdir(parents=True, exist_ok=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", "--clear", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run(
            [*pip, "--disable-pip-version-check", REQUIREMENT],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    out = subprocess.run(
        [
            str(VENV / "bin" / "python"),
            "-c",
            "import importlib.metadata as m;print(m.version('litellm'))",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def write_config(directory: Path, upstream_base_url: str) -> tuple[Path, Path]:
    """The proxy config and a logging config (JSON is valid YAML)."""
    config = {
        "model_list": [
            {
                "model_name": MODEL_NAME,
                "litellm_params": {
                    "model": "openai/bench-model",
                    "api_base": upstream_base_url,
                    "api_key": "x",
                },
            }
        ],
        "general_settings": {"master_key": MASTER_KEY},
        "litellm_settings": {"telemetry": False},
    }
    logging = {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {"uvicorn.access": {"level": "WARNING"}},
    }
    config_path = directory / "litellm.yaml"
    log_path = directory / "litellm-logging.json"
    config_path.write_text(json.dumps(config, indent=2))
    log_path.write_text(json.dumps(logging))
    return config_path, log_path


def argv(config: Path, log_config: Path, port: int) -> list[str]:
    # Without a database: DATABASE_URL, when set, names ASC's (measured on PostgreSQL). env
    # execs LiteLLM, so the process measured is LiteLLM's.
    return [
        "env",
        "-u",
        "DATABASE_URL",
        str(executable()),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
        "--log_config",
        str(log_config),
    ]


ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}
READY_PATH = "/health/liveliness"
