from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response

from control_plane.core.api.views import ScopedReadOnlyViewSet
from control_plane.rollouts import services
from control_plane.rollouts.api.serializers import (
    ReasonSerializer,
    RolloutSerializer,
    StartSerializer,
)
from control_plane.rollouts.models import Rollout


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class RolloutViewSet(ScopedReadOnlyViewSet):
    """Staged rollouts: platform admins start and steer them; auditors read them."""

    queryset = Rollout.objects.all()
    serializer_class = RolloutSerializer
    filterset_fields = ["state", "version", "baseline"]

    def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Response:
        try:
            rollout = fn(*args, actor=self.request.user, **kwargs)
        except services.RolloutRefused as exc:
            raise Conflict(str(exc)) from exc
        return Response(self.get_serializer(rollout).data)

    @extend_schema(request=StartSerializer, responses={201: RolloutSerializer})
    def create(self, request: Request) -> Response:
        """Stage the next change: it goes to the first step's canaries when it is published."""
        start = StartSerializer(data=request.data)
        start.is_valid(raise_exception=True)
        response = self._run(services.start, **start.validated_data)
        response.status_code = status.HTTP_201_CREATED
        return response

    @extend_schema(request=None, responses=RolloutSerializer)
    @action(detail=True, methods=["post"])
    def advance(self, request: Request, pk: str) -> Response:
        """The next step now (or complete after the last one)."""
        return self._run(services.advance, self.get_object().pk)

    @extend_schema(request=ReasonSerializer, responses=RolloutSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        """Hold the current step; automatic rollbacks still happen."""
        return self._run(services.pause, self.get_object().pk, reason=self._reason())

    @extend_schema(request=None, responses=RolloutSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        return self._run(services.resume, self.get_object().pk)

    @extend_schema(request=ReasonSerializer, responses=RolloutSerializer)
    @action(detail=True, methods=["post"])
    def abort(self, request: Request, pk: str) -> Response:
        """Every node back to the baseline, and its configuration restored."""
        return self._run(services.abort, self.get_object().pk, reason=self._reason())

    def _reason(self) -> str:
        body = ReasonSerializer(data=self.request.data or {})
        body.is_valid(raise_exception=True)
        return str(body.validated_data["reason"])
