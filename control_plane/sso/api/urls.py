from rest_framework.routers import SimpleRouter

from control_plane.sso.api.views import SsoGroupViewSet

router = SimpleRouter()
router.register("sso-groups", SsoGroupViewSet)
urlpatterns = router.urls
