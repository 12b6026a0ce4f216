from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import BigIntegerField, ExpressionWrapper, F, QuerySet, Value
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from control_plane.core.access import is_platform_admin
from control_plane.core.admin import ReadOnlyAdmin
from control_plane.fleet import selectors
from control_plane.fleet.models import DataPlaneNode, PolicySnapshot
from control_plane.fleet.rollback import RollbackRefused, rollback_to
from control_plane.fleet.services import load_snapshot
from control_plane.fleet.snapshot_diff import diff_policies
from shared.pb import snapshot_pb2


@admin.register(PolicySnapshot)
class PolicySnapshotAdmin(ReadOnlyAdmin):
    """Snapshot history: who changed what, a diff between two versions, and rollback."""

    list_display = ["version", "hash", "created_at", "created_by", "reason", "size_bytes", "diff"]
    exclude = ["payload", "credential_ids"]
    search_fields = ["hash", "reason"]

    @admin.display(description="Changes")
    def diff(self, snapshot: PolicySnapshot) -> str:
        url = reverse("admin:asc_fleet_policysnapshot_diff", args=[snapshot.version])
        return format_html('<a href="{}">diff with previous</a>', url)

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<int:version>/diff/",
                self.admin_site.admin_view(self.diff_view),
                name="asc_fleet_policysnapshot_diff",
            ),
            path(
                "<int:version>/rollback/",
                self.admin_site.admin_view(self.rollback_view),
                name="asc_fleet_policysnapshot_rollback",
            ),
        ]
        return custom + super().get_urls()

    def diff_view(self, request: HttpRequest, version: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        new = get_object_or_404(PolicySnapshot, version=version)
        against = request.GET.get("against", "")
        old = (
            get_object_or_404(PolicySnapshot, version=int(against))
            if against.isdigit()
            else PolicySnapshot.objects.filter(version__lt=version).order_by("-version").first()
        )
        old_policy = load_snapshot(old).policy if old else snapshot_pb2.Policy()
        context = {
            **self.admin_site.each_context(request),
            "title": f"Changes from v{old.version if old else 0} to v{new.version}",
            "new": new,
            "old": old,
            "changes": diff_policies(old_policy, load_snapshot(new).policy),
            "versions": PolicySnapshot.objects.values_list("version", flat=True)[:200],
        }
        return render(request, "admin/asc/snapshot_diff.html", context)

    def rollback_view(self, request: HttpRequest, version: int) -> HttpResponse:
        if request.method != "POST" or not is_platform_admin(request.user):
            raise PermissionDenied
        try:
            rollback_to(version, actor=request.user)
        except RollbackRefused as exc:
            self.message_user(request, f"Not rolled back: {exc}", level=messages.ERROR)
        else:
            self.message_user(request, f"Configuration rolled back to v{version}; publishing.")
        return redirect("admin:asc_fleet_policysnapshot_changelist")


@admin.register(DataPlaneNode)
class DataPlaneNodeAdmin(ReadOnlyAdmin):
    """The fleet page: every node, what it applied, how far behind it is, when it was seen."""

    list_display = [
        "node_id",
        "region",
        "software_version",
        "connected",
        "applied_version",
        "lag",
        "last_ack_at",
        "last_contact",
        "spool_depth",
        "last_error",
    ]
    list_filter = ["connected", "region", "software_version"]
    search_fields = ["node_id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[DataPlaneNode]:
        latest = selectors.latest_version()
        lag = ExpressionWrapper(
            Value(latest) - F("applied_version"), output_field=BigIntegerField()
        )
        nodes: QuerySet[DataPlaneNode] = super().get_queryset(request)
        return nodes.annotate(lag_versions=lag)

    @admin.display(description="Lag (versions)", ordering="lag_versions")
    def lag(self, node: DataPlaneNode) -> int:
        return max(0, int(getattr(node, "lag_versions", 0)))

    @admin.display(description="Last contact")
    def last_contact(self, node: DataPlaneNode) -> str:
        if node.last_seen is None:
            return "never"
        seconds = int((timezone.now() - node.last_seen).total_seconds())
        return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"
