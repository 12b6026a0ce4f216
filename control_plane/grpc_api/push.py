"""What the control plane has pushed to one data-plane node and what it owes it next.

The state of one ConfigService stream as a pure class: no gRPC, no Django, no clock (the
servicer passes monotonic times in) and no randomness (it passes the nonce in). The servicer
asks whether a push is due, tells it what it pushed, and hands it every answer from the node.

Invariants (DESIGN.md section 2):
- at most one push per node is unacknowledged: nothing is due while one is pending;
- a push is due when the latest snapshot's hash differs from the one the node holds and from
  the one it last refused (same hash = nothing to send);
- only the answer echoing the pending nonce counts; a stale or unknown nonce changes nothing;
- an ACK records what the node now holds, in its own words (the version and hash it reports);
- a NACK leaves the node on what it held, and the refused hash is not pushed to it again; the
  next version is;
- a push is a full snapshot or a delta (ADR 0006); a NACKed delta is not a refusal of the
  hash: the same version is pushed again, in full, and the node gets no delta until it ACKs
  a full snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Pending:
    """The one unacknowledged push: its nonce, the hash it carried and when it went out."""

    nonce: str
    hash: str
    at: float
    delta: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """The node's answer to the pending push."""

    result: Literal["ack", "nack"]
    hash: str  # the hash that was pushed
    waited: float  # seconds from the push to this answer
    error: str  # the node's reason on a NACK, "" on an ACK
    delta: bool = False  # whether the push was a delta


class PushState:
    """One node's stream: what it holds, what it refused, and the push awaiting its answer."""

    def __init__(self, version: int, hash: str) -> None:
        self.version = version  # what the node holds, as it last told us
        self.hash = hash
        self.refused = ""  # the hash of the last snapshot the node refused
        self.pending: Pending | None = None
        self.needs_full = False  # a delta was NACKed: the next push is a full snapshot

    def due(self, latest: str | None) -> bool:
        """Whether the snapshot with hash `latest` (None: nothing published) is to be pushed."""
        if self.pending is not None or latest is None:
            return False
        return latest not in (self.hash, self.refused)

    def pushed(self, nonce: str, hash: str, now: float, *, delta: bool = False) -> None:
        """Record a push; only a due one may go out, under a nonce that an answer can echo,
        and a delta only when the node is not owed a full snapshot."""
        if not nonce:
            raise ValueError("a push needs a nonce")
        if not self.due(hash):
            raise ValueError(f"no push of {hash!r} is due")
        if delta and self.needs_full:
            raise ValueError("the node refused a delta: a full snapshot is due")
        self.pending = Pending(nonce, hash, now, delta)

    def answered(
        self, nonce: str, *, version: int, hash: str, error: str, now: float
    ) -> Answer | None:
        """Apply the node's answer; None when it does not answer the pending push (stale,
        unknown or unsolicited), which changes nothing."""
        pending = self.pending
        if pending is None or nonce != pending.nonce:
            return None
        self.pending = None
        if error:
            if pending.delta:
                self.needs_full = True
            else:
                self.refused = pending.hash
            return Answer("nack", pending.hash, now - pending.at, error, pending.delta)
        self.version, self.hash = version, hash
        if not pending.delta:
            self.needs_full = False
        return Answer("ack", pending.hash, now - pending.at, "", pending.delta)
