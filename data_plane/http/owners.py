"""Which upstream keeps a Responses API conversation: the response ids this node served, each
with the tenant, route and target (model and credential) that created it, so a later request
naming it (``previous_response_id``, ``GET /v1/responses/{id}``) goes back to the same
credential. Bounded: the oldest ids are forgotten first (a forgotten id is sent on as it is,
to whichever target the route picks).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from data_plane.types import Target

MAX_RESPONSES = 100_000


@dataclass(frozen=True, slots=True)
class Owner:
    tenant_id: str
    route_id: str
    model_id: str
    credential_id: str

    def owns(self, target: Target) -> bool:
        return (target.model_id, target.credential_id) == (self.model_id, self.credential_id)


class ResponseOwners:
    def __init__(self, capacity: int = MAX_RESPONSES) -> None:
        self._owners: OrderedDict[str, Owner] = OrderedDict()
        self._capacity = capacity

    def remember(self, response_id: str, owner: Owner) -> None:
        self._owners[response_id] = owner
        self._owners.move_to_end(response_id)
        while len(self._owners) > self._capacity:
            self._owners.popitem(last=False)

    def owner(self, response_id: str, tenant_id: str) -> Owner | None:
        """The owner of a response of this tenant (another tenant's ids are unknown)."""
        owner = self._owners.get(response_id)
        return owner if owner is not None and owner.tenant_id == tenant_id else None
