from rest_framework.routers import SimpleRouter

from control_plane.tenancy.api.views import MembershipViewSet, TenantViewSet

router = SimpleRouter()
router.register("tenants", TenantViewSet)
router.register("memberships", MembershipViewSet)
urlpatterns = router.urls
