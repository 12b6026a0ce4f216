"""Admin building blocks: every change made in the admin goes through the app's write services,
in the name of the user making it, and so publishes a snapshot on commit that says who."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model, QuerySet
from django.forms import BaseForm, BaseModelFormSet, ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from control_plane.core.access import (
    CHANGE,
    DELETE,
    PLATFORM_ONLY,
    RULES,
    VIEW,
    has_role_for,
    is_platform_admin,
    may_create_in,
    roles_by_tenant,
)
from control_plane.core.publishing import check_guards
from control_plane.core.services import Writes

# List filters on a relation offer only values present in the (scoped) rows, so a filter never
# names another tenant.
RelatedOnly = admin.RelatedOnlyFieldListFilter


class ScopedAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # not subscriptable at run time
    """Rows and permissions come from the same rules as the API (``core.access``): a tenant
    admin sees their tenant's rows, may pick only their tenants in forms, and may change only
    what their role allows. Django's per-model permissions are not used."""

    def _name(self) -> str:
        return self.model._meta.model_name or ""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).restrict(request.user)  # type: ignore[attr-defined, no-any-return]  # restrict() comes from the scoped manager

    def has_module_permission(self, request: HttpRequest) -> bool:
        return has_role_for(self._name(), request.user, VIEW)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return has_role_for(self._name(), request.user, VIEW)
        return self._allows(request, obj, VIEW)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return has_role_for(self._name(), request.user, CHANGE)
        return self._allows(request, obj, CHANGE)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        if self.model.objects.all().tenant_path != "tenant":
            return is_platform_admin(request.user)  # tenants, providers, models
        return has_role_for(self._name(), request.user, CHANGE)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return has_role_for(self._name(), request.user, DELETE)
        return self._allows(request, obj, DELETE)

    def _allows(self, request: HttpRequest, obj: Any, action: str) -> bool:
        rows = self.model.objects.restrict(request.user, action)
        return bool(rows.filter(pk=obj.pk).exists())

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        kwargs["queryset"] = self._choices(db_field, request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        kwargs["queryset"] = self._choices(db_field, request)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def _choices(self, db_field: Any, request: HttpRequest) -> QuerySet[Any]:
        """Related rows the user may see; for the tenant field, tenants where the user may
        change this kind of row."""
        related = db_field.related_model._default_manager.all()
        if not hasattr(related, "restrict"):
            return related  # type: ignore[no-any-return]  # db_field is untyped
        if db_field.name != "tenant" or is_platform_admin(request.user):
            return related.restrict(request.user)  # type: ignore[no-any-return]  # db_field is untyped
        allowed = RULES.get(self._name(), PLATFORM_ONLY).change
        tenant_ids = [t for t, role in roles_by_tenant(request.user).items() if role in allowed]
        return related.filter(pk__in=tenant_ids)  # type: ignore[no-any-return]  # db_field is untyped


class ServiceAdmin(ScopedAdmin):
    """Saves and deletes through the app's services (``writes``), with the requesting user as
    the actor; the rows of its inlines through each inline's ``writes``."""

    writes: Writes[Any]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        pass  # saved with its many-to-many values in save_related, through the service

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: Any = None,
    ) -> HttpResponse:
        refused = _refused_by_guards(request)
        return refused or super().changeform_view(request, object_id, form_url, extra_context)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        refused = _refused_by_guards(request)
        return refused or super().delete_view(request, object_id, extra_context)

    def save_related(
        self, request: HttpRequest, form: ModelForm[Any], formsets: Any, change: bool
    ) -> None:
        form.instance = self.writes.put(form.instance, actor=request.user, **many_to_many(form))
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def save_formset(
        self, request: HttpRequest, form: Any, formset: BaseModelFormSet[Any, Any], change: bool
    ) -> None:
        saved = formset.save(commit=False)
        if not saved and not formset.deleted_objects:
            return
        writes = self._inline_writes(request, form.instance, formset.model)
        for obj in formset.deleted_objects:
            writes.delete(obj, actor=request.user)
        for sub in formset.forms:
            if any(sub.instance is obj for obj in saved):
                writes.put(sub.instance, actor=request.user, **many_to_many(sub))

    def _inline_writes(self, request: HttpRequest, obj: Any, model: Any) -> Writes[Any]:
        for inline in self.get_inline_instances(request, obj):
            writes = getattr(inline, "writes", None)
            if inline.model is model and writes is not None:
                return writes  # type: ignore[no-any-return]  # ScopedInline.writes
        raise TypeError(f"{model._meta.verbose_name} rows are written only through services")

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        self.writes.delete(obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        with transaction.atomic():
            for obj in queryset:
                self.writes.delete(obj, actor=request.user)


def _refused_by_guards(request: HttpRequest) -> HttpResponse | None:
    """A change the publishing guards refuse (a staged rollout in flight), said on the page
    instead of failing the save."""
    if request.method != "POST":
        return None
    try:
        check_guards()
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return HttpResponseRedirect(request.get_full_path())
    return None


def many_to_many(form: BaseForm) -> dict[str, Any]:
    """The many-to-many values a model form holds (its other fields are set on the instance
    already), as the services take them."""
    instance = getattr(form, "instance", None)
    names = [f.name for f in instance._meta.many_to_many] if instance is not None else []
    return {name: form.cleaned_data[name] for name in names if name in form.cleaned_data}


class ReadOnlyAdmin(ScopedAdmin):
    """Records written by the system (usage, snapshots, node status) are not edited by hand."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ScopedInline(admin.TabularInline):  # type: ignore[type-arg]  # not subscriptable at run time
    """An inline on a tenant's page under the same rules as everything else: it lists the rows
    the user may see, and offers changes only where their role in that tenant allows them.
    Its rows are saved through ``writes``, the services of their own app."""

    extra = 0
    writes: Writes[Any] | None = None

    def _name(self) -> str:
        return self.model._meta.model_name or ""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).restrict(request.user)  # type: ignore[attr-defined, no-any-return]  # restrict() comes from the scoped manager

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_role_for(self._name(), request.user, VIEW)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_change(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_change(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_change(request, obj)

    def _may_change(self, request: HttpRequest, tenant: Any) -> bool:
        if tenant is None:
            return has_role_for(self._name(), request.user, CHANGE)
        return may_create_in(self._name(), request.user, tenant.pk)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        related = db_field.related_model._default_manager.all()
        if hasattr(related, "restrict"):
            kwargs["queryset"] = related.restrict(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class LinkInline(ScopedInline):
    """A tenant's rows of a kind, listed with a link to each one's own page (where they are
    changed, with their own inlines: a route's targets, say)."""

    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
