"""Create a development CA and certificates for mTLS between the planes (`make certs`).

    python scripts/dev_certs.py [--out .asc/certs] [--node dp-local-1 ...] [--host localhost ...]

Writes ca.pem (keep ca.key offline in production), control-plane.pem/.key (server, valid for
the --host names) and <node>.pem/.key per data-plane node (client, common name = node id).
Existing files are kept unless --force.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.tls import issue, make_ca  # after the path fix above


def write(path: Path, data: bytes, secret: bool = False) -> None:
    path.write_bytes(data)
    if secret:
        os.chmod(path, 0o600)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".asc/certs")
    parser.add_argument("--node", action="append", default=[], help="data-plane node id")
    parser.add_argument("--host", action="append", default=[], help="control-plane host name")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.force or not (out / "ca.pem").exists():
        cert, key = make_ca()
        write(out / "ca.pem", cert)
        write(out / "ca.key", key, secret=True)
    ca_cert, ca_key = (out / "ca.pem").read_bytes(), (out / "ca.key").read_bytes()
    hosts = args.host or ["localhost", "127.0.0.1"]
    targets = [("control-plane", {"server_names": hosts})]
    targets += [(node, {"client": True}) for node in (args.node or ["dp-local-1"])]
    for name, kind in targets:
        if args.force or not (out / f"{name}.pem").exists():
            cert, key = issue(ca_cert, ca_key, name, **kind)  # type: ignore[arg-type]  # kind is a dict of str to list or bool
            write(out / f"{name}.pem", cert)
            write(out / f"{name}.key", key, secret=True)


if __name__ == "__main__":
    main()
