"""`make run`: the whole ASC system on the embedded default (SQLite, in-process tasks, the
built-in mock provider), with a demo tenant, route and key. Ctrl-C stops everything.

Ports: ASC_WEB_PORT (8000), ASC_GRPC_PORT (50051), ASC_DP_PORT (8080).
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.stack import REPO, Stack, load_or_create_env_file

STATE = REPO / ".asc"

BANNER = """
ASC is running.

  Admin (control plane)  {web}/admin/   user: admin  password: {password}
  REST API               {web}/api/v1/
  gRPC (control plane)   {grpc}
  Data plane (OpenAI)    {dp}/v1   (metrics: {dp}/metrics)
  Demo key               {key}   (also in .asc/demo-key)

Try it:

  curl -s {dp}/v1/chat/completions \\
    -H "Authorization: Bearer $(cat .asc/demo-key)" -H "Content-Type: application/json" \\
    -d '{{"model": "demo", "messages": [{{"role": "user", "content": "Hello, ASC"}}]}}'

  .venv/bin/python -c '
from openai import OpenAI
client = OpenAI(base_url="{dp}/v1", api_key=open(".asc/demo-key").read().strip())
reply = client.chat.completions.create(
    model="demo", messages=[{{"role": "user", "content": "Hello"}}])
print(reply.choices[0].message.content)'

Logs are in .asc/logs/. Press Ctrl-C to stop.
"""


def admin_password() -> str:
    path = STATE / "admin-password"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(12)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password


def main() -> int:
    STATE.mkdir(exist_ok=True)
    env = load_or_create_env_file(STATE / "keys.env")
    env = {name: os.environ.get(name, value) for name, value in env.items()}
    env.setdefault("ASC_DEBUG", os.environ.get("ASC_DEBUG", "1"))
    stack = Stack(
        state_dir=STATE,
        env=env,
        web_port=int(os.environ.get("ASC_WEB_PORT", "8000")),
        grpc_port=int(os.environ.get("ASC_GRPC_PORT", "50051")),
        dp_port=int(os.environ.get("ASC_DP_PORT", "8080")),
        log_dir=STATE / "logs",
    )
    password = admin_password()
    print("Preparing the embedded database …", flush=True)
    stack.manage("migrate", "--noinput", capture=True)
    key_file = STATE / "demo-key"
    stack.manage(
        "asc_demo", "--key-file", str(key_file), "--admin-password", password, capture=True
    )

    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start_web()
        stack.start_grpc()
        stack.start_data_plane()
        stack.wait_web()
        stack.wait_data_plane()
        print(
            BANNER.format(
                web=stack.web_url,
                grpc=stack.grpc_addr,
                dp=stack.dp_url,
                password=password,
                key=key_file.read_text().strip(),
            ),
            flush=True,
        )
        while not stopping:
            dead = stack.exited()
            if dead:
                print(f"process exited: {', '.join(dead)} (see .asc/logs/); stopping", flush=True)
                return 1
            time.sleep(0.2)
        print("\nStopping …", flush=True)
        return 0
    except TimeoutError as exc:
        print(f"ASC did not start: {exc}; see .asc/logs/", file=sys.stderr)
        return 1
    finally:
        stack.stop_all()


if __name__ == "__main__":
    sys.exit(main())
