from rest_framework.routers import SimpleRouter

from control_plane.tenancy.api.views import TenantViewSet

router = SimpleRouter()
router.register("tenants", TenantViewSet)
urlpatterns = router.urls
