"""PostgreSQL stopped for 30 s while usage flows: the control plane reaches its database
through a TCP proxy the test cuts (every connection dropped, new ones refused) and restores.
The data plane keeps serving; the control plane acknowledges no usage batch it has not stored
(a false acknowledgement would make the data plane delete its spooled copy: that record would
be missing at the end), so the data plane spools and replays, and every answered request ends
up with exactly one usage and one audit record, the audit chains verifying."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from scripts.stack import fresh_database
from tests.e2e.conftest import System
from tests.e2e.test_foundation import PROPAGATION_LIMIT_S, add_key, ask, client, eventually
from tests.e2e.test_loss import steady_load

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.environ.get("DATABASE_URL"), reason="needs PostgreSQL"),
]

OUTAGE_S = 30.0


class CuttableProxy:
    """A TCP proxy to ``target``; ``cut()`` drops every connection and refuses new ones,
    ``restore()`` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        assert self._listener is not None
        self._listener.close()
        self._listener = None
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                downstream, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                downstream.close()
                continue
            with self._lock:
                self._conns += [downstream, upstream]
            for a, b in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="module")
def proxy() -> CuttableProxy:
    server = urlsplit(os.environ["DATABASE_URL"])
    return CuttableProxy((server.hostname or "127.0.0.1", server.port or 5432))


@pytest.fixture(scope="module")
def database_url(
    tmp_path_factory: pytest.TempPathFactory, proxy: CuttableProxy
) -> Iterator[dict[str, str]]:
    """The system's database, reached through the proxy (this module's ``system`` uses it)."""
    with fresh_database(tmp_path_factory.mktemp("db"), "asc_outage") as env:
        url = urlsplit(env["DATABASE_URL"])
        user = f"{url.username}@" if url.username else ""
        netloc = f"{user}127.0.0.1:{proxy.port}"
        yield {"DATABASE_URL": urlunsplit(url._replace(netloc=netloc))}


def test_usage_survives_a_database_outage(system: System, proxy: CuttableProxy) -> None:
    route_id = system.api.one("routes/?name=demo")["id"]
    key = add_key(system, "through-outage", [route_id])
    eventually(lambda: ask(client(system, key["secret"])), PROPAGATION_LIMIT_S)

    with steady_load(system.stack.dp_url, key["secret"]) as load:
        time.sleep(3)
        proxy.cut()
        time.sleep(OUTAGE_S)
        proxy.restore()
        time.sleep(5)
    answered, unanswered = load.answered, load.unanswered
    assert unanswered == 0, "the data plane kept serving through the outage"
    expected = set(answered)

    def records() -> tuple[list[str], list[str]]:
        usage = [r["request_id"] for r in system.api.all(f"usage/?key={key['id']}")]
        audit = [r["request_id"] for r in system.api.all(f"audit/?key={key['id']}")]
        return usage, audit

    def delivered() -> bool:
        usage, audit = records()
        return expected <= set(usage) and expected <= set(audit)

    eventually(delivered, 120, interval=1.0)
    usage, audit = records()
    assert len(usage) == len(set(usage)), "a usage record stored twice"
    assert len(audit) == len(set(audit)), "an audit record stored twice"
    assert "audit trail intact" in system.stack.manage("verify_audit", capture=True)
    print(f"{len(expected)} answered across a {OUTAGE_S:.0f} s database outage, none lost")
