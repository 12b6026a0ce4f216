"""The browser side of SSO: ``/sso/login/`` sends the user to the identity provider,
``/sso/callback/`` takes them back, logged in. The admin's own login form stays for local
accounts (break-glass)."""

from __future__ import annotations

import dataclasses
import logging

from django.contrib.auth import login
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET

from control_plane.sso import oidc, services

log = logging.getLogger(__name__)
SESSION_KEY = "asc_oidc_pending"
MAX_PENDING = 5  # logins started in other tabs stay valid


def _config() -> oidc.OidcSettings:
    config = oidc.OidcSettings.load()
    if config is None:
        raise Http404("single sign-on is not configured")
    return config


def _refuse(request: HttpRequest, reason: str, status: int) -> HttpResponse:
    log.warning("SSO login refused: %s", reason)
    context = {"reason": reason, "title": "Login refused", "site_header": "ASC"}
    return render(request, "admin/asc/sso_refused.html", context, status=status)


@require_GET
def sso_login(request: HttpRequest) -> HttpResponse:
    config = _config()
    next_url = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure()):
        next_url = reverse("admin:index")
    redirect_uri = request.build_absolute_uri(reverse("sso-callback"))
    try:
        url, pending = oidc.authorization_url(config, redirect_uri, next_url)
    except oidc.OidcError as exc:
        return _refuse(request, f"the identity provider cannot be reached: {exc}", 502)
    waiting = request.session.get(SESSION_KEY, [])[-(MAX_PENDING - 1) :]
    request.session[SESSION_KEY] = [*waiting, dataclasses.asdict(pending)]
    return HttpResponseRedirect(url)


@require_GET
def sso_callback(request: HttpRequest) -> HttpResponse:
    config = _config()
    state = request.GET.get("state", "")
    waiting = request.session.get(SESSION_KEY, [])
    found = next((p for p in waiting if p["state"] == state), None)
    request.session[SESSION_KEY] = [p for p in waiting if p["state"] != state]
    if not state or found is None:
        return _refuse(request, "this login was not started here, or has expired", 400)
    if "error" in request.GET:
        return _refuse(request, f"the identity provider said: {request.GET['error']}", 403)
    try:
        claims = oidc.exchange_code(config, request.GET.get("code", ""), oidc.Pending(**found))
        user = services.sign_in(config, claims)
    except oidc.OidcError as exc:
        return _refuse(request, str(exc), 403)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponseRedirect(found["next_url"])
