"""Asking for a snapshot publish from any app, without importing the app that publishes.

Every configuration write, in any app, asks for a publish. The snapshot is built by the fleet
app, which reads every other app's rows and so sits above them; ``core`` sits below every app
and imports none. So the fleet app registers its publisher here when Django starts
(``FleetConfig.ready``), and writes call ``request_publish`` from here.

The publish itself runs after the transaction commits (a Celery task; eager in-process on the
embedded default), so a snapshot never reflects uncommitted rows and a rolled-back change
publishes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

# Called after commit with the joined reasons and the acting user's id.
Publisher = Callable[[str, int | None], None]

_registered: dict[str, Publisher] = {}
# Checks every write runs before it asks for a publish; one raises ValidationError to refuse
# the change (the rollouts app registers one: no second change while a staged one is in flight).
_guards: dict[str, Callable[[], None]] = {}


def set_publisher(publish: Publisher) -> None:
    """Register the one function that publishes (the fleet app does, at start-up)."""
    _registered["publisher"] = publish


def set_guard(guard: Callable[[], None]) -> None:
    _guards[f"{guard.__module__}.{guard.__qualname__}"] = guard


def check_guards() -> None:
    """Raise the ValidationError a registered guard raises: what a write would meet, asked
    before it starts (the admin asks, to say it on the page)."""
    for guard in _guards.values():
        guard()


def request_publish(reason: str, user_id: int | None = None, *, first: bool = False) -> None:
    """Publish once the current transaction commits. A transaction that asks many times (an
    import of a thousand routes) publishes once, with every reason, in the name of the user
    who asked first. ``first``: this reason sums the transaction up; it goes before the others
    (the joined reasons are cut at 200 characters)."""
    publisher = _registered.get("publisher")
    if publisher is None:
        raise ImproperlyConfigured("no snapshot publisher registered: is the fleet app installed?")
    connection = transaction.get_connection()
    if connection.in_atomic_block:
        for _, callback, _ in connection.run_on_commit:
            pending = getattr(callback, "asc_publish_reasons", None)
            if pending is not None:
                pending.insert(0 if first else len(pending), reason)
                return
    check_guards()  # once per transaction: later calls returned above
    reasons = [reason]

    def publish() -> None:
        publisher("; ".join(dict.fromkeys(reasons))[:200], user_id)

    publish.asc_publish_reasons = reasons  # type: ignore[attr-defined]  # found by later calls
    # robust: a failed publish is logged and retried by the task; it never fails the write.
    transaction.on_commit(publish, robust=True)
