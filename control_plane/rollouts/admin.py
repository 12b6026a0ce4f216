"""The rollout pages: the list, one rollout (which nodes are on which version, the signals of
each group side by side, every decision with who made it and why, and the operator's
buttons), and a form to stage the next change. Platform admins act; auditors read."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from control_plane.core.access import is_platform_admin
from control_plane.core.admin import ReadOnlyAdmin
from control_plane.fleet.admin import PolicySnapshotAdmin
from control_plane.fleet.models import PolicySnapshot
from control_plane.rollouts import selectors, services
from control_plane.rollouts.models import Rollout

ACTIONS = {
    "advance": services.advance,
    "pause": services.pause,
    "resume": services.resume,
    "abort": services.abort,
}


class StartForm(forms.Form):
    steps = forms.CharField(initial="5,25,100", help_text="shares of the fleet, in percent")
    soak_s = forms.IntegerField(initial=60, min_value=0, label="Soak (seconds)")
    threshold = forms.FloatField(initial=0.05, min_value=0, max_value=1)
    min_requests = forms.IntegerField(initial=20, min_value=1)
    nodes = forms.CharField(required=False, help_text="canary node ids, comma-separated")
    region = forms.CharField(required=False, help_text="or a canary region")

    def clean_steps(self) -> list[int]:
        try:
            return [int(x) for x in self.cleaned_data["steps"].split(",") if x.strip()]
        except ValueError:
            raise forms.ValidationError("whole numbers separated by commas") from None


@admin.register(Rollout)
class RolloutAdmin(ReadOnlyAdmin):
    list_display = ["id", "state", "baseline", "version", "progress", "reason", "created_at"]
    list_filter = ["state"]
    change_list_template = "admin/asc/rollout_list.html"

    @admin.display(description="Step")
    def progress(self, rollout: Rollout) -> str:
        return f"{rollout.step + 1}/{len(rollout.steps)} ({rollout.steps[rollout.step]}%)"

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "start/",
                self.admin_site.admin_view(self.start_view),
                name="asc_rollouts_rollout_start",
            ),
            path(
                "<int:pk>/act/<str:what>/",
                self.admin_site.admin_view(self.act_view),
                name="asc_rollouts_rollout_act",
            ),
        ]
        return custom + super().get_urls()

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        extra = {**(extra_context or {}), "asc_may_start": is_platform_admin(request.user)}
        return super().changelist_view(request, extra)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        rollout = self.get_queryset(request).filter(pk=object_id).first()
        if rollout is None or not self.has_view_permission(request, rollout):
            return super().change_view(request, object_id, form_url, extra_context)
        status = selectors.status(rollout)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Rollout {rollout.pk}: v{status.version or '?'} over v{rollout.baseline}",
            "s": status,
            "groups": [("canaries", status.canary), ("baseline", status.baseline)],
            "may_act": is_platform_admin(request.user) and rollout.state in ("running", "paused"),
            "opts": self.model._meta,
        }
        return render(request, "admin/asc/rollout.html", context)

    def start_view(self, request: HttpRequest) -> HttpResponse:
        if not is_platform_admin(request.user):
            raise PermissionDenied
        form = StartForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            nodes = [n.strip() for n in data.pop("nodes").split(",") if n.strip()]
            try:
                rollout = services.start(actor=request.user, nodes=nodes, **data)
            except services.RolloutRefused as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, "Staged: the next change goes to the canaries first.")
                return redirect("admin:asc_rollouts_rollout_change", rollout.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": "Stage the next change",
            "form": form,
            "opts": self.model._meta,
        }
        return render(request, "admin/asc/rollout_start.html", context)

    def act_view(self, request: HttpRequest, pk: int, what: str) -> HttpResponse:
        if request.method != "POST" or not is_platform_admin(request.user) or what not in ACTIONS:
            raise PermissionDenied
        rollout = get_object_or_404(Rollout, pk=pk)
        try:
            ACTIONS[what](rollout.pk, actor=request.user)
        except services.RolloutRefused as exc:
            self.message_user(request, str(exc), level=messages.ERROR)
        return redirect("admin:asc_rollouts_rollout_change", rollout.pk)


class SnapshotHistoryAdmin(PolicySnapshotAdmin):
    """The snapshot history with each version's rollout (fleet sits below this app, so the
    column is added here, on fleet's own page)."""

    list_display = [*PolicySnapshotAdmin.list_display, "rollout"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[PolicySnapshot]:
        staged = Rollout.objects.filter(version=OuterRef("version")).order_by("-pk")
        snapshots: QuerySet[PolicySnapshot] = super().get_queryset(request)
        return snapshots.annotate(
            rollout_pk=Subquery(staged.values("pk")[:1]),
            rollout_state=Subquery(staged.values("state")[:1]),
        )

    @admin.display(description="Rollout")
    def rollout(self, snapshot: PolicySnapshot) -> str:
        pk = getattr(snapshot, "rollout_pk", None)
        if pk is None:
            return "to every node"
        url = reverse("admin:asc_rollouts_rollout_change", args=[pk])
        state = getattr(snapshot, "rollout_state", "")
        return format_html('<a href="{}">staged, rollout {} ({})</a>', url, pk, state)


admin.site.unregister(PolicySnapshot)
admin.site.register(PolicySnapshot, SnapshotHistoryAdmin)
