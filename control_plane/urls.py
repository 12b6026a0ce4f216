from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("control_plane.console.api.urls")),
    path("sso/", include("control_plane.sso.urls")),
]
