from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("", include("control_plane.tenancy.api.urls")),
    path("", include("control_plane.catalog.api.urls")),
    path("", include("control_plane.keys.api.urls")),
    path("", include("control_plane.fleet.api.urls")),
    path("", include("control_plane.usage.api.urls")),
    path("", include("control_plane.audit.api.urls")),
    path("", include("control_plane.guardrails.api.urls")),
    path("", include("control_plane.limits.api.urls")),
    path("", include("control_plane.sso.api.urls")),
    path("", include("control_plane.config.api.urls")),
    path("", include("control_plane.rollouts.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]
